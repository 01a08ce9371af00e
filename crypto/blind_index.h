// The blind index (DESIGN §7): a short keyed tag of a normalized value (a
// child's name), so that a search finds candidate records without the
// server storing or comparing names in clear. Truncated on purpose: a tag
// suggests candidates, it does not identify (docs/SECURITY.md).
#ifndef FIELDSYNC_CRYPTO_BLIND_INDEX_H_
#define FIELDSYNC_CRYPTO_BLIND_INDEX_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "crypto/master_key.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

// The value a tag is computed over (persisted in effect: changing any step
// changes every tag and forces a re-index), as UTF-8:
//   1. the input must be well-formed UTF-8 (else kInvalidArgument);
//   2. NFKC_Casefold (ICU): compatibility decomposition and composition,
//      full Unicode case folding, default-ignorable code points removed
//      ("ＪＯＳÉ" -> "josé", "Straße" -> "strasse");
//   3. NFD, then every nonspacing mark (general category Mn) removed, then
//      NFC: "josé" -> "jose", "ñúñez" -> "nunez" (letters without a
//      decomposition, such as "ø" or "ł", stay as they are);
//   4. every run of white space (Unicode White_Space) becomes one U+0020,
//      and leading and trailing white space is removed.
// kInvalidArgument if the input is not UTF-8, or is empty after these steps
// (nothing to index: callers skip empty values).
absl::StatusOr<std::string> NormalizeForBlindIndex(std::string_view utf8);

// Computes tags for one indexed field. The key is
//   MasterKeyRing::DeriveKey("blind-index/v1/" + field, kek_version, 32)
// (HKDF-SHA256 from the KEK), so every field has its own key and equal
// names in two different fields get unrelated tags. The tag is the first
// `bits` bits (big-endian) of HMAC-SHA256(key, NormalizeForBlindIndex(v)),
// as an integer in [0, 2^bits).
//
// The KEK version is part of the index's identity: rotating the KEK does
// not change it (keep that version in the ring) until the index is rebuilt.
//
// Thread-safe (const after construction); moveable.
class BlindIndex {
 public:
  static constexpr int kMinBits = 8;
  static constexpr int kMaxBits = 32;
  // See docs/SECURITY.md: 2^16 buckets give a deployment of 10^5 children
  // about 1.5 other names per tag (and 10^6 about 15), so a tag narrows a
  // search to a handful of records without pinning down one name.
  static constexpr int kDefaultBits = 16;

  // kInvalidArgument if bits is outside [kMinBits, kMaxBits] or `field` is
  // empty; the errors of MasterKeyRing::DeriveKey (kFailedPrecondition when
  // the ring lacks kek_version).
  static absl::StatusOr<BlindIndex> Create(const MasterKeyRing& ring, uint32_t kek_version,
                                           std::string_view field, int bits = kDefaultBits);
  // From a 32-byte key directly (tests, benchmarks). kInvalidArgument as
  // above or if the key is not 32 bytes.
  static absl::StatusOr<BlindIndex> FromKey(SecretBytes key, int bits = kDefaultBits);

  // The tag of `utf8_value`; the errors of NormalizeForBlindIndex.
  absl::StatusOr<uint32_t> Tag(std::string_view utf8_value) const;

  int bits() const { return bits_; }

 private:
  BlindIndex(SecretBytes key, int bits) : key_(std::move(key)), bits_(bits) {}
  SecretBytes key_;
  int bits_;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_BLIND_INDEX_H_
