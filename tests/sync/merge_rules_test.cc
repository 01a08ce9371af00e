// The merge rules of docs/MERGE.md, one behaviour per test, each named
// after what a tablet or a supervisor sees (issue "merge rules that
// converge in every arrival order").
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "sync/change_feed.h"
#include "sync/errors.h"
#include "sync/ingest.h"
#include "sync/rebuild.h"
#include "sync/record_state.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using testing::DateValue;
using testing::HlcAt;
using testing::Id;
using testing::kStartMicros;
using testing::NewCase;
using testing::Str;
using testing::Upsert;

const std::string kCase = Id(1);
const std::string kFollowUp = Id(50);

class MergeRulesTest : public testing::IngestFixture {
 protected:
  // dev-a creates kCase (position 1) and its follow-up kFollowUp (2).
  void CreateCaseAndFollowUp() {
    ASSERT_THAT(Push("dev-a", 1,
                     {NewCase(Id(100), kCase, "northern", HlcAt(kStartMicros - 1000)),
                      Upsert(Id(101), kCase, kFollowUp, "follow_up",
                             {{"follow_up_date", DateValue(2026, 1, 1)}, {"notes", Str("first")}},
                             0, HlcAt(kStartMicros - 999))}),
                IsOk());
  }
  v1::RecordChange SetName(int change, const std::string& name, uint64_t base, int64_t at) {
    return Upsert(Id(change), kCase, kCase, "case_registration", {{"given_name", Str(name)}}, base,
                  HlcAt(at));
  }
  v1::RecordChange SetNotes(int change, const std::string& notes, uint64_t base, int64_t at,
                            uint64_t record_base = 0) {
    v1::RecordChange c =
        Upsert(Id(change), kCase, kFollowUp, "follow_up", {{"notes", Str(notes)}}, base, HlcAt(at));
    c.set_base_version(record_base);
    return c;
  }
  v1::RecordChange Delete(int change, uint64_t base, int64_t at) {
    v1::RecordChange c;
    c.set_change_id(Id(change));
    c.set_case_id(kCase);
    c.set_record_id(kFollowUp);
    c.set_record_type("follow_up");
    c.set_kind(v1::CHANGE_KIND_DELETE);
    c.set_base_version(base);
    *c.mutable_hlc() = HlcAt(at);
    return c;
  }
  std::vector<v1::Conflict> Conflicts() {
    absl::StatusOr<v1::ListConflictsResponse> r =
        feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses());
    EXPECT_THAT(r, IsOk());
    return r.ok() ? std::vector<v1::Conflict>(r->conflicts().begin(), r->conflicts().end())
                  : std::vector<v1::Conflict>();
  }
  bool Deleted(const std::string& record) {
    absl::StatusOr<Uuid> c = ParseUuid(kCase), r = ParseUuid(record);
    absl::StatusOr<std::optional<RecordState>> state = ReadRecord(store_.get(), nullptr, *c, *r);
    EXPECT_THAT(state, IsOk());
    return state.ok() && state->has_value() && (*state)->header.deleted();
  }
  v1::ChangeOutcome Outcome(const absl::StatusOr<PushResult>& r, int i = 0) {
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->result.results(i).outcome() : v1::CHANGE_OUTCOME_UNSPECIFIED;
  }
};

TEST_F(MergeRulesTest, PulledVersionsAreNeverZeroAndMatchThePushAnswers) {
  CreateCaseAndFollowUp();
  std::map<uint64_t, uint64_t> answered;  // position -> given_name version answered
  for (auto [device, change, name, at] : {std::tuple{"dev-a", 102, "Aminata", kStartMicros},
                                          std::tuple{"dev-b", 103, "Aminata", kStartMicros + 5},
                                          std::tuple{"dev-d", 104, "Mina", kStartMicros - 5}}) {
    absl::StatusOr<PushResult> r =
        Push(device, std::string(device) == "dev-a" ? 2 : 1, {SetName(change, name, 1, at)});
    ASSERT_THAT(r, IsOk());
    answered[r->result.results(0).log_position()] = r->result.results(0).fields(0).version();
  }

  absl::StatusOr<v1::PulledChanges> pulled = feed_->Read(testing::AllCases(), FeedOptions());

  ASSERT_THAT(pulled, IsOk());
  std::map<v1::ChangeOutcome, int> seen;
  for (const v1::PulledChange& c : pulled->changes()) {
    for (const v1::PulledField& f : c.fields()) {
      EXPECT_NE(f.version(), 0u) << "position " << c.position() << " field " << f.field();
      if (f.field() == "given_name" && answered.contains(c.position())) {
        EXPECT_EQ(f.version(), answered[c.position()]) << "position " << c.position();
        ++seen[f.outcome()];
      }
    }
  }
  EXPECT_EQ(seen[v1::CHANGE_OUTCOME_APPLIED], 1);
  EXPECT_EQ(seen[v1::CHANGE_OUTCOME_CONVERGED], 1);
  EXPECT_EQ(seen[v1::CHANGE_OUTCOME_SUPERSEDED], 1);
  // A device that takes the pulled version as its base saw the value:
  // only the value it never saw (dev-d's) stands against its edit.
  absl::StatusOr<PushResult> edit =
      Push("dev-e", 1, {SetName(105, "Ami", answered.rbegin()->second, kStartMicros + 10)});
  EXPECT_EQ(Outcome(edit), v1::CHANGE_OUTCOME_CONFLICT);
  std::vector<v1::Conflict> conflicts = Conflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  ASSERT_EQ(conflicts[0].losing_values_size(), 1);
  EXPECT_EQ(conflicts[0].losing_values(0).value().string_value(), "Mina");
}

TEST_F(MergeRulesTest, TwoOfflineEditsOfOneFieldInOneBatchAreBothApplied) {
  CreateCaseAndFollowUp();

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2,
           {SetName(102, "Aminata", 1, kStartMicros), SetName(103, "Mina", 1, kStartMicros + 1)});

  EXPECT_EQ(Outcome(r, 0), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(Outcome(r, 1), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Mina");
  EXPECT_THAT(Conflicts(), ::testing::IsEmpty());
}

TEST_F(MergeRulesTest, TwoOfflineEditsOfOneFieldInTwoBatchesAreBothApplied) {
  CreateCaseAndFollowUp();
  ASSERT_EQ(Outcome(Push("dev-b", 1, {SetName(102, "Ami", 1, kStartMicros - 10)})),
            v1::CHANGE_OUTCOME_APPLIED);

  absl::StatusOr<PushResult> first = Push("dev-a", 2, {SetName(103, "Aminata", 1, kStartMicros)});
  absl::StatusOr<PushResult> second = Push("dev-a", 3, {SetName(104, "Mina", 1, kStartMicros + 1)});

  // dev-b's value stands against dev-a's latest edit only.
  EXPECT_EQ(Outcome(first), v1::CHANGE_OUTCOME_CONFLICT);
  EXPECT_EQ(Outcome(second), v1::CHANGE_OUTCOME_CONFLICT);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Mina");
  std::vector<v1::Conflict> conflicts = Conflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  ASSERT_EQ(conflicts[0].losing_values_size(), 1);
  EXPECT_EQ(conflicts[0].losing_values(0).value().string_value(), "Ami");
  EXPECT_EQ(conflicts[0].current_writer(), "dev-a");
  EXPECT_EQ(conflicts[0].losing_values(0).writes(0).writer(), "dev-b");
}

// The example: DELETE(t+10) applied, then a DELETE(t+30) and a
// write(t+20) with the same bases, in both orders.
TEST_F(MergeRulesTest, DeleteAndConcurrentWriteEndTheSameInBothOrders) {
  std::vector<std::pair<bool, std::string>> ends;
  for (bool delete_first : {true, false}) {
    CloseStore();
    ASSERT_THAT(OpenStore(delete_first ? "delete-first" : "write-first"), IsOk());
    CreateCaseAndFollowUp();
    ASSERT_EQ(Outcome(Push("dev-a", 2, {Delete(102, 2, kStartMicros + 10)})),
              v1::CHANGE_OUTCOME_APPLIED);
    const v1::RecordChange del = Delete(103, 2, kStartMicros + 30);
    const v1::RecordChange write = SetNotes(104, "visited", 2, kStartMicros + 20);
    if (delete_first) {
      ASSERT_THAT(Push("dev-b", 1, {del}), IsOk());
      ASSERT_THAT(Push("dev-d", 1, {write}), IsOk());
    } else {
      ASSERT_THAT(Push("dev-d", 1, {write}), IsOk());
      ASSERT_THAT(Push("dev-b", 1, {del}), IsOk());
    }
    ends.emplace_back(Deleted(kFollowUp), ReadString(kCase, kFollowUp, "notes"));
  }

  EXPECT_EQ(ends[0], ends[1]);
  // The write neither DELETE saw keeps the record.
  EXPECT_EQ(ends[0], std::make_pair(false, std::string("visited")));
}

TEST_F(MergeRulesTest, AWriteNoDeleteSawRevivesTheRecordAsARecordConflict) {
  CreateCaseAndFollowUp();
  ASSERT_EQ(Outcome(Push("dev-a", 2, {Delete(102, 2, kStartMicros + 10)})),
            v1::CHANGE_OUTCOME_APPLIED);

  absl::StatusOr<PushResult> r = Push("dev-b", 1, {SetNotes(103, "visited", 2, kStartMicros)});

  ASSERT_THAT(r, IsOk());
  const v1::ChangeResult& c = r->result.results(0);
  EXPECT_TRUE(c.revived());
  EXPECT_EQ(c.outcome(), v1::CHANGE_OUTCOME_CONFLICT);
  EXPECT_EQ(c.fields(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_FALSE(Deleted(kFollowUp));
  std::vector<v1::Conflict> conflicts = Conflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].field(), "");
  EXPECT_TRUE(conflicts[0].losing_was_delete());
  ASSERT_EQ(conflicts[0].losing_values_size(), 1);
  EXPECT_EQ(conflicts[0].losing_values(0).writes(0).writer(), "dev-a");
}

TEST_F(MergeRulesTest, TheDeletingDeviceWritingItsDeletedRecordIsRecordDeleted) {
  CreateCaseAndFollowUp();
  ASSERT_EQ(Outcome(Push("dev-a", 2, {Delete(102, 2, kStartMicros)})), v1::CHANGE_OUTCOME_APPLIED);

  absl::StatusOr<PushResult> r = Push("dev-a", 3, {SetNotes(103, "again", 2, kStartMicros + 1)});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(r->result.results(0).reject_reason(), v1::REJECT_REASON_RECORD_DELETED);
  EXPECT_TRUE(Deleted(kFollowUp));
}

TEST_F(MergeRulesTest, TheDeletingDeviceMayWriteTheRecordAfterSeeingItRevived) {
  CreateCaseAndFollowUp();
  ASSERT_THAT(Push("dev-a", 2, {Delete(102, 2, kStartMicros)}), IsOk());
  absl::StatusOr<PushResult> revival =
      Push("dev-b", 1, {SetNotes(103, "visited", 2, kStartMicros - 5)});
  ASSERT_TRUE(revival->result.results(0).revived());

  // dev-a pulled the revival: its record base is the revival's position.
  absl::StatusOr<PushResult> r = Push("dev-a", 3,
                                      {SetNotes(104, "seen again", 4, kStartMicros + 1,
                                                revival->result.results(0).record_version())});

  EXPECT_EQ(Outcome(r), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kFollowUp, "notes"), "seen again");
}

TEST_F(MergeRulesTest, ADeleteThatSawEveryWriteDeletesTheRecordAndClosesItsConflict) {
  CreateCaseAndFollowUp();
  ASSERT_THAT(Push("dev-a", 2, {Delete(102, 2, kStartMicros)}), IsOk());
  absl::StatusOr<PushResult> revival =
      Push("dev-b", 1, {SetNotes(103, "visited", 2, kStartMicros - 5)});
  ASSERT_EQ(Conflicts().size(), 1u);

  absl::StatusOr<PushResult> r = Push(
      "dev-d", 1, {Delete(104, revival->result.results(0).record_version(), kStartMicros + 5)});

  EXPECT_EQ(Outcome(r), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_TRUE(Deleted(kFollowUp));
  EXPECT_THAT(Conflicts(), ::testing::IsEmpty());
}

TEST_F(MergeRulesTest, ThreeLosingValuesAreOneConflictThatOneResolutionCloses) {
  CreateCaseAndFollowUp();
  ASSERT_THAT(Push("dev-a", 2, {SetName(102, "Zara", 1, kStartMicros + 1000)}), IsOk());
  for (auto [device, change, name] :
       {std::tuple{"dev-b", 103, "Aminata"}, std::tuple{"dev-d", 104, "Mina"},
        std::tuple{"dev-e", 105, "Ami"}}) {
    ASSERT_EQ(Outcome(Push(device, 1, {SetName(change, name, 1, kStartMicros + change)})),
              v1::CHANGE_OUTCOME_SUPERSEDED);
  }
  std::vector<v1::Conflict> conflicts = Conflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  ASSERT_EQ(conflicts[0].losing_values_size(), 3);
  // Greatest write first.
  EXPECT_EQ(conflicts[0].losing_values(0).value().string_value(), "Ami");

  absl::StatusOr<v1::ChangeResult> r = ingest_->ResolveConflict(
      StaffActor{"sup"}, conflicts[0].id(), kCase, Ingest::Resolution::kTakeLosing, 2,
      v1::FieldValue(), conflicts[0].version());

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
  EXPECT_THAT(Conflicts(), ::testing::IsEmpty());
}

class ResolutionErrorTest : public MergeRulesTest {
 protected:
  void SetUp() override {
    MergeRulesTest::SetUp();
    CreateCaseAndFollowUp();
    ASSERT_THAT(Push("dev-a", 2, {SetName(102, "Zara", 1, kStartMicros + 100)}), IsOk());
    ASSERT_THAT(Push("dev-b", 1, {SetName(103, "Mina", 1, kStartMicros)}), IsOk());
    std::vector<v1::Conflict> c = Conflicts();
    ASSERT_EQ(c.size(), 1u);
    listed_ = c[0];
  }
  absl::StatusOr<v1::ChangeResult> Keep(uint64_t base) {
    return ingest_->ResolveConflict(StaffActor{"sup"}, listed_.id(), kCase,
                                    Ingest::Resolution::kKeepCurrent, 0, v1::FieldValue(), base);
  }
  v1::Conflict listed_;
};

TEST_F(ResolutionErrorTest, StaleKeepCurrentIsAbortedWithTheCurrentVersion) {
  ASSERT_EQ(Outcome(Push("dev-d", 1, {SetName(104, "Ami", 1, kStartMicros + 1)})),
            v1::CHANGE_OUTCOME_SUPERSEDED);

  absl::StatusOr<v1::ChangeResult> r = Keep(listed_.version());

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kAborted));
  std::optional<v1::SyncErrorDetail> d = GetSyncErrorDetail(r.status());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason(), v1::SYNC_ERROR_REASON_STALE_BASE);
  EXPECT_EQ(d->current_version(), Conflicts()[0].version());
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("show it again"));
}

TEST_F(ResolutionErrorTest, StaleTakeLosingAndNewValueAreAborted) {
  ASSERT_THAT(Push("dev-d", 1, {SetName(104, "Ami", 1, kStartMicros + 1)}), IsOk());

  EXPECT_THAT(ingest_->ResolveConflict(StaffActor{"sup"}, listed_.id(), kCase,
                                       Ingest::Resolution::kTakeLosing, 0, v1::FieldValue(),
                                       listed_.version()),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(
      ingest_->ResolveConflict(StaffActor{"sup"}, listed_.id(), kCase,
                               Ingest::Resolution::kNewValue, 0, Str("Amina"), listed_.version()),
      StatusIs(absl::StatusCode::kAborted));
}

TEST_F(ResolutionErrorTest, AnAlreadyResolvedConflictSaysSo) {
  ASSERT_THAT(Keep(listed_.version()), IsOk());

  absl::StatusOr<v1::ChangeResult> again = Keep(listed_.version());

  EXPECT_THAT(again, StatusIs(absl::StatusCode::kFailedPrecondition));
  std::optional<v1::SyncErrorDetail> d = GetSyncErrorDetail(again.status());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason(), v1::SYNC_ERROR_REASON_ALREADY_RESOLVED);
}

TEST_F(ResolutionErrorTest, AResolutionWithoutAVersionIsInvalid) {
  EXPECT_THAT(Keep(0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ResolutionErrorTest, TakingALosingValueThatDoesNotExistIsInvalid) {
  EXPECT_THAT(ingest_->ResolveConflict(StaffActor{"sup"}, listed_.id(), kCase,
                                       Ingest::Resolution::kTakeLosing, 1, v1::FieldValue(),
                                       listed_.version()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ResolutionErrorTest, KeepCurrentKeepsTheValueAndItsVersion) {
  ASSERT_THAT(Keep(listed_.version()), IsOk());

  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Zara");
  EXPECT_THAT(Conflicts(), ::testing::IsEmpty());
  // A device that saw the kept value edits it without a conflict.
  EXPECT_EQ(Outcome(Push("dev-a", 3,
                         {SetName(105, "Zarah", listed_.current_version(), kStartMicros + 200)})),
            v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(MergeRulesTest, StateBuiltUnderEarlierRulesIsRebuiltFromTheLogOnce) {
  CreateCaseAndFollowUp();
  ASSERT_THAT(Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros)}), IsOk());
  ASSERT_THAT(Push("dev-d", 1, {SetName(103, "Ami", 1, kStartMicros + 1)}), IsOk());
  const auto records = testing::DumpCf(store_.get(), storage::Cf::kRecords);
  const auto conflicts = testing::DumpCf(store_.get(), storage::Cf::kConflicts);
  // A store of the earlier rules: no rules marker, and state that differs.
  storage::WriteBatch old;
  for (const auto& [key, value] : records) old.Put(storage::Cf::kRecords, key, "stale");
  ASSERT_THAT(store_->Commit(&old), IsOk());

  absl::StatusOr<StateUpgrade> first = BringStateToCurrentRules(*schema_, store_.get());
  absl::StatusOr<StateUpgrade> second = BringStateToCurrentRules(*schema_, store_.get());

  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(first->rebuilt);
  EXPECT_EQ(first->entries, 4u);
  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(second->rebuilt);
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kRecords), records);
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kConflicts), conflicts);
}

TEST_F(MergeRulesTest, AVersion3CaseIndexIsRebuiltAndKeepsWhereTheRulesBegan) {
  CreateCaseAndFollowUp();
  ASSERT_THAT(Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros)}), IsOk());
  const auto index = testing::DumpCf(store_.get(), storage::Cf::kCaseIndex);
  // A version 3 state (two scope keys per case, an entry key for every
  // entry) whose rules began at position 3.
  ASSERT_EQ(testing::RewriteCaseIndexAsMergeRules3(store_.get()), 1);
  ASSERT_NE(testing::DumpCf(store_.get(), storage::Cf::kCaseIndex), index);
  storage::WriteBatch from;
  from.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(kMergeRulesFromName), "3");
  ASSERT_THAT(store_->Commit(&from), IsOk());

  absl::StatusOr<StateUpgrade> up = BringStateToCurrentRules(*schema_, store_.get());

  ASSERT_THAT(up, IsOk());
  EXPECT_TRUE(up->rebuilt);
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kCaseIndex), index);
  EXPECT_THAT(store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey(kMergeRulesFromName)),
              ::fieldsync::testing::IsOkAndHolds("3"));
}

TEST_F(MergeRulesTest, AVersion4CaseIndexIsRebuiltIntoScopeLists) {
  CreateCaseAndFollowUp();
  ASSERT_THAT(Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros)}), IsOk());
  const auto index = testing::DumpCf(store_.get(), storage::Cf::kCaseIndex);
  const auto records = testing::DumpCf(store_.get(), storage::Cf::kRecords);
  // A version 4 state: one scope key per case.
  ASSERT_EQ(testing::RewriteCaseIndexAsMergeRules4(store_.get()), 1);
  ASSERT_NE(testing::DumpCf(store_.get(), storage::Cf::kCaseIndex), index);

  absl::StatusOr<StateUpgrade> up = BringStateToCurrentRules(*schema_, store_.get());

  ASSERT_THAT(up, IsOk());
  EXPECT_TRUE(up->rebuilt);
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kCaseIndex), index);
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kRecords), records);
  EXPECT_THAT(store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey(kMergeRulesName)),
              ::fieldsync::testing::IsOkAndHolds(std::to_string(kMergeRules)));
}

TEST_F(MergeRulesTest, ANewStoreOnlyRecordsTheRules) {
  absl::StatusOr<StateUpgrade> up = BringStateToCurrentRules(*schema_, store_.get());

  ASSERT_THAT(up, IsOk());
  EXPECT_FALSE(up->rebuilt);
  EXPECT_THAT(store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey(kMergeRulesName)),
              ::fieldsync::testing::IsOkAndHolds(std::to_string(kMergeRules)));
}

}  // namespace
}  // namespace fieldsync::sync
