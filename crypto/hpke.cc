#include "crypto/hpke.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/hkdf.h"
#include "crypto/openssl_util.h"

namespace fieldsync::crypto {
namespace {

constexpr std::string_view kVersionLabel = "HPKE-v1";
constexpr uint8_t kModeBase = 0x00;
constexpr size_t kNh = 32;  // HKDF-SHA256 output (and Nsecret of the KEM).
constexpr uint64_t kSequenceLimit = std::numeric_limits<uint64_t>::max();

// suite_id for the KEM's own derivations (§4.1): "KEM" || I2OSP(kem_id, 2).
constexpr uint8_t kKemSuiteId[] = {'K', 'E', 'M', 0x00, 0x20};
// suite_id for the key schedule (§5.1):
// "HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2).
constexpr uint8_t kHpkeSuiteId[] = {'H', 'P', 'K', 'E', 0x00, 0x20, 0x00, 0x01, 0x00, 0x02};

void Append(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// LabeledExtract(salt, label, ikm) =
//   Extract(salt, "HPKE-v1" || suite_id || label || ikm).
// The ikm may be a secret (the DH output), so the message is a SecretBytes.
SecretBytes LabeledExtract(std::span<const uint8_t> suite_id, std::span<const uint8_t> salt,
                           std::string_view label, std::span<const uint8_t> ikm) {
  SecretBytes labeled(kVersionLabel.size() + suite_id.size() + label.size() + ikm.size());
  uint8_t* p = labeled.data();
  std::memcpy(p, kVersionLabel.data(), kVersionLabel.size());
  p += kVersionLabel.size();
  std::memcpy(p, suite_id.data(), suite_id.size());
  p += suite_id.size();
  if (!label.empty()) std::memcpy(p, label.data(), label.size());
  p += label.size();
  if (!ikm.empty()) std::memcpy(p, ikm.data(), ikm.size());
  return HkdfExtract(salt, labeled.span());
}

// LabeledExpand(prk, label, info, L) =
//   Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L).
absl::StatusOr<SecretBytes> LabeledExpand(std::span<const uint8_t> suite_id,
                                          std::span<const uint8_t> prk, std::string_view label,
                                          std::span<const uint8_t> info, size_t length) {
  if (length > kHkdfSha256MaxOutput) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "HPKE export of %d bytes requested; the maximum is %d", length, kHkdfSha256MaxOutput));
  }
  std::vector<uint8_t> labeled;
  labeled.reserve(2 + kVersionLabel.size() + suite_id.size() + label.size() + info.size());
  labeled.push_back(static_cast<uint8_t>(length >> 8));
  labeled.push_back(static_cast<uint8_t>(length));
  Append(labeled, AsBytes(kVersionLabel));
  Append(labeled, suite_id);
  Append(labeled, AsBytes(label));
  Append(labeled, info);
  return HkdfExpand(prk, labeled, length);
}

// DHKEM ExtractAndExpand (§4.1): the KEM shared secret from the DH output
// and kem_context = enc || pkR.
absl::StatusOr<SecretBytes> ExtractAndExpand(const SecretBytes& dh,
                                             std::span<const uint8_t> enc,
                                             std::span<const uint8_t> recipient_public) {
  SecretBytes eae_prk = LabeledExtract(kKemSuiteId, {}, "eae_prk", dh.span());
  std::vector<uint8_t> kem_context;
  Append(kem_context, enc);
  Append(kem_context, recipient_public);
  return LabeledExpand(kKemSuiteId, eae_prk.span(), "shared_secret", kem_context, kNh);
}

// psk_id_hash = LabeledExtract("", "psk_id_hash", psk_id = "") is the same
// in every base-mode setup: computed once.
std::span<const uint8_t> PskIdHash() {
  static const std::array<uint8_t, kNh> hash = [] {
    SecretBytes h = LabeledExtract(kHpkeSuiteId, {}, "psk_id_hash", {});
    std::array<uint8_t, kNh> out;
    std::memcpy(out.data(), h.data(), out.size());
    return out;
  }();
  return hash;
}

// info_hash = LabeledExtract("", "info_hash", info). The info string is
// public and usually the same for every setup (one per protocol use), so
// each thread remembers the last one it hashed.
std::span<const uint8_t> InfoHash(std::span<const uint8_t> info) {
  struct Last {
    bool valid = false;
    std::vector<uint8_t> info;
    std::array<uint8_t, kNh> hash;
  };
  thread_local Last last;
  if (!last.valid || !std::equal(info.begin(), info.end(), last.info.begin(), last.info.end())) {
    SecretBytes h = LabeledExtract(kHpkeSuiteId, {}, "info_hash", info);
    std::memcpy(last.hash.data(), h.data(), last.hash.size());
    last.info.assign(info.begin(), info.end());
    last.valid = true;
  }
  return last.hash;
}

absl::Status CheckLength(std::span<const uint8_t> bytes, const char* what) {
  if (bytes.size() != kX25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("HPKE %s must be 32 bytes, got %d", what, bytes.size()));
  }
  return absl::OkStatus();
}

}  // namespace

namespace internal {

struct HpkeKeySchedule {
  // KeySchedule<ROLE>(mode_base, shared_secret, info, psk = "", psk_id = "")
  // (§5.1).
  static absl::StatusOr<std::unique_ptr<HpkeContext>> Run(HpkeContext::Role role,
                                                          const SecretBytes& shared_secret,
                                                          std::span<const uint8_t> info) {
    // key_schedule_context = mode || psk_id_hash || info_hash (public).
    std::vector<uint8_t> context;
    context.reserve(1 + 2 * kNh);
    context.push_back(kModeBase);
    Append(context, PskIdHash());
    Append(context, InfoHash(info));
    // secret = LabeledExtract(shared_secret, "secret", psk).
    SecretBytes secret = LabeledExtract(kHpkeSuiteId, shared_secret.span(), "secret", {});
    ASSIGN_OR_RETURN(SecretBytes key,
                     LabeledExpand(kHpkeSuiteId, secret.span(), "key", context, kAesGcmKeySize));
    ASSIGN_OR_RETURN(SecretBytes base_nonce, LabeledExpand(kHpkeSuiteId, secret.span(),
                                                           "base_nonce", context, kAesGcmNonceSize));
    ASSIGN_OR_RETURN(SecretBytes exporter_secret,
                     LabeledExpand(kHpkeSuiteId, secret.span(), "exp", context, kNh));
    ASSIGN_OR_RETURN(AesGcm aead, AesGcm::Create(key.span()));
    std::array<uint8_t, kAesGcmNonceSize> nonce;
    std::memcpy(nonce.data(), base_nonce.data(), nonce.size());
    return std::unique_ptr<HpkeContext>(
        new HpkeContext(role, std::move(aead), nonce, std::move(exporter_secret)));
  }
};

}  // namespace internal

HpkeContext::HpkeContext(Role role, AesGcm aead,
                         const std::array<uint8_t, kAesGcmNonceSize>& base_nonce,
                         SecretBytes exporter_secret)
    : role_(role),
      aead_(std::move(aead)),
      base_nonce_(base_nonce),
      exporter_secret_(std::move(exporter_secret)) {}

std::array<uint8_t, kAesGcmNonceSize> HpkeContext::Nonce(uint64_t sequence) const {
  // base_nonce XOR I2OSP(seq, Nn): the sequence number is big-endian in the
  // last 8 bytes; the first 4 bytes of I2OSP(seq, 12) are zero for a
  // 64-bit counter.
  std::array<uint8_t, kAesGcmNonceSize> nonce = base_nonce_;
  for (int i = 0; i < 8; ++i) {
    nonce[kAesGcmNonceSize - 1 - i] ^= static_cast<uint8_t>(sequence >> (8 * i));
  }
  return nonce;
}

absl::StatusOr<std::string> HpkeContext::Seal(std::span<const uint8_t> aad,
                                              std::span<const uint8_t> plaintext,
                                              uint64_t* sequence) {
  if (role_ != Role::kSender) {
    return absl::FailedPreconditionError("HPKE recipient context cannot seal");
  }
  // Checked before a sequence number is spent: a failure after taking one
  // would leave a gap that the recipient cannot open past.
  if (plaintext.size() > kAesGcmMaxPlaintext || aad.size() > kAesGcmMaxPlaintext) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "HPKE plaintext of %d bytes (aad %d bytes) is over the 1 GiB limit", plaintext.size(),
        aad.size()));
  }
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    if (sequence_ >= kSequenceLimit) {
      return absl::FailedPreconditionError(
          "HPKE context reached its sequence number limit; set up a new context");
    }
    seq = sequence_++;
  }
  std::array<uint8_t, kAesGcmNonceSize> nonce = Nonce(seq);
  ASSIGN_OR_RETURN(std::string ciphertext, aead_.Seal(nonce, aad, plaintext));
  if (sequence != nullptr) *sequence = seq;
  return ciphertext;
}

absl::StatusOr<std::string> HpkeContext::Open(std::span<const uint8_t> aad,
                                              std::span<const uint8_t> ciphertext) {
  if (role_ != Role::kRecipient) {
    return absl::FailedPreconditionError("HPKE sender context cannot open");
  }
  // Held across the decryption: the sequence number advances only if this
  // ciphertext opens.
  absl::MutexLock lock(&mu_);
  if (sequence_ >= kSequenceLimit) {
    return absl::FailedPreconditionError(
        "HPKE context reached its sequence number limit; set up a new context");
  }
  ASSIGN_OR_RETURN(std::string plaintext, aead_.Open(Nonce(sequence_), aad, ciphertext));
  ++sequence_;
  return plaintext;
}

absl::StatusOr<SecretBytes> HpkeContext::Export(std::span<const uint8_t> exporter_context,
                                                size_t length) const {
  return LabeledExpand(kHpkeSuiteId, exporter_secret_.span(), "sec", exporter_context, length);
}

uint64_t HpkeContext::sequence() const {
  absl::MutexLock lock(&mu_);
  return sequence_;
}

void HpkeContext::SetSequenceForTesting(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  sequence_ = sequence;
}

absl::StatusOr<HpkeSenderSetup> HpkeSetupBaseSWithEphemeralKeyForTesting(
    std::span<const uint8_t> recipient_public, std::span<const uint8_t> info,
    const SecretBytes& ephemeral_private) {
  RETURN_IF_ERROR(CheckLength(recipient_public, "recipient public key"));
  ASSIGN_OR_RETURN(X25519PrivateKey ephemeral, X25519PrivateKey::Create(ephemeral_private.span()));
  // Encap(pkR) (§4.1): dh = DH(skE, pkR), enc = pkE.
  ASSIGN_OR_RETURN(SecretBytes dh, ephemeral.Derive(recipient_public));
  const X25519PublicKey& enc = ephemeral.public_key();
  ASSIGN_OR_RETURN(SecretBytes shared_secret, ExtractAndExpand(dh, enc, recipient_public));
  ASSIGN_OR_RETURN(std::unique_ptr<HpkeContext> context,
                   internal::HpkeKeySchedule::Run(HpkeContext::Role::kSender, shared_secret, info));
  return HpkeSenderSetup{ToString(enc), std::move(context)};
}

absl::StatusOr<HpkeSenderSetup> HpkeSetupBaseS(std::span<const uint8_t> recipient_public,
                                               std::span<const uint8_t> info, Random& random) {
  // GenerateKeyPair for X25519: any 32 random bytes are a private key.
  SecretBytes ephemeral(kX25519KeySize);
  random.Fill(ephemeral.mutable_span());
  return HpkeSetupBaseSWithEphemeralKeyForTesting(recipient_public, info, ephemeral);
}

absl::StatusOr<SecretBytes> HpkeKemDecap(std::span<const uint8_t> enc,
                                         const X25519PrivateKey& recipient_private) {
  RETURN_IF_ERROR(CheckLength(enc, "encapsulated key"));
  // Decap(enc, skR) (§4.1): dh = DH(skR, pkE).
  ASSIGN_OR_RETURN(SecretBytes dh, recipient_private.Derive(enc));
  return ExtractAndExpand(dh, enc, recipient_private.public_key());
}

absl::StatusOr<std::unique_ptr<HpkeContext>> HpkeSetupBaseR(
    std::span<const uint8_t> enc, const X25519PrivateKey& recipient_private,
    std::span<const uint8_t> info) {
  ASSIGN_OR_RETURN(SecretBytes shared_secret, HpkeKemDecap(enc, recipient_private));
  return internal::HpkeKeySchedule::Run(HpkeContext::Role::kRecipient, shared_secret, info);
}

absl::StatusOr<std::unique_ptr<HpkeContext>> HpkeSetupBaseR(std::span<const uint8_t> enc,
                                                            const SecretBytes& recipient_private,
                                                            std::span<const uint8_t> info) {
  RETURN_IF_ERROR(CheckLength(enc, "encapsulated key"));
  ASSIGN_OR_RETURN(X25519PrivateKey key, X25519PrivateKey::Create(recipient_private.span()));
  return HpkeSetupBaseR(enc, key, info);
}

X25519KeyPair HpkeDeriveKeyPair(std::span<const uint8_t> ikm) {
  // DeriveKeyPair for X25519 (§7.1.3): dkp_prk = LabeledExtract("",
  // "dkp_prk", ikm); sk = LabeledExpand(dkp_prk, "sk", "", Nsk).
  SecretBytes dkp_prk = LabeledExtract(kKemSuiteId, {}, "dkp_prk", ikm);
  absl::StatusOr<SecretBytes> sk = LabeledExpand(kKemSuiteId, dkp_prk.span(), "sk", {}, 32);
  absl::StatusOr<X25519PublicKey> pk =
      sk.ok() ? X25519PublicFromPrivate(sk->span()) : sk.status();
  if (!pk.ok()) internal::OpensslFatal("HPKE DeriveKeyPair");
  return X25519KeyPair{std::move(*sk), *pk};
}

absl::StatusOr<HpkeCiphertext> HpkeSeal(std::span<const uint8_t> recipient_public,
                                        std::span<const uint8_t> info,
                                        std::span<const uint8_t> aad,
                                        std::span<const uint8_t> plaintext, Random& random) {
  ASSIGN_OR_RETURN(HpkeSenderSetup setup, HpkeSetupBaseS(recipient_public, info, random));
  ASSIGN_OR_RETURN(std::string ciphertext, setup.context->Seal(aad, plaintext));
  return HpkeCiphertext{std::move(setup.enc), std::move(ciphertext)};
}

absl::StatusOr<std::string> HpkeOpen(const X25519PrivateKey& recipient_private,
                                     std::span<const uint8_t> enc, std::span<const uint8_t> info,
                                     std::span<const uint8_t> aad,
                                     std::span<const uint8_t> ciphertext) {
  ASSIGN_OR_RETURN(std::unique_ptr<HpkeContext> context,
                   HpkeSetupBaseR(enc, recipient_private, info));
  return context->Open(aad, ciphertext);
}

absl::StatusOr<std::string> HpkeOpen(const SecretBytes& recipient_private,
                                     std::span<const uint8_t> enc, std::span<const uint8_t> info,
                                     std::span<const uint8_t> aad,
                                     std::span<const uint8_t> ciphertext) {
  ASSIGN_OR_RETURN(X25519PrivateKey key, X25519PrivateKey::Create(recipient_private.span()));
  return HpkeOpen(key, enc, info, aad, ciphertext);
}

}  // namespace fieldsync::crypto
