// The production FieldSealer: field values sealed with the crypto module's
// per-case data keys (keys/case_keys.h, crypto/field_cipher.h).
#ifndef FIELDSYNC_SYNC_CASE_KEY_SEALER_H_
#define FIELDSYNC_SYNC_CASE_KEY_SEALER_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/random.h"
#include "crypto/field_cipher.h"
#include "crypto/hmac.h"
#include "crypto/secret.h"
#include "keys/case_keys.h"
#include "storage/store.h"
#include "sync/field_sealer.h"

namespace fieldsync::sync {

// A new case's DEK is made on first use and kept pending in memory: every
// Seal or Digest under it adds its KeyWrite (the wrapped DEK) to the
// caller's key writes, so each unit that sealed values under it commits the
// key with them. The first of those commits makes it durable (Committed
// then forgets the pending key and later units no longer carry it); a unit
// that fails writes nothing and the next one carries the key again. So no
// committed ciphertext lacks its key, no key is committed for values that
// never were, and a new case costs no synced write of its own. Keep drops
// a pending write whose key is already in the store (durable through
// another group, or erased since), so a stale copy never overwrites an
// erasure marker that was committed after the seal.
//
// A pending key outlives a master key rotation when its case's first batch
// is sealed before the rotation installs the new version and commits after
// the rotation's rewrap pass (CaseKeyStore::RewrapAll) went by: the key
// would stay under the old version. So Keep opens a
// CaseKeyStore::NewKeyCommit, which RewrapAll waits for, and hands out each
// kept key under the ring's current version (rewrapped if it was made under
// an older one); AfterCommit ends it. A pending key's DEK never changes, so
// the values sealed under it open whichever wrapping commits.
//
// Ciphertexts follow crypto/field_cipher.h with key_version
// keys::kCaseDekVersion. Digest = HMAC-SHA256(K_d, u32be(len(field)) ||
// field || plaintext) with K_d = HMAC-SHA256(DEK, "fieldsync/field-digest/v1").
// Open of an erased case: kNotFound; of a moved or tampered value: kDataLoss.
// Thread-safe. store, keys and random are not owned and must outlive it.
class CaseKeySealer final : public FieldSealer {
 public:
  CaseKeySealer(storage::Store* store, keys::CaseKeyStore* keys, Random* random)
      : store_(store), keys_(keys), random_(random) {}

  absl::StatusOr<std::string> Seal(const FieldAddress& at, std::string_view plaintext,
                                   std::vector<KeyWrite>* key_writes) override;
  absl::StatusOr<std::string> Open(const FieldAddress& at, std::string_view sealed) const override;
  absl::StatusOr<std::string> Digest(std::string_view case_id, std::string_view field,
                                     std::string_view plaintext,
                                     std::vector<KeyWrite>* key_writes) override;
  // Within a scope, a case's cipher and digest key are looked up and
  // derived once; the scope wipes its digest keys when destroyed.
  std::unique_ptr<SealScope> NewScope() override;
  absl::StatusOr<std::string> SealIn(SealScope* scope, const FieldAddress& at,
                                     std::string_view plaintext,
                                     std::vector<KeyWrite>* key_writes) override;
  absl::StatusOr<std::string> DigestIn(SealScope* scope, std::string_view case_id,
                                       std::string_view field, std::string_view plaintext,
                                       std::vector<KeyWrite>* key_writes) override;
  absl::Status Keep(std::vector<KeyWrite>* writes) override;
  void AfterCommit(const std::vector<KeyWrite>& writes, const absl::Status& committed) override;

  // New case keys made and not yet committed (for tests and metrics).
  size_t pending_keys() const;

 private:
  struct PendingKey {
    std::shared_ptr<const crypto::FieldCipher> cipher;
    crypto::SecretBytes dek;
    std::string wrapped;  // as made, and as units carry it (Keep may rewrap)
  };
  // The case's field cipher (and, when `dek` is set, its DEK): durable, or
  // pending (then its KeyWrite is added to *key_writes), or made now.
  absl::StatusOr<std::shared_ptr<const crypto::FieldCipher>> Key(const Uuid& case_id,
                                                                 std::vector<KeyWrite>* key_writes,
                                                                 crypto::SecretBytes* dek);

  class Scope;
  struct CaseKeys;
  // The case's cipher and digest key: from `scope` when it holds them, else
  // looked up (Key) and derived, and kept in `scope` when given.
  absl::StatusOr<CaseKeys*> KeysIn(SealScope* scope, const Uuid& case_id,
                                   std::vector<KeyWrite>* key_writes,
                                   std::unique_ptr<CaseKeys>* unscoped);

  storage::Store* store_;
  keys::CaseKeyStore* keys_;
  Random* random_;
  mutable absl::Mutex mu_;  // serializes DEK creation (CreateDek's REQUIRES)
  // By store key (storage::EncodeCaseDekKey).
  absl::flat_hash_map<std::string, PendingKey> pending_ ABSL_GUARDED_BY(mu_);
  // Open from a Keep that kept a key until the group's AfterCommit.
  std::optional<keys::CaseKeyStore::NewKeyCommit> key_commit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_CASE_KEY_SEALER_H_
