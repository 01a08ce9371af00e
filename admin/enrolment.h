// Device enrolment (DESIGN §3): one-time, expiring enrolment codes bound to
// an officer and a region, and the registration of a device that presents
// one (its certificate signed by the deployment CA, its signing and
// receiving keys recorded in the registry). gRPC-free; server/ adapts it.
#ifndef FIELDSYNC_ADMIN_ENROLMENT_H_
#define FIELDSYNC_ADMIN_ENROLMENT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "admin/certificates.h"
#include "admin/principals.h"
#include "audit/log.h"
#include "common/clock.h"
#include "common/random.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.pb.h"
#include "storage/store.h"

namespace fieldsync::admin {

inline constexpr absl::Duration kDefaultEnrolmentCodeTtl = absl::Hours(24);
inline constexpr absl::Duration kMaxEnrolmentCodeTtl = absl::Hours(24 * 30);

// The canonical form of a typed code: dashes and spaces dropped, upper
// case, Crockford's aliases (O -> 0, I and L -> 1) applied. kInvalidArgument
// unless 20 characters of 0-9A-Z without I, L, O, U remain.
absl::StatusOr<std::string> NormalizeEnrolmentCode(std::string_view typed);

// Lowercase hex of SHA-256("fieldsync/enrolment-code/v1" || 0x00 ||
// normalized code): the only form of a code the server stores. Persisted.
std::string EnrolmentCodeHashHex(std::string_view normalized_code);

// A code's id: the first 16 lowercase hex digits of
// SHA-256("fieldsync/enrolment-code-id/v1" || 0x00 || code_hash_hex). One-way
// from the stored hash (which is one-way from the code), so listing it
// reveals nothing of the code; every code, also those issued before ids
// existed, has one. Persisted (printed and audited).
std::string EnrolmentCodeId(std::string_view code_hash_hex);

struct IssuedEnrolmentCode {
  std::string code;  // XXXX-XXXX-XXXX-XXXX-XXXX, shown once
  std::string code_id;
  absl::Time expires_at;
  std::string officer_id;
  std::string region;
};

struct EnrolmentRequest {
  std::string code;                  // as typed
  std::string csr_pem;               // PKCS#10 for the device's P-256 TLS key
  std::string signing_public_key;    // Ed25519, 32 bytes
  std::string receiving_public_key;  // X25519, 32 bytes
  std::string device_label;          // stored in the device's entry
};

struct EnrolledDevice {
  v1::Principal principal;  // the new registry entry
  std::string certificate_pem;
};

// The AdminAction names of an issued and a cancelled enrolment code.
inline constexpr std::string_view kIssueEnrolmentCodeAction = "enrolment-code.issue";
inline constexpr std::string_view kCancelEnrolmentCodeAction = "enrolment-code.cancel";

struct CancelledEnrolmentCode {
  v1::ListedEnrolmentCode code;
  uint64_t audit_leaf_index = 0;  // 0 without an audit log
};

// Thread-safe: code and registry writes hold the registry's write mutex.
// Pointers are not owned and must outlive this object.
class DeviceEnrolment {
 public:
  // `registry` is `store`'s.
  DeviceEnrolment(storage::Store* store, PrincipalRegistry* registry,
                  const CertificateAuthorities* cas, Clock* clock, Random* random)
      : store_(store), registry_(registry), cas_(cas), clock_(clock), random_(random) {}

  // Issues a code for the registered, active officer `officer_id` and its
  // region, valid for `ttl` (zero = kDefaultEnrolmentCodeTtl); `region` is
  // "" or the officer's region. `actor` is the caller's URI.
  // kInvalidArgument: not an active officer (ActiveOfficer's message naming
  //   the active ones), another region (the message says the officer's), a
  //   ttl over kMaxEnrolmentCodeTtl. kUnavailable from storage.
  absl::StatusOr<IssuedEnrolmentCode> CreateCode(std::string_view officer_id,
                                                 std::string_view region, absl::Duration ttl,
                                                 const std::string& actor);

  // Spends the code and registers a new device (role device, the code's
  // officer and region) with a fresh UUID, issuing its client certificate
  // for fieldsync://device/<id>. The code is spent in the same commit that
  // registers the device, so it serves exactly one device. Errors (each a
  // sync::SyncError with its SyncErrorDetail):
  //   kInvalidArgument ENROLMENT_CODE_INVALID: unknown, already used,
  //     cancelled or expired code, or its officer is no longer active (the message says
  //     which);
  //   kInvalidArgument MALFORMED: a key that is not 32 bytes, a bad CSR.
  //     The code is not spent.
  //   kUnavailable UNAVAILABLE: storage.
  absl::StatusOr<EnrolledDevice> Enroll(const EnrolmentRequest& request);

  // The open codes (issued, unused, not cancelled, unexpired), oldest
  // first, of officer `officer_id` ("" = every officer). Never the code.
  // kInvalidArgument: `officer_id` is no registered officer (the message
  // names the registered ones). kUnavailable / kDataLoss from storage.
  absl::StatusOr<std::vector<v1::ListedEnrolmentCode>> ListOpenCodes(
      std::string_view officer_id) const;

  // Cancels the open code whose id is `code_id`: it no longer enrols
  // (Enroll says it was cancelled). Audited as AdminAction
  // kCancelEnrolmentCodeAction, subjects (code id, officer id), in the same
  // commit. kInvalidArgument: not 16 lowercase hex digits. kNotFound: no
  // code has that id (the message names the open codes' ids).
  // kFailedPrecondition: used, cancelled or expired already.
  // kUnavailable from storage or the audit log (nothing changes).
  absl::StatusOr<CancelledEnrolmentCode> CancelCode(std::string_view code_id,
                                                    const std::string& actor);

  // Records each enrolment (with the device's public keys) in `log`, in the
  // same commit as the registry write, and each code issued as an
  // AdminAction kIssueEnrolmentCodeAction with subjects (officer id,
  // region), in the code's commit. Not owned; null: no audit events.
  void set_audit_log(audit::AuditLog* log) { audit_ = log; }

 private:
  storage::Store* store_;
  PrincipalRegistry* registry_;
  const CertificateAuthorities* cas_;
  Clock* clock_;
  Random* random_;
  audit::AuditLog* audit_ = nullptr;
};

// How enrolment attempts are limited (ServerConfig.limits, documented in
// config.proto and docs/OPERATIONS.md "Resource limits").
struct EnrolmentLimits {
  // Failed attempts an address may make before delays begin.
  uint32_t free_failures = 3;
  // The delay after the first failure past free_failures; it doubles with
  // every further one, up to max_delay.
  absl::Duration first_delay = absl::Seconds(1);
  absl::Duration max_delay = absl::Seconds(60);
  // Failed attempts in a row that lock an address out, and for how long.
  uint32_t lockout_failures = 10;
  absl::Duration lockout = absl::Minutes(15);
  // Attempts from every address together, per minute.
  uint32_t attempts_per_minute = 120;
};

// What EnrolmentAttempts::Admit decided.
struct EnrolmentAdmission {
  enum class Verdict {
    kAllowed,
    kAddressWaiting,    // the address failed recently: wait retry_after
    kAddressLockedOut,  // the address failed too often: locked out for retry_after
    kServerBusy,        // every address together is over its rate
  };
  Verdict verdict = Verdict::kAllowed;
  absl::Duration retry_after;
};

// Counts since the server started (GetStatusResponse, `fieldsync status`).
struct EnrolmentAttemptCounts {
  uint64_t failed = 0;          // attempts with a wrong, used, cancelled or expired code
  uint64_t refused = 0;         // attempts refused by the limits before any check
  uint64_t lockouts = 0;        // times an address was locked out
  uint32_t locked_out_now = 0;  // addresses locked out now
};

// The failed attempts of one period, for the audit log's EnrolmentFailures
// event: counts only, never a code or an address.
struct EnrolmentFailureWindow {
  absl::Time start;
  absl::Time end;
  uint64_t failed = 0;
  uint64_t distinct_addresses = 0;  // addresses with a failed attempt
  uint64_t lockouts = 0;            // addresses locked out in the period
  uint64_t refused = 0;             // attempts refused by the limits
};

// Per-address backoff and lockout, and a global rate, for enrolment
// attempts (codes are 100 bits, so guessing is hopeless; this keeps it
// slow and visible). An address is the caller's IP without its port.
// Thread-safe; `clock` is not owned and must outlive it.
class EnrolmentAttempts {
 public:
  EnrolmentAttempts(EnrolmentLimits limits, const Clock* clock);

  // Before an attempt from `address`; an allowed attempt is counted
  // against the global rate.
  EnrolmentAdmission Admit(std::string_view address);
  // After an attempt refused for its code (ENROLMENT_CODE_INVALID).
  void Failed(std::string_view address);
  // After a successful enrolment: the address's failures are forgiven.
  void Succeeded(std::string_view address);

  EnrolmentAttemptCounts Counts() const;
  // The failures since the last call (or since construction), starting a
  // new period at now.
  EnrolmentFailureWindow TakeWindow();

 private:
  struct Address {
    uint32_t failures = 0;  // in a row
    absl::Time last_failure;
    absl::Time locked_until;
  };
  // Drops addresses with nothing left to hold against them.
  void ForgetIdleLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const EnrolmentLimits limits_;
  const Clock* clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Address> addresses_ ABSL_GUARDED_BY(mu_);
  // The global rate: a token bucket of attempts_per_minute.
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time tokens_updated_ ABSL_GUARDED_BY(mu_);
  EnrolmentAttemptCounts counts_ ABSL_GUARDED_BY(mu_);
  EnrolmentFailureWindow window_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> window_addresses_ ABSL_GUARDED_BY(mu_);
};

// Appends the failures of the period since the last call as one
// EnrolmentFailures audit event (counts only) and commits it, when there
// were any failed or refused attempts; else only starts a new period.
// Returns whether an event was written. kUnavailable from the audit log
// or storage (the period's counts are then lost, and logged).
absl::StatusOr<bool> AuditEnrolmentFailures(EnrolmentAttempts* attempts, audit::AuditLog* audit,
                                            storage::Store* store);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_ENROLMENT_H_
