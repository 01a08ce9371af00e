// Schema upgrades through a real fieldsyncd (FieldsyncServer::Start) on a
// deployment made by the init code: the store records the schema it is
// served under; a schema file that takes away data in use is refused with
// one line, accepted only with --accept-schema-change (audited), and a
// compatible change is recorded and audited (docs/OPERATIONS.md, "Schema
// upgrades").
#include "admin/schema_upgrade.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "admin/deployment.h"
#include "common/file_io.h"
#include "crypto/master_key.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "keys/case_keys.h"
#include "protocol/events.h"
#include "server/server.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/case_key_sealer.h"
#include "sync/ingest.h"
#include "sync/schema.h"
#include "sync/schema_compat.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class SchemaUpgradeTest : public ::fieldsync::testing::ServerHarness {
 protected:
  SchemaUpgradeTest() : ServerHarness(0, absl::FromUnixSeconds(1795000000)) {}

  void SetUp() override {
    ServerHarness::SetUp();
    absl::StatusOr<v1::Schema> shipped = sync::LoadSchemaFile(paths_->schema);
    ASSERT_THAT(shipped, IsOk());
    shipped_ = *shipped;
  }

  // Starts fieldsyncd on the deployment (with --accept-schema-change if
  // `accept`) and shuts it down again; the status of the first that fails.
  absl::Status Start(bool accept = false) {
    ServerOptions options = Options();
    options.accept_schema_change = accept;
    absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = FieldsyncServer::Start(options);
    if (!s.ok()) return s.status();
    return (*s)->Shutdown();
  }

  void WriteSchema(const v1::Schema& schema) {
    std::string text;
    ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(schema, &text));
    std::filesystem::remove(paths_->schema);
    ASSERT_THAT(WriteNewFile(paths_->schema, text, 0644), IsOk());
  }

  std::unique_ptr<storage::Store> OpenStore() {
    storage::StoreOptions o;
    o.path = paths_->db;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(o);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // A tablet's new case with a family name, committed as fieldsyncd
  // commits a push (the deployment's case keys, its master key), while the
  // server is stopped.
  void PushCaseWithFamilyName() {
    std::unique_ptr<storage::Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<crypto::MasterKeyRing> master =
        crypto::MasterKeyRing::LoadFile(paths_->master_key);
    ASSERT_THAT(master, IsOk());
    absl::StatusOr<std::unique_ptr<sync::Schema>> schema = sync::Schema::Create(shipped_);
    ASSERT_THAT(schema, IsOk());
    keys::CaseKeyStore keys(store.get(), &*master);
    sync::CaseKeySealer sealer(store.get(), &keys, &random_);
    sync::Ingest::Options o;
    o.store = store.get();
    o.schema = schema->get();
    o.sealer = &sealer;
    o.clock = &clock_;
    sync::Ingest ingest(o);
    const std::string case_id = "00000000-0000-4000-8000-000000000001";
    v1::BatchPayload payload;
    v1::RecordChange* c = payload.add_changes();
    c->set_change_id("00000000-0000-4000-8000-000000000101");
    c->set_case_id(case_id);
    c->set_record_id(case_id);
    c->set_record_type("case_registration");
    c->set_kind(v1::CHANGE_KIND_UPSERT);
    c->mutable_hlc()->set_wall_micros(absl::ToUnixMicros(clock_.Now()));
    auto write = [&](const std::string& field, v1::FieldValue value) {
      v1::FieldWrite* w = c->add_fields();
      w->set_field(field);
      *w->mutable_value() = std::move(value);
    };
    v1::FieldValue v;
    v.set_string_value("Amina");
    write("given_name", v);
    v.set_string_value("Doe");
    write("family_name", v);
    v.set_enum_value("female");
    write("sex", v);
    v.set_enum_value("10_14");
    write("age_band", v);
    v.set_enum_value("northern");
    write("region", v);
    v.mutable_date_value()->set_year(2026);
    v.mutable_date_value()->set_month(11);
    v.mutable_date_value()->set_day(2);
    write("registration_date", v);
    sync::BatchMeta meta;
    meta.device_id = "00000000-0000-4000-8000-0000000000d1";
    meta.officer_id = "officer1";
    meta.region = "northern";
    meta.batch_id = "00000000-0000-4000-8000-0000000000b1";
    meta.sequence = 1;
    absl::StatusOr<sync::PushResult> r = ingest.Push(meta, payload);
    ASSERT_THAT(r, IsOk());
    ASSERT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED)
        << r->result.results(0).detail();
  }

  // The AdminAction events of the audit log whose action starts "schema.".
  std::vector<protocol::AdminAction> SchemaEvents() {
    std::unique_ptr<storage::Store> store = OpenStore();
    std::vector<protocol::AdminAction> out;
    if (store == nullptr) return out;
    std::unique_ptr<storage::Iterator> it =
        store->NewIterator(storage::Cf::kAuditLeaves, storage::AuditLeafKeyPrefix(),
                           storage::PrefixUpperBound(storage::AuditLeafKeyPrefix()));
    for (; it->Valid(); it->Next()) {
      absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(it->value());
      EXPECT_THAT(event, IsOk());
      if (!event.ok()) continue;
      if (const auto* a = std::get_if<protocol::AdminAction>(&event->body);
          a != nullptr && a->action.starts_with("schema.")) {
        out.push_back(*a);
      }
    }
    return out;
  }

  std::optional<v1::Schema> Served() {
    std::unique_ptr<storage::Store> store = OpenStore();
    if (store == nullptr) return std::nullopt;
    absl::StatusOr<std::optional<v1::Schema>> served = sync::LoadServedSchema(*store);
    EXPECT_THAT(served, IsOk());
    return served.ok() ? *served : std::nullopt;
  }

  v1::Schema WithoutFamilyName() {
    v1::Schema s = shipped_;
    s.set_version(shipped_.version() + 1);
    auto* fields = s.mutable_record_types(0)->mutable_fields();
    for (int i = 0; i < fields->size(); ++i) {
      if (fields->Get(i).name() == "family_name") fields->DeleteSubrange(i, 1);
    }
    return s;
  }

  static bool Same(const std::optional<v1::Schema>& a, const v1::Schema& b) {
    return a.has_value() && google::protobuf::util::MessageDifferencer::Equals(*a, b);
  }

  v1::Schema shipped_;
};

TEST_F(SchemaUpgradeTest, FirstStartRecordsTheSchemaWithoutAnAuditEvent) {
  ASSERT_THAT(Start(), IsOk());

  EXPECT_TRUE(Same(Served(), shipped_));
  EXPECT_THAT(SchemaEvents(), IsEmpty());
  EXPECT_THAT(Start(), IsOk());  // unchanged
}

TEST_F(SchemaUpgradeTest, FieldInUseRemovedIsRefusedUntilAcceptedAndTheAcceptanceIsAudited) {
  ASSERT_THAT(Start(), IsOk());
  PushCaseWithFamilyName();
  const v1::Schema next = WithoutFamilyName();
  WriteSchema(next);

  absl::Status refused = Start();

  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("schema change child_protection@2 -> child_protection@3 refused: "
                                 "field case_registration.family_name is removed, but 1 record "
                                 "holds values of it (1 entry of the case log)")));
  EXPECT_THAT(refused.message(), HasSubstr("--accept-schema-change"));
  EXPECT_EQ(std::string(refused.message()).find('\n'), std::string::npos);
  EXPECT_TRUE(Same(Served(), shipped_));  // nothing recorded

  ASSERT_THAT(Start(/*accept=*/true), IsOk());

  EXPECT_TRUE(Same(Served(), next));
  std::vector<protocol::AdminAction> events = SchemaEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "schema.change-accepted");
  EXPECT_EQ(events[0].actor, "fieldsync://server/upgrade");
  ASSERT_EQ(events[0].subject_ids.size(), 4u);
  EXPECT_EQ(events[0].subject_ids[0], "from=child_protection@2");
  EXPECT_EQ(events[0].subject_ids[1], "to=child_protection@3");
  EXPECT_THAT(events[0].subject_ids[2], ::testing::StartsWith("sha256="));
  EXPECT_EQ(events[0].subject_ids[3], "field-removed case_registration.family_name");
  // The next start needs no flag: the store now records the new schema.
  EXPECT_THAT(Start(), IsOk());
  EXPECT_EQ(SchemaEvents().size(), 1u);
}

TEST_F(SchemaUpgradeTest, CompatibleChangeIsRecordedAndAudited) {
  ASSERT_THAT(Start(), IsOk());
  PushCaseWithFamilyName();
  v1::Schema next = shipped_;
  next.set_version(shipped_.version() + 1);
  v1::FieldDef* school = next.mutable_record_types(0)->add_fields();
  school->set_name("school");
  school->set_type(v1::FIELD_TYPE_STRING);
  school->set_sensitivity(v1::SENSITIVITY_IDENTIFYING);
  for (v1::FieldDef& f : *next.mutable_record_types(0)->mutable_fields()) {
    if (f.name() == "sex") f.add_enum_values("intersex");
  }
  WriteSchema(next);

  ASSERT_THAT(Start(), IsOk());

  EXPECT_TRUE(Same(Served(), next));
  std::vector<protocol::AdminAction> events = SchemaEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "schema.changed");
  EXPECT_THAT(events[0].subject_ids,
              ElementsAre("from=child_protection@2", "to=child_protection@3",
                          ::testing::StartsWith("sha256="), "version-raised version",
                          "enum-value-added case_registration.sex=intersex",
                          "field-added case_registration.school"));
}

TEST_F(SchemaUpgradeTest, UnraisedVersionIsRefusedEvenWithTheFlag) {
  ASSERT_THAT(Start(), IsOk());
  v1::Schema same_version = shipped_;
  same_version.mutable_record_types(0)->set_label("Registration");
  WriteSchema(same_version);

  EXPECT_THAT(Start(/*accept=*/true),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("its version is still 2: set version: 3")));
  EXPECT_TRUE(Same(Served(), shipped_));
  EXPECT_THAT(SchemaEvents(), IsEmpty());
}

TEST_F(SchemaUpgradeTest, StoreFromBeforeSchemaChecksRecordsTheCurrentSchema) {
  ASSERT_THAT(Start(), IsOk());
  PushCaseWithFamilyName();
  {
    // As a store written before the schema was recorded.
    std::unique_ptr<storage::Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    storage::WriteBatch batch;
    batch.Delete(storage::Cf::kMetadata, storage::EncodeMetadataKey(sync::kServedSchemaName));
    ASSERT_THAT(store->Commit(&batch), IsOk());
  }
  const v1::Schema next = WithoutFamilyName();
  WriteSchema(next);

  ASSERT_THAT(Start(), IsOk());

  EXPECT_TRUE(Same(Served(), next));
  // From now on it is checked.
  WriteSchema(shipped_);
  EXPECT_THAT(Start(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("version 2 is lower than 3")));
}

}  // namespace
}  // namespace fieldsync::server
