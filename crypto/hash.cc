#include "crypto/hash.h"

#include <openssl/evp.h>

#include "crypto/bytes.h"
#include "crypto/openssl_util.h"

namespace fieldsync::crypto {
namespace {

void InitOrDie(EVP_MD_CTX* ctx) {
  if (EVP_DigestInit_ex2(ctx, internal::Sha256Md(), nullptr) != 1) {
    internal::OpensslFatal("SHA-256 init");
  }
}

void UpdateOrDie(EVP_MD_CTX* ctx, std::span<const uint8_t> data) {
  if (EVP_DigestUpdate(ctx, data.data(), data.size()) != 1) {
    internal::OpensslFatal("SHA-256 update");
  }
}

Sha256Digest FinalOrDie(EVP_MD_CTX* ctx) {
  Sha256Digest out;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != kSha256Size) {
    internal::OpensslFatal("SHA-256 final");
  }
  return out;
}

internal::MdCtxPtr NewCtxOrDie() {
  internal::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) internal::OpensslFatal("EVP_MD_CTX_new");
  return ctx;
}

}  // namespace

Sha256Digest Sha256(std::span<const uint8_t> data) {
  thread_local internal::MdCtxPtr ctx = NewCtxOrDie();
  InitOrDie(ctx.get());
  UpdateOrDie(ctx.get(), data);
  return FinalOrDie(ctx.get());
}

Sha256Digest Sha256(std::string_view data) { return Sha256(AsBytes(data)); }

Sha256Hasher::Sha256Hasher() : ctx_(NewCtxOrDie()) { InitOrDie(ctx_.get()); }

void Sha256Hasher::Update(std::span<const uint8_t> data) { UpdateOrDie(ctx_.get(), data); }

void Sha256Hasher::Update(std::string_view data) { Update(AsBytes(data)); }

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest out = FinalOrDie(ctx_.get());
  InitOrDie(ctx_.get());
  return out;
}

}  // namespace fieldsync::crypto
