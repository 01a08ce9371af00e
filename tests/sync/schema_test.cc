#include "sync/schema.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A small valid schema; tests break one thing in it.
constexpr char kSmall[] = R"pb(
  schema_id: "t"
  case_fields { region_field: "region" status_field: "status" officer_field: "officer" }
  record_types {
    name: "reg"
    kind: RECORD_KIND_CASE_REGISTRATION
    fields { name: "name" type: FIELD_TYPE_STRING sensitivity: SENSITIVITY_IDENTIFYING blind_indexed: true }
    fields { name: "region" type: FIELD_TYPE_ENUM sensitivity: SENSITIVITY_DIMENSION enum_values: "north" enum_values: "south" }
    fields { name: "status" type: FIELD_TYPE_ENUM sensitivity: SENSITIVITY_DIMENSION enum_values: "open" enum_values: "closed" }
    fields { name: "officer" type: FIELD_TYPE_STRING sensitivity: SENSITIVITY_OPERATIONAL }
  }
  record_types {
    name: "note"
    kind: RECORD_KIND_CHILD
    fields { name: "text" type: FIELD_TYPE_STRING sensitivity: SENSITIVITY_SENSITIVE }
    fields { name: "category" type: FIELD_TYPE_ENUM sensitivity: SENSITIVITY_DIMENSION enum_values: "a" }
  }
  aggregate_dimensions { name: "by_region" record_type: "reg" field: "region" }
)pb";

std::string With(std::string_view from, std::string_view to) {
  std::string out = kSmall;
  size_t at = out.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) out.replace(at, from.size(), to);
  return out;
}

TEST(SchemaTest, DefaultSchemaLoadsWithEveryRecordType) {
  std::unique_ptr<Schema> schema = testing::LoadDefaultSchemaOrDie();

  for (const char* type : {"case_registration", "protection_concern", "incident",
                           "risk_assessment", "referral", "follow_up", "closure"}) {
    EXPECT_NE(schema->FindRecordType(type), nullptr) << type;
  }
  for (const char* dim : {"region", "district", "sex", "age_band", "case_status"}) {
    const v1::FieldDef* f = schema->FindField("case_registration", dim);
    ASSERT_NE(f, nullptr) << dim;
    EXPECT_EQ(f->sensitivity(), v1::SENSITIVITY_DIMENSION) << dim;
  }
  EXPECT_EQ(schema->FindField("protection_concern", "concern_category")->sensitivity(),
            v1::SENSITIVITY_DIMENSION);
  EXPECT_EQ(schema->FindField("case_registration", "given_name")->sensitivity(),
            v1::SENSITIVITY_IDENTIFYING);
  EXPECT_EQ(schema->FindField("incident", "narrative")->sensitivity(), v1::SENSITIVITY_SENSITIVE);
}

TEST(SchemaTest, SmallSchemaParses) { EXPECT_THAT(ParseSchema(kSmall), IsOk()); }

TEST(SchemaTest, JsonFormParses) {
  EXPECT_THAT(ParseSchema(R"({"schemaId": "j",
    "caseFields": {"regionField": "r", "statusField": "s", "officerField": "o"},
    "recordTypes": [{"name": "reg", "kind": "RECORD_KIND_CASE_REGISTRATION", "fields": [
      {"name": "r", "type": "FIELD_TYPE_ENUM", "sensitivity": "SENSITIVITY_DIMENSION",
       "enumValues": ["east"]},
      {"name": "s", "type": "FIELD_TYPE_ENUM", "sensitivity": "SENSITIVITY_DIMENSION",
       "enumValues": ["open", "closed"]},
      {"name": "o", "type": "FIELD_TYPE_STRING", "sensitivity": "SENSITIVITY_OPERATIONAL"}]}]})"),
              IsOk());
}

TEST(SchemaTest, SyntaxErrorNamesLine) {
  EXPECT_THAT(ParseSchema("schema_id: \"x\"\nrecord_types { name: }"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST(SchemaTest, UnknownFieldTypeIsRefused) {
  EXPECT_THAT(ParseSchema(With("FIELD_TYPE_STRING sensitivity: SENSITIVITY_SENSITIVE",
                               "FIELD_TYPE_BLOB sensitivity: SENSITIVITY_SENSITIVE")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SchemaTest, MissingTypeIsRefusedNamingTheField) {
  EXPECT_THAT(ParseSchema(With("type: FIELD_TYPE_STRING sensitivity: SENSITIVITY_SENSITIVE",
                               "sensitivity: SENSITIVITY_SENSITIVE")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("note field text has no type")));
}

TEST(SchemaTest, DuplicateFieldIsRefused) {
  EXPECT_THAT(ParseSchema(With("name: \"category\"", "name: \"text\"")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("record type note has a duplicate field text")));
}

TEST(SchemaTest, DuplicateRecordTypeIsRefused) {
  EXPECT_THAT(ParseSchema(With("name: \"note\"", "name: \"reg\"")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate record type reg")));
}

TEST(SchemaTest, EnumWithoutValuesIsRefused) {
  EXPECT_THAT(ParseSchema(With("enum_values: \"a\"", "")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("note field category is an enum with no enum_values")));
}

TEST(SchemaTest, BlindIndexOnNonIdentifyingFieldIsRefused) {
  EXPECT_THAT(ParseSchema(With("SENSITIVITY_IDENTIFYING blind_indexed: true",
                               "SENSITIVITY_SENSITIVE blind_indexed: true")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("reg field name is blind-indexed but not IDENTIFYING")));
}

TEST(SchemaTest, AggregateDimensionOnNonDimensionFieldIsRefused) {
  EXPECT_THAT(ParseSchema(With("record_type: \"reg\" field: \"region\"",
                               "record_type: \"reg\" field: \"name\"")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("by_region uses field reg.name, which is not a DIMENSION")));
}

TEST(SchemaTest, AggregateDimensionOnUnknownRecordTypeIsRefused) {
  EXPECT_THAT(ParseSchema(With("record_type: \"reg\" field: \"region\"",
                               "record_type: \"visit\" field: \"region\"")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown record type visit")));
}

TEST(SchemaTest, SecondRegistrationTypeIsRefused) {
  EXPECT_THAT(ParseSchema(With("RECORD_KIND_CHILD", "RECORD_KIND_CASE_REGISTRATION")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both case registrations")));
}

TEST(SchemaTest, StatusFieldWithoutClosedIsRefused) {
  EXPECT_THAT(ParseSchema(With("enum_values: \"closed\"", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("status field status")));
}

TEST(SchemaTest, CheckValueRefusesWrongTypeAndUnknownEnum) {
  std::unique_ptr<Schema> schema = testing::LoadDefaultSchemaOrDie();
  const v1::FieldDef& sex = *schema->FindField("case_registration", "sex");

  EXPECT_EQ(Schema::CheckValue(sex, testing::Str("female"), "x").reason,
            v1::REJECT_REASON_WRONG_VALUE_TYPE);
  EXPECT_EQ(Schema::CheckValue(sex, testing::Enum("lizard"), "x").reason,
            v1::REJECT_REASON_ENUM_VALUE_NOT_ALLOWED);
  EXPECT_TRUE(Schema::CheckValue(sex, testing::Enum("male"), "x").ok());
  EXPECT_EQ(Schema::CheckValue(*schema->FindField("case_registration", "date_of_birth"),
                               testing::DateValue(2025, 2, 30), "x")
                .reason,
            v1::REJECT_REASON_WRONG_VALUE_TYPE);
}

TEST(SchemaTest, CheckValueAppliesTheTextPolicy) {
  v1::FieldDef text;
  text.set_name("text");
  text.set_type(v1::FIELD_TYPE_STRING);
  v1::FieldDef tags = text;
  tags.set_type(v1::FIELD_TYPE_STRING_LIST);
  v1::FieldValue list;
  list.mutable_string_list_value()->add_values("ok");
  list.mutable_string_list_value()->add_values("two\tcells");
  v1::FieldValue attachment;
  v1::AttachmentRef* a = attachment.mutable_attachment_value();
  a->set_attachment_id("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0");
  a->set_sha256(std::string(32, 'h'));
  a->set_media_type("image/png\x7f");
  v1::FieldDef photo = text;
  photo.set_type(v1::FIELD_TYPE_ATTACHMENT);

  ValueCheck nul = Schema::CheckValue(text, testing::Str(std::string("a\0b", 3)), "change c");
  ValueCheck bidi = Schema::CheckValue(text, testing::Str("a\xe2\x81\xa7" "b"), "change c");
  ValueCheck tab = Schema::CheckValue(tags, list, "change c");
  ValueCheck media = Schema::CheckValue(photo, attachment, "change c");

  EXPECT_EQ(nul.reason, v1::REJECT_REASON_TEXT_NOT_ALLOWED);
  EXPECT_THAT(nul.detail, AllOf(HasSubstr("change c"), HasSubstr("U+0000"), HasSubstr("byte 1")));
  EXPECT_EQ(bidi.reason, v1::REJECT_REASON_TEXT_NOT_ALLOWED);
  EXPECT_THAT(bidi.detail, HasSubstr("U+2067"));
  EXPECT_EQ(tab.reason, v1::REJECT_REASON_TEXT_NOT_ALLOWED);
  EXPECT_THAT(tab.detail, AllOf(HasSubstr("list element"), HasSubstr("U+0009")));
  EXPECT_EQ(media.reason, v1::REJECT_REASON_TEXT_NOT_ALLOWED);
  EXPECT_THAT(media.detail, HasSubstr("U+007F"));
  // Free text keeps its line breaks.
  EXPECT_TRUE(Schema::CheckValue(text, testing::Str("line 1\r\nline 2\tend"), "x").ok());
}

TEST(SchemaTest, LabelOrSchemaIdAgainstTheTextPolicyIsRefused) {
  EXPECT_THAT(ParseSchema(With("name: \"note\"", "name: \"note\" label: \"N\xe2\x80\xae" "ote\"")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("record type note label"), HasSubstr("U+202E"))));
  EXPECT_THAT(ParseSchema(With("name: \"text\"", "name: \"text\" label: \"a\\nb\"")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("field text label"), HasSubstr("U+000A"))));
  EXPECT_THAT(ParseSchema(With("schema_id: \"t\"", "schema_id: \"t\\001\"")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("schema_id")));
  EXPECT_THAT(ParseSchema(With("name: \"note\"", "name: \"note\" label: \"Notes \xd9\x85\"")),
              IsOk());
}

std::unique_ptr<Schema> CreateOrDie(std::string_view text) {
  absl::StatusOr<v1::Schema> proto = ParseSchema(text);
  EXPECT_THAT(proto, IsOk());
  absl::StatusOr<std::unique_ptr<Schema>> schema = Schema::Create(*std::move(proto));
  EXPECT_THAT(schema, IsOk());
  return *std::move(schema);
}

// kSmall with a district field: north has n1 and n2, south has s1.
std::string WithDistricts(const std::string& regions = R"pb(
  district_regions { district: "n1" region: "north" }
  district_regions { district: "n2" region: "north" }
  district_regions { district: "s1" region: "south" }
)pb") {
  std::string out =
      With("officer_field: \"officer\" }",
           absl::StrCat("officer_field: \"officer\" district_field: \"district\" ", regions, " }"));
  const std::string officer_def =
      "fields { name: \"officer\" type: FIELD_TYPE_STRING sensitivity: SENSITIVITY_OPERATIONAL }";
  out.replace(out.find(officer_def), officer_def.size(),
              absl::StrCat(officer_def,
                           " fields { name: \"district\" type: FIELD_TYPE_ENUM sensitivity: "
                           "SENSITIVITY_DIMENSION enum_values: \"n1\" enum_values: \"n2\" "
                           "enum_values: \"s1\" }"));
  return out;
}

TEST(SchemaTest, DefaultSchemaPlacesEveryDistrictInItsRegion) {
  std::unique_ptr<Schema> schema = testing::LoadDefaultSchemaOrDie();

  EXPECT_EQ(schema->district_field(), "district");
  for (const std::string& d : schema->FindField("case_registration", "district")->enum_values()) {
    const std::string* region = schema->RegionOfDistrict(d);
    ASSERT_NE(region, nullptr) << d;
    EXPECT_TRUE(d.starts_with(*region + "_")) << d << " in " << *region;
  }
  EXPECT_THAT(schema->DistrictsOfRegion("central"),
              ::testing::ElementsAre("central_1", "central_2"));
}

TEST(SchemaTest, DistrictDeclarationIsIndexedByRegion) {
  std::unique_ptr<Schema> schema = CreateOrDie(WithDistricts());

  EXPECT_TRUE(schema->has_districts());
  ASSERT_NE(schema->RegionOfDistrict("n2"), nullptr);
  EXPECT_EQ(*schema->RegionOfDistrict("n2"), "north");
  EXPECT_EQ(schema->RegionOfDistrict("north"), nullptr);
  EXPECT_THAT(schema->DistrictsOfRegion("north"), ::testing::ElementsAre("n1", "n2"));
  EXPECT_THAT(schema->DistrictsOfRegion("south"), ::testing::ElementsAre("s1"));
  EXPECT_THAT(schema->DistrictsOfRegion("west"), ::testing::IsEmpty());
}

TEST(SchemaTest, SchemaWithoutDistrictsHasNone) {
  std::unique_ptr<Schema> schema = CreateOrDie(kSmall);

  EXPECT_FALSE(schema->has_districts());
  EXPECT_EQ(schema->RegionOfDistrict("n1"), nullptr);
}

TEST(SchemaTest, RegionWithoutDistrictsIsAllowed) {
  EXPECT_THAT(ParseSchema(WithDistricts(R"pb(
                district_regions { district: "n1" region: "north" }
                district_regions { district: "n2" region: "north" }
                district_regions { district: "s1" region: "north" }
              )pb")),
              IsOk());
}

TEST(SchemaTest, UnknownDistrictIsRefusedListingTheKnownOnes) {
  EXPECT_THAT(ParseSchema(WithDistricts(R"pb(
                district_regions { district: "n1" region: "north" }
                district_regions { district: "n2" region: "north" }
                district_regions { district: "s1" region: "south" }
                district_regions { district: "s9" region: "south" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("names 's9', which is not a value of district field district; "
                                 "its values are: n1, n2, s1")));
}

TEST(SchemaTest, DistrictInTwoRegionsIsRefused) {
  EXPECT_THAT(ParseSchema(WithDistricts(R"pb(
                district_regions { district: "n1" region: "north" }
                district_regions { district: "n2" region: "north" }
                district_regions { district: "s1" region: "south" }
                district_regions { district: "n2" region: "south" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("gives district n2 two entries (regions north and south)")));
}

TEST(SchemaTest, DistrictRegionThatIsNotARegionValueIsRefused) {
  EXPECT_THAT(ParseSchema(WithDistricts(R"pb(
                district_regions { district: "n1" region: "north" }
                district_regions { district: "n2" region: "nord" }
                district_regions { district: "s1" region: "south" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("places district n2 in 'nord', which is not a value of region "
                                 "field region; its values are: north, south")));
}

TEST(SchemaTest, DistrictWithoutRegionIsRefused) {
  EXPECT_THAT(ParseSchema(WithDistricts(R"pb(
                district_regions { district: "n1" region: "north" }
                district_regions { district: "s1" region: "south" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("district n2 of district field district has no region")));
}

TEST(SchemaTest, DistrictFieldMustBeADimensionEnumOfTheRegistration) {
  EXPECT_THAT(ParseSchema(With("officer_field: \"officer\" }",
                               "officer_field: \"officer\" district_field: \"zone\" }")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("district_field 'zone' is not a field of the registration")));
  EXPECT_THAT(ParseSchema(With("officer_field: \"officer\" }",
                               "officer_field: \"officer\" district_field: \"name\" }")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("district field name must be a DIMENSION ENUM")));
  EXPECT_THAT(ParseSchema(With("officer_field: \"officer\" }",
                               "officer_field: \"officer\" district_field: \"region\" }")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("district field region is also another case field")));
}

TEST(SchemaTest, TheRegionFieldIsAnEnumListingTheRegions) {
  for (const std::string& text : {std::string(kSmall), WithDistricts()}) {
    std::string changed = text;
    const std::string region_def =
        "name: \"region\" type: FIELD_TYPE_ENUM sensitivity: SENSITIVITY_DIMENSION enum_values: "
        "\"north\" enum_values: \"south\"";
    changed.replace(changed.find(region_def), region_def.size(),
                    "name: \"region\" type: FIELD_TYPE_STRING sensitivity: SENSITIVITY_DIMENSION");

    EXPECT_THAT(ParseSchema(changed),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("region field region must be a DIMENSION ENUM")));
  }
}

TEST(SchemaTest, RegionsAreTheRegionFieldsValues) {
  absl::StatusOr<v1::Schema> proto = ParseSchema(kSmall);
  ASSERT_THAT(proto, IsOk());
  absl::StatusOr<std::unique_ptr<Schema>> created = Schema::Create(*proto);
  ASSERT_THAT(created, IsOk());
  const std::unique_ptr<Schema>& schema = *created;

  EXPECT_THAT(schema->regions(), ElementsAre("north", "south"));
  EXPECT_THAT(schema->CheckRegion("south"), IsOk());
  EXPECT_THAT(schema->CheckRegion("North"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unknown region 'North'"),
                             HasSubstr("regions are: north, south"))));
  EXPECT_THAT(schema->CheckRegion(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SchemaTest, TheClosureReasonFieldIsAServerManagedOptionalEnum) {
  const std::string reason_def =
      "fields { name: \"why\" type: FIELD_TYPE_ENUM sensitivity: SENSITIVITY_DIMENSION "
      "enum_values: \"done\" }";
  std::string text = With("officer_field: \"officer\" }",
                          "officer_field: \"officer\" closure_reason_field: \"why\" }");
  text.insert(text.find("fields { name: \"officer\""), reason_def + "\n    ");
  absl::StatusOr<v1::Schema> proto = ParseSchema(text);
  ASSERT_THAT(proto, IsOk());
  absl::StatusOr<std::unique_ptr<Schema>> created = Schema::Create(*proto);
  ASSERT_THAT(created, IsOk());
  const std::unique_ptr<Schema>& schema = *created;
  EXPECT_EQ(schema->closure_reason_field(), "why");
  EXPECT_TRUE(schema->IsServerManaged("reg", "why"));
  EXPECT_FALSE(schema->IsServerManaged("reg", "name"));

  std::string missing = With("officer_field: \"officer\" }",
                             "officer_field: \"officer\" closure_reason_field: \"nope\" }");
  EXPECT_THAT(ParseSchema(missing),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("closure_reason_field 'nope' is not a field")));
  std::string required = text;
  required.replace(required.find("enum_values: \"done\""), 20,
                   "enum_values: \"done\" required: true");
  EXPECT_THAT(ParseSchema(required),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("closure reason field why must be a DIMENSION ENUM, not required")));
  std::string is_status = With("officer_field: \"officer\" }",
                               "officer_field: \"officer\" closure_reason_field: \"status\" }");
  EXPECT_THAT(ParseSchema(is_status), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("is also another case field")));
}

TEST(SchemaTest, DistrictRegionsWithoutDistrictFieldAreRefused) {
  EXPECT_THAT(
      ParseSchema(With("officer_field: \"officer\" }",
                       "officer_field: \"officer\" district_regions { district: \"a\" "
                       "region: \"north\" } }")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("district_regions is given but case_fields.district_field is not")));
}

TEST(SchemaTest, DigestIsLowercaseHexSha256OfTheDeterministicSerialization) {
  std::unique_ptr<Schema> schema = CreateOrDie(kSmall);

  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    ASSERT_TRUE(schema->proto().SerializeToCodedStream(&coded));
  }
  const crypto::Sha256Digest sha = crypto::Sha256(bytes);
  EXPECT_EQ(schema->digest(), absl::BytesToHexString(absl::string_view(
                                  reinterpret_cast<const char*>(sha.data()), sha.size())));
  EXPECT_THAT(schema->digest(), MatchesRegex("[0-9a-f]{64}"));
}

TEST(SchemaTest, DigestIgnoresTheFilesLayout) {
  std::string reformatted = std::string("# the same schema, laid out differently\n") + kSmall;
  reformatted.replace(reformatted.find("schema_id: \"t\""), 14, "schema_id:\n  't'");

  EXPECT_EQ(CreateOrDie(reformatted)->digest(), CreateOrDie(kSmall)->digest());
}

TEST(SchemaTest, DigestChangesWithAnyChangeToTheSchema) {
  const std::string digest = CreateOrDie(kSmall)->digest();

  EXPECT_NE(CreateOrDie(With("schema_id: \"t\"", "schema_id: \"t\" version: 2"))->digest(), digest);
  EXPECT_NE(
      CreateOrDie(With("enum_values: \"south\"", "enum_values: \"south\" enum_values: \"east\""))
          ->digest(),
      digest);
  EXPECT_NE(CreateOrDie(With("name: \"note\"", "name: \"note\" label: \"Note\""))->digest(),
            digest);
}

}  // namespace
}  // namespace fieldsync::sync
