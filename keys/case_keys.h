// The per-case data keys (DEK) of DESIGN §7: random 256-bit keys stored
// only wrapped by the master key (KEK) in Cf::kKeys, a bounded cache of
// unwrapped ones, online re-wrapping after a KEK rotation, and erasure
// (crypto-shredding) that compacts the wrapped key out of RocksDB's files.
#ifndef FIELDSYNC_KEYS_CASE_KEYS_H_
#define FIELDSYNC_KEYS_CASE_KEYS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/random.h"
#include "common/uuid.h"
#include "crypto/field_cipher.h"
#include "crypto/master_key.h"
#include "crypto/secret.h"
#include "storage/store.h"

namespace fieldsync::keys {

// The generation of every case DEK (FieldAddress::key_version). A case has
// exactly one DEK; the number is reserved for a future re-key of a case.
inline constexpr uint32_t kCaseDekVersion = 1;

struct CaseKeyStoreOptions {
  // Unwrapped DEKs kept, least recently used evicted first. A hit saves a
  // RocksDB read and an AES-GCM unwrap plus the AES key setup of the field
  // cipher (about 3 us of CPU together, against 0.1 us for a hit; see
  // docs/BENCHMARKS.md); the price is that the keys of up to this
  // many recently active cases sit unwrapped in process memory (about 1 KiB
  // each with their prepared contexts: 4096 cases = 4 MiB) until evicted.
  size_t cache_capacity = 4096;
  // Case keys examined per RewrapAll step: one step holds the erasure lock
  // and commits one WriteBatch.
  size_t rewrap_batch_size = 256;
  // Test hook, null in production: called on RewrapAll's thread when it
  // starts waiting for a NewKeyCommit opened before it (see there), so that
  // a test can interleave a commit of a new case key with a rotation.
  std::function<void()> on_rewrap_waits = nullptr;
};

// What RewrapAll did.
struct RewrapCounts {
  size_t examined = 0;         // case key entries read
  size_t rewrapped = 0;        // moved to the current KEK version
  size_t already_current = 0;  // under the current version already
  size_t erased = 0;           // erasure markers (nothing to rewrap)
  size_t batches = 0;          // WriteBatches committed
};

// What the store holds for a case's data key (CaseKeyStore::State).
enum class DekState {
  kAbsent,   // never created (or not yet committed)
  kPresent,  // a wrapped DEK
  kErased,   // the erasure marker: Erase ran for the case
};

// Stored value of a case DEK key (storage/key_codec.h EncodeCaseDekKey),
// persisted:
//   a crypto::MasterKeyRing wrapped secret (first byte 0x01, crypto/master_key.h) of the
//     32-byte DEK, purpose "case-dek/<32 lowercase hex digits of case id>",
//     so its AAD binds the case id and the KEK version; or
//   the erasure marker, the single byte 0x00: the case was erased.
//
// Thread-safe. `store` and `ring` are not owned and must outlive this.
// The ring may gain a version while calls are running (crypto::MasterKeyRing is
// thread-safe; a rotation adds the version, then runs RewrapAll:
// admin/master_key_rotation.h).
class CaseKeyStore {
 public:
  CaseKeyStore(storage::Store* store, const crypto::MasterKeyRing* ring,
               CaseKeyStoreOptions options = {});
  CaseKeyStore(const CaseKeyStore&) = delete;
  CaseKeyStore& operator=(const CaseKeyStore&) = delete;

  // A fresh random 256-bit DEK for the case and the Cf::kKeys entry that
  // stores it (key, wrapped value), for a caller that commits the entry
  // itself, possibly with several write batches carrying it until one
  // commits (sync/case_key_sealer.h), each inside a NewKeyCommit.
  // CreateDek's errors and REQUIRES.
  struct NewDek {
    crypto::SecretBytes dek;
    std::string store_key;
    std::string wrapped;
  };
  absl::StatusOr<NewDek> MakeDek(const fieldsync::Uuid& case_id, Random& random);

  // One commit of new case keys (MakeDek entries), ordered against a KEK
  // rotation. A new key can be made under version N, the rotation then
  // adds N + 1 and runs RewrapAll, and the key's commit lands after the
  // scan went past its place: it would stay under N for good. So a caller
  // opens a NewKeyCommit before it decides what to write, writes each new
  // key as Current() gives it, and ends the NewKeyCommit (destroys it) once
  // that commit has landed or failed. RewrapAll first waits for every
  // NewKeyCommit opened before it began: each key is then either in the
  // store before the scan (which rewraps it) or written under the version
  // the scan moves to. Keep one open only around a commit: RewrapAll waits
  // for it. Thread-compatible; movable; must not outlive the store.
  class NewKeyCommit {
   public:
    NewKeyCommit(NewKeyCommit&& other) noexcept;
    NewKeyCommit& operator=(NewKeyCommit&& other) noexcept;
    ~NewKeyCommit();

    // `wrapped` (MakeDek's entry at `store_key`) as it must be committed:
    // itself when under the ring's current version, else rewrapped under
    // it (a key made before a rotation). The errors of
    // MasterKeyRing::WrappedVersion and Rewrap; kDataLoss for a store key
    // that is not a case DEK key.
    absl::StatusOr<std::string> Current(std::string_view store_key, std::string_view wrapped,
                                        Random& random) const;

   private:
    friend class CaseKeyStore;
    NewKeyCommit(CaseKeyStore* keys, uint64_t id) : keys_(keys), id_(id) {}
    CaseKeyStore* keys_;  // null once moved from
    uint64_t id_;
  };
  NewKeyCommit BeginNewKeyCommit();

  // Makes a fresh random 256-bit DEK for the case, adds its wrapped form to
  // *batch (committed by the caller, with the case's first changes) and
  // returns it. The key is not cached until it is read back after the
  // commit, so a failed commit leaves no phantom key. Errors:
  //   kAlreadyExists - the case has a key;
  //   kFailedPrecondition - the case was erased;
  //   the errors of Store::Get.
  // REQUIRES: the caller serializes CreateDek + commit per case (the commit
  // step does), or two racing creations could both commit. A key created
  // while a RewrapAll may run must be committed inside a NewKeyCommit.
  absl::StatusOr<crypto::SecretBytes> CreateDek(const fieldsync::Uuid& case_id, Random& random,
                                                storage::WriteBatch* batch);

  // The case's DEK, from the cache or unwrapped from the store. Errors:
  //   kNotFound "case key erased" - Erase ran for the case;
  //   kNotFound "no data key for case ..." - never created (or not yet
  //     committed);
  //   kDataLoss - the stored key does not open (wrong master key, corrupt);
  //   kFailedPrecondition - wrapped under a KEK version the ring lacks;
  //   the errors of Store::Get.
  absl::StatusOr<crypto::SecretBytes> GetDek(const fieldsync::Uuid& case_id);

  // The case's prepared field cipher (the fast path for field values); the
  // errors of GetDek. The handle stays usable after the entry is evicted or
  // the case erased; drop it promptly (the key is wiped when the last
  // handle goes).
  absl::StatusOr<std::shared_ptr<const crypto::FieldCipher>> GetFieldCipher(
      const fieldsync::Uuid& case_id);

  // Re-wraps every case DEK that is not under the ring's current version,
  // in WriteBatches of options.rewrap_batch_size keys, while other calls
  // go on (GetDek and field ciphertexts are unaffected: the DEKs do not
  // change). Before it reads anything it waits for the NewKeyCommits
  // opened before it began, so a key made under an older version and
  // committed meanwhile is rewrapped too. Idempotent: after an error, run
  // it again to continue. Errors:
  // those of Store's iteration and Commit, and of crypto::MasterKeyRing::Rewrap
  // (kDataLoss, kFailedPrecondition) for the first key that fails.
  absl::StatusOr<RewrapCounts> RewrapAll(Random& random);

  // Crypto-shredding: replaces the case's wrapped DEK with the erasure
  // marker (adding it to *batch when given, e.g. with the erasure's audit
  // event, and committing *batch), evicts the cached key, then compacts the
  // key's range of Cf::kKeys (Store::CompactRange: flush, forced bottommost
  // compaction) so that no SST or WAL file holds the wrapped DEK any more.
  // Every field of the case is unreadable afterwards. Idempotent: erasing an
  // erased (or never keyed) case commits the marker again and compacts
  // again. A Store Snapshot older than the erasure keeps the old value in
  // the files until it is released: run Erase again after that
  // (docs/SECURITY.md). Errors: those of Store::Commit and CompactRange
  // (the marker may be committed when compaction fails: retry).
  absl::Status Erase(const fieldsync::Uuid& case_id, storage::WriteBatch* batch = nullptr);

  // The two steps of Erase, for a caller with an audit session in *batch,
  // which must end it between them (the compaction can take seconds, and
  // every other audit append waits for an open session):
  // CommitErasure adds the marker to *batch, commits it and evicts the
  // cached key (errors: those of Store::Commit; nothing is erased then);
  // CompactErased compacts the key's range (errors: those of CompactRange;
  // the erasure holds, run it again).
  absl::Status CommitErasure(const fieldsync::Uuid& case_id, storage::WriteBatch* batch);
  absl::Status CompactErased(const fieldsync::Uuid& case_id);

  // Whether the case has a wrapped DEK, an erasure marker or nothing, read
  // from the store (not the cache). Errors: those of Store::Get.
  absl::StatusOr<DekState> State(const fieldsync::Uuid& case_id) const;

  // The KEK version of the case's wrapped DEK (what a rotation moved it
  // to). kNotFound if the case has no DEK or was erased; kDataLoss if the
  // stored value is malformed; the errors of Store::Get.
  absl::StatusOr<uint32_t> WrappedVersion(const fieldsync::Uuid& case_id) const;

  // Number of cached DEKs (tests, metrics).
  size_t cached_count() const;

  // "case-dek/<32 lowercase hex digits>": the wrap purpose of the case's DEK.
  static std::string WrapPurpose(const fieldsync::Uuid& case_id);

 private:
  struct CachedKey {
    crypto::SecretBytes dek;
    crypto::FieldCipher cipher;
  };
  using Lru = std::list<std::pair<fieldsync::Uuid, std::shared_ptr<const CachedKey>>>;

  absl::StatusOr<std::shared_ptr<const CachedKey>> Lookup(const fieldsync::Uuid& case_id);
  void Evict(const fieldsync::Uuid& case_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns once every NewKeyCommit opened before the call has ended.
  void AwaitEarlierKeyCommits();
  // Whether a NewKeyCommit with an id below `id` is open.
  bool CommitOpenBefore(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(commits_mu_);
  void EndKeyCommit(uint64_t id);

  storage::Store* const store_;
  const crypto::MasterKeyRing* const ring_;
  const CaseKeyStoreOptions options_;

  // Serializes Erase against each RewrapAll step, so that a rewrap never
  // writes back a key that was erased after it was read.
  absl::Mutex erase_mu_;

  // The open NewKeyCommits, by id (ids ascend in opening order).
  absl::Mutex commits_mu_;
  absl::CondVar commit_ended_;
  uint64_t next_commit_id_ ABSL_GUARDED_BY(commits_mu_) = 0;
  std::set<uint64_t> open_commits_ ABSL_GUARDED_BY(commits_mu_);

  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  absl::flat_hash_map<fieldsync::Uuid, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  // Incremented by every Erase: a lookup that read the store before an
  // erasure does not put its key in the cache after it.
  uint64_t erase_epoch_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::keys

#endif  // FIELDSYNC_KEYS_CASE_KEYS_H_
