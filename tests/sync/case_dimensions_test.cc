// A case's DIMENSION view as the counters read it from the record state:
// only the asked-for record types and fields, the group's own writes
// first, cleared values absent, a broken state refused; and the tracker
// that carries a case's view from one entry to the next.
#include "sync/case_dimensions.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "fieldsync/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/reconcile.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using storage::Cf;
using testing::Enum;
using testing::Id;

Uuid U(int n) { return *ParseUuid(Id(n)); }

class CaseDimensionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    schema_ = testing::LoadDefaultSchemaOrDie();
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    store_ = *storage::Store::Open(o);
    view_ = std::make_unique<StateView>(store_.get(), &batch_);
  }

  void PutHeader(int case_n, int record_n, const std::string& type, bool deleted = false) {
    v1::RecordHeader h;
    h.set_record_type(type);
    h.set_deleted(deleted);
    view_->PutProto(Cf::kRecords, storage::EncodeRecordHeaderKey(U(case_n), U(record_n)), h);
  }
  // A clear value, or a cleared one when `value` is empty.
  void PutField(int case_n, int record_n, const std::string& field, const std::string& value) {
    v1::FieldState s;
    *s.mutable_value() = ClearStoredValue(value.empty() ? v1::FieldValue() : Enum(value));
    view_->PutProto(Cf::kRecords, storage::EncodeFieldStateKey(U(case_n), U(record_n), field), s);
  }
  // Commits what the view wrote and starts a new view over the store.
  void CommitView() {
    ASSERT_THAT(store_->Commit(&batch_), IsOk());
    batch_.Clear();
    view_ = std::make_unique<StateView>(store_.get(), &batch_);
  }

  // given_name is asked for but no DIMENSION field: never read.
  const DimensionNeeds needs_ = {
      {"case_registration", {"region", "sex", "case_status", "given_name"}},
      {"protection_concern", {"concern_category"}}};
  fieldsync::testing::ScopedTempDir dir_;
  std::unique_ptr<Schema> schema_;
  std::unique_ptr<storage::Store> store_;
  storage::WriteBatch batch_;
  std::unique_ptr<StateView> view_;
};

TEST_F(CaseDimensionsTest, ReadsTheAskedForRecordsAndFieldsOfOneCase) {
  PutHeader(1, 1, "case_registration");
  PutField(1, 1, "region", "northern");
  PutField(1, 1, "sex", "");              // cleared
  PutField(1, 1, "age_band", "5_9");      // a DIMENSION field not asked for
  PutField(1, 1, "given_name", "Amina");  // asked for, not a DIMENSION field
  PutHeader(1, 30, "protection_concern", /*deleted=*/true);
  PutField(1, 30, "concern_category", "neglect");
  PutHeader(1, 20, "incident");  // a type not asked for
  PutField(1, 20, "place_type", "school");
  PutHeader(2, 2, "case_registration");  // another case
  PutField(2, 2, "region", "eastern");
  CommitView();
  // The group's own writes count: a new concern and a changed region.
  PutHeader(1, 10, "protection_concern");
  PutField(1, 10, "concern_category", "child_labour");
  PutField(1, 1, "region", "eastern");

  absl::StatusOr<CaseDimensions> dims = ReadCaseDimensions(view_.get(), *schema_, needs_, U(1));

  ASSERT_THAT(dims, IsOk());
  EXPECT_EQ(dims->case_id, Id(1));
  CaseDimensions want;
  want.case_id = Id(1);
  want.records = {
      {Id(1), "case_registration", true, {{"region", "eastern"}}},
      {Id(10), "protection_concern", true, {{"concern_category", "child_labour"}}},
      {Id(30), "protection_concern", false, {{"concern_category", "neglect"}}},
  };
  EXPECT_EQ(*dims, want);
  EXPECT_EQ(dims->Registration(), &dims->records[0]);
  EXPECT_EQ(dims->Find(Id(20)), nullptr);
}

TEST_F(CaseDimensionsTest, AFieldStateWithoutItsRecordHeaderIsDataLoss) {
  PutHeader(1, 1, "case_registration");
  PutField(1, 1, "region", "northern");
  PutField(1, 5, "concern_category", "neglect");
  CommitView();

  EXPECT_THAT(ReadCaseDimensions(view_.get(), *schema_, needs_, U(1)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(CaseDimensionsTest, AnUnparsableHeaderIsDataLoss) {
  view_->Put(Cf::kRecords, storage::EncodeRecordHeaderKey(U(1), U(1)), "\xff\xff");
  CommitView();

  EXPECT_THAT(ReadCaseDimensions(view_.get(), *schema_, needs_, U(1)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(CaseDimensionsTest, OneRecordReadsAsInTheCaseAndSetsIntoItsView) {
  PutHeader(1, 1, "case_registration");
  PutField(1, 1, "region", "northern");
  PutHeader(1, 30, "protection_concern");
  PutField(1, 30, "concern_category", "neglect");
  PutHeader(1, 20, "incident");
  CommitView();
  absl::StatusOr<CaseDimensions> dims = ReadCaseDimensions(view_.get(), *schema_, needs_, U(1));
  ASSERT_THAT(dims, IsOk());
  PutField(1, 1, "sex", "female");
  PutHeader(1, 10, "protection_concern");

  for (int record : {1, 10, 30}) {
    absl::StatusOr<std::optional<RecordDimensions>> r =
        ReadRecordDimensions(view_.get(), *schema_, needs_, U(1), U(record));
    ASSERT_THAT(r, IsOk());
    ASSERT_TRUE(r->has_value()) << record;
    dims->Set(Id(record), **r);
  }
  // Absent from the state, or of a type not asked for: nothing.
  for (int record : {20, 99}) {
    EXPECT_THAT(ReadRecordDimensions(view_.get(), *schema_, needs_, U(1), U(record)),
                ::fieldsync::testing::IsOkAndHolds(std::nullopt));
  }

  EXPECT_THAT(ReadCaseDimensions(view_.get(), *schema_, needs_, U(1)),
              ::fieldsync::testing::IsOkAndHolds(*dims));
  ASSERT_EQ(dims->records.size(), 3u);
  EXPECT_EQ(dims->records[1].record_id, Id(10));  // in record id order
  EXPECT_EQ(dims->Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}, {"sex", "female"}}));
  dims->Set(Id(10), std::nullopt);
  EXPECT_EQ(dims->Find(Id(10)), nullptr);
}

TEST_F(CaseDimensionsTest, TheTrackerGivesViewsOfWhatAChangeCanMove) {
  CaseDimensionsTracker tracker(schema_.get(), needs_);
  EXPECT_TRUE(tracker.Tracks("protection_concern"));
  EXPECT_FALSE(tracker.Tracks("incident"));
  PutHeader(1, 1, "case_registration");
  PutField(1, 1, "region", "northern");
  PutHeader(1, 30, "protection_concern");
  CommitView();
  CaseDimensions before, after;
  // Applies `write` to the view as an entry of `record` would.
  auto change = [&](int record, auto write) -> absl::StatusOr<bool> {
    absl::StatusOr<std::optional<RecordDimensions>> was =
        tracker.ReadRecord(view_.get(), U(1), U(record));
    if (!was.ok()) return was.status();
    write();
    return tracker.Views(view_.get(), U(1), U(record), *was, &before, &after);
  };

  // A new concern: the concern and the registration, before and after.
  ASSERT_THAT(change(10,
                     [&] {
                       PutHeader(1, 10, "protection_concern");
                       PutField(1, 10, "concern_category", "neglect");
                     }),
              ::fieldsync::testing::IsOkAndHolds(true));
  ASSERT_EQ(before.records.size(), 1u);
  EXPECT_EQ(before.Registration()->values.at("region"), "northern");
  ASSERT_EQ(after.records.size(), 2u);
  EXPECT_EQ(after.Find(Id(10))->values.at("concern_category"), "neglect");

  // A write of a field no one asked for moves nothing: no views.
  CaseDimensions untouched;
  ASSERT_THAT(
      tracker.Views(view_.get(), U(1), U(1), *before.Registration(), &untouched, &untouched),
      ::fieldsync::testing::IsOkAndHolds(false));
  EXPECT_THAT(untouched.records, ::testing::IsEmpty());

  // A change of the registration: the whole case, then kept for the next
  // change, whatever the store says meanwhile.
  ASSERT_THAT(change(1, [&] { PutField(1, 1, "region", "eastern"); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  ASSERT_EQ(before.records.size(), 3u);
  EXPECT_EQ(before.Registration()->values.at("region"), "northern");
  EXPECT_EQ(after.Registration()->values.at("region"), "eastern");
  storage::WriteBatch elsewhere;
  v1::RecordHeader header;
  header.set_record_type("protection_concern");
  elsewhere.Put(Cf::kRecords, storage::EncodeRecordHeaderKey(U(1), U(40)),
                header.SerializeAsString());
  ASSERT_THAT(store_->Commit(&elsewhere), IsOk());
  ASSERT_THAT(change(30, [&] { PutField(1, 30, "concern_category", "child_labour"); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.Registration()->values.at("region"), "eastern");  // from the kept view
  ASSERT_THAT(change(1, [&] { PutField(1, 1, "sex", "female"); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.records.size(), 3u);
  EXPECT_EQ(after.Find(Id(30))->values.at("concern_category"), "child_labour");

  // After a Reset the case is read again.
  tracker.Reset();
  ASSERT_THAT(change(1, [&] { PutField(1, 1, "sex", "male"); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.records.size(), 4u);
  EXPECT_NE(after.Find(Id(40)), nullptr);
}

}  // namespace
}  // namespace fieldsync::sync
