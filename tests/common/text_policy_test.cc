#include "common/text_policy.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// UTF-8 of one code point.
std::string Utf8(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

// The fault `kind` finds in "ab" + cp + "cd", checking that it is placed
// at byte 2 and names the code point; nullopt if allowed.
std::optional<TextFault> FaultOf(char32_t cp, TextKind kind) {
  std::optional<TextViolation> v = FindTextViolation("ab" + Utf8(cp) + "cd", kind);
  if (!v.has_value()) return std::nullopt;
  EXPECT_EQ(v->offset, 2u) << std::hex << static_cast<uint32_t>(cp);
  EXPECT_EQ(v->code_point, cp);
  return v->fault;
}

TEST(TextPolicyTest, PrintableTextOfEveryScriptIsAllowed) {
  // Latin with accents, Arabic with its letter mark, Hebrew with RLM,
  // Devanagari with ZWJ/ZWNJ, CJK, an emoji sequence, a non-breaking space.
  for (const char* text :
       {"Amina Okello",
        "Ren\xc3\xa9"
        "e",
        "\xd8\xa3\xd9\x85\xd9\x8a\xd9\x86\xd8\xa9\xd8\x9c",
        "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d\xe2\x80\x8f", "\xe0\xa4\x95\xe2\x80\x8d\xe0\xa4\xb7",
        "\xe2\x80\x8c", "\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x99",
        "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
        "a\xc2\xa0"
        "b",
        ""}) {
    EXPECT_EQ(FindTextViolation(text, TextKind::kSingleLine), std::nullopt) << text;
    EXPECT_EQ(FindTextViolation(text, TextKind::kMultiLine), std::nullopt) << text;
  }
}

TEST(TextPolicyTest, NulIsRefusedInEveryKind) {
  EXPECT_EQ(FaultOf(0, TextKind::kSingleLine), TextFault::kNul);
  EXPECT_EQ(FaultOf(0, TextKind::kMultiLine), TextFault::kNul);
}

TEST(TextPolicyTest, EveryC0ControlButLineBreaksIsRefusedInEveryKind) {
  for (char32_t cp = 1; cp < 0x20; ++cp) {
    if (cp == U'\t' || cp == U'\n' || cp == U'\r') continue;
    EXPECT_EQ(FaultOf(cp, TextKind::kSingleLine), TextFault::kControl) << static_cast<uint32_t>(cp);
    EXPECT_EQ(FaultOf(cp, TextKind::kMultiLine), TextFault::kControl) << static_cast<uint32_t>(cp);
  }
}

TEST(TextPolicyTest, DelAndEveryC1ControlIsRefusedInEveryKind) {
  for (char32_t cp = 0x7F; cp <= 0x9F; ++cp) {
    EXPECT_EQ(FaultOf(cp, TextKind::kSingleLine), TextFault::kControl) << static_cast<uint32_t>(cp);
    EXPECT_EQ(FaultOf(cp, TextKind::kMultiLine), TextFault::kControl) << static_cast<uint32_t>(cp);
  }
  EXPECT_EQ(FaultOf(0xA0, TextKind::kSingleLine), std::nullopt);
  EXPECT_EQ(FaultOf(0x7E, TextKind::kSingleLine), std::nullopt);
}

TEST(TextPolicyTest, LineBreaksAreAllowedOnlyInFreeText) {
  for (char32_t cp : {U'\t', U'\n', U'\r', char32_t{0x2028}, char32_t{0x2029}}) {
    EXPECT_EQ(FaultOf(cp, TextKind::kSingleLine), TextFault::kLineBreak)
        << static_cast<uint32_t>(cp);
    EXPECT_EQ(FaultOf(cp, TextKind::kMultiLine), std::nullopt) << static_cast<uint32_t>(cp);
  }
}

TEST(TextPolicyTest, BidiEmbeddingsOverridesAndIsolatesAreRefusedInEveryKind) {
  for (char32_t cp : {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}) {
    EXPECT_EQ(FaultOf(cp, TextKind::kSingleLine), TextFault::kBidiControl)
        << static_cast<uint32_t>(cp);
    EXPECT_EQ(FaultOf(cp, TextKind::kMultiLine), TextFault::kBidiControl)
        << static_cast<uint32_t>(cp);
  }
  // Their neighbours, and the marks that right-to-left scripts need.
  for (char32_t cp : {0x202F, 0x2065, 0x206A, 0x200E, 0x200F, 0x061C}) {
    EXPECT_EQ(FaultOf(cp, TextKind::kSingleLine), std::nullopt)
        << std::hex << static_cast<uint32_t>(cp);
  }
}

TEST(TextPolicyTest, MalformedUtf8IsRefusedAtItsFirstByte) {
  struct Case {
    std::string bytes;
    unsigned char first;
  };
  for (const Case& c : std::vector<Case>{
           {"\x80", 0x80},              // lone continuation byte
           {"\xc3", 0xc3},              // truncated 2-byte sequence
           {"\xe2\x80", 0xe2},          // truncated 3-byte sequence
           {"\xc0\xaf", 0xc0},          // overlong '/'
           {"\xe0\x80\xaf", 0xe0},      // overlong, 3 bytes
           {"\xf0\x80\x80\xaf", 0xf0},  // overlong, 4 bytes
           {"\xed\xa0\x80", 0xed},      // UTF-16 surrogate U+D800
           {"\xf4\x90\x80\x80", 0xf4},  // past U+10FFFF
           {"\xff", 0xff},              // never in UTF-8
           {"\xc3\x28", 0xc3},          // bad continuation
       }) {
    std::optional<TextViolation> v = FindTextViolation("ok" + c.bytes, TextKind::kMultiLine);
    ASSERT_TRUE(v.has_value()) << c.bytes;
    EXPECT_EQ(v->fault, TextFault::kInvalidUtf8);
    EXPECT_EQ(v->offset, 2u);
    EXPECT_EQ(v->code_point, c.first);
  }
  // The largest code point and the ones around the surrogates are fine.
  EXPECT_EQ(FindTextViolation("\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80", TextKind::kSingleLine),
            std::nullopt);
}

TEST(TextPolicyTest, FirstViolationIsReported) {
  std::optional<TextViolation> v = FindTextViolation(
      "a\xe2\x80\xae"
      "b\x01",
      TextKind::kSingleLine);

  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->fault, TextFault::kBidiControl);
  EXPECT_EQ(v->offset, 1u);
}

TEST(TextPolicyTest, CheckTextNamesFieldAndCodePointButNeverTheText) {
  absl::Status s = CheckText(
      "Amina\xe2\x80\xae"
      "animA",
      TextKind::kSingleLine, "device_label");

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("device_label"), HasSubstr("U+202E"),
                                HasSubstr("at byte 5"), HasSubstr("bidirectional"),
                                Not(HasSubstr("Amina")), Not(HasSubstr("animA")))));
  EXPECT_THAT(CheckText("two\nlines", TextKind::kMultiLine, "note"), IsOk());
  EXPECT_THAT(CheckText("two\nlines", TextKind::kSingleLine, "name"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("U+000A")));
  EXPECT_THAT(CheckText(std::string("a\0b", 3), TextKind::kMultiLine, "note"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
}

}  // namespace
}  // namespace fieldsync
