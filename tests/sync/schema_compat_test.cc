#include "sync/schema_compat.h"

#include <string>
#include <vector>

#include "fieldsync/v1/admin.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using testing::Enum;
using ::testing::HasSubstr;
using testing::HlcAt;
using testing::Id;
using ::testing::IsEmpty;
using testing::kStartMicros;
using testing::NewCase;
using testing::Str;
using testing::Upsert;

v1::Schema Shipped() { return testing::LoadDefaultSchemaOrDie()->proto(); }

// The shipped schema with its version raised, ready for one more edit.
v1::Schema Next(const v1::Schema& s) {
  v1::Schema next = s;
  next.set_version(s.version() + 1);
  return next;
}

v1::RecordType* Type(v1::Schema* s, const std::string& name) {
  for (v1::RecordType& t : *s->mutable_record_types()) {
    if (t.name() == name) return &t;
  }
  ADD_FAILURE() << "no record type " << name;
  return nullptr;
}

v1::FieldDef* Field(v1::Schema* s, const std::string& type, const std::string& field) {
  for (v1::FieldDef& f : *Type(s, type)->mutable_fields()) {
    if (f.name() == field) return &f;
  }
  ADD_FAILURE() << "no field " << type << "." << field;
  return nullptr;
}

void RemoveField(v1::Schema* s, const std::string& type, const std::string& field) {
  auto* fields = Type(s, type)->mutable_fields();
  for (int i = 0; i < fields->size(); ++i) {
    if (fields->Get(i).name() == field) {
      fields->DeleteSubrange(i, 1);
      return;
    }
  }
  ADD_FAILURE() << "no field " << type << "." << field;
}

void RemoveValue(v1::FieldDef* f, const std::string& value) {
  auto* values = f->mutable_enum_values();
  for (int i = 0; i < values->size(); ++i) {
    if (values->Get(i) == value) {
      values->DeleteSubrange(i, 1);
      return;
    }
  }
  ADD_FAILURE() << "no value " << value;
}

// The changes of one level, as "kind subject".
std::vector<std::string> Names(const std::vector<SchemaChange>& changes, ChangeLevel level) {
  std::vector<std::string> out;
  for (const SchemaChange& c : changes) {
    if (c.level == level) out.push_back(c.Name());
  }
  return out;
}

const SchemaChange* Find(const std::vector<SchemaChange>& changes, const std::string& name) {
  for (const SchemaChange& c : changes) {
    if (c.Name() == name) return &c;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// CompareSchemas: the rules, with usage counts given.

TEST(SchemaCompatTest, SameSchemaHasNoChanges) {
  const v1::Schema s = Shipped();

  EXPECT_THAT(CompareSchemas(s, s, SchemaUsage()), IsEmpty());
}

TEST(SchemaCompatTest, FieldInUseRemovedIsIncompatibleWithItsCounts) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  RemoveField(&now, "case_registration", "family_name");
  SchemaUsage usage;
  usage.fields["case_registration.family_name"] = {.records = 12, .entries = 40};

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("field-removed case_registration.family_name"));
  EXPECT_THAT(changes[0].detail,
              HasSubstr("field case_registration.family_name is removed, but 12 records hold "
                        "values of it (40 entries of the case log)"));
}

TEST(SchemaCompatTest, FieldNeverWrittenRemovedIsCompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  RemoveField(&now, "case_registration", "family_name");

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible), IsEmpty());
  EXPECT_THAT(Names(changes, ChangeLevel::kCompatible),
              ElementsAre("version-raised version", "field-removed case_registration.family_name"));
}

TEST(SchemaCompatTest, EnumValueInUseRemovedIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  RemoveValue(Field(&now, "case_registration", "sex"), "other");
  SchemaUsage usage;
  usage.enum_value_records["case_registration.sex=other"] = 3;

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("enum-value-removed case_registration.sex=other"));
  EXPECT_THAT(changes[0].detail,
              HasSubstr("value other of case_registration.sex is removed, but 3 records hold it "
                        "in the case log"));
}

TEST(SchemaCompatTest, EnumValueNeverWrittenRemovedIsCompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  RemoveValue(Field(&now, "case_registration", "sex"), "other");
  SchemaUsage usage;
  usage.enum_value_records["case_registration.sex=female"] = 3;  // another value

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible), IsEmpty());
  EXPECT_NE(Find(changes, "enum-value-removed case_registration.sex=other"), nullptr);
}

TEST(SchemaCompatTest, EnumValueOfEncryptedFieldWithValuesIsAssumedInUse) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  const std::string value = Field(&now, "incident", "perpetrator_relationship")->enum_values(0);
  RemoveValue(Field(&now, "incident", "perpetrator_relationship"), value);
  SchemaUsage usage;
  usage.enum_unreadable_records["incident.perpetrator_relationship"] = 2;

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("enum-value-removed incident.perpetrator_relationship=" + value));
  EXPECT_THAT(changes[0].detail, HasSubstr("2 records hold encrypted values of the field, which "
                                           "may be it (the check never decrypts)"));
}

TEST(SchemaCompatTest, RegionHeldByPrincipalsIsInUse) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  RemoveValue(Field(&now, "case_registration", "region"), "western");
  // The districts of the region go with it.
  for (const char* d : {"western_1", "western_2"}) {
    RemoveValue(Field(&now, "case_registration", "district"), d);
  }
  auto* regions = now.mutable_case_fields()->mutable_district_regions();
  for (int i = regions->size() - 1; i >= 0; --i) {
    if (regions->Get(i).region() == "western") regions->DeleteSubrange(i, 1);
  }
  SchemaUsage usage;
  usage.region_principals["western"] = 4;

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("enum-value-removed case_registration.region=western"));
  EXPECT_THAT(changes[0].detail,
              HasSubstr("4 principals (staff, officers, devices) are in that region"));
  EXPECT_NE(Find(changes, "enum-value-removed case_registration.district=western_1"), nullptr);
}

TEST(SchemaCompatTest, SensitivityLoweredIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "family_name")->set_sensitivity(v1::SENSITIVITY_OPERATIONAL);
  Field(&now, "case_registration", "family_name")->set_blind_indexed(false);
  Field(&now, "case_registration", "languages")->set_sensitivity(v1::SENSITIVITY_DIMENSION);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("sensitivity-lowered case_registration.family_name",
                          "sensitivity-lowered case_registration.languages"));
  EXPECT_THAT(changes[0].detail,
              HasSubstr("lowered from IDENTIFYING to OPERATIONAL: new values would be stored in "
                        "clear"));
  EXPECT_THAT(changes[1].detail, HasSubstr("would reach analysts' aggregates"));
}

TEST(SchemaCompatTest, SensitivityRaisedOverClearValuesIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "languages")->set_sensitivity(v1::SENSITIVITY_SENSITIVE);
  SchemaUsage usage;
  usage.fields["case_registration.languages"] = {.records = 5, .entries = 6, .clear_records = 5};

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("sensitivity-raised case_registration.languages"));
  EXPECT_THAT(changes[0].detail, HasSubstr("5 records hold values of it stored in clear"));
}

TEST(SchemaCompatTest, SensitivityRaisedBeforeAnyValueIsCompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "languages")->set_sensitivity(v1::SENSITIVITY_SENSITIVE);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible), IsEmpty());
  EXPECT_NE(Find(changes, "sensitivity-changed case_registration.languages"), nullptr);
}

TEST(SchemaCompatTest, FieldTypeChangedIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "estimated_age_years")->set_type(v1::FIELD_TYPE_DECIMAL);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("field-type-changed case_registration.estimated_age_years"));
  EXPECT_THAT(changes[0].detail, HasSubstr("changes type from INT to DECIMAL"));
}

TEST(SchemaCompatTest, FieldMadeRequiredIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "family_name")->set_required(true);

  EXPECT_THAT(Names(CompareSchemas(old, now, SchemaUsage()), ChangeLevel::kIncompatible),
              ElementsAre("field-made-required case_registration.family_name"));
}

TEST(SchemaCompatTest, NewRequiredFieldIsIncompatibleAndNewOptionalOneCompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  v1::FieldDef* required = Type(&now, "incident")->add_fields();
  required->set_name("weather");
  required->set_type(v1::FIELD_TYPE_STRING);
  required->set_sensitivity(v1::SENSITIVITY_OPERATIONAL);
  required->set_required(true);
  v1::FieldDef* optional = Type(&now, "incident")->add_fields();
  *optional = *required;
  optional->set_name("season");
  optional->set_required(false);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("required-field-added incident.weather"));
  EXPECT_THAT(Names(changes, ChangeLevel::kCompatible),
              ElementsAre("version-raised version", "field-added incident.season"));
}

TEST(SchemaCompatTest, NewEnumValueAndRecordTypeAndLabelAreCompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "sex")->add_enum_values("intersex");
  Field(&now, "case_registration", "sex")->set_label("Sex of the child");
  v1::RecordType* visit = now.add_record_types();
  visit->set_name("home_visit");
  visit->set_kind(v1::RECORD_KIND_CHILD);
  v1::FieldDef* note = visit->add_fields();
  note->set_name("note");
  note->set_type(v1::FIELD_TYPE_STRING);
  note->set_sensitivity(v1::SENSITIVITY_SENSITIVE);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible), IsEmpty());
  EXPECT_THAT(
      Names(changes, ChangeLevel::kCompatible),
      ElementsAre("version-raised version", "enum-value-added case_registration.sex=intersex",
                  "label-changed case_registration.sex", "record-type-added home_visit"));
}

TEST(SchemaCompatTest, RecordTypeInUseRemovedIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  auto* types = now.mutable_record_types();
  for (int i = 0; i < types->size(); ++i) {
    if (types->Get(i).name() == "follow_up") types->DeleteSubrange(i, 1);
  }
  SchemaUsage usage;
  usage.type_records["follow_up"] = 7;

  std::vector<SchemaChange> changes = CompareSchemas(old, now, usage);

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("record-type-removed follow_up"));
  EXPECT_THAT(changes[0].detail, HasSubstr("7 records of it are in the case log"));
  // Without records the same removal is compatible.
  EXPECT_THAT(Names(CompareSchemas(old, now, SchemaUsage()), ChangeLevel::kIncompatible),
              IsEmpty());
}

TEST(SchemaCompatTest, RecordKindChangedIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Type(&now, "incident")->set_kind(v1::RECORD_KIND_CASE_REGISTRATION);

  EXPECT_THAT(Names(CompareSchemas(old, now, SchemaUsage()), ChangeLevel::kIncompatible),
              ElementsAre("record-kind-changed incident"));
}

TEST(SchemaCompatTest, MaxLengthLoweredIsIncompatibleAndRaisedCompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "family_name")->set_max_length(50);
  Field(&now, "case_registration", "given_name")->set_max_length(400);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  EXPECT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("max-length-lowered case_registration.family_name"));
  EXPECT_NE(Find(changes, "max-length-raised case_registration.given_name"), nullptr);
}

TEST(SchemaCompatTest, CaseFieldMovedIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  v1::FieldDef* officer = Type(&now, "case_registration")->add_fields();
  officer->set_name("case_worker");
  officer->set_type(v1::FIELD_TYPE_STRING);
  officer->set_sensitivity(v1::SENSITIVITY_OPERATIONAL);
  now.mutable_case_fields()->set_officer_field("case_worker");

  EXPECT_THAT(Names(CompareSchemas(old, now, SchemaUsage()), ChangeLevel::kIncompatible),
              ElementsAre("case-field-changed case_fields.officer_field"));
}

TEST(SchemaCompatTest, SchemaIdChangedIsIncompatible) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  now.set_schema_id("child_protection_v2");

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  ASSERT_THAT(Names(changes, ChangeLevel::kIncompatible),
              ElementsAre("schema-id-changed schema_id"));
  EXPECT_THAT(changes[0].detail,
              HasSubstr("schema_id changes from child_protection to child_protection_v2"));
}

TEST(SchemaCompatTest, ChangedContentWithTheSameVersionIsAVersionError) {
  const v1::Schema old = Shipped();
  v1::Schema now = old;
  Field(&now, "case_registration", "sex")->add_enum_values("intersex");

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  ASSERT_FALSE(changes.empty());
  EXPECT_EQ(changes[0].level, ChangeLevel::kVersionError);
  EXPECT_EQ(changes[0].Name(), "version-not-raised version");
  EXPECT_THAT(changes[0].detail,
              HasSubstr(absl::StrFormat("set version: %d in the schema file", old.version() + 1)));
}

TEST(SchemaCompatTest, LowerVersionIsAVersionErrorEvenWithTheSameContent) {
  const v1::Schema old = Shipped();
  v1::Schema now = old;
  now.set_version(old.version() - 1);

  std::vector<SchemaChange> changes = CompareSchemas(old, now, SchemaUsage());

  ASSERT_THAT(Names(changes, ChangeLevel::kVersionError), ElementsAre("version-lowered version"));
}

TEST(SchemaCompatTest, RaisedVersionAloneIsCompatible) {
  const v1::Schema old = Shipped();

  EXPECT_THAT(Names(CompareSchemas(old, Next(old), SchemaUsage()), ChangeLevel::kCompatible),
              ElementsAre("version-raised version"));
}

TEST(SchemaCompatTest, UsageQueryAsksOnlyForWhatIsTakenAway) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  RemoveField(&now, "case_registration", "family_name");
  RemoveValue(Field(&now, "case_registration", "sex"), "other");
  Field(&now, "case_registration", "languages")->set_sensitivity(v1::SENSITIVITY_SENSITIVE);
  Field(&now, "case_registration", "age_band")->add_enum_values("18_plus");

  SchemaUsageQuery q = UsageQueryFor(old, now);

  EXPECT_THAT(q.record_types, IsEmpty());
  EXPECT_THAT(q.fields, ::testing::UnorderedElementsAre("case_registration.family_name",
                                                        "case_registration.languages"));
  ASSERT_EQ(q.enum_values.size(), 1u);
  EXPECT_THAT(q.enum_values["case_registration.sex"], ::testing::UnorderedElementsAre("other"));
  EXPECT_THAT(q.regions, IsEmpty());
  EXPECT_TRUE(UsageQueryFor(old, old).empty());
}

TEST(SchemaCompatTest, RefusalLineNamesTheChangeTheFixAndTheOthers) {
  const v1::Schema old = Shipped();
  v1::Schema now = Next(old);
  Field(&now, "case_registration", "family_name")->set_required(true);
  Field(&now, "case_registration", "estimated_age_years")->set_type(v1::FIELD_TYPE_DECIMAL);
  SchemaVerdict verdict;
  verdict.outcome = SchemaVerdict::Outcome::kIncompatible;
  verdict.served = old;
  verdict.changes = CompareSchemas(old, now, SchemaUsage());

  const std::string line = verdict.RefusalLine(now);

  // Schema order: family_name comes before estimated_age_years.
  EXPECT_THAT(line, AllOf(HasSubstr("schema change child_protection@2 -> child_protection@3 "
                                    "refused: field case_registration.family_name is made "
                                    "required"),
                          HasSubstr("--accept-schema-change"),
                          HasSubstr("1 change more: field-type-changed "
                                    "case_registration.estimated_age_years"),
                          HasSubstr("fieldsync schema check")));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// ---------------------------------------------------------------------------
// The store: usage from a real case log, the record of the served schema.

class SchemaUsageTest : public testing::IngestFixture {
 protected:
  void SetUp() override {
    IngestFixture::SetUp();
    // Two cases with a family name (one written twice), one without.
    auto with_name = [](int change, int c, const std::string& name) {
      v1::RecordChange r = NewCase(Id(change), Id(c), "northern", HlcAt(kStartMicros));
      v1::FieldWrite* w = r.add_fields();
      w->set_field("family_name");
      *w->mutable_value() = Str(name);
      return r;
    };
    v1::RecordChange third = NewCase(Id(103), Id(3), "northern", HlcAt(kStartMicros));
    *third.mutable_fields(1)->mutable_value() = Enum("other");  // sex
    absl::StatusOr<PushResult> r =
        Push("dev-a", 1, {with_name(101, 1, "Doe"), with_name(102, 2, "Roe"), third});
    ASSERT_THAT(r, IsOk());
    ASSERT_EQ(r->result.first_position(), 1u);
    ASSERT_EQ(r->result.last_position(), 3u);
    r = Push("dev-a", 2,
             {Upsert(Id(104), Id(1), Id(1), "case_registration", {{"family_name", Str("Doe-Roe")}},
                     1, HlcAt(kStartMicros + 1))});
    ASSERT_THAT(r, IsOk());
    ASSERT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  }
};

TEST_F(SchemaUsageTest, CountsRecordsAndEntriesOfAFieldFromTheCaseLog) {
  SchemaUsageQuery q;
  q.fields = {"case_registration.family_name", "case_registration.nationality"};
  q.record_types = {"case_registration", "incident"};

  absl::StatusOr<SchemaUsage> usage = ScanSchemaUsage(*store_, q);

  ASSERT_THAT(usage, IsOk());
  const FieldUsage& name = usage->fields["case_registration.family_name"];
  EXPECT_EQ(name.records, 2u);
  EXPECT_EQ(name.entries, 3u);
  EXPECT_EQ(name.encrypted_records, 2u);  // IDENTIFYING
  EXPECT_EQ(name.clear_records, 0u);
  EXPECT_EQ(usage->fields["case_registration.nationality"].records, 0u);
  EXPECT_EQ(usage->type_records["case_registration"], 3u);
  EXPECT_EQ(usage->type_records["incident"], 0u);
}

TEST_F(SchemaUsageTest, CountsClearEnumValuesAndUnreadableEncryptedOnes) {
  SchemaUsageQuery q;
  q.enum_values["case_registration.sex"] = {"other", "male"};
  q.fields = {"case_registration.sex"};

  absl::StatusOr<SchemaUsage> usage = ScanSchemaUsage(*store_, q);

  ASSERT_THAT(usage, IsOk());
  EXPECT_EQ(usage->enum_value_records["case_registration.sex=other"], 1u);
  EXPECT_EQ(usage->enum_value_records.count("case_registration.sex=male"), 0u);
  EXPECT_EQ(usage->enum_unreadable_records.count("case_registration.sex"), 0u);  // DIMENSION
  EXPECT_EQ(usage->fields["case_registration.sex"].clear_records, 3u);
}

TEST_F(SchemaUsageTest, CountsPrincipalsOfARegion) {
  storage::WriteBatch batch;
  for (const char* id : {"sup1", "sup2"}) {
    v1::Principal p;
    p.set_id(id);
    p.add_regions(id == std::string("sup1") ? "western" : "northern");
    batch.Put(storage::Cf::kPrincipals,
              storage::EncodePrincipalKey(storage::PrincipalKind::kStaff, id),
              p.SerializeAsString());
  }
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  SchemaUsageQuery q;
  q.regions = {"western", "eastern"};

  absl::StatusOr<SchemaUsage> usage = ScanSchemaUsage(*store_, q);

  ASSERT_THAT(usage, IsOk());
  EXPECT_EQ(usage->region_principals["western"], 1u);
  EXPECT_EQ(usage->region_principals.count("eastern"), 0u);
}

TEST_F(SchemaUsageTest, StoreWithoutARecordIsAFirstRecordThenUnchanged) {
  absl::StatusOr<SchemaVerdict> first = CheckSchemaUpgrade(*store_, schema_->proto());
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->outcome, SchemaVerdict::Outcome::kFirstRecord);
  storage::WriteBatch batch;
  PutServedSchema(schema_->proto(), &batch);
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  absl::StatusOr<SchemaVerdict> again = CheckSchemaUpgrade(*store_, schema_->proto());

  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->outcome, SchemaVerdict::Outcome::kUnchanged);
  EXPECT_THAT(again->changes, IsEmpty());
}

TEST_F(SchemaUsageTest, FieldWrittenByTabletsRemovedIsRefusedWithItsCounts) {
  storage::WriteBatch batch;
  PutServedSchema(schema_->proto(), &batch);
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  v1::Schema now = Next(schema_->proto());
  RemoveField(&now, "case_registration", "family_name");
  RemoveField(&now, "case_registration", "caregiver_phone");  // never written

  absl::StatusOr<SchemaVerdict> verdict = CheckSchemaUpgrade(*store_, now);

  ASSERT_THAT(verdict, IsOk());
  EXPECT_EQ(verdict->outcome, SchemaVerdict::Outcome::kIncompatible);
  EXPECT_THAT(verdict->IncompatibleNames(),
              ElementsAre("field-removed case_registration.family_name"));
  EXPECT_THAT(verdict->RefusalLine(now),
              HasSubstr("field case_registration.family_name is removed, but 2 records hold "
                        "values of it (3 entries of the case log)"));
  EXPECT_NE(Find(verdict->changes, "field-removed case_registration.caregiver_phone"), nullptr);
}

TEST_F(SchemaUsageTest, EnumValueWrittenByTabletsRemovedIsRefused) {
  storage::WriteBatch batch;
  PutServedSchema(schema_->proto(), &batch);
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  v1::Schema now = Next(schema_->proto());
  RemoveValue(Field(&now, "case_registration", "sex"), "other");

  absl::StatusOr<SchemaVerdict> verdict = CheckSchemaUpgrade(*store_, now);

  ASSERT_THAT(verdict, IsOk());
  EXPECT_EQ(verdict->outcome, SchemaVerdict::Outcome::kIncompatible);
  EXPECT_THAT(verdict->IncompatibleNames(),
              ElementsAre("enum-value-removed case_registration.sex=other"));
}

TEST_F(SchemaUsageTest, NewOptionalFieldAndEnumValueAreCompatibleOnAStoreInUse) {
  storage::WriteBatch batch;
  PutServedSchema(schema_->proto(), &batch);
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  v1::Schema now = Next(schema_->proto());
  Field(&now, "case_registration", "sex")->add_enum_values("intersex");
  v1::FieldDef* f = Type(&now, "case_registration")->add_fields();
  f->set_name("school");
  f->set_type(v1::FIELD_TYPE_STRING);
  f->set_sensitivity(v1::SENSITIVITY_IDENTIFYING);

  absl::StatusOr<SchemaVerdict> verdict = CheckSchemaUpgrade(*store_, now);

  ASSERT_THAT(verdict, IsOk());
  EXPECT_EQ(verdict->outcome, SchemaVerdict::Outcome::kCompatible);
  EXPECT_THAT(
      Names(verdict->changes, ChangeLevel::kCompatible),
      ElementsAre("version-raised version", "enum-value-added case_registration.sex=intersex",
                  "field-added case_registration.school"));
}

TEST_F(SchemaUsageTest, DamagedRecordOfTheServedSchemaIsDataLoss) {
  for (const std::string& bytes :
       {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x10", 2)}) {
    storage::WriteBatch batch;
    batch.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(kServedSchemaName), bytes);
    ASSERT_THAT(store_->Commit(&batch), IsOk());

    EXPECT_THAT(CheckSchemaUpgrade(*store_, schema_->proto()),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("sync/schema")));
  }
}

TEST_F(SchemaUsageTest, DamagedLogEntryIsDataLossNotACount) {
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kCaseLog, storage::EncodeCaseLogKey(99), std::string("\xff\xff", 2));
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  SchemaUsageQuery q;
  q.fields = {"case_registration.family_name"};

  EXPECT_THAT(ScanSchemaUsage(*store_, q),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("case log entry 99")));
}

}  // namespace
}  // namespace fieldsync::sync
