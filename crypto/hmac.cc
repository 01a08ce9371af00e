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

// An empty key is the same HMAC key as 32 zero bytes (both are zero-padded
// to the block size), and EVP_MAC_init takes a null key to mean "keep the
// previous key": never pass it one.
std::span<const uint8_t> NonEmptyKey(std::span<const uint8_t> key) {
  static const uint8_t kZeros[kHmacSha256Size] = {};
  return key.empty() ? std::span<const uint8_t>(kZeros) : key;
}

// Initialises `ctx` with `key` (nullptr: the key it holds) and tags `data`.
HmacSha256Tag TagWith(EVP_MAC_CTX* ctx, const uint8_t* key, size_t key_size,
                      std::span<const uint8_t> data) {
  HmacSha256Tag out;
  size_t out_len = 0;
  if (EVP_MAC_init(ctx, key, key_size, nullptr) != 1 ||
      EVP_MAC_update(ctx, data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx, out.data(), &out_len, out.size()) != 1 || out_len != out.size()) {
    internal::OpensslFatal("HMAC-SHA256");
  }
  return out;
}

}  // namespace

HmacSha256Tag HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  thread_local internal::MacCtxPtr ctx = NewHmacSha256Ctx();
  key = NonEmptyKey(key);
  return TagWith(ctx.get(), key.data(), key.size(), data);
}

HmacSha256Key::HmacSha256Key(std::span<const uint8_t> key) : ctx_(NewHmacSha256Ctx()) {
  key = NonEmptyKey(key);
  if (EVP_MAC_init(ctx_.get(), key.data(), key.size(), nullptr) != 1) {
    internal::OpensslFatal("HMAC-SHA256 key");
  }
}

HmacSha256Tag HmacSha256Key::Tag(std::span<const uint8_t> data) {
  // A null key restarts from the key's precomputed state.
  return TagWith(ctx_.get(), nullptr, 0, data);
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
