#include "crypto/x25519.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/openssl_util.h"

namespace fieldsync::crypto {
namespace {

absl::Status CheckLength(std::span<const uint8_t> key, const char* what) {
  if (key.size() != kX25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("X25519 %s must be 32 bytes, got %d", what, key.size()));
  }
  return absl::OkStatus();
}

absl::Status LowOrderPeer() {
  return absl::InvalidArgumentError(
      "X25519 shared secret is all zero: the peer public key is a low-order point");
}

}  // namespace

// A derivation context initialized once on the private key, reused by
// whichever Derive call takes the flag first (a concurrent call sets up a
// context of its own): creating and initializing an EVP_PKEY_CTX fetches
// the key-exchange method and allocates on every call otherwise.
struct X25519PrivateKey::DeriveCache {
  std::atomic_flag busy;        // clear (C++20); guards `ctx`
  internal::PkeyCtxPtr ctx;     // derive-initialized, or null
};

X25519PrivateKey::X25519PrivateKey(internal::PkeyPtr pkey, const X25519PublicKey& public_key)
    : pkey_(std::move(pkey)),
      public_key_(public_key),
      derive_cache_(std::make_unique<DeriveCache>()) {}
X25519PrivateKey::X25519PrivateKey(X25519PrivateKey&&) noexcept = default;
X25519PrivateKey& X25519PrivateKey::operator=(X25519PrivateKey&&) noexcept = default;
X25519PrivateKey::~X25519PrivateKey() = default;

absl::StatusOr<X25519PrivateKey> X25519PrivateKey::Create(std::span<const uint8_t> private_key) {
  RETURN_IF_ERROR(CheckLength(private_key, "private key"));
  internal::PkeyPtr pkey(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr,
                                                         private_key.data(), private_key.size()));
  if (pkey == nullptr) return internal::OpensslError("X25519 private key import");
  X25519PublicKey public_key;
  size_t len = public_key.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), public_key.data(), &len) != 1 ||
      len != public_key.size()) {
    return internal::OpensslError("X25519 public key derivation");
  }
  return X25519PrivateKey(std::move(pkey), public_key);
}

namespace {

// A fresh derivation context on `pkey`, or null (with the OpenSSL error
// queued).
internal::PkeyCtxPtr NewDeriveCtx(EVP_PKEY* pkey) {
  internal::PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1) return nullptr;
  return ctx;
}

// X25519 on a derive-initialized context.
absl::StatusOr<SecretBytes> DeriveOn(EVP_PKEY_CTX* ctx, EVP_PKEY* peer) {
  if (EVP_PKEY_derive_set_peer_ex(ctx, peer, /*validate_peer=*/0) != 1) {
    return internal::OpensslError("X25519 setup");
  }
  SecretBytes shared(kX25519KeySize);
  size_t len = shared.size();
  if (EVP_PKEY_derive(ctx, shared.data(), &len) != 1) {
    // With two well-formed 32-byte keys OpenSSL's only refusal is its own
    // all-zero check (ossl_x25519 returns 0 for it).
    ERR_clear_error();
    return LowOrderPeer();
  }
  if (len != kX25519KeySize) return absl::InternalError("X25519 produced a short secret");
  static const uint8_t kZeros[kX25519KeySize] = {};
  if (ConstantTimeEquals(shared.span(), kZeros)) return LowOrderPeer();
  return shared;
}

}  // namespace

absl::StatusOr<SecretBytes> X25519PrivateKey::Derive(std::span<const uint8_t> peer_public) const {
  RETURN_IF_ERROR(CheckLength(peer_public, "public key"));
  internal::PkeyPtr peer(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr,
                                                        peer_public.data(), peer_public.size()));
  if (peer == nullptr) return internal::OpensslError("X25519 public key import");
  DeriveCache& cache = *derive_cache_;
  if (!cache.busy.test_and_set(std::memory_order_acquire)) {
    if (cache.ctx == nullptr) cache.ctx = NewDeriveCtx(pkey_.get());
    absl::StatusOr<SecretBytes> shared = cache.ctx == nullptr
                                             ? internal::OpensslError("X25519 context")
                                             : DeriveOn(cache.ctx.get(), peer.get());
    // After any failure start from a fresh context next time.
    if (!shared.ok()) cache.ctx.reset();
    cache.busy.clear(std::memory_order_release);
    return shared;
  }
  internal::PkeyCtxPtr ctx = NewDeriveCtx(pkey_.get());
  if (ctx == nullptr) return internal::OpensslError("X25519 context");
  return DeriveOn(ctx.get(), peer.get());
}

X25519KeyPair GenerateX25519(Random& random) {
  SecretBytes private_key(kX25519KeySize);
  random.Fill(private_key.mutable_span());
  absl::StatusOr<X25519PublicKey> public_key = X25519PublicFromPrivate(private_key.span());
  if (!public_key.ok()) internal::OpensslFatal("X25519 key generation");
  return X25519KeyPair{std::move(private_key), *public_key};
}

absl::StatusOr<X25519PublicKey> X25519PublicFromPrivate(std::span<const uint8_t> private_key) {
  ASSIGN_OR_RETURN(X25519PrivateKey key, X25519PrivateKey::Create(private_key));
  return key.public_key();
}

absl::StatusOr<SecretBytes> X25519(std::span<const uint8_t> private_key,
                                   std::span<const uint8_t> peer_public) {
  RETURN_IF_ERROR(CheckLength(peer_public, "public key"));
  ASSIGN_OR_RETURN(X25519PrivateKey key, X25519PrivateKey::Create(private_key));
  return key.Derive(peer_public);
}

}  // namespace fieldsync::crypto
