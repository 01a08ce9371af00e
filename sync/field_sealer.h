// How sync encrypts IDENTIFYING and SENSITIVE field values at rest (DESIGN
// §7) without knowing the key hierarchy: an interface that the crypto
// module's per-case keys back in production (crypto/case_keys.h,
// crypto/field_cipher.h) and a fixed-key AES-GCM sealer backs in tests.
#ifndef FIELDSYNC_SYNC_FIELD_SEALER_H_
#define FIELDSYNC_SYNC_FIELD_SEALER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fieldsync::sync {

// Where a value lives; a ciphertext is bound to all three (and to the key
// version inside it), so it fails to open anywhere else.
struct FieldAddress {
  std::string_view case_id;    // UUID text
  std::string_view record_id;  // UUID text
  std::string_view field;
};

// Implementations must be thread-safe: the ingest pipeline seals on many
// threads at once, the change feed opens on others.
class FieldSealer {
 public:
  virtual ~FieldSealer() = default;

  // The ciphertext of `plaintext` under the case's current data key,
  // creating (and durably storing) that key when the case has none yet, so
  // that no committed ciphertext lacks its key. Random nonce: sealing the
  // same value twice gives different bytes. kUnavailable on storage errors.
  virtual absl::StatusOr<std::string> Seal(const FieldAddress& at,
                                           std::string_view plaintext) = 0;

  // The plaintext of `sealed`. kDataLoss if it does not open at `at`
  // (tampered, moved); kNotFound if the case's key was erased
  // (crypto-shredded).
  virtual absl::StatusOr<std::string> Open(const FieldAddress& at,
                                           std::string_view sealed) const = 0;

  // A keyed digest of `plaintext` for equality tests without decryption:
  // HMAC-SHA256 under a key derived from the case's data key, over the
  // field name and the plaintext (so equal values of different fields
  // differ). Deterministic for a given case key. The errors of Seal.
  virtual absl::StatusOr<std::string> Digest(std::string_view case_id, std::string_view field,
                                             std::string_view plaintext) = 0;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_FIELD_SEALER_H_
