#include "crypto/blind_index.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <limits>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/hmac.h"

namespace fieldsync::crypto {
namespace {

constexpr size_t kBlindIndexKeySize = 32;
constexpr std::string_view kBlindIndexPurpose = "blind-index/v1/";

absl::Status CheckUtf8(std::string_view s) {
  if (s.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("blind-index value is 2 GiB or longer");
  }
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const int32_t n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    const int32_t at = i;
    UChar32 c;
    U8_NEXT(p, i, n, c);
    if (c < 0) {
      // The offset is not secret; the bytes around it are, so none are named.
      return absl::InvalidArgumentError(
          absl::StrFormat("blind-index value is not well-formed UTF-8 (byte offset %d)", at));
    }
  }
  return absl::OkStatus();
}

absl::Status IcuError(const char* what, UErrorCode code) {
  return absl::InternalError(absl::StrFormat("ICU %s failed: %s", what, u_errorName(code)));
}

// Removes nonspacing marks, collapses white space runs to one U+0020 and
// trims: steps 3 and 4 of the header, between NFD and NFC.
icu::UnicodeString StripMarksAndCollapseSpace(const icu::UnicodeString& in) {
  icu::UnicodeString out;
  bool pending_space = false;
  for (int32_t i = 0; i < in.length();) {
    const UChar32 c = in.char32At(i);
    i += U16_LENGTH(c);
    if (u_charType(c) == U_NON_SPACING_MARK) continue;
    if (u_isUWhiteSpace(c)) {
      pending_space = !out.isEmpty();
      continue;
    }
    if (pending_space) out.append(static_cast<UChar>(0x20));
    pending_space = false;
    out.append(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> NormalizeForBlindIndex(std::string_view utf8) {
  RETURN_IF_ERROR(CheckUtf8(utf8));
  UErrorCode code = U_ZERO_ERROR;
  // The instances are process-wide singletons, immutable and thread-safe.
  const icu::Normalizer2* nfkc_cf = icu::Normalizer2::getNFKCCasefoldInstance(code);
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(code);
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(code);
  if (U_FAILURE(code)) return IcuError("normalizer setup", code);

  icu::UnicodeString s = icu::UnicodeString::fromUTF8(
      icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())));
  icu::UnicodeString folded = nfkc_cf->normalize(s, code);
  icu::UnicodeString decomposed = nfd->normalize(folded, code);
  if (U_FAILURE(code)) return IcuError("normalization", code);
  icu::UnicodeString stripped = StripMarksAndCollapseSpace(decomposed);
  icu::UnicodeString composed = nfc->normalize(stripped, code);
  if (U_FAILURE(code)) return IcuError("normalization", code);
  if (composed.isEmpty()) {
    return absl::InvalidArgumentError(
        "blind-index value is empty after normalization; do not index empty values");
  }
  std::string out;
  composed.toUTF8String(out);
  return out;
}

absl::StatusOr<BlindIndex> BlindIndex::Create(const MasterKeyRing& ring, uint32_t kek_version,
                                              std::string_view field, int bits) {
  if (field.empty()) return absl::InvalidArgumentError("blind-index field name is empty");
  ASSIGN_OR_RETURN(SecretBytes key,
                   ring.DeriveKey(std::string(kBlindIndexPurpose) + std::string(field), kek_version,
                                  kBlindIndexKeySize));
  return FromKey(std::move(key), bits);
}

absl::StatusOr<BlindIndex> BlindIndex::FromKey(SecretBytes key, int bits) {
  if (bits < kMinBits || bits > kMaxBits) {
    return absl::InvalidArgumentError(
        absl::StrFormat("blind-index tag of %d bits; choose %d to %d", bits, kMinBits, kMaxBits));
  }
  if (key.size() != kBlindIndexKeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("blind-index key must be 32 bytes, got %d", key.size()));
  }
  return BlindIndex(std::move(key), bits);
}

absl::StatusOr<uint32_t> BlindIndex::Tag(std::string_view utf8_value) const {
  ASSIGN_OR_RETURN(std::string normalized, NormalizeForBlindIndex(utf8_value));
  HmacSha256Tag mac = HmacSha256(key_.span(), AsBytes(normalized));
  Cleanse(normalized);
  const uint32_t top = static_cast<uint32_t>(mac[0]) << 24 | static_cast<uint32_t>(mac[1]) << 16 |
                       static_cast<uint32_t>(mac[2]) << 8 | static_cast<uint32_t>(mac[3]);
  Cleanse(mac);
  return bits_ == 32 ? top : top >> (32 - bits_);
}

}  // namespace fieldsync::crypto
