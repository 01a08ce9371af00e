// AES-256-GCM with 96-bit nonces and 128-bit tags, over a prepared OpenSSL
// context so that small messages cost no key schedule and no allocation.
#ifndef FIELDSYNC_CRYPTO_AEAD_H_
#define FIELDSYNC_CRYPTO_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fieldsync::crypto {

inline constexpr size_t kAesGcmKeySize = 32;
inline constexpr size_t kAesGcmNonceSize = 12;
inline constexpr size_t kAesGcmTagSize = 16;
// The longest plaintext accepted in one call (1 GiB; GCM itself allows
// 64 GiB - 32 bytes per nonce, OpenSSL takes an int length).
inline constexpr size_t kAesGcmMaxPlaintext = size_t{1} << 30;

// One AES-256-GCM key with its encryption and decryption contexts prepared
// once (key schedule and GHASH table), each on its first use, and reused
// for every call.
//
// Errors (never containing key, plaintext or ciphertext bytes):
//   kInvalidArgument "AES-GCM nonce must be 12 bytes, got N" - wrong nonce;
//   kInvalidArgument "ciphertext too short ..." - fewer than 16 bytes;
//   kInvalidArgument "decryption failed: wrong key, tampered data or wrong
//     associated data" - the tag does not verify; no plaintext is released.
//
// Thread-safe: each direction has a primary context taken without a mutex
// and a spare behind one for concurrent callers (a third concurrent call in
// one direction waits for the spare). Moveable; a
// moved-from AesGcm may only be destroyed or assigned to.
//
// The caller owns nonce uniqueness: never seal twice under one key with the
// same nonce. A random 96-bit nonce per message is safe up to 2^32
// messages per key (NIST SP 800-38D §8.3).
class AesGcm {
 public:
  // kInvalidArgument unless key is 32 bytes.
  static absl::StatusOr<AesGcm> Create(std::span<const uint8_t> key);

  AesGcm(AesGcm&&) noexcept;
  AesGcm& operator=(AesGcm&&) noexcept;
  ~AesGcm();

  // ciphertext || 16-byte tag, the same length as plaintext + 16.
  absl::StatusOr<std::string> Seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                                   std::span<const uint8_t> plaintext) const;
  // As Seal, but appends ciphertext || tag to *out (e.g. after a header the
  // caller wrote there). On error *out is unchanged.
  absl::Status SealAppend(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                          std::span<const uint8_t> plaintext, std::string* out) const;

  // The plaintext of ciphertext_and_tag (ciphertext || 16-byte tag).
  absl::StatusOr<std::string> Open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                                   std::span<const uint8_t> ciphertext_and_tag) const;
  // As Open, into out (which must be exactly ciphertext_and_tag.size() - 16
  // bytes, e.g. a SecretBytes). On any error `out` is wiped.
  absl::Status OpenTo(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                      std::span<const uint8_t> ciphertext_and_tag, std::span<uint8_t> out) const;

 private:
  struct State;
  explicit AesGcm(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// One-shot forms: build an AesGcm for `key`, seal or open once. Prefer an
// AesGcm kept for the key when sealing more than once.
absl::StatusOr<std::string> AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                                       std::span<const uint8_t> aad,
                                       std::span<const uint8_t> plaintext);
absl::StatusOr<std::string> AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                                       std::span<const uint8_t> aad,
                                       std::span<const uint8_t> ciphertext_and_tag);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_AEAD_H_
