// Views between the byte spans the crypto API takes and the std::string /
// std::string_view the rest of fieldsync carries bytes in. No copies.
#ifndef FIELDSYNC_CRYPTO_BYTES_H_
#define FIELDSYNC_CRYPTO_BYTES_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace fieldsync::crypto {

// The bytes of `s`, valid as long as `s`'s storage is.
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The bytes of `b` as characters, valid as long as `b`'s storage is.
inline std::string_view AsStringView(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// A copy of `b` in a std::string. Not for secrets (a std::string is never
// wiped); use SecretBytes for those.
inline std::string ToString(std::span<const uint8_t> b) {
  return std::string(AsStringView(b));
}

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_BYTES_H_
