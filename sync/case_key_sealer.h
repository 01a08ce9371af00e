// The production FieldSealer: field values sealed with the crypto module's
// per-case data keys (crypto/case_keys.h, crypto/field_cipher.h).
#ifndef FIELDSYNC_SYNC_CASE_KEY_SEALER_H_
#define FIELDSYNC_SYNC_CASE_KEY_SEALER_H_

#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "common/random.h"
#include "crypto/case_keys.h"
#include "storage/store.h"
#include "sync/field_sealer.h"

namespace fieldsync::sync {

// Seal creates a case's DEK on first use and commits it on its own (a
// synced commit before the sealed value exists, so no committed ciphertext
// ever lacks its key; a batch that then fails leaves an unused key, which is
// harmless). Ciphertexts follow crypto/field_cipher.h with key_version
// crypto::kCaseDekVersion. Digest = HMAC-SHA256(K_d, u32be(len(field)) ||
// field || plaintext) with K_d = HMAC-SHA256(DEK, "fieldsync/field-digest/v1").
// Open of an erased case: kNotFound; of a moved or tampered value: kDataLoss.
// Thread-safe. store, keys and random are not owned and must outlive it.
class CaseKeySealer final : public FieldSealer {
 public:
  CaseKeySealer(storage::Store* store, crypto::CaseKeyStore* keys, Random* random)
      : store_(store), keys_(keys), random_(random) {}

  absl::StatusOr<std::string> Seal(const FieldAddress& at, std::string_view plaintext) override;
  absl::StatusOr<std::string> Open(const FieldAddress& at,
                                   std::string_view sealed) const override;
  absl::StatusOr<std::string> Digest(std::string_view case_id, std::string_view field,
                                     std::string_view plaintext) override;

 private:
  // The case's DEK, created and committed first when it has none.
  absl::Status EnsureDek(const Uuid& case_id);

  storage::Store* store_;
  crypto::CaseKeyStore* keys_;
  Random* random_;
  absl::Mutex create_mu_;  // serializes DEK creation (CreateDek's REQUIRES)
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_CASE_KEY_SEALER_H_
