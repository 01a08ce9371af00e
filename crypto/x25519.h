// X25519 Diffie-Hellman (RFC 7748), refusing the all-zero shared secret.
#ifndef FIELDSYNC_CRYPTO_X25519_H_
#define FIELDSYNC_CRYPTO_X25519_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "crypto/openssl_fwd.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

inline constexpr size_t kX25519KeySize = 32;
using X25519PublicKey = std::array<uint8_t, kX25519KeySize>;

struct X25519KeyPair {
  SecretBytes private_key;  // 32 bytes, as RFC 7748 (clamped on use).
  X25519PublicKey public_key;
};

// A fresh key pair from 32 bytes of `random`. Thread-safe.
X25519KeyPair GenerateX25519(Random& random);

// The public key of a 32-byte private key; kInvalidArgument for any other
// length.
absl::StatusOr<X25519PublicKey> X25519PublicFromPrivate(std::span<const uint8_t> private_key);

// The 32-byte shared secret X25519(private_key, peer_public).
// kInvalidArgument if either input is not 32 bytes, or if the result is all
// zero (the peer sent a low-order point; RFC 7748 §6.1, RFC 9180 §7.1.4).
// Public keys are taken as RFC 7748 §5 says (top bit ignored,
// non-canonical values reduced). Thread-safe.
absl::StatusOr<SecretBytes> X25519(std::span<const uint8_t> private_key,
                                   std::span<const uint8_t> peer_public);

// A long-lived X25519 private key (e.g. the server's batch-sealing key),
// prepared once: X25519() above derives the public key on every call, this
// does not, and Derive reuses a prepared derivation context when no other
// thread is using it. Thread-safe; moveable (a moved-from key may only be
// destroyed or assigned to).
class X25519PrivateKey {
 public:
  // kInvalidArgument unless private_key is 32 bytes.
  static absl::StatusOr<X25519PrivateKey> Create(std::span<const uint8_t> private_key);

  X25519PrivateKey(X25519PrivateKey&&) noexcept;
  X25519PrivateKey& operator=(X25519PrivateKey&&) noexcept;
  ~X25519PrivateKey();

  const X25519PublicKey& public_key() const { return public_key_; }

  // As X25519(private key, peer_public).
  absl::StatusOr<SecretBytes> Derive(std::span<const uint8_t> peer_public) const;

 private:
  struct DeriveCache;
  X25519PrivateKey(internal::PkeyPtr pkey, const X25519PublicKey& public_key);
  internal::PkeyPtr pkey_;
  X25519PublicKey public_key_;
  std::unique_ptr<DeriveCache> derive_cache_;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_X25519_H_
