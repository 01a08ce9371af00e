// How sync encrypts IDENTIFYING and SENSITIVE field values at rest (DESIGN
// §7) without knowing the key hierarchy: an interface that the crypto
// module's per-case keys back in production (keys/case_keys.h,
// crypto/field_cipher.h) and a fixed-key AES-GCM sealer backs in tests.
#ifndef FIELDSYNC_SYNC_FIELD_SEALER_H_
#define FIELDSYNC_SYNC_FIELD_SEALER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fieldsync::sync {

// The bytes of a value's keyed digest (FieldSealer::Digest) that the case
// log stores and merge compares: the first 16 of the HMAC-SHA256, a
// 128-bit tag (truncation as RFC 2104 §5 allows; an equal tag for unequal
// values needs the case's digest key).
inline constexpr size_t kValueDigestBytes = 16;

// Where a value lives; a ciphertext is bound to all three (and to the key
// version inside it), so it fails to open anywhere else.
struct FieldAddress {
  std::string_view case_id;    // UUID text
  std::string_view record_id;  // UUID text
  std::string_view field;
};

// A write that sealed values depend on and that is not durable yet: a new
// case's wrapped data key (Cf::kKeys). The caller commits it in the same
// write batch as the values, so that no committed ciphertext lacks its key
// and no key is written for values that never commit.
struct KeyWrite {
  std::string key;
  std::string value;
};

// Scratch that the seals and digests of one batch share, on one thread: a
// sealer may keep there what it derived for a case (its cipher, its digest
// key), so that a batch's many fields of one case cost one key lookup and
// one derivation. An implementation wipes any key material it holds when
// destroyed. Not thread-safe.
class SealScope {
 public:
  virtual ~SealScope() = default;
};

// Implementations must be thread-safe: the ingest pipeline seals on many
// threads at once, the change feed opens on others.
class FieldSealer {
 public:
  virtual ~FieldSealer() = default;

  // The ciphertext of `plaintext` under the case's current data key. When
  // the case's key is not durable yet (a new case), the sealer makes it and
  // adds its KeyWrite to *key_writes (once per key per vector): the caller
  // commits those with the value. Random nonce: sealing the same value
  // twice gives different bytes. kFailedPrecondition for an erased case;
  // kUnavailable on storage errors.
  virtual absl::StatusOr<std::string> Seal(const FieldAddress& at, std::string_view plaintext,
                                           std::vector<KeyWrite>* key_writes) = 0;

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
                                             std::string_view plaintext,
                                             std::vector<KeyWrite>* key_writes) = 0;

  // A scope for one batch's SealIn and DigestIn calls, or null when the
  // sealer keeps nothing per batch (the default).
  virtual std::unique_ptr<SealScope> NewScope() { return nullptr; }
  // Seal and Digest sharing `scope` (from this sealer's NewScope, or null):
  // the same results and errors. REQUIRES: every call with one scope passes
  // the same *key_writes (a KeyWrite is added by the first call that needs
  // it only).
  virtual absl::StatusOr<std::string> SealIn(SealScope* scope, const FieldAddress& at,
                                             std::string_view plaintext,
                                             std::vector<KeyWrite>* key_writes) {
    return Seal(at, plaintext, key_writes);
  }
  virtual absl::StatusOr<std::string> DigestIn(SealScope* scope, std::string_view case_id,
                                               std::string_view field, std::string_view plaintext,
                                               std::vector<KeyWrite>* key_writes) {
    return Digest(case_id, field, plaintext, key_writes);
  }

  // The commit step calls these with the key writes of the units it is
  // about to commit, one group at a time. Keep drops the writes that must
  // not be written any more (the key became durable through another write,
  // or the case was erased since), so that a stale copy never overwrites a
  // later state of the key, and may change the value of the others (a key
  // re-wrapped under a newer master key version); the caller writes them
  // as Keep leaves them. AfterCommit tells the sealer the group's outcome
  // (`committed`: OK if those keys are durable now): the commit step calls
  // it for every group, whether it called Keep, failed before or after.
  // Both thread-safe.
  virtual absl::Status Keep(std::vector<KeyWrite>* writes) { return absl::OkStatus(); }
  virtual void AfterCommit(const std::vector<KeyWrite>& writes, const absl::Status& committed) {}
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_FIELD_SEALER_H_
