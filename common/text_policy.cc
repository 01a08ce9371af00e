#include "common/text_policy.h"

#include "absl/strings/str_format.h"

namespace fieldsync {
namespace {

// Decodes the code point at `text[*pos]` and advances `*pos` past it;
// nullopt (and `*pos` unchanged) if the bytes there are not well-formed
// UTF-8 (Unicode 15, table 3-7).
std::optional<char32_t> DecodeUtf8(std::string_view text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const size_t at = *pos;
  const unsigned char b0 = byte(at);
  if (b0 < 0x80) {
    *pos = at + 1;
    return b0;
  }
  size_t length = 0;
  char32_t cp = 0;
  unsigned char low = 0x80, high = 0xBF;  // Bounds of the second byte.
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) low = 0xA0;   // No overlong form.
    if (b0 == 0xED) high = 0x9F;  // No surrogate.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) low = 0x90;   // No overlong form.
    if (b0 == 0xF4) high = 0x8F;  // Nothing past U+10FFFF.
  } else {
    return std::nullopt;  // A continuation byte, C0, C1 or F5-FF.
  }
  if (at + length > text.size()) return std::nullopt;
  for (size_t i = 1; i < length; ++i) {
    const unsigned char b = byte(at + i);
    if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xBF)) return std::nullopt;
    cp = (cp << 6) | (b & 0x3F);
  }
  *pos = at + length;
  return cp;
}

std::optional<TextFault> Classify(char32_t cp, TextKind kind) {
  if (cp == 0) return TextFault::kNul;
  const bool is_line_break =
      cp == U'\t' || cp == U'\n' || cp == U'\r' || cp == 0x2028 || cp == 0x2029;
  if (is_line_break) {
    return kind == TextKind::kMultiLine ? std::nullopt
                                        : std::optional<TextFault>(TextFault::kLineBreak);
  }
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return TextFault::kControl;
  if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069)) {
    return TextFault::kBidiControl;
  }
  return std::nullopt;
}

std::string_view FaultName(TextFault fault) {
  switch (fault) {
    case TextFault::kInvalidUtf8:
      return "not well-formed UTF-8";
    case TextFault::kNul:
      return "a NUL";
    case TextFault::kControl:
      return "a control character";
    case TextFault::kLineBreak:
      return "a tab or line break";
    case TextFault::kBidiControl:
      return "a bidirectional embedding, override or isolate";
  }
  return "refused";
}

}  // namespace

std::optional<TextViolation> FindTextViolation(std::string_view text, TextKind kind) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t at = pos;
    std::optional<char32_t> cp = DecodeUtf8(text, &pos);
    if (!cp.has_value()) {
      return TextViolation{TextFault::kInvalidUtf8, at, static_cast<unsigned char>(text[at])};
    }
    if (std::optional<TextFault> fault = Classify(*cp, kind)) {
      return TextViolation{*fault, at, *cp};
    }
  }
  return std::nullopt;
}

std::string DescribeTextViolation(const TextViolation& violation) {
  if (violation.fault == TextFault::kInvalidUtf8) {
    return absl::StrFormat("byte 0x%02X (%s) at byte %d",
                           static_cast<uint32_t>(violation.code_point), FaultName(violation.fault),
                           violation.offset);
  }
  return absl::StrFormat("U+%04X (%s) at byte %d", static_cast<uint32_t>(violation.code_point),
                         FaultName(violation.fault), violation.offset);
}

absl::Status CheckText(std::string_view text, TextKind kind, std::string_view field) {
  std::optional<TextViolation> violation = FindTextViolation(text, kind);
  if (!violation.has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: %s is not allowed in %s text (docs/PROTOCOL.md, Text policy): remove it", field,
      DescribeTextViolation(*violation), kind == TextKind::kSingleLine ? "single-line" : "free"));
}

}  // namespace fieldsync
