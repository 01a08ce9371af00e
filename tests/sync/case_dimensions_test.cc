// A case's DIMENSION view as the counters read it from the record state:
// only the asked-for record types and fields, the group's own writes
// first, cleared values absent, a broken state refused; and the tracker
// that carries a case's view from one entry to the next.
#include "sync/case_dimensions.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fieldsync/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/log_codec.h"
#include "sync/reconcile.h"
#include "sync/record_codec.h"
#include "sync/record_state.h"
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

// A log entry of case 1's record `record` naming `fields` (their values
// do not matter here: the test writes the state itself).
v1::CaseLogEntry Entry(int record, const std::string& type, std::vector<std::string> fields) {
  v1::CaseLogEntry e;
  e.set_case_id(Id(1));
  e.set_record_id(Id(record));
  e.set_record_type(type);
  for (const std::string& f : fields) e.add_fields()->set_field(f);
  return e;
}

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

  // Writes the state of record `record_n` of case `case_n` as the
  // reconciler would: its type and tombstone.
  void PutHeader(int case_n, int record_n, const std::string& type, bool deleted = false) {
    RecordState state = Load(case_n, record_n);
    state.header.set_record_type(type);
    state.header.set_deleted(deleted);
    StoreRecord(view_.get(), U(case_n), U(record_n), state);
  }
  // A clear value, or a cleared one when `value` is empty: logged in an
  // entry of its own, which the field's state points at.
  void PutField(int case_n, int record_n, const std::string& field, const std::string& value) {
    const uint64_t at = next_position_++;
    v1::CaseLogEntry entry;
    entry.set_position(at);
    entry.set_case_id(Id(case_n));
    entry.set_record_id(Id(record_n));
    v1::EntryField* f = entry.add_fields();
    f->set_field(field);
    *f->mutable_value() = ClearStoredValue(value.empty() ? v1::FieldValue() : Enum(value));
    view_->Put(Cf::kCaseLog, storage::EncodeCaseLogKey(at),
               EncodeLogEntry(entry, store_->names(), view_->batch()));
    RecordState state = Load(case_n, record_n);
    v1::FieldState& s = state.Upsert(field);
    s.Clear();
    s.set_version(at);
    StoreRecord(view_.get(), U(case_n), U(record_n), state);
  }
  RecordState Load(int case_n, int record_n) {
    absl::StatusOr<std::optional<RecordState>> state =
        LoadRecord(view_.get(), U(case_n), U(record_n));
    EXPECT_THAT(state, IsOk());
    return state.ok() && state->has_value() ? **state : RecordState();
  }
  // Reads the log through the current view.
  EntryReader Read() { return ViewEntryReader(view_.get()); }
  // Commits what the view wrote and starts a new view over the store.
  // A committed registration of case 1 in the northern region, and an
  // entry setting its sex to `sex` at position 50 (not in the log).
  v1::CaseLogEntry SexOfANorthernCase(std::string_view sex) {
    PutHeader(1, 1, "case_registration");
    PutField(1, 1, "region", "northern");
    CommitView();
    v1::CaseLogEntry applied = Entry(1, "case_registration", {"sex"});
    applied.set_position(50);
    *applied.mutable_fields(0)->mutable_value() = ClearStoredValue(Enum(sex));
    return applied;
  }

  void CommitView() {
    ASSERT_THAT(store_->Commit(&batch_), IsOk());
    batch_.Clear();
    view_ = std::make_unique<StateView>(store_.get(), &batch_);
  }

  // given_name is asked for but no DIMENSION field: never read. Other
  // records take the case's region and sex, not its status.
  const DimensionNeeds needs_ = {
      .fields = {{"case_registration", {"region", "sex", "case_status", "given_name"}},
                 {"protection_concern", {"concern_category"}}},
      .shared_case_fields = {"region", "sex"}};
  fieldsync::testing::ScopedTempDir dir_;
  std::unique_ptr<Schema> schema_;
  std::unique_ptr<storage::Store> store_;
  storage::WriteBatch batch_;
  std::unique_ptr<StateView> view_;
  uint64_t next_position_ = 1;
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

  absl::StatusOr<CaseDimensions> dims =
      ReadCaseDimensions(view_.get(), Read(), *schema_, needs_, U(1));

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

// A field whose value the log does not hold, a record state that does
// not decode, a record key of layout 1: refused, not read as absent.
TEST_F(CaseDimensionsTest, AValueTheLogLacksIsDataLoss) {
  PutHeader(1, 1, "case_registration");
  RecordState state = Load(1, 1);
  state.Upsert("region").set_version(99);
  StoreRecord(view_.get(), U(1), U(1), state);
  CommitView();

  EXPECT_THAT(ReadCaseDimensions(view_.get(), Read(), *schema_, needs_, U(1)),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ReadRecordDimensions(view_.get(), Read(), *schema_, needs_, U(1), U(1)),
              StatusIs(absl::StatusCode::kDataLoss));
  // A field not asked for is not read.
  const std::vector<std::string> only = {"sex"};
  EXPECT_THAT(ReadRecordDimensions(view_.get(), Read(), *schema_, needs_, U(1), U(1), &only),
              IsOk());
}

TEST_F(CaseDimensionsTest, AnUndecodableStateOrALayout1KeyIsDataLoss) {
  view_->Put(Cf::kRecords, storage::EncodeRecordStateKey(U(1), U(1)), "\xff\xff");
  CommitView();
  EXPECT_THAT(ReadCaseDimensions(view_.get(), Read(), *schema_, needs_, U(1)),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ReadRecordDimensions(view_.get(), Read(), *schema_, needs_, U(1), U(1)),
              StatusIs(absl::StatusCode::kDataLoss));

  v1::RecordHeader header;
  header.set_record_type("case_registration");
  view_->PutProto(Cf::kRecords, storage::EncodeRecordHeaderKey(U(2), U(2)), header);
  CommitView();
  EXPECT_THAT(ReadCaseDimensions(view_.get(), Read(), *schema_, needs_, U(2)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(CaseDimensionsTest, OneRecordReadsAsInTheCaseAndSetsIntoItsView) {
  PutHeader(1, 1, "case_registration");
  PutField(1, 1, "region", "northern");
  PutHeader(1, 30, "protection_concern");
  PutField(1, 30, "concern_category", "neglect");
  PutHeader(1, 20, "incident");
  CommitView();
  absl::StatusOr<CaseDimensions> dims =
      ReadCaseDimensions(view_.get(), Read(), *schema_, needs_, U(1));
  ASSERT_THAT(dims, IsOk());
  PutField(1, 1, "sex", "female");
  PutHeader(1, 10, "protection_concern");

  for (int record : {1, 10, 30}) {
    absl::StatusOr<std::optional<RecordDimensions>> r =
        ReadRecordDimensions(view_.get(), Read(), *schema_, needs_, U(1), U(record));
    ASSERT_THAT(r, IsOk());
    ASSERT_TRUE(r->has_value()) << record;
    dims->Set(Id(record), **r);
  }
  // Absent from the state, or of a type not asked for: nothing.
  for (int record : {20, 99}) {
    EXPECT_THAT(ReadRecordDimensions(view_.get(), Read(), *schema_, needs_, U(1), U(record)),
                ::fieldsync::testing::IsOkAndHolds(std::nullopt));
  }

  EXPECT_THAT(ReadCaseDimensions(view_.get(), Read(), *schema_, needs_, U(1)),
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
  // Applies `write` to the view as `entry` would and asks for the views.
  auto change = [&](const v1::CaseLogEntry& entry, auto write) -> absl::StatusOr<bool> {
    absl::StatusOr<CaseDimensionsTracker::Pending> p = tracker.Before(view_.get(), Read(), entry);
    if (!p.ok()) return p.status();
    write();
    return tracker.After(view_.get(), Read(), entry, nullptr, *p, &before, &after);
  };

  // A new concern: the concern and the registration, before and after.
  ASSERT_THAT(change(Entry(10, "protection_concern", {"concern_category"}),
                     [&] {
                       PutHeader(1, 10, "protection_concern");
                       PutField(1, 10, "concern_category", "neglect");
                     }),
              ::fieldsync::testing::IsOkAndHolds(true));
  ASSERT_EQ(before.records.size(), 1u);
  EXPECT_EQ(before.Registration()->values.at("region"), "northern");
  ASSERT_EQ(after.records.size(), 2u);
  EXPECT_EQ(after.Find(Id(10))->values.at("concern_category"), "neglect");

  // Fields no one asked for, or an asked-for one written with its value:
  // nothing moves, no views.
  CaseDimensions untouched;
  absl::StatusOr<CaseDimensionsTracker::Pending> p =
      tracker.Before(view_.get(), Read(), Entry(1, "case_registration", {"age_band", "region"}));
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->fields, std::vector<std::string>{"region"});
  PutField(1, 1, "age_band", "5_9");
  PutField(1, 1, "region", "northern");
  ASSERT_THAT(
      tracker.After(view_.get(), Read(), v1::CaseLogEntry(), nullptr, *p, &untouched, &untouched),
      ::fieldsync::testing::IsOkAndHolds(false));
  EXPECT_THAT(untouched.records, ::testing::IsEmpty());
  // Nor does an entry of a type no one asked for.
  p = tracker.Before(view_.get(), Read(), Entry(20, "incident", {"place_type"}));
  ASSERT_THAT(p, IsOk());
  EXPECT_FALSE(p->tracked);

  // A change of the registration: the whole case, with the fields the
  // entry did not name as they are; then kept for the next change,
  // whatever the store says meanwhile.
  PutField(1, 1, "sex", "female");  // as if written earlier in the group
  ASSERT_THAT(change(Entry(1, "case_registration", {"region"}),
                     [&] { PutField(1, 1, "region", "eastern"); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  ASSERT_EQ(before.records.size(), 3u);
  EXPECT_EQ(before.Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}, {"sex", "female"}}));
  EXPECT_EQ(after.Registration()->values,
            (std::map<std::string, std::string>{{"region", "eastern"}, {"sex", "female"}}));
  storage::WriteBatch elsewhere;
  RecordState other;
  other.header.set_record_type("protection_concern");
  elsewhere.Put(Cf::kRecords, storage::EncodeRecordStateKey(U(1), U(40)),
                EncodeRecordState(other, store_->names(), &elsewhere));
  ASSERT_THAT(store_->Commit(&elsewhere), IsOk());
  ASSERT_THAT(change(Entry(30, "protection_concern", {"concern_category"}),
                     [&] { PutField(1, 30, "concern_category", "child_labour"); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.Registration()->values.at("region"), "eastern");  // from the kept view
  ASSERT_THAT(change(Entry(1, "case_registration", {"sex"}), [&] { PutField(1, 1, "sex", ""); }),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.records.size(), 3u);
  EXPECT_EQ(after.Find(Id(30))->values.at("concern_category"), "child_labour");
  EXPECT_EQ(after.Registration()->values.count("sex"), 0u);
  EXPECT_EQ(before.Registration()->values.at("sex"), "female");

  // After a Reset the case is read again.
  tracker.Reset();
  ASSERT_THAT(
      change(Entry(1, "case_registration", {"sex"}), [&] { PutField(1, 1, "sex", "male"); }),
      ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.records.size(), 4u);
  EXPECT_NE(after.Find(Id(40)), nullptr);
}

// A change of the registration that other records do not read moves the
// registration alone: no case read, no other record in the views.
TEST_F(CaseDimensionsTest, ARegistrationChangeOthersDoNotReadHasTheRegistrationAlone) {
  CaseDimensionsTracker tracker(schema_.get(), needs_);
  PutHeader(1, 1, "case_registration");
  PutField(1, 1, "region", "northern");
  PutField(1, 1, "case_status", "open");
  PutHeader(1, 30, "protection_concern");
  CommitView();
  CaseDimensions before, after;
  absl::StatusOr<CaseDimensionsTracker::Pending> p =
      tracker.Before(view_.get(), Read(), Entry(1, "case_registration", {"case_status"}));
  ASSERT_THAT(p, IsOk());
  PutField(1, 1, "case_status", "closed");

  ASSERT_THAT(tracker.After(view_.get(), Read(), v1::CaseLogEntry(), nullptr, *p, &before, &after),
              ::fieldsync::testing::IsOkAndHolds(true));

  ASSERT_EQ(after.records.size(), 1u);
  EXPECT_EQ(after.Registration()->values, (std::map<std::string, std::string>{
                                              {"region", "northern"}, {"case_status", "closed"}}));
  ASSERT_EQ(before.records.size(), 1u);
  EXPECT_EQ(before.Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}, {"case_status", "open"}}));
}

// A record deleted (or brought back) moves although no field is named.
TEST_F(CaseDimensionsTest, ADeletionMovesTheRecordWithoutAField) {
  CaseDimensionsTracker tracker(schema_.get(), needs_);
  PutHeader(1, 1, "case_registration");
  PutHeader(1, 30, "protection_concern");
  PutField(1, 30, "concern_category", "neglect");
  CommitView();
  CaseDimensions before, after;
  v1::CaseLogEntry del = Entry(30, "protection_concern", {});
  del.set_kind(v1::CHANGE_KIND_DELETE);

  absl::StatusOr<CaseDimensionsTracker::Pending> p = tracker.Before(view_.get(), Read(), del);
  ASSERT_THAT(p, IsOk());
  PutHeader(1, 30, "protection_concern", /*deleted=*/true);

  ASSERT_THAT(tracker.After(view_.get(), Read(), del, nullptr, *p, &before, &after),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_TRUE(before.Find(Id(30))->exists);
  EXPECT_FALSE(after.Find(Id(30))->exists);
  EXPECT_EQ(before.Find(Id(30))->values, after.Find(Id(30))->values);
}

// The values the applied entry wrote are taken from it, not read back
// from the log (which, in a rebuild into a scratch store, is elsewhere);
// values of earlier entries still come from the log.
TEST_F(CaseDimensionsTest, TheAppliedEntrysValuesAreTakenFromIt) {
  CaseDimensionsTracker tracker(schema_.get(), needs_);
  const v1::CaseLogEntry applied = SexOfANorthernCase("female");
  absl::StatusOr<CaseDimensionsTracker::Pending> p = tracker.Before(view_.get(), Read(), applied);
  ASSERT_THAT(p, IsOk());
  RecordState state = Load(1, 1);
  state.Upsert("sex").set_version(50);
  StoreRecord(view_.get(), U(1), U(1), state);

  CaseDimensions before, after;
  ASSERT_THAT(tracker.After(view_.get(), Read(), applied, nullptr, *p, &before, &after),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}, {"sex", "female"}}));
  EXPECT_EQ(before.Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}}));
  // Without it the value is looked for in the log, which lacks it.
  tracker.Reset();
  EXPECT_THAT(tracker.Before(view_.get(), Read(), Entry(1, "case_registration", {"sex"})),
              StatusIs(absl::StatusCode::kDataLoss));
}

// The record state the reconciler wrote, when given, is read rather than
// the store's (the view here never got it).
TEST_F(CaseDimensionsTest, TheWrittenRecordStateIsUsedWhenGiven) {
  CaseDimensionsTracker tracker(schema_.get(), needs_);
  const v1::CaseLogEntry applied = SexOfANorthernCase("male");
  absl::StatusOr<CaseDimensionsTracker::Pending> p = tracker.Before(view_.get(), Read(), applied);
  ASSERT_THAT(p, IsOk());
  RecordState written = Load(1, 1);
  written.Upsert("sex").set_version(50);

  CaseDimensions before, after;
  ASSERT_THAT(tracker.After(view_.get(), Read(), applied, &written, *p, &before, &after),
              ::fieldsync::testing::IsOkAndHolds(true));
  EXPECT_EQ(after.Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}, {"sex", "male"}}));
  // Without it the view's state (no sex) is read: nothing moved.
  tracker.Reset();
  EXPECT_THAT(tracker.After(view_.get(), Read(), applied, nullptr, *p, &before, &after),
              ::fieldsync::testing::IsOkAndHolds(false));
}

}  // namespace
}  // namespace fieldsync::sync
