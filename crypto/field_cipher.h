// The field cipher (DESIGN §7): one IDENTIFYING or SENSITIVE field value
// encrypted with AES-256-GCM under its case's data key (DEK), bound by its
// associated data to the case, record, field and key version it belongs to.
#ifndef FIELDSYNC_CRYPTO_FIELD_CIPHER_H_
#define FIELDSYNC_CRYPTO_FIELD_CIPHER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "common/uuid.h"
#include "crypto/aead.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

// Where a field value lives. Every member goes into the associated data, so
// a ciphertext opens only at the address it was sealed for.
struct FieldAddress {
  fieldsync::Uuid case_id;
  fieldsync::Uuid record_id;
  std::string_view field_name;  // the schema's field name, UTF-8
  // The generation of the case's DEK that sealed the value. Each case has
  // one DEK today (keys::kCaseDekVersion); the number is bound now so that a
  // future re-key of a case can tell its generations apart.
  uint32_t key_version = 0;
};

inline constexpr uint8_t kFieldFormatVersion = 1;
// Bytes a field ciphertext adds to its plaintext: version, nonce and tag.
inline constexpr size_t kFieldCiphertextOverhead = 1 + kAesGcmNonceSize + kAesGcmTagSize;
inline constexpr std::string_view kFieldAadDomain = "fieldsync/field/v1";

// Field ciphertext layout (persisted; `||` is concatenation):
//
//   ciphertext = 0x01                     format version, 1 byte
//             || nonce                    12 random bytes
//             || AES-256-GCM(DEK, nonce, aad, value)
//                                         len(value) bytes || 16-byte tag
//
// Associated data (persisted; crypto/canonical.h rules, 43 bytes + name):
//
//   aad = "fieldsync/field/v1"            18 ASCII bytes
//      || 0x00                            1 byte
//      || case_id                         16 raw UUID bytes
//      || record_id                       16 raw UUID bytes
//      || len(field_name)                 4 bytes, big-endian
//      || field_name                      its UTF-8 bytes
//      || key_version                     4 bytes, big-endian
//
// Nonces are 96 random bits from the Random passed in (SystemRandom in
// production: OpenSSL's DRBG behind a per-thread buffer). A random nonce
// repeats with probability about q^2 / 2^97 after q messages under one key;
// NIST SP 800-38D §8.3 caps q at 2^32 per key. A DEK seals the fields of
// one case only: even a case given a thousand field values a day for fifty
// years (1.8 * 10^7 < 2^25) keeps the collision probability below 2^-47.
//
// FieldCipher holds one DEK's AES-GCM contexts, prepared once, so that a
// small value costs no key schedule (the fast path; keys::CaseKeyStore keeps one
// per cached case). Thread-safe; moveable.
class FieldCipher {
 public:
  // kInvalidArgument unless dek is 32 bytes.
  static absl::StatusOr<FieldCipher> Create(std::span<const uint8_t> dek);

  // The ciphertext of `plaintext` for `address` (layout above), with a
  // fresh nonce from `random`. kInvalidArgument if the value is over 1 GiB
  // or the field name over 4 GiB.
  absl::StatusOr<std::string> Encrypt(const FieldAddress& address,
                                      std::span<const uint8_t> plaintext, Random& random) const;
  absl::StatusOr<std::string> Encrypt(const FieldAddress& address, std::string_view plaintext,
                                      Random& random) const;

  // The value inside `ciphertext`. Errors (never holding the value):
  //   kInvalidArgument "field ciphertext too short ..." - under 29 bytes
  //     (empty included);
  //   kInvalidArgument "unknown field ciphertext format N" - byte 0 is not 1;
  //   kInvalidArgument "decryption failed: ..." - wrong DEK, tampered bytes,
  //     or sealed for another case, record, field or key version.
  absl::StatusOr<std::string> Decrypt(const FieldAddress& address,
                                      std::span<const uint8_t> ciphertext) const;
  absl::StatusOr<std::string> Decrypt(const FieldAddress& address,
                                      std::string_view ciphertext) const;

 private:
  explicit FieldCipher(AesGcm aead) : aead_(std::move(aead)) {}
  AesGcm aead_;
};

// The associated data of `address` (layout above). Exposed for tests and
// for readers of the layout.
std::string FieldAad(const FieldAddress& address);

// One-shot forms: prepare a FieldCipher for `dek` and use it once. They pay
// the AES key setup on every call; prefer a kept FieldCipher
// (keys::CaseKeyStore::GetFieldCipher) on any hot path. The errors of
// FieldCipher::Create and of Encrypt/Decrypt.
absl::StatusOr<std::string> EncryptField(const SecretBytes& dek, const FieldAddress& address,
                                         std::span<const uint8_t> plaintext, Random& random);
absl::StatusOr<std::string> DecryptField(const SecretBytes& dek, const FieldAddress& address,
                                         std::span<const uint8_t> ciphertext);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_FIELD_CIPHER_H_
