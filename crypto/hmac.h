// HMAC-SHA256 (RFC 2104) and its constant-time verification.
#ifndef FIELDSYNC_CRYPTO_HMAC_H_
#define FIELDSYNC_CRYPTO_HMAC_H_

#include <array>
#include <cstdint>
#include <span>

#include "crypto/openssl_fwd.h"

namespace fieldsync::crypto {

inline constexpr size_t kHmacSha256Size = 32;
// The shortest tag VerifyHmacSha256 accepts (128 bits, as Wycheproof's
// truncated-tag groups and NIST SP 800-107 for a general-purpose MAC).
inline constexpr size_t kHmacSha256MinTagSize = 16;

using HmacSha256Tag = std::array<uint8_t, kHmacSha256Size>;

// HMAC-SHA256 of `data` under `key` (any length, empty included). Reuses a
// per-thread MAC context, so a small input costs no allocation.
// Thread-safe.
HmacSha256Tag HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data);

// An HMAC-SHA256 key set up once for many tags: the key's padded blocks
// are hashed when it is made, not for every tag as HmacSha256 does (about
// half the cost of tagging a short input). The context holding the key is
// wiped when freed. Not thread-safe: one owner at a time; movable.
class HmacSha256Key {
 public:
  // `key`: any length, empty included (as HmacSha256).
  explicit HmacSha256Key(std::span<const uint8_t> key);
  HmacSha256Key(HmacSha256Key&&) noexcept = default;
  HmacSha256Key& operator=(HmacSha256Key&&) noexcept = default;
  // HmacSha256(key, data).
  HmacSha256Tag Tag(std::span<const uint8_t> data);

 private:
  internal::MacCtxPtr ctx_;
};

// True iff `tag` equals the first tag.size() bytes of HmacSha256(key, data)
// and kHmacSha256MinTagSize <= tag.size() <= kHmacSha256Size. The
// comparison is constant-time in the tag's contents. A tag shorter than the
// minimum is refused (false), never compared. Thread-safe.
bool VerifyHmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data,
                      std::span<const uint8_t> tag);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_HMAC_H_
