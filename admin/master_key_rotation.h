// Rotating the master key (KEK, DESIGN §7): the administrator's operation
// behind AdminService.RotateMasterKey. A new KEK version is written to the
// key file, then the server's own wrapped keys and every case data key are
// re-wrapped under it online; field ciphertexts do not change (they are
// under the case keys, which stay the same). gRPC-free.
#ifndef FIELDSYNC_ADMIN_MASTER_KEY_ROTATION_H_
#define FIELDSYNC_ADMIN_MASTER_KEY_ROTATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "audit/log.h"
#include "common/clock.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "keys/case_keys.h"
#include "storage/store.h"

namespace fieldsync::admin {

// Metadata key of an unfinished rotation (persisted). Value, 8 bytes:
//   U32 old_version || U32 new_version     big-endian
// Written (synced) before the key file gains new_version; deleted in the
// atomic write that appends the KeyRotated event. Its presence means a
// rotation started and did not finish: the next RotateMasterKey resumes it.
inline constexpr std::string_view kPendingRotationMetadata = "kek/pending_rotation";

struct RotationOptions {
  storage::Store* store = nullptr;
  keys::CaseKeyStore* case_keys = nullptr;  // must read `ring`
  // The ring the server (and case_keys) wraps and unwraps with; the
  // rotation adds the new version to it with MasterKeyRing::Adopt, which is
  // safe against concurrent use (see master_key.h).
  crypto::MasterKeyRing* ring = nullptr;
  audit::AuditLog* audit = nullptr;  // must not be null
  Clock* clock = nullptr;
  Random* random = nullptr;
  // The key file `ring` was loaded from; "" when it came from
  // master_key_command (then rotation is refused).
  std::string key_file;
};

struct RotationResult {
  uint32_t old_version = 0;
  uint32_t new_version = 0;
  keys::RewrapCounts case_keys;
  uint32_t server_keys_rewrapped = 0;
  bool resumed = false;  // finished an earlier, interrupted rotation
  uint64_t audit_leaf_index = 0;
};

// Thread-safe: rotations are serialized; pushes and pulls go on meanwhile.
// Pointers in the options are not owned and must outlive this object.
class MasterKeyRotation {
 public:
  explicit MasterKeyRotation(RotationOptions options) : options_(std::move(options)) {}

  // Rotates, in this order, each step durable before the next:
  //   1. records the pending rotation (old, old + 1) in metadata;
  //   2. adds version old + 1 to a copy of the ring and replaces the key
  //      file with it atomically (ReplaceKeyFile), keeping every old
  //      version; only then installs it in the live ring, so that nothing
  //      is ever wrapped under a version the file lacks;
  //   3. re-wraps the server's keys (Cf::kKeys entries other than case
  //      DEKs) under the new version, in one commit;
  //   4. re-wraps every case DEK (CaseKeyStore::RewrapAll, in batches),
  //      new cases' keys committed meanwhile included (it waits for a
  //      commit of new keys under way; later ones use the new version);
  //   5. appends KeyRotated{actor, "kek", old, new, ""} and deletes the
  //      pending record in one commit.
  // A crash or error anywhere leaves everything readable (the file keeps
  // the old versions; what is not re-wrapped is still under an old one),
  // and the next call resumes the recorded rotation instead of adding yet
  // another version (result.resumed). Errors:
  //   kFailedPrecondition - the ring came from a key command; or the
  //     pending record does not fit the ring (named);
  //   the errors of ReplaceKeyFile, of the store, of the audit log, and of
  //     MasterKeyRing::Rewrap (kDataLoss for a key that does not open):
  //     retry after fixing the cause; the call resumes.
  absl::StatusOr<RotationResult> Rotate(const std::string& actor);

 private:
  absl::StatusOr<uint32_t> RewrapServerKeys();

  RotationOptions options_;
  absl::Mutex mu_;  // one rotation at a time
};

// Replaces `path` with `text` atomically and durably: writes PATH.tmp
// (mode 0600, removing a stale one first), fsyncs it, renames it over
// `path` and fsyncs the directory. kFailedPrecondition naming the path and
// the system's reason.
absl::Status ReplaceKeyFile(const std::string& path, std::string_view text);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_MASTER_KEY_ROTATION_H_
