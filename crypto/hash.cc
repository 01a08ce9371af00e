// The low-level SHA256_* functions are deprecated in OpenSSL 3 in favour of
// EVP, but EVP_DigestInit_ex2 frees and re-allocates the provider context on
// every init (one heap allocation per hash, about twice the time of a
// 65-byte hash here). SHA256_CTX is a plain struct that lives inline and
// runs the same assembly block function, so it is used on purpose.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto/hash.h"

#include <openssl/sha.h>

#include <new>

#include "crypto/bytes.h"
#include "crypto/openssl_util.h"

namespace fieldsync::crypto {
namespace {

static_assert(sizeof(SHA256_CTX) <= Sha256Hasher::kStateSize);
static_assert(alignof(SHA256_CTX) <= 8);

// SHA256_Init/Update/Final fail only on programming errors (a null
// argument); treat a failure as fatal like the EVP helpers do.
void InitOrDie(SHA256_CTX* ctx) {
  if (SHA256_Init(ctx) != 1) internal::OpensslFatal("SHA-256 init");
}

void UpdateOrDie(SHA256_CTX* ctx, std::span<const uint8_t> data) {
  if (data.empty()) return;
  if (SHA256_Update(ctx, data.data(), data.size()) != 1) internal::OpensslFatal("SHA-256 update");
}

Sha256Digest FinalOrDie(SHA256_CTX* ctx) {
  Sha256Digest out;
  if (SHA256_Final(out.data(), ctx) != 1) internal::OpensslFatal("SHA-256 final");
  return out;
}

SHA256_CTX* Ctx(unsigned char* state) { return std::launder(reinterpret_cast<SHA256_CTX*>(state)); }

}  // namespace

Sha256Digest Sha256(std::span<const uint8_t> data) {
  SHA256_CTX ctx;
  InitOrDie(&ctx);
  UpdateOrDie(&ctx, data);
  return FinalOrDie(&ctx);
}

Sha256Digest Sha256(std::string_view data) { return Sha256(AsBytes(data)); }

Sha256Hasher::Sha256Hasher() { InitOrDie(new (state_) SHA256_CTX); }

Sha256Hasher& Sha256Hasher::Update(std::span<const uint8_t> data) {
  UpdateOrDie(Ctx(state_), data);
  return *this;
}

Sha256Hasher& Sha256Hasher::Update(std::string_view data) { return Update(AsBytes(data)); }

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest out = FinalOrDie(Ctx(state_));
  InitOrDie(Ctx(state_));
  return out;
}

}  // namespace fieldsync::crypto
