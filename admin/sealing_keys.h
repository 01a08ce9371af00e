// The server's HPKE batch-sealing keys at run time (docs/PROTOCOL.md
// "Sealing key rotation"): the prepared keys pushes open batches with,
// replaced as a whole when an administrator rotates them
// (AdminService.RotateSealingKey), and the rotation itself. gRPC-free.
#ifndef FIELDSYNC_ADMIN_SEALING_KEYS_H_
#define FIELDSYNC_ADMIN_SEALING_KEYS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "admin/server_keys.h"
#include "audit/log.h"
#include "common/clock.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "crypto/x25519.h"
#include "storage/store.h"

namespace fieldsync::admin {

// The purpose of KeyRotated events for the batch-sealing key (persisted).
inline constexpr std::string_view kSealingKeyPurpose = "hpke-sealing";

// The longest a replaced key may stay accepted after a rotation.
inline constexpr absl::Duration kMaxSealingKeyOverlap = absl::Hours(24 * 365);

struct PreparedSealingKey {
  uint32_t key_id = 0;
  crypto::X25519PublicKey public_key{};
  // After this instant batches sealed to it are refused; InfiniteFuture()
  // for the current key.
  absl::Time not_after = absl::InfiniteFuture();
  crypto::X25519PrivateKey private_key;
};

// What a batch's sealing key id means at a given instant.
enum class SealingKeyVerdict {
  kAccepted,  // a kept key within its cutoff: open with it
  kRetired,   // an earlier key of this server, past its cutoff or deleted
  kUnknown,   // 0, or above the current key: never a key of this server
};

// An immutable set of kept sealing keys, ascending by key id; the last is
// the current key. Thread-safe (const).
class SealingKeySet {
 public:
  // Prepares `keys` (as LoadSealingKeys returns them). kInvalidArgument
  // when empty, not ascending, or a private key is not 32 bytes.
  static absl::StatusOr<std::shared_ptr<const SealingKeySet>> Prepare(
      std::span<const SealingKeyPair> keys);
  // A set of one current key (tests, and a server that never rotated).
  // kInvalidArgument unless `private_key` is 32 bytes.
  static absl::StatusOr<std::shared_ptr<const SealingKeySet>> Single(
      uint32_t key_id, std::span<const uint8_t> private_key);

  const PreparedSealingKey& current() const { return keys_.back(); }
  // Ascending by key id.
  std::span<const PreparedSealingKey> keys() const { return keys_; }

  // The verdict on `key_id` at `now`, and for kAccepted the key (else
  // null). For kRetired, *retired_at is its cutoff when the key is still
  // kept, nullopt when it was deleted.
  SealingKeyVerdict Check(uint32_t key_id, absl::Time now, const PreparedSealingKey** key,
                          std::optional<absl::Time>* retired_at) const;

 private:
  explicit SealingKeySet(std::vector<PreparedSealingKey> keys) : keys_(std::move(keys)) {}
  std::vector<PreparedSealingKey> keys_;
};

// The set in use. Readers (every push) take a snapshot and keep it for as
// long as they need it; a rotation installs a new set, which later
// snapshots see, while pushes in flight finish with the set they took.
// Shared ownership is what lets the old set outlive the swap without a
// lock held across the HPKE open. Thread-safe.
class LiveSealingKeys {
 public:
  // REQUIRES: `initial` not null.
  explicit LiveSealingKeys(std::shared_ptr<const SealingKeySet> initial)
      : keys_(std::move(initial)) {}

  std::shared_ptr<const SealingKeySet> Snapshot() const {
    absl::MutexLock lock(&mu_);
    return keys_;
  }
  // REQUIRES: `next` not null.
  void Install(std::shared_ptr<const SealingKeySet> next) {
    absl::MutexLock lock(&mu_);
    keys_.swap(next);  // the replaced set is released by `next`, after the lock
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const SealingKeySet> keys_ ABSL_GUARDED_BY(mu_);
};

struct SealingKeyRotationOptions {
  storage::Store* store = nullptr;
  const crypto::MasterKeyRing* ring = nullptr;
  audit::AuditLog* audit = nullptr;  // must not be null
  const Clock* clock = nullptr;
  Random* random = nullptr;
  LiveSealingKeys* live = nullptr;
  // How long the replaced key stays accepted when the caller names no
  // cutoff (ServerConfig.sealing_key_overlap_days).
  absl::Duration default_overlap = absl::Hours(24 * 30);
};

// When the replaced key stops being accepted: at an instant, or a
// duration after the rotation's own now (0: at once); neither set means
// SealingKeyRotationOptions.default_overlap after it.
struct SealingKeyCutoff {
  std::optional<absl::Time> at;
  std::optional<absl::Duration> after;
};

struct SealingKeyRotationResult {
  uint32_t old_key_id = 0;
  uint32_t new_key_id = 0;
  absl::Time previous_until;
  crypto::X25519PublicKey new_public_key{};
  // Earlier keys past their cutoff, deleted by this rotation.
  std::vector<uint32_t> deleted_key_ids;
  uint64_t audit_leaf_index = 0;
  // The keys kept after the rotation (the installed set).
  std::shared_ptr<const SealingKeySet> keys;
};

// Thread-safe: rotations are serialized; pushes go on meanwhile. Pointers
// in the options are not owned and must outlive this object.
class SealingKeyRotation {
 public:
  explicit SealingKeyRotation(SealingKeyRotationOptions options) : options_(std::move(options)) {}

  // Makes a new key (id = current + 1) current; the replaced key stays
  // accepted until `cutoff` (the instant it names, or now + its duration,
  // or now + default_overlap); kept
  // earlier keys already past their cutoff are deleted (private and public
  // halves). The new key, the deletions, the new id list and
  // KeyRotated{actor, "hpke-sealing", old id, new id, new public key} are
  // one commit; only after it succeeds is the new set installed in
  // `live`, so a failure changes nothing. Errors:
  //   kInvalidArgument - the cutoff is before now, or more than
  //     kMaxSealingKeyOverlap after it (the message says which);
  //   kFailedPrecondition - the current key id is 4294967295;
  //   the errors of LoadSealingKeys, the store and the audit log.
  absl::StatusOr<SealingKeyRotationResult> Rotate(const std::string& actor,
                                                  const SealingKeyCutoff& cutoff);

 private:
  SealingKeyRotationOptions options_;
  absl::Mutex mu_;  // one rotation at a time
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_SEALING_KEYS_H_
