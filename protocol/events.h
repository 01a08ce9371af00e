// Audit events (DESIGN §8) and their one canonical byte encoding: the bytes
// of a Merkle leaf. Events hold ids, counts, hashes and public keys only,
// never an identifying or sensitive value. docs/AUDIT.md repeats the layout.
#ifndef FIELDSYNC_PROTOCOL_EVENTS_H_
#define FIELDSYNC_PROTOCOL_EVENTS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/uuid.h"

namespace fieldsync::protocol {

// Persisted layout of an entry (version 1), built with crypto::CanonicalWriter
// (U8/U32/U64 big-endian; Uuid 16 raw bytes; Fixed raw bytes of a length
// the layout fixes; Bytes = U32 length || bytes; a list = U32 count, then
// its items):
//
//   "fieldsync/audit-event/v1" 0x00     25 bytes of domain separation
//   U8  kind                             EventKind below
//   U64 time                             microseconds since the Unix epoch
//   ... the kind's fields, in the order of the struct below
//
// Nothing follows the last field. Decoding is strict: every length must fit,
// no byte may be left over, a kind or enum value must be known.
inline constexpr std::string_view kEventDomain = "fieldsync/audit-event/v1";

// Persisted: never renumber, never reuse.
enum class EventKind : uint8_t {
  kDeviceEnrolled = 1,
  kStaffAdded = 2,
  kPrincipalRevoked = 3,
  kBatchAccepted = 4,
  kCaseChange = 5,
  kCaseAccess = 6,
  kKeyRotated = 7,
  kCaseErased = 8,
  kAdminAction = 9,
  kRollbackAccepted = 10,
  kEnrolmentFailures = 11,
};

// Persisted: the principal kinds of PrincipalRevoked and CaseAccess.
enum class PrincipalKind : uint8_t { kDevice = 1, kStaff = 2 };

// A tablet enrolled with a one-time code.
//   Bytes device_id | Bytes officer_id | Bytes region |
//   Fixed32 signing_public_key (Ed25519) | Fixed32 receiving_public_key
//   (X25519) | Bytes certificate_serial (hex)
struct DeviceEnrolled {
  std::string device_id;  // UUID text, lowercase
  std::string officer_id;
  std::string region;
  std::array<uint8_t, 32> signing_public_key{};
  std::array<uint8_t, 32> receiving_public_key{};
  std::string certificate_serial;
  friend bool operator==(const DeviceEnrolled&, const DeviceEnrolled&) = default;
};

// A staff principal registered by an administrator.
//   Bytes staff_id | U8 role (v1.Role value) | list of Bytes region |
//   Bytes certificate_serial (hex) | Bytes actor (principal URI)
struct StaffAdded {
  std::string staff_id;
  uint8_t role = 0;
  std::vector<std::string> regions;
  std::string certificate_serial;
  std::string actor;
  friend bool operator==(const StaffAdded&, const StaffAdded&) = default;
};

// A device or staff principal revoked.
//   U8 principal_kind | Bytes principal_id | Bytes actor
struct PrincipalRevoked {
  PrincipalKind principal_kind = PrincipalKind::kDevice;
  std::string principal_id;
  std::string actor;
  friend bool operator==(const PrincipalRevoked&, const PrincipalRevoked&) = default;
};

// Per-outcome change counts.
//   U32 applied | U32 converged | U32 superseded | U32 conflict | U32 rejected
struct Outcomes {
  uint32_t applied = 0, converged = 0, superseded = 0, conflict = 0, rejected = 0;
  friend bool operator==(const Outcomes&, const Outcomes&) = default;
};

// A device batch committed (DESIGN §5). The device signed
// BatchSignedMessage(...) (below) with the key its DeviceEnrolled recorded.
//   Bytes device_id | Uuid batch_id | U64 sequence | U32 sealing_key_id |
//   U8 compression | Fixed32 payload_sha256 | Fixed64 signature |
//   U64 first_position |
//   U64 last_position | Outcomes | list of Uuid case_id
struct BatchAccepted {
  std::string device_id;  // UUID text, lowercase
  Uuid batch_id{};
  uint64_t sequence = 0;
  uint32_t sealing_key_id = 0;
  uint8_t compression = 0;                   // v1.PayloadCompression value
  std::array<uint8_t, 32> payload_sha256{};  // SealedPayloadDigest(enc, ciphertext)
  std::array<uint8_t, 64> signature{};
  uint64_t first_position = 0;  // canonical log range; 0, 0 if none logged
  uint64_t last_position = 0;
  Outcomes outcomes;
  std::vector<Uuid> case_ids;  // cases with a logged change
  friend bool operator==(const BatchAccepted&, const BatchAccepted&) = default;
};

// A supervisor's server-side change: assignment, transfer, close, reopen or
// conflict resolution (change_kind is the v1.ChangeKind value: 3 close,
// 4 reopen, 5 assign, 6 transfer, 7 resolve conflict).
//   Bytes actor | U8 change_kind | U64 first_position | U64 last_position |
//   Outcomes | list of Uuid case_id
struct CaseChange {
  std::string actor;
  uint8_t change_kind = 0;
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  Outcomes outcomes;
  std::vector<Uuid> case_ids;
  friend bool operator==(const CaseChange&, const CaseChange&) = default;
};

// Persisted: what a CaseAccess was.
enum class AccessKind : uint8_t {
  kDevicePull = 1,    // SyncService.Pull chunk(s)
  kStaffRead = 2,     // a staff call that returned case data
  kConflictList = 3,  // CaseService.ListConflicts
  kCaseView = 4,      // CaseService.GetCase
  kCaseHistory = 5,   // CaseService.GetCaseHistory
  kConflictView = 6,  // CaseService.GetConflict
};

// Case data left the server: who read which cases.
//   U8 principal_kind | Bytes principal_id | U8 access | U64 from_position |
//   U64 to_position | list of Uuid case_id
struct CaseAccess {
  PrincipalKind principal_kind = PrincipalKind::kDevice;
  std::string principal_id;
  AccessKind access = AccessKind::kDevicePull;
  uint64_t from_position = 0;  // pulls: the log range read; else 0, 0
  uint64_t to_position = 0;
  std::vector<Uuid> case_ids;
  friend bool operator==(const CaseAccess&, const CaseAccess&) = default;
};

// A key rotated. `purpose` names the key ("kek", "hpke-sealing",
// "audit-signing"); `new_public_key` is empty for a symmetric key.
//   Bytes actor | Bytes purpose | U32 old_version | U32 new_version |
//   Bytes new_public_key
// The KeyRotated purpose of the audit log's own signing key
// (docs/AUDIT.md §9): new_public_key is the next Ed25519 key.
inline constexpr std::string_view kAuditSigningPurpose = "audit-signing";
struct KeyRotated {
  std::string actor;
  std::string purpose;
  uint32_t old_version = 0;
  uint32_t new_version = 0;
  std::string new_public_key;
  friend bool operator==(const KeyRotated&, const KeyRotated&) = default;
};

// A case crypto-shredded (its data key deleted).
//   Bytes actor | Uuid case_id
struct CaseErased {
  std::string actor;
  Uuid case_id{};
  friend bool operator==(const CaseErased&, const CaseErased&) = default;
};

// Any other administrative action: a name ("enrolment-code.issue",
// "backup.create", ...) and the opaque ids it concerned.
//   Bytes actor | Bytes action | list of Bytes subject_id
struct AdminAction {
  std::string actor;
  std::string action;
  std::vector<std::string> subject_ids;
  friend bool operator==(const AdminAction&, const AdminAction&) = default;
};

// An administrator accepted that the store's audit tree does not extend
// heads the log had published (`fieldsyncd --accept-rollback`, after a
// restore from an older backup or of a whole older data directory). The
// log continues from the store's tree, whose size and root are recorded;
// `abandoned_heads` are the published signed checkpoint notes it does not
// extend (each verifiable with the log's key). The event's own leaf index
// equals `continued_size`.
//   Bytes actor | U64 continued_size | Fixed32 continued_root |
//   list of Bytes abandoned_head (checkpoint note text)
struct RollbackAccepted {
  std::string actor;
  uint64_t continued_size = 0;
  std::array<uint8_t, 32> continued_root{};
  std::vector<std::string> abandoned_heads;
  friend bool operator==(const RollbackAccepted&, const RollbackAccepted&) = default;
};

// Failed enrolment attempts of one period, in aggregate: counts only,
// never a code or a network address. Written once a minute when there were
// any, and at shutdown.
//   U64 window_start | U64 window_end (microseconds since the Unix epoch) |
//   U64 failed | U64 distinct_addresses | U64 lockouts | U64 refused
// `failed`: attempts with a wrong, used, cancelled or expired code;
// `distinct_addresses`: addresses they came from; `lockouts`: addresses
// locked out in the period; `refused`: attempts refused by the limits
// before their code was checked.
struct EnrolmentFailures {
  absl::Time window_start;
  absl::Time window_end;
  uint64_t failed = 0;
  uint64_t distinct_addresses = 0;
  uint64_t lockouts = 0;
  uint64_t refused = 0;
  friend bool operator==(const EnrolmentFailures&, const EnrolmentFailures&) = default;
};

using EventBody = std::variant<DeviceEnrolled, StaffAdded, PrincipalRevoked, BatchAccepted,
                               CaseChange, CaseAccess, KeyRotated, CaseErased, AdminAction,
                               RollbackAccepted, EnrolmentFailures>;

struct Event {
  absl::Time time;  // whole microseconds are kept
  EventBody body;
  friend bool operator==(const Event&, const Event&) = default;
};

EventKind KindOf(const Event& event);
// "device-enrolled", "batch-accepted", ... (for reports; not persisted).
std::string_view KindName(EventKind kind);

// The canonical entry bytes of `event`. kInvalidArgument if the time is
// before 1970, a string is 4 GiB or more, or an enum value is not one of
// the persisted ones.
absl::StatusOr<std::string> EncodeEvent(const Event& event);

// The inverse of EncodeEvent. kInvalidArgument naming the field at which
// the bytes are malformed, truncated or have trailing data.
absl::StatusOr<Event> DecodeEvent(std::string_view entry);

// What a device signs for a batch (the SealedBatch.signature message; the
// same bytes as protocol/sealed_batch.h EncodeBatchSignedMessage), persisted,
// 132 bytes:
//   "fieldsync/batch-signature/v1" 0x00     29 bytes
//   batch header encoding                   70 bytes (protocol::EncodeBatchHeader)
//   compression                              1 byte (v1.PayloadCompression)
//   payload_sha256                          32 bytes
// where payload_sha256 = SealedPayloadDigest(enc, ciphertext).
inline constexpr std::string_view kBatchSignatureDomain = "fieldsync/batch-signature/v1";
std::string BatchSignedMessage(std::string_view batch_header_encoding, uint8_t compression,
                               const std::array<uint8_t, 32>& payload_sha256);
// SHA-256(enc || ciphertext) of a sealed batch (enc is 32 bytes).
std::array<uint8_t, 32> SealedPayloadDigest(std::string_view enc, std::string_view ciphertext);

// The message the device signed for `batch`, rebuilt from what the event
// records. kInvalidArgument if the device id is not a UUID.
absl::StatusOr<std::string> BatchSignedMessageOf(const BatchAccepted& batch);

// Checks a BatchAccepted's device signature with the device's Ed25519 key.
// OK if it verifies; kInvalidArgument if the device or batch id is not a
// UUID; kUnauthenticated if the signature does not verify.
absl::Status VerifyBatchSignature(const BatchAccepted& batch,
                                  const std::array<uint8_t, 32>& signing_public_key);

}  // namespace fieldsync::protocol

#endif  // FIELDSYNC_PROTOCOL_EVENTS_H_
