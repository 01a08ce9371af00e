#include "crypto/hmac.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "crypto/openssl_util.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {
namespace {

// A MAC context whose digest is set once: setting it per call would fetch
// SHA256 by name each time.
internal::MacCtxPtr NewHmacSha256Ctx() {
  internal::MacCtxPtr ctx(EVP_MAC_CTX_new(internal::HmacMac()));
  if (ctx == nullptr) internal::OpensslFatal("EVP_MAC_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(ctx.get(), params) != 1) {
    internal::OpensslFatal("setting the HMAC digest");
  }
  return ctx;
}

}  // namespace

HmacSha256Tag HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  thread_local internal::MacCtxPtr ctx = NewHmacSha256Ctx();
  // An empty key is the same HMAC key as 32 zero bytes (both are zero-padded
  // to the block size), and EVP_MAC_init takes a null key to mean "keep the
  // previous key": never pass it one.
  static const uint8_t kZeros[kHmacSha256Size] = {};
  if (key.empty()) key = kZeros;
  HmacSha256Tag out;
  size_t out_len = 0;
  if (EVP_MAC_init(ctx.get(), key.data(), key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &out_len, out.size()) != 1 ||
      out_len != out.size()) {
    internal::OpensslFatal("HMAC-SHA256");
  }
  return out;
}

bool VerifyHmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data,
                      std::span<const uint8_t> tag) {
  if (tag.size() < kHmacSha256MinTagSize || tag.size() > kHmacSha256Size) return false;
  HmacSha256Tag expected = HmacSha256(key, data);
  bool ok = ConstantTimeEquals(std::span<const uint8_t>(expected).first(tag.size()), tag);
  Cleanse(expected);
  return ok;
}

}  // namespace fieldsync::crypto
