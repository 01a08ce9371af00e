#include "crypto/ed25519.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/openssl_util.h"

namespace fieldsync::crypto {
namespace {

// The group order L = 2^252 + 27742317777372353535851937790883648493,
// little-endian, as S is encoded.
constexpr uint8_t kOrderL[32] = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

// S < L, comparing from the most significant byte. Variable time is fine:
// the signature is public.
bool IsCanonicalScalar(std::span<const uint8_t> s) {
  for (int i = 31; i >= 0; --i) {
    if (s[i] < kOrderL[i]) return true;
    if (s[i] > kOrderL[i]) return false;
  }
  return false;  // S == L.
}

absl::Status DoesNotVerify() { return absl::UnauthenticatedError("signature does not verify"); }

}  // namespace

Ed25519Signer::Ed25519Signer(internal::PkeyPtr pkey, const Ed25519PublicKey& public_key)
    : pkey_(std::move(pkey)), public_key_(public_key) {}

absl::StatusOr<Ed25519Signer> Ed25519Signer::Create(std::span<const uint8_t> seed) {
  if (seed.size() != kEd25519SeedSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Ed25519 seed must be 32 bytes, got %d", seed.size()));
  }
  internal::PkeyPtr pkey(
      EVP_PKEY_new_raw_private_key_ex(nullptr, "ED25519", nullptr, seed.data(), seed.size()));
  if (pkey == nullptr) return internal::OpensslError("Ed25519 private key import");
  Ed25519PublicKey public_key;
  size_t len = public_key.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), public_key.data(), &len) != 1 ||
      len != public_key.size()) {
    return internal::OpensslError("Ed25519 public key derivation");
  }
  return Ed25519Signer(std::move(pkey), public_key);
}

Ed25519Signature Ed25519Signer::Sign(std::span<const uint8_t> message) const {
  internal::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) internal::OpensslFatal("EVP_MD_CTX_new");
  Ed25519Signature signature;
  size_t len = signature.size();
  if (EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, pkey_.get(), nullptr) !=
          1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &len, message.data(), message.size()) != 1 ||
      len != signature.size()) {
    internal::OpensslFatal("Ed25519 signing");
  }
  return signature;
}

Ed25519KeyPair GenerateEd25519(Random& random) {
  SecretBytes seed(kEd25519SeedSize);
  random.Fill(seed.mutable_span());
  absl::StatusOr<Ed25519Signer> signer = Ed25519Signer::Create(seed.span());
  if (!signer.ok()) internal::OpensslFatal("Ed25519 key generation");
  return Ed25519KeyPair{std::move(seed), signer->public_key()};
}

absl::StatusOr<Ed25519KeyPair> Ed25519FromSeed(std::span<const uint8_t> seed) {
  ASSIGN_OR_RETURN(Ed25519Signer signer, Ed25519Signer::Create(seed));
  return Ed25519KeyPair{SecretBytes(seed), signer.public_key()};
}

absl::StatusOr<Ed25519Signature> Ed25519Sign(const SecretBytes& seed,
                                             std::span<const uint8_t> message) {
  ASSIGN_OR_RETURN(Ed25519Signer signer, Ed25519Signer::Create(seed.span()));
  return signer.Sign(message);
}

absl::Status Ed25519Verify(std::span<const uint8_t> public_key, std::span<const uint8_t> message,
                           std::span<const uint8_t> signature) {
  if (public_key.size() != kEd25519PublicKeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Ed25519 public key must be 32 bytes, got %d", public_key.size()));
  }
  if (signature.size() != kEd25519SignatureSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Ed25519 signature must be 64 bytes, got %d", signature.size()));
  }
  if (!IsCanonicalScalar(signature.subspan(32))) return DoesNotVerify();
  internal::PkeyPtr pkey(EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr,
                                                        public_key.data(), public_key.size()));
  if (pkey == nullptr) {
    ERR_clear_error();
    return DoesNotVerify();
  }
  internal::MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) internal::OpensslFatal("EVP_MD_CTX_new");
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, pkey.get(), nullptr) !=
      1) {
    ERR_clear_error();
    return DoesNotVerify();
  }
  if (EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                       message.size()) != 1) {
    ERR_clear_error();
    return DoesNotVerify();
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::crypto
