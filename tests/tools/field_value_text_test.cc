#include "tools/field_value_text.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::tools {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

v1::FieldDef Def(v1::FieldType type, std::vector<std::string> enum_values = {}) {
  v1::FieldDef def;
  def.set_name("f");
  def.set_type(type);
  def.set_sensitivity(v1::SENSITIVITY_DIMENSION);
  for (std::string& v : enum_values) def.add_enum_values(std::move(v));
  return def;
}

// Parsing the text FormatFieldValue gives back yields the same value.
void ExpectRoundTrip(const v1::FieldDef& def, const std::string& text) {
  absl::StatusOr<v1::FieldValue> value = ParseFieldValue(def, text);
  ASSERT_THAT(value.status(), IsOk()) << text;
  absl::StatusOr<v1::FieldValue> again = ParseFieldValue(def, FormatFieldValue(*value));
  ASSERT_THAT(again.status(), IsOk()) << text;
  EXPECT_EQ(again->SerializeAsString(), value->SerializeAsString()) << text;
}

TEST(FieldValueTextTest, EveryTypableTypeRoundTrips) {
  ExpectRoundTrip(Def(v1::FIELD_TYPE_STRING), "Okello Hill");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_ENUM, {"high", "low"}), "high");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_INT), "-12");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_DECIMAL), "3.25");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_BOOL), "false");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_DATE), "2026-05-01");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_DATETIME), "2026-05-01T09:30:00.25Z");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_GEOPOINT), "0.3476,32.5825,12.5");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_GEOPOINT), "-1.2345678,30.0000001");
  ExpectRoundTrip(Def(v1::FIELD_TYPE_STRING_LIST), "English, Swahili");
}

TEST(FieldValueTextTest, ValuesReadAsTheirType) {
  absl::StatusOr<v1::FieldValue> date = ParseFieldValue(Def(v1::FIELD_TYPE_DATE), "2026-05-01");
  ASSERT_THAT(date.status(), IsOk());
  EXPECT_EQ(date->date_value().year(), 2026);
  EXPECT_EQ(date->date_value().day(), 1);
  absl::StatusOr<v1::FieldValue> list = ParseFieldValue(Def(v1::FIELD_TYPE_STRING_LIST), " a ,b");
  ASSERT_THAT(list.status(), IsOk());
  EXPECT_THAT(list->string_list_value().values(), ::testing::ElementsAre("a", "b"));
  absl::StatusOr<v1::FieldValue> yes = ParseFieldValue(Def(v1::FIELD_TYPE_BOOL), "true");
  ASSERT_THAT(yes.status(), IsOk());
  EXPECT_TRUE(yes->bool_value());
}

TEST(FieldValueTextTest, AnEnumValueOutsideTheListNamesTheAllowedOnes) {
  absl::StatusOr<v1::FieldValue> v =
      ParseFieldValue(Def(v1::FIELD_TYPE_ENUM, {"high", "medium", "low"}), "urgent");

  EXPECT_THAT(v.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("must be one of: high, medium, low")));
  EXPECT_THAT(std::string(v.status().message()), Not(HasSubstr("urgent")));
}

TEST(FieldValueTextTest, MalformedValuesAreRefusedByType) {
  struct Case {
    v1::FieldType type;
    const char* text;
  };
  for (const Case& c : std::vector<Case>{{v1::FIELD_TYPE_INT, "12.5"},
                                         {v1::FIELD_TYPE_INT, ""},
                                         {v1::FIELD_TYPE_INT, "99999999999999999999"},
                                         {v1::FIELD_TYPE_BOOL, "maybe"},
                                         {v1::FIELD_TYPE_DATE, "2026-02-30"},
                                         {v1::FIELD_TYPE_DATE, "2026-5-1"},
                                         {v1::FIELD_TYPE_DATE, "2026-05-01x"},
                                         {v1::FIELD_TYPE_DATE, "01/05/2026"},
                                         {v1::FIELD_TYPE_DATETIME, "2026-05-01"},
                                         {v1::FIELD_TYPE_DECIMAL, "1e5"},
                                         {v1::FIELD_TYPE_GEOPOINT, "91,0"},
                                         {v1::FIELD_TYPE_GEOPOINT, "1"},
                                         {v1::FIELD_TYPE_GEOPOINT, "1,2,3,4"},
                                         {v1::FIELD_TYPE_GEOPOINT, "a,b"}}) {
    EXPECT_THAT(ParseFieldValue(Def(c.type), c.text).status(),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << c.text;
  }
}

TEST(FieldValueTextTest, AttachmentsCannotBeTyped) {
  EXPECT_THAT(ParseFieldValue(Def(v1::FIELD_TYPE_ATTACHMENT), "x").status(),
              StatusIs(absl::StatusCode::kUnimplemented));
}

TEST(FieldValueTextTest, ShortenCutsWholeCharactersOnOneLine) {
  EXPECT_EQ(Shorten("short", 10), "short");
  EXPECT_EQ(Shorten("a\nb\tc", 10), "a b c");
  EXPECT_EQ(Shorten("abcdefghijkl", 8), "abcde...");
  // Five two-byte characters, cut to four characters: one and "...".
  EXPECT_EQ(Shorten("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 4), "\xc3\xa9...");
}

TEST(FieldValueTextTest, AClearedValueReadsCleared) {
  EXPECT_EQ(FormatFieldValue(v1::FieldValue()), "(cleared)");
}

}  // namespace
}  // namespace fieldsync::tools
