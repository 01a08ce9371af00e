// Ed25519 signatures (RFC 8032, pure Ed25519), with strict verification.
#ifndef FIELDSYNC_CRYPTO_ED25519_H_
#define FIELDSYNC_CRYPTO_ED25519_H_

#include <array>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/random.h"
#include "crypto/openssl_fwd.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;
using Ed25519PublicKey = std::array<uint8_t, kEd25519PublicKeySize>;
using Ed25519Signature = std::array<uint8_t, kEd25519SignatureSize>;

struct Ed25519KeyPair {
  SecretBytes seed;  // The 32-byte RFC 8032 private key.
  Ed25519PublicKey public_key;
};

// A fresh key pair whose seed is 32 bytes of `random`. Thread-safe.
Ed25519KeyPair GenerateEd25519(Random& random);

// The key pair of a 32-byte seed; kInvalidArgument for any other length.
absl::StatusOr<Ed25519KeyPair> Ed25519FromSeed(std::span<const uint8_t> seed);

// The signature of `message` under `seed`; kInvalidArgument unless the seed
// is 32 bytes. Rebuilds the key each call: a long-lived signer should keep
// an Ed25519Signer.
absl::StatusOr<Ed25519Signature> Ed25519Sign(const SecretBytes& seed,
                                             std::span<const uint8_t> message);

// OK iff `signature` is a valid RFC 8032 signature of `message` under
// `public_key`. Strict: S must be canonical (S < L, checked here before
// OpenSSL sees it), R and A must decode, and the recomputed R must match the
// encoding byte for byte. Errors:
//   kInvalidArgument - public key not 32 bytes or signature not 64 bytes;
//   kUnauthenticated "signature does not verify" - every other invalid case.
// Thread-safe.
absl::Status Ed25519Verify(std::span<const uint8_t> public_key, std::span<const uint8_t> message,
                           std::span<const uint8_t> signature);

// A signing key built once from its seed and kept (the audit log's tree-head
// key, a device's key in tests). Thread-safe; moveable.
class Ed25519Signer {
 public:
  // kInvalidArgument unless seed is 32 bytes.
  static absl::StatusOr<Ed25519Signer> Create(std::span<const uint8_t> seed);

  const Ed25519PublicKey& public_key() const { return public_key_; }

  // The signature of `message`. Cannot fail with a valid key; an OpenSSL
  // failure here (allocation) aborts.
  Ed25519Signature Sign(std::span<const uint8_t> message) const;

 private:
  Ed25519Signer(internal::PkeyPtr pkey, const Ed25519PublicKey& public_key);
  internal::PkeyPtr pkey_;
  Ed25519PublicKey public_key_;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_ED25519_H_
