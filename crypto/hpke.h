// HPKE (RFC 9180), base mode, one suite: DHKEM(X25519, HKDF-SHA256) (0x0020),
// HKDF-SHA256 (0x0001), AES-256-GCM (0x0002). OpenSSL 3.0 has no HPKE API;
// this builds it from crypto/'s X25519, HKDF and AES-GCM exactly as the RFC
// specifies (LabeledExtract/LabeledExpand with "HPKE-v1", the KEM and HPKE
// suite ids, the §5.1 key schedule, nonce = base_nonce XOR I2OSP(seq, 12)).
// Devices seal batches to the server with it; the server seals pulls to
// devices.
#ifndef FIELDSYNC_CRYPTO_HPKE_H_
#define FIELDSYNC_CRYPTO_HPKE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/random.h"
#include "crypto/aead.h"
#include "crypto/secret.h"
#include "crypto/x25519.h"

namespace fieldsync::crypto {

inline constexpr uint16_t kHpkeKemX25519Sha256 = 0x0020;
inline constexpr uint16_t kHpkeKdfHkdfSha256 = 0x0001;
inline constexpr uint16_t kHpkeAeadAes256Gcm = 0x0002;
// Nenc: the encapsulated key is the sender's ephemeral X25519 public key.
inline constexpr size_t kHpkeEncSize = 32;

namespace internal {
struct HpkeKeySchedule;
}

// An HPKE encryption context (RFC 9180 §5.2) of one role. A sender context
// only seals and a recipient context only opens (the other call is
// kFailedPrecondition); both export.
//
// Sequence numbers: each successful Seal uses the next sequence number; it
// is taken and incremented under a lock before the encryption runs, so
// concurrent Seals never share a nonce (their ciphertexts may complete out
// of order: Seal reports the number it used). Open must be given
// ciphertexts in sequence order; a failed Open does not advance the
// sequence (RFC 9180 §5.2). The RFC's limit is 2^96 - 1 messages; this
// counter is 64 bits, so a context refuses to seal or open once its
// sequence number reaches 2^64 - 1 (kFailedPrecondition: set up a new one).
//
// Thread-safe.
class HpkeContext {
 public:
  enum class Role { kSender, kRecipient };

  HpkeContext(const HpkeContext&) = delete;
  HpkeContext& operator=(const HpkeContext&) = delete;

  // ciphertext || 16-byte tag of `plaintext` with associated data `aad`,
  // under the next sequence number (stored in *sequence when non-null).
  // kFailedPrecondition on a recipient context or at the sequence limit;
  // kInvalidArgument if plaintext is over kAesGcmMaxPlaintext.
  absl::StatusOr<std::string> Seal(std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                                   uint64_t* sequence = nullptr);

  // The plaintext of the ciphertext sealed with the current sequence number.
  // kInvalidArgument "decryption failed: ..." if it does not open (wrong
  // key, tampered, wrong aad, or out of order), kInvalidArgument if shorter
  // than a tag, kFailedPrecondition on a sender context or at the limit.
  absl::StatusOr<std::string> Open(std::span<const uint8_t> aad,
                                   std::span<const uint8_t> ciphertext);

  // The secret exporter (§5.3): LabeledExpand(exporter_secret, "sec",
  // exporter_context, length). kInvalidArgument if length > 8160.
  absl::StatusOr<SecretBytes> Export(std::span<const uint8_t> exporter_context,
                                     size_t length) const;

  // The sequence number the next Seal or Open will use.
  uint64_t sequence() const;
  Role role() const { return role_; }

  // Tests only: jump the sequence number (to test the limit).
  void SetSequenceForTesting(uint64_t sequence);

 private:
  friend struct internal::HpkeKeySchedule;
  HpkeContext(Role role, AesGcm aead, const std::array<uint8_t, kAesGcmNonceSize>& base_nonce,
              SecretBytes exporter_secret);

  std::array<uint8_t, kAesGcmNonceSize> Nonce(uint64_t sequence) const;

  const Role role_;
  const AesGcm aead_;
  const std::array<uint8_t, kAesGcmNonceSize> base_nonce_;
  const SecretBytes exporter_secret_;
  mutable absl::Mutex mu_;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
};

struct HpkeSenderSetup {
  std::string enc;  // 32 bytes: send it with the ciphertexts.
  std::unique_ptr<HpkeContext> context;
};

// SetupBaseS (§5.1.1) to `recipient_public` with a fresh ephemeral key from
// `random`. kInvalidArgument if recipient_public is not 32 bytes or is a
// low-order point (all-zero shared secret).
absl::StatusOr<HpkeSenderSetup> HpkeSetupBaseS(std::span<const uint8_t> recipient_public,
                                               std::span<const uint8_t> info, Random& random);

// SetupBaseS with a given ephemeral private key. For known-answer tests
// only: an ephemeral key used twice breaks HPKE's confidentiality.
absl::StatusOr<HpkeSenderSetup> HpkeSetupBaseSWithEphemeralKeyForTesting(
    std::span<const uint8_t> recipient_public, std::span<const uint8_t> info,
    const SecretBytes& ephemeral_private);

// SetupBaseR (§5.1.1). kInvalidArgument if enc is not 32 bytes or is a
// low-order point, or if recipient_private is not 32 bytes.
absl::StatusOr<std::unique_ptr<HpkeContext>> HpkeSetupBaseR(std::span<const uint8_t> enc,
                                                            const SecretBytes& recipient_private,
                                                            std::span<const uint8_t> info);
// The same with a prepared long-lived key: saves deriving its public key
// (an X25519 scalar multiplication) on every setup.
absl::StatusOr<std::unique_ptr<HpkeContext>> HpkeSetupBaseR(
    std::span<const uint8_t> enc, const X25519PrivateKey& recipient_private,
    std::span<const uint8_t> info);

// Decap(enc, skR) of DHKEM(X25519, HKDF-SHA256) (§4.1): the KEM shared
// secret alone. Exposed for known-answer tests of the KEM (RFC 9180 A.1
// shares our KEM with another AEAD); setups call it internally. The errors
// of HpkeSetupBaseR.
absl::StatusOr<SecretBytes> HpkeKemDecap(std::span<const uint8_t> enc,
                                         const X25519PrivateKey& recipient_private);

// DeriveKeyPair(ikm) of DHKEM(X25519, HKDF-SHA256) (§7.1.3): a key pair
// from input keying material (e.g. the test vectors' ikmR/ikmE).
X25519KeyPair HpkeDeriveKeyPair(std::span<const uint8_t> ikm);

// Single-shot HPKE (§6.1): one message per setup, sequence number 0.
struct HpkeCiphertext {
  std::string enc;
  std::string ciphertext;
};
absl::StatusOr<HpkeCiphertext> HpkeSeal(std::span<const uint8_t> recipient_public,
                                        std::span<const uint8_t> info,
                                        std::span<const uint8_t> aad,
                                        std::span<const uint8_t> plaintext, Random& random);
absl::StatusOr<std::string> HpkeOpen(const SecretBytes& recipient_private,
                                     std::span<const uint8_t> enc, std::span<const uint8_t> info,
                                     std::span<const uint8_t> aad,
                                     std::span<const uint8_t> ciphertext);
absl::StatusOr<std::string> HpkeOpen(const X25519PrivateKey& recipient_private,
                                     std::span<const uint8_t> enc, std::span<const uint8_t> info,
                                     std::span<const uint8_t> aad,
                                     std::span<const uint8_t> ciphertext);

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_HPKE_H_
