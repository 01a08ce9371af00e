#include "crypto/aead.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstring>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "crypto/openssl_util.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

namespace {

// One direction's (sealing or opening) contexts. The primary is taken with
// an atomic flag, so the common uncontended call costs no mutex (Debian's
// abseil is built with deadlock detection on, which makes every
// absl::Mutex lock cost a few hundred instructions); a caller that finds it
// busy uses the spare behind the mutex instead of waiting. Both are set up
// on first use, so an AesGcm that only opens (an HPKE recipient, a key
// unwrap) never prepares a sealing context.
struct Direction {
  std::atomic_flag primary_busy;  // clear (C++20); guards `primary`
  internal::CipherCtxPtr primary;
  absl::Mutex mu;
  internal::CipherCtxPtr spare ABSL_GUARDED_BY(mu);
};

}  // namespace

struct AesGcm::State {
  explicit State(std::span<const uint8_t> k) : key(k) {}
  const SecretBytes key;  // kept to prepare contexts lazily; wiped with State
  Direction seal;
  Direction open;
};

namespace {

absl::Status CheckNonce(std::span<const uint8_t> nonce) {
  if (nonce.size() != kAesGcmNonceSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("AES-GCM nonce must be 12 bytes, got %d", nonce.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckLengths(std::span<const uint8_t> aad, size_t text) {
  if (text > kAesGcmMaxPlaintext || aad.size() > kAesGcmMaxPlaintext) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AES-GCM input of %d bytes (associated data %d bytes) is over the 1 GiB limit", text,
        aad.size()));
  }
  return absl::OkStatus();
}

absl::Status DecryptionFailed() {
  return absl::InvalidArgumentError(
      "decryption failed: wrong key, tampered data or wrong associated data");
}

// A context with the cipher and key set; each call then sets only the nonce.
internal::CipherCtxPtr PrepareCtx(std::span<const uint8_t> key, bool encrypt) {
  internal::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) internal::OpensslFatal("EVP_CIPHER_CTX_new");
  // The default IV length of AES-GCM in OpenSSL is 12 bytes, which we use.
  if (EVP_CipherInit_ex2(ctx.get(), internal::Aes256GcmCipher(), key.data(), nullptr,
                         encrypt ? 1 : 0, nullptr) != 1) {
    internal::OpensslFatal("AES-256-GCM key setup");
  }
  return ctx;
}

// Runs fn(ctx) with exclusive use of one of `d`'s contexts (set up with
// `key` for `encrypt` on first use) and returns what fn returns.
template <typename Fn>
auto WithCtx(Direction& d, std::span<const uint8_t> key, bool encrypt, Fn fn) {
  if (!d.primary_busy.test_and_set(std::memory_order_acquire)) {
    if (d.primary == nullptr) d.primary = PrepareCtx(key, encrypt);
    auto result = fn(d.primary.get());
    d.primary_busy.clear(std::memory_order_release);
    return result;
  }
  absl::MutexLock lock(&d.mu);
  if (d.spare == nullptr) d.spare = PrepareCtx(key, encrypt);
  return fn(d.spare.get());
}

}  // namespace

AesGcm::AesGcm(std::unique_ptr<State> state) : state_(std::move(state)) {}
AesGcm::AesGcm(AesGcm&&) noexcept = default;
AesGcm& AesGcm::operator=(AesGcm&&) noexcept = default;
AesGcm::~AesGcm() = default;

absl::StatusOr<AesGcm> AesGcm::Create(std::span<const uint8_t> key) {
  if (key.size() != kAesGcmKeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("AES-256-GCM key must be 32 bytes, got %d", key.size()));
  }
  auto state = std::make_unique<State>(key);
  return AesGcm(std::move(state));
}

absl::StatusOr<std::string> AesGcm::Seal(std::span<const uint8_t> nonce,
                                         std::span<const uint8_t> aad,
                                         std::span<const uint8_t> plaintext) const {
  std::string out;
  RETURN_IF_ERROR(SealAppend(nonce, aad, plaintext, &out));
  return out;
}

absl::Status AesGcm::SealAppend(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                                std::span<const uint8_t> plaintext, std::string* out) const {
  RETURN_IF_ERROR(CheckNonce(nonce));
  RETURN_IF_ERROR(CheckLengths(aad, plaintext.size()));
  const size_t start = out->size();
  out->resize(start + plaintext.size() + kAesGcmTagSize);
  uint8_t* dst = reinterpret_cast<uint8_t*>(out->data()) + start;
  int len = 0;
  uint8_t no_output[kAesGcmTagSize];
  const bool ok = WithCtx(state_->seal, state_->key.span(), /*encrypt=*/true,
                          [&](EVP_CIPHER_CTX* ctx) {
    return EVP_EncryptInit_ex2(ctx, nullptr, nullptr, nonce.data(), nullptr) == 1 &&
           (aad.empty() ||
            EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
           (plaintext.empty() || EVP_EncryptUpdate(ctx, dst, &len, plaintext.data(),
                                                   static_cast<int>(plaintext.size())) == 1) &&
           EVP_EncryptFinal_ex(ctx, no_output, &len) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kAesGcmTagSize,
                               dst + plaintext.size()) == 1;
  });
  if (!ok) {
    out->resize(start);
    return internal::OpensslError("AES-256-GCM encryption");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AesGcm::Open(std::span<const uint8_t> nonce,
                                         std::span<const uint8_t> aad,
                                         std::span<const uint8_t> ciphertext_and_tag) const {
  if (ciphertext_and_tag.size() < kAesGcmTagSize) {
    // Checked here too so the resize below cannot underflow.
    return absl::InvalidArgumentError(absl::StrFormat(
        "ciphertext too short: %d bytes, an AES-GCM ciphertext has at least its 16-byte tag",
        ciphertext_and_tag.size()));
  }
  std::string out(ciphertext_and_tag.size() - kAesGcmTagSize, '\0');
  absl::Status s =
      OpenTo(nonce, aad, ciphertext_and_tag,
             std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  if (!s.ok()) return s;
  return out;
}

absl::Status AesGcm::OpenTo(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                            std::span<const uint8_t> ciphertext_and_tag,
                            std::span<uint8_t> out) const {
  RETURN_IF_ERROR(CheckNonce(nonce));
  if (ciphertext_and_tag.size() < kAesGcmTagSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ciphertext too short: %d bytes, an AES-GCM ciphertext has at least its 16-byte tag",
        ciphertext_and_tag.size()));
  }
  const size_t text_size = ciphertext_and_tag.size() - kAesGcmTagSize;
  RETURN_IF_ERROR(CheckLengths(aad, text_size));
  if (out.size() != text_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AES-GCM output buffer of %d bytes for %d bytes of plaintext", out.size(), text_size));
  }
  // EVP_CIPHER_CTX_ctrl takes a non-const tag buffer.
  uint8_t tag[kAesGcmTagSize];
  std::memcpy(tag, ciphertext_and_tag.data() + text_size, kAesGcmTagSize);
  int len = 0;
  bool tag_ok = false;
  const bool setup_ok = WithCtx(state_->open, state_->key.span(), /*encrypt=*/false,
                                [&](EVP_CIPHER_CTX* ctx) {
    const bool ok =
        EVP_DecryptInit_ex2(ctx, nullptr, nullptr, nonce.data(), nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kAesGcmTagSize, tag) == 1 &&
        (aad.empty() ||
         EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
        (text_size == 0 || EVP_DecryptUpdate(ctx, out.data(), &len, ciphertext_and_tag.data(),
                                             static_cast<int>(text_size)) == 1);
    // EVP_DecryptFinal_ex compares the tag (in constant time) and fails on
    // a mismatch; it writes no further plaintext for GCM.
    uint8_t no_output[kAesGcmTagSize];
    if (ok) tag_ok = EVP_DecryptFinal_ex(ctx, no_output, &len) == 1;
    return ok;
  });
  if (!setup_ok) {
    Cleanse(out);
    return internal::OpensslError("AES-256-GCM decryption");
  }
  if (!tag_ok) {
    Cleanse(out);
    ERR_clear_error();
    return DecryptionFailed();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                                       std::span<const uint8_t> aad,
                                       std::span<const uint8_t> plaintext) {
  ASSIGN_OR_RETURN(AesGcm aead, AesGcm::Create(key));
  return aead.Seal(nonce, aad, plaintext);
}

absl::StatusOr<std::string> AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                                       std::span<const uint8_t> aad,
                                       std::span<const uint8_t> ciphertext_and_tag) {
  ASSIGN_OR_RETURN(AesGcm aead, AesGcm::Create(key));
  return aead.Open(nonce, aad, ciphertext_and_tag);
}

}  // namespace fieldsync::crypto
