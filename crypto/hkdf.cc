#include "crypto/hkdf.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "crypto/hmac.h"

namespace fieldsync::crypto {

SecretBytes HkdfExtract(std::span<const uint8_t> salt, std::span<const uint8_t> ikm) {
  HmacSha256Tag prk = HmacSha256(salt, ikm);
  SecretBytes out(prk);
  Cleanse(prk);
  return out;
}

absl::StatusOr<SecretBytes> HkdfExpand(std::span<const uint8_t> prk, std::span<const uint8_t> info,
                                       size_t length) {
  if (length > kHkdfSha256MaxOutput) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "HKDF-SHA256 output of %d bytes requested; the maximum is %d", length,
        kHkdfSha256MaxOutput));
  }
  if (prk.size() < kHmacSha256Size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "HKDF-SHA256 pseudorandom key of %d bytes; it needs at least 32", prk.size()));
  }
  SecretBytes okm(length);
  // T(i) = HMAC(PRK, T(i-1) || info || i); the message buffer is a secret
  // (it holds T(i-1)).
  SecretBytes message(kHmacSha256Size + info.size() + 1);
  HmacSha256Tag block{};
  size_t done = 0;
  for (size_t i = 1; done < length; ++i) {
    size_t prev = i == 1 ? 0 : kHmacSha256Size;
    uint8_t* m = message.data();
    if (prev > 0) std::memcpy(m, block.data(), prev);
    if (!info.empty()) std::memcpy(m + prev, info.data(), info.size());
    m[prev + info.size()] = static_cast<uint8_t>(i);
    block = HmacSha256(prk, message.span().first(prev + info.size() + 1));
    size_t n = std::min(kHmacSha256Size, length - done);
    std::memcpy(okm.data() + done, block.data(), n);
    done += n;
  }
  Cleanse(block);
  return okm;
}

absl::StatusOr<SecretBytes> Hkdf(std::span<const uint8_t> salt, std::span<const uint8_t> ikm,
                                 std::span<const uint8_t> info, size_t length) {
  SecretBytes prk = HkdfExtract(salt, ikm);
  return HkdfExpand(prk.span(), info, length);
}

}  // namespace fieldsync::crypto
