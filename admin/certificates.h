// Certificate lifetimes: what expires when (the CA, the server's
// certificate, every active staff member's and device's), and renewing a
// staff member's, a device's and the server's certificate before it
// expires. gRPC-free; server/ adapts it.
#ifndef FIELDSYNC_ADMIN_CERTIFICATES_H_
#define FIELDSYNC_ADMIN_CERTIFICATES_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "admin/principals.h"
#include "audit/log.h"
#include "common/clock.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.pb.h"
#include "storage/store.h"

namespace fieldsync::admin {

// AdminAction names (persisted in the audit log).
inline constexpr std::string_view kRenewStaffAction = "certs.renew-staff";
inline constexpr std::string_view kRenewDeviceAction = "certs.renew-device";
inline constexpr std::string_view kRenewServerAction = "certs.renew-server";

// A device may renew its certificate once it expires within this window, or
// within certificate_warning_days if that is longer (docs/PROTOCOL.md
// "Certificate renewal"); earlier calls are refused, so that a device
// cannot grow the registry and the audit log at will.
inline constexpr absl::Duration kDeviceRenewalWindow = absl::Hours(24 * 60);
// Earlier certificates a principal keeps accepted after renewals; the
// oldest is dropped beyond this.
inline constexpr int kMaxPreviousCertificates = 4;

struct CertificateExpiry {
  v1::CertificateKind kind = v1::CERTIFICATE_KIND_UNSPECIFIED;
  std::string principal_id;  // "" for the CA and the server
  std::string serial;
  absl::Time not_after;
  bool is_previous = false;  // an earlier certificate still accepted
};

// Every certificate's expiry, soonest first (ties by kind, then id): the
// CA's (`ca_pem`), the server's (`server_certificate_pem`; none if empty),
// and for each active staff member and device its current certificate and
// the earlier ones still accepted at `now`.
// Errors: kInvalidArgument if a PEM does not parse; the registry's errors.
absl::StatusOr<std::vector<CertificateExpiry>> ListCertificateExpiries(
    const PrincipalRegistry& registry, std::string_view ca_pem,
    std::string_view server_certificate_pem, absl::Time now);

// "ca", "server", "staff" or "device" (for logs and listings).
std::string_view CertificateKindName(v1::CertificateKind kind);

// Whole days from `now` to `not_after`, rounded down (negative once past).
int64_t DaysLeft(absl::Time not_after, absl::Time now);

// The notAfter that crypto::IssueClientCertificate wrote into a certificate
// issued at `issued_at` for kClientValidity under a CA valid until
// `ca_not_after`.
absl::Time ClientCertificateNotAfter(absl::Time issued_at, absl::Time ca_not_after);

// Registries written before certificates' expiries were recorded: gives
// every staff and device principal that has a serial but no
// certificate_not_after the one its certificate carries (computed from its
// registration time as ClientCertificateNotAfter), in one commit. Returns
// how many entries were filled (0: nothing to do). Errors: storage's.
absl::StatusOr<int> RecordMissingCertificateExpiries(storage::Store* store,
                                                     PrincipalRegistry* registry,
                                                     std::string_view ca_pem);

// True if a certificate with `serial` may still authenticate `principal`:
// it is the current one, or an earlier one still accepted at `now`. A
// principal registered without a serial accepts any certificate the CA
// issued for its name.
bool AcceptsCertificate(const v1::Principal& principal, std::string_view serial, absl::Time now);

struct RenewedCertificate {
  v1::Principal principal;  // the registry entry after the renewal
  std::string certificate_pem;
  absl::Time not_after;
  std::vector<std::string> revoked_serials;  // earlier certificates now refused
};

struct RenewedServerCertificate {
  crypto::IssuedCertificate certificate;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  uint64_t audit_leaf_index = 0;
};

// Thread-safe: registry writes hold the registry's write mutex. Pointers
// are not owned and must outlive this object.
class CertificateRenewal {
 public:
  struct Options {
    storage::Store* store = nullptr;
    PrincipalRegistry* registry = nullptr;  // store's
    const crypto::CertificateAuthority* ca = nullptr;
    Clock* clock = nullptr;
    audit::AuditLog* audit = nullptr;  // null: nothing is logged
    // How long before its certificate expires a device may renew it.
    absl::Duration device_renewal_window = kDeviceRenewalWindow;
    // The server's TLS files (ServerConfig tls_cert_file, tls_key_file).
    std::string server_certificate_file;
    std::string server_key_file;
  };
  explicit CertificateRenewal(Options options) : options_(std::move(options)) {}

  // Issues a new certificate for the CSR's key to the active staff member
  // `id`. Its current certificate joins the earlier ones accepted until
  // they expire, unless `revoke_old`, which refuses every earlier one from
  // now on. Records AdminAction kRenewStaffAction (subjects: id, new
  // serial) in the same commit. kNotFound: no such staff member (the
  // message lists the active ones). kFailedPrecondition: revoked.
  // kInvalidArgument: malformed id or CSR.
  absl::StatusOr<RenewedCertificate> RenewStaff(std::string_view id, std::string_view csr_pem,
                                                bool revoke_old, const std::string& actor);

  // Issues a new certificate for the CSR's key to the active device `id`
  // (the caller itself), keeping its current one accepted until it
  // expires. Records AdminAction kRenewDeviceAction (subjects: id, new
  // serial). Errors (sync::SyncError): kFailedPrecondition NO_CHANGE when
  // the current certificate expires later than device_renewal_window from
  // now (the message says from when it may renew); kInvalidArgument
  // MALFORMED for a bad CSR; kUnavailable UNAVAILABLE from storage.
  absl::StatusOr<RenewedCertificate> RenewDevice(std::string_view id, std::string_view csr_pem);

  // Issues a server certificate for a new key, naming the current
  // certificate's names plus `add_hosts` minus `drop_hosts` (localhost,
  // 127.0.0.1 and ::1 always stay), valid for kServerValidity, and replaces
  // the server's key and certificate files (both written beside the old
  // ones first, then renamed over them, the key first; see
  // CompleteServerCertificateRenewal). Records AdminAction kRenewServerAction (subject: new
  // serial). kInvalidArgument: a malformed host, a drop of a name the certificate does not carry
  // (listing those it does) or of a loopback name; kFailedPrecondition: a file cannot be written.
  absl::StatusOr<RenewedServerCertificate> RenewServer(const std::vector<std::string>& add_hosts,
                                                       const std::vector<std::string>& drop_hosts,
                                                       const std::string& actor);

 private:
  // Issues and commits a renewal of principal `name` (its entry `p`).
  absl::StatusOr<RenewedCertificate> Renew(v1::Principal p, const PrincipalName& name,
                                           std::string_view public_key_pem, bool revoke_old,
                                           std::string_view action, const std::string& actor);

  Options options_;
};

// Finishes a server certificate renewal that stopped before both new files
// (FILE.new beside each) replaced the old ones, so that the key and the
// certificate match again; removes staged files that match nothing. Run at
// start, before the files are read. OK when there was nothing to do.
// kFailedPrecondition if a rename fails.
absl::Status CompleteServerCertificateRenewal(const std::string& certificate_file,
                                              const std::string& key_file);

// Replaces `path` with `content` atomically: a new file beside it, fsynced,
// renamed over it, then the directory fsynced. kFailedPrecondition naming
// the path and the system's reason.
absl::Status ReplaceFile(const std::string& path, std::string_view content, mode_t mode);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_CERTIFICATES_H_
