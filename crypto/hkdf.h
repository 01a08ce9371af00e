// HKDF-SHA256 (RFC 5869): extract, expand, and both in one call.
#ifndef FIELDSYNC_CRYPTO_HKDF_H_
#define FIELDSYNC_CRYPTO_HKDF_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

// The longest HKDF-SHA256 output: 255 blocks of 32 bytes.
inline constexpr size_t kHkdfSha256MaxOutput = 255 * 32;

// PRK = HMAC-SHA256(salt, ikm), 32 bytes. An empty salt means 32 zero
// bytes, as RFC 5869 §2.2 says. Thread-safe.
SecretBytes HkdfExtract(std::span<const uint8_t> salt, std::span<const uint8_t> ikm);

// OKM of `length` bytes from `prk` and `info` (RFC 5869 §2.3).
// kInvalidArgument if length > kHkdfSha256MaxOutput or prk is shorter than
// 32 bytes. length == 0 gives an empty result. Thread-safe.
absl::StatusOr<SecretBytes> HkdfExpand(std::span<const uint8_t> prk, std::span<const uint8_t> info,
                                       size_t length);

// HkdfExpand(HkdfExtract(salt, ikm), info, length).
absl::StatusOr<SecretBytes> Hkdf(std::span<const uint8_t> salt, std::span<const uint8_t> ikm,
                                 std::span<const uint8_t> info, size_t length);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_HKDF_H_
