// Certificate lifetimes: what expires when (the CA, the server's
// certificate, every active staff member's and device's), and renewing a
// staff member's, a device's and the server's certificate before it
// expires. gRPC-free; server/ adapts it.
#ifndef FIELDSYNC_ADMIN_CERTIFICATES_H_
#define FIELDSYNC_ADMIN_CERTIFICATES_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "admin/principals.h"
#include "admin/server_keys.h"
#include "audit/log.h"
#include "common/clock.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.pb.h"
#include "storage/store.h"

namespace fieldsync::admin {

// AdminAction names (persisted in the audit log).
inline constexpr std::string_view kRenewStaffAction = "certs.renew-staff";
inline constexpr std::string_view kRenewDeviceAction = "certs.renew-device";
inline constexpr std::string_view kRenewServerAction = "certs.renew-server";
inline constexpr std::string_view kRotateCaAction = "certs.rotate-ca";
inline constexpr std::string_view kFinishCaRotationAction = "certs.rotate-ca-finish";

// A device may renew its certificate once it expires within this window, or
// within certificate_warning_days if that is longer (docs/PROTOCOL.md
// "Certificate renewal"); earlier calls are refused, so that a device
// cannot grow the registry and the audit log at will.
inline constexpr absl::Duration kDeviceRenewalWindow = absl::Hours(24 * 60);
// Earlier certificates a principal keeps accepted after renewals; the
// oldest is dropped beyond this.
inline constexpr int kMaxPreviousCertificates = 4;

// The deployment's certificate authorities as the running server uses
// them. Normally one CA issues and verifies every certificate. A CA
// rotation (`fieldsync certs rotate-ca`, docs/OPERATIONS.md) makes a new
// CA that issues every client certificate from then on, while the previous
// one stays trusted, so that the certificates it issued keep working until
// their holders renew, and keeps signing the server's certificate, which
// every client trusts until then. Finishing the rotation drops the previous
// CA and moves the server's certificate to the new one.
//
// Thread-safe: readers take an immutable snapshot.
class CertificateAuthorities {
 public:
  struct State {
    crypto::CertificateAuthority issuer;                   // issues client certificates
    std::optional<crypto::CertificateAuthority> previous;  // during a rotation
    // How many CAs the deployment has had; the issuer's number.
    uint32_t generation = 1;
    // The issuer's certificate, then the previous one's, if any (PEM): what
    // verifies clients, and what clients are given to verify the server.
    std::string trust_bundle_pem;
    // Distinct for every Set: a cache of verifications made under one state
    // compares it.
    uint64_t version = 0;
    // The CA that signs the server's certificate: the previous one during
    // a rotation (every client still trusts it), else the issuer.
    const crypto::CertificateAuthority& server_issuer() const {
      return previous.has_value() ? *previous : issuer;
    }
    // True during a rotation for a principal whose current certificate
    // the CA being retired issued: it should renew now.
    bool MustRenew(const v1::Principal& p) const;
  };

  explicit CertificateAuthorities(const ServerKeys& keys) { Set(keys); }

  std::shared_ptr<const State> Get() const {
    absl::MutexLock lock(&mu_);
    return state_;
  }

  // Replaces the state with the CAs of `keys`.
  void Set(const ServerKeys& keys);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const State> state_ ABSL_GUARDED_BY(mu_);
  uint64_t versions_ ABSL_GUARDED_BY(mu_) = 0;
};

// The CA generation that issued principal `p`'s current certificate
// (principals registered before generations were recorded: 1).
uint32_t CaGenerationOf(const v1::Principal& p);

struct CertificateExpiry {
  v1::CertificateKind kind = v1::CERTIFICATE_KIND_UNSPECIFIED;
  std::string principal_id;  // "" for the CA and the server
  std::string serial;
  absl::Time not_after;
  bool is_previous = false;  // an earlier certificate still accepted
};

// Every certificate's expiry, soonest first (ties by kind, then id): the
// CAs' (every certificate of the bundle `ca_pem`; those after the first
// marked is_previous), the server's (`server_certificate_pem`; none if empty),
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

struct CaRotationStep {
  std::string ca_certificate_pem;  // the CA that issues from now on
  absl::Time ca_not_after;
  uint32_t generation = 0;
  std::string trust_bundle_pem;  // what clients should trust from now on
  // Finishing: the server certificate issued by the new CA (fieldsyncd
  // presents it from its next start).
  std::optional<crypto::IssuedCertificate> server_certificate;
  // Active staff and devices whose current certificate the previous CA
  // issued: they must renew before the rotation is finished (starting:
  // all of them; finishing with force: those cut off).
  std::vector<PrincipalName> pending;
  uint64_t audit_leaf_index = 0;
};

// Thread-safe: registry writes hold the registry's write mutex. Pointers
// are not owned and must outlive this object.
class CertificateRenewal {
 public:
  struct Options {
    storage::Store* store = nullptr;
    PrincipalRegistry* registry = nullptr;  // store's
    CertificateAuthorities* cas = nullptr;
    Clock* clock = nullptr;
    // For CA rotations: the master key that wraps the CAs' keys, the
    // random source. Unset: no rotation.
    const crypto::MasterKeyRing* master = nullptr;
    Random* random = nullptr;
    audit::AuditLog* audit = nullptr;  // null: nothing is logged
    // How long before its certificate expires a device may renew it.
    absl::Duration device_renewal_window = kDeviceRenewalWindow;
    // The server's TLS files (ServerConfig tls_cert_file, tls_key_file).
    std::string server_certificate_file;
    std::string server_key_file;
    // The server's tls_ca_file: rewritten with the trust bundle on each CA
    // rotation step.
    std::string ca_certificate_file;
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
  // now (the message says from when it may renew) and was issued by the
  // current CA (during a CA rotation a device renews at once); kInvalidArgument
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

  // Starts a CA rotation: a new CA (valid kCaValidity) issues every client
  // certificate from now on; the current one stays trusted and keeps
  // signing the server's certificate until FinishCaRotation. Records
  // AdminAction kRotateCaAction (subjects: new CA serial, previous CA
  // serial) in the commit that stores the new CA, then rewrites
  // ca_certificate_file with both. Devices learn to renew from their next
  // push (PushResponse.certificate_renewal_requested); staff are renewed
  // with RenewStaff. kFailedPrecondition: a rotation is already running
  // (finish it first); a file cannot be written.
  absl::StatusOr<CaRotationStep> StartCaRotation(const std::string& actor);

  // Finishes a CA rotation: issues the server a certificate from the new
  // CA (for a new key, naming what the current one names; replaced as in
  // RenewServer), drops the previous CA (its certificates are refused from
  // now on) and rewrites ca_certificate_file with the new CA alone. Records
  // AdminAction kFinishCaRotationAction (subjects: the retired CA's
  // serial, the new server certificate's serial, then the principal URIs
  // cut off). kFailedPrecondition: no rotation is running; an active
  // principal still holds only a certificate of the previous CA (listed,
  // with how to renew), unless `force`; the caller (`actor`) holds only
  // such a certificate, even with `force`.
  absl::StatusOr<CaRotationStep> FinishCaRotation(bool force, const std::string& actor);

 private:
  // Issues and commits a renewal of principal `name` (its entry `p`).
  absl::StatusOr<RenewedCertificate> Renew(v1::Principal p, const PrincipalName& name,
                                           std::string_view public_key_pem, bool revoke_old,
                                           std::string_view action, const std::string& actor);

  // Issues a server certificate for a new key, signed by `ca`, naming the
  // current certificate's names plus `add_hosts` minus `drop_hosts`.
  struct NewServerCertificate {
    crypto::KeyPem key;
    crypto::IssuedCertificate certificate;
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_addresses;
  };
  absl::StatusOr<NewServerCertificate> IssueServer(const crypto::CertificateAuthority& ca,
                                                   const std::vector<std::string>& add_hosts,
                                                   const std::vector<std::string>& drop_hosts);
  // Replaces the server's key and certificate files with `issued`.
  absl::Status InstallServer(const NewServerCertificate& issued);
  // Active staff and devices whose current certificate an earlier CA
  // generation issued.
  absl::StatusOr<std::vector<PrincipalName>> PendingRenewals(uint32_t generation) const;

  Options options_;
  // Serializes CA rotation steps.
  absl::Mutex rotation_mu_;
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
