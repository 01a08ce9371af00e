#include "sync/ingest.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/thread_priority.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "sync/case_dimensions.h"
#include "sync/change_feed.h"
#include "sync/errors.h"
#include "sync/rebuild.h"
#include "sync/record_state.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using testing::DateValue;
using testing::Enum;
using ::testing::HasSubstr;
using testing::HlcAt;
using testing::Id;
using testing::kStartMicros;
using testing::NewCase;
using testing::Str;
using testing::Upsert;

const std::string kCase = Id(1);
const std::string kOther = Id(2);

class IngestTest : public testing::IngestFixture {
 protected:
  // Device dev-a creates kCase in "northern" (log position 1).
  void CreateCase() {
    absl::StatusOr<PushResult> r =
        Push("dev-a", 1, {NewCase(Id(100), kCase, "northern", HlcAt(kStartMicros - 1000))});
    ASSERT_THAT(r, IsOk());
    ASSERT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  }
  v1::RecordChange SetName(int change, const std::string& name, uint64_t base, int64_t at,
                           const std::string& field = "given_name") {
    return Upsert(Id(change), kCase, kCase, "case_registration", {{field, Str(name)}}, base,
                  HlcAt(at));
  }
};

TEST_F(IngestTest, NewCaseIsAppliedWithServerSetStatusAndOfficer) {
  CreateCase();

  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Amina");
  EXPECT_EQ(ReadString(kCase, kCase, "case_status"), "open");
  EXPECT_EQ(ReadString(kCase, kCase, "assigned_officer"), "officer-1");
}

TEST_F(IngestTest, WriteOnCurrentVersionIsApplied) {
  CreateCase();

  absl::StatusOr<PushResult> r = Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)});

  ASSERT_THAT(r, IsOk());
  const v1::ChangeResult& c = r->result.results(0);
  EXPECT_EQ(c.outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(c.log_position(), 2u);
  EXPECT_EQ(c.fields(0).version(), 2u);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
}

TEST_F(IngestTest, ConcurrentEqualValueConverges) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());

  absl::StatusOr<PushResult> r = Push("dev-b", 1, {SetName(102, "Aminata", 1, kStartMicros + 5)});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_CONVERGED);
  // The field's version is its value's latest write: this one.
  EXPECT_EQ(r->result.results(0).fields(0).version(), 3u);
  absl::StatusOr<v1::ListConflictsResponse> conflicts =
      feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses());
  ASSERT_THAT(conflicts, IsOk());
  EXPECT_EQ(conflicts->conflicts_size(), 0);
}

TEST_F(IngestTest, ConcurrentOlderWriteIsSupersededAndKeptAsConflict) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());

  absl::StatusOr<PushResult> r = Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros - 5)});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_SUPERSEDED);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
  absl::StatusOr<v1::ListConflictsResponse> conflicts =
      feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses());
  ASSERT_THAT(conflicts, IsOk());
  ASSERT_EQ(conflicts->conflicts_size(), 1);
  EXPECT_EQ(conflicts->conflicts(0).losing_value().string_value(), "Mina");
  EXPECT_EQ(conflicts->conflicts(0).current_value().string_value(), "Aminata");
  EXPECT_EQ(conflicts->conflicts(0).losing_writer(), "dev-b");
}

TEST_F(IngestTest, ConcurrentNewerWriteWinsAsConflictKeepingThePrevious) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());

  absl::StatusOr<PushResult> r = Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros + 5)});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_CONFLICT);
  EXPECT_EQ(r->result.results(0).fields(0).version(), 3u);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Mina");
  absl::StatusOr<v1::ListConflictsResponse> conflicts =
      feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses());
  ASSERT_THAT(conflicts, IsOk());
  ASSERT_EQ(conflicts->conflicts_size(), 1);
  EXPECT_EQ(conflicts->conflicts(0).losing_value().string_value(), "Aminata");
}

TEST_F(IngestTest, DifferentFieldsOfOneRecordNeverConflict) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());

  absl::StatusOr<PushResult> r =
      Push("dev-b", 1, {SetName(102, "Kato", 0, kStartMicros - 50, "family_name")});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
  EXPECT_EQ(ReadString(kCase, kCase, "family_name"), "Kato");
}

TEST_F(IngestTest, BaseVersionAheadIsRejected) {
  CreateCase();

  absl::StatusOr<PushResult> r = Push("dev-a", 2, {SetName(101, "Aminata", 7, kStartMicros)});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(r->result.results(0).reject_reason(), v1::REJECT_REASON_BASE_VERSION_AHEAD);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Amina");
}

TEST_F(IngestTest, InvalidChangesAreRejectedWithReasonsAndTheRestApplies) {
  CreateCase();
  v1::RecordChange unknown_field = SetName(101, "x", 1, kStartMicros, "nickname");
  v1::RecordChange wrong_type = Upsert(Id(102), kCase, kCase, "case_registration",
                                       {{"sex", Str("female")}}, 1, HlcAt(kStartMicros));
  v1::RecordChange bad_enum = Upsert(Id(103), kCase, kCase, "case_registration",
                                     {{"sex", Enum("lizard")}}, 1, HlcAt(kStartMicros));
  v1::RecordChange unknown_type =
      Upsert(Id(104), kCase, Id(50), "visit", {{"x", Str("y")}}, 0, HlcAt(kStartMicros));
  v1::RecordChange server_field = SetName(105, "officer-9", 0, kStartMicros, "assigned_officer");
  v1::RecordChange good = SetName(106, "Aminata", 1, kStartMicros);

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2, {unknown_field, wrong_type, bad_enum, unknown_type, server_field, good});

  ASSERT_THAT(r, IsOk());
  const auto& res = r->result.results();
  EXPECT_EQ(res[0].reject_reason(), v1::REJECT_REASON_UNKNOWN_FIELD);
  EXPECT_EQ(res[1].reject_reason(), v1::REJECT_REASON_WRONG_VALUE_TYPE);
  EXPECT_EQ(res[2].reject_reason(), v1::REJECT_REASON_ENUM_VALUE_NOT_ALLOWED);
  EXPECT_EQ(res[3].reject_reason(), v1::REJECT_REASON_UNKNOWN_RECORD_TYPE);
  EXPECT_EQ(res[4].reject_reason(), v1::REJECT_REASON_FIELD_NOT_WRITABLE);
  EXPECT_EQ(res[5].outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_THAT(res[1].detail(), HasSubstr("field sex"));
  EXPECT_THAT(res[1].detail(), ::testing::Not(HasSubstr("female")));
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
}

TEST_F(IngestTest, NewRecordWithoutRequiredFieldIsRejected) {
  CreateCase();

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2,
           {Upsert(Id(101), kCase, Id(60), "referral", {{"referred_to", Str("clinic")}}, 0,
                   HlcAt(kStartMicros))});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).reject_reason(), v1::REJECT_REASON_REQUIRED_FIELD_MISSING);
}

TEST_F(IngestTest, ChildRecordOfUnknownCaseIsRejected) {
  absl::StatusOr<PushResult> r =
      Push("dev-a", 1,
           {Upsert(Id(101), kOther, Id(60), "follow_up",
                   {{"follow_up_date", testing::DateValue(2026, 1, 1)}}, 0, HlcAt(kStartMicros))});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).reject_reason(), v1::REJECT_REASON_CASE_NOT_FOUND);
}

TEST_F(IngestTest, FutureHlcIsClampedAndFlagged) {
  CreateCase();

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros + int64_t{3600} * 1000000)});

  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->result.results(0).clock_clamped());
  absl::StatusOr<v1::PulledChanges> pulled =
      feed_->Read(testing::AllCases(), FeedOptions{.cursor = 1});
  ASSERT_THAT(pulled, IsOk());
  ASSERT_EQ(pulled->changes_size(), 1);
  EXPECT_EQ(pulled->changes(0).hlc().wall_micros(), kStartMicros);
}

TEST_F(IngestTest, RetriedBatchGetsTheStoredAnswerAndChangesNothing) {
  CreateCase();
  std::vector<v1::RecordChange> batch = {SetName(101, "Aminata", 1, kStartMicros)};
  absl::StatusOr<PushResult> first = Push("dev-a", 2, batch);
  ASSERT_THAT(first, IsOk());
  auto before = testing::DumpCf(store_.get(), storage::Cf::kCaseLog);

  absl::StatusOr<PushResult> again = Push("dev-a", 2, batch);

  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->is_retry_answer);
  EXPECT_EQ(again->result.SerializeAsString(), first->result.SerializeAsString());
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kCaseLog), before);
}

TEST_F(IngestTest, RetriedBatchIdWithOtherContentIsRefused) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());

  absl::StatusOr<PushResult> r = Push("dev-a", 2, {SetName(101, "Other", 1, kStartMicros)});

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_TRUE(GetSyncErrorDetail(r.status()).has_value());
  EXPECT_EQ(GetSyncErrorDetail(r.status())->reason(), v1::SYNC_ERROR_REASON_BATCH_ID_REUSED);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
}

TEST_F(IngestTest, SequenceGapIsRefusedWithTheExpectedSequence) {
  CreateCase();

  absl::StatusOr<PushResult> r = Push("dev-a", 4, {SetName(101, "Aminata", 1, kStartMicros)});

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kOutOfRange));
  std::optional<v1::SyncErrorDetail> d = GetSyncErrorDetail(r.status());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason(), v1::SYNC_ERROR_REASON_SEQUENCE_GAP);
  EXPECT_EQ(d->expected_sequence(), 2u);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Amina");
}

TEST_F(IngestTest, SequenceReplayWithANewBatchIdIsRefused) {
  CreateCase();

  absl::StatusOr<PushResult> r =
      Push("dev-a", 1, {SetName(101, "Aminata", 1, kStartMicros)}, Id(999));

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(GetSyncErrorDetail(r.status())->reason(), v1::SYNC_ERROR_REASON_SEQUENCE_REPLAY);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Amina");
}

TEST_F(IngestTest, EmptyBatchIsRefusedAndUsesNoSequenceNumber) {
  CreateCase();
  auto before = testing::DumpCf(store_.get(), storage::Cf::kBatches);

  absl::StatusOr<PushResult> empty = Push("dev-a", 2, {});

  EXPECT_THAT(empty, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no changes")));
  std::optional<v1::SyncErrorDetail> d = GetSyncErrorDetail(empty.status());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->reason(), v1::SYNC_ERROR_REASON_MALFORMED);
  EXPECT_EQ(d->expected_sequence(), 2u);
  EXPECT_EQ(testing::DumpCf(store_.get(), storage::Cf::kBatches), before);
  // Sequence 2 is still the next one the device sends.
  absl::StatusOr<PushResult> next = Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)});
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(next->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(IngestTest, TooManyChangesAreRefusedWhole) {
  std::vector<v1::RecordChange> many(10001, NewCase(Id(5), kCase, "northern", HlcAt(1)));

  EXPECT_THAT(Push("dev-a", 1, many), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(IngestTest, CaseAssignedToAnotherOfficerIsOutOfScope) {
  CreateCase();

  absl::StatusOr<PushResult> r = Push("dev-c", 1, {SetName(101, "Aminata", 1, kStartMicros)});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).reject_reason(), v1::REJECT_REASON_CASE_NOT_IN_SCOPE);
}

TEST_F(IngestTest, DeleteConcurrentWithNewerUpdateIsSuperseded) {
  CreateCase();
  const std::string kReferral = Id(60);
  ASSERT_THAT(Push("dev-a", 2,
                   {Upsert(Id(101), kCase, kReferral, "referral",
                           {{"referral_date", testing::DateValue(2026, 1, 1)},
                            {"service_type", Enum("health")},
                            {"referral_status", Enum("pending")}},
                           0, HlcAt(kStartMicros))}),
              IsOk());
  ASSERT_THAT(Push("dev-a", 3,
                   {Upsert(Id(102), kCase, kReferral, "referral",
                           {{"referral_status", Enum("accepted")}}, 2, HlcAt(kStartMicros + 100))}),
              IsOk());
  v1::RecordChange del;
  del.set_change_id(Id(103));
  del.set_case_id(kCase);
  del.set_record_id(kReferral);
  del.set_record_type("referral");
  del.set_kind(v1::CHANGE_KIND_DELETE);
  del.set_base_version(2);
  *del.mutable_hlc() = HlcAt(kStartMicros + 50);

  absl::StatusOr<PushResult> r = Push("dev-b", 1, {del});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_SUPERSEDED);
  EXPECT_EQ(ReadString(kCase, kReferral, "referral_status"), "accepted");
}

TEST_F(IngestTest, CloseCaseChangeSetsTheStatus) {
  CreateCase();
  v1::RecordChange close;
  close.set_change_id(Id(101));
  close.set_case_id(kCase);
  close.set_record_id(kCase);
  close.set_record_type("case_registration");
  close.set_kind(v1::CHANGE_KIND_CLOSE_CASE);
  close.set_base_version(1);
  *close.mutable_hlc() = HlcAt(kStartMicros);

  absl::StatusOr<PushResult> r = Push("dev-a", 2, {close});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "case_status"), "closed");
}

TEST_F(IngestTest, TransferMovesTheCaseAndItsOpenConflictsToTheNewRegion) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());
  ASSERT_THAT(Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros - 5)}), IsOk());

  absl::StatusOr<v1::ChangeResult> t =
      ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "eastern", "eastern_1", "officer-2", 0);

  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(ReadString(kCase, kCase, "region"), "eastern");
  EXPECT_EQ(ReadString(kCase, kCase, "assigned_officer"), "officer-2");
  EXPECT_EQ(feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses())->conflicts_size(), 0);
  EXPECT_EQ(feed_->ListConflicts("eastern", 0, "", ReadScope::AllClasses())->conflicts_size(), 1);
  // The old officer's device is now out of scope, the new one's in scope.
  EXPECT_EQ(
      Push("dev-a", 3, {SetName(103, "A", 2, kStartMicros)})->result.results(0).reject_reason(),
      v1::REJECT_REASON_CASE_NOT_IN_SCOPE);
}

// --- Districts stay inside their case's region -----------------------------

TEST_F(IngestTest, DistrictOutsideTheCasesRegionIsRejectedAndNothingIsWritten) {
  CreateCase();

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2,
           {Upsert(Id(101), kCase, kCase, "case_registration",
                   {{"district", Enum("central_1")}, {"priority", Enum("high")}}, 0,
                   HlcAt(kStartMicros))});

  ASSERT_THAT(r, IsOk());
  const v1::ChangeResult& c = r->result.results(0);
  EXPECT_EQ(c.outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(c.reject_reason(), v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION);
  EXPECT_THAT(c.detail(), HasSubstr("district central_1 lies in region central, not in the "
                                    "case's region, northern"));
  EXPECT_THAT(c.detail(), HasSubstr("(northern_1, northern_2), or clear the district"));
  EXPECT_EQ(c.log_position(), 0u);
  EXPECT_EQ(r->result.first_position(), 0u);
  EXPECT_THAT(ingest_->NextLogPosition(), fieldsync::testing::IsOkAndHolds(uint64_t{2}));
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "<absent>");
  EXPECT_EQ(ReadString(kCase, kCase, "priority"), "<absent>");
}

TEST_F(IngestTest, DistrictInsideTheCasesRegionIsApplied) {
  CreateCase();

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2,
           {Upsert(Id(101), kCase, kCase, "case_registration", {{"district", Enum("northern_2")}},
                   0, HlcAt(kStartMicros))});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "northern_2");
}

TEST_F(IngestTest, NewCaseDistrictIsCheckedAgainstTheRegionItSets) {
  v1::RecordChange central = NewCase(Id(100), kCase, "central", HlcAt(kStartMicros));
  v1::FieldWrite* d = central.add_fields();
  d->set_field("district");
  *d->mutable_value() = Enum("central_2");
  v1::RecordChange northern = NewCase(Id(101), kOther, "northern", HlcAt(kStartMicros));
  d = northern.add_fields();
  d->set_field("district");
  *d->mutable_value() = Enum("central_2");

  absl::StatusOr<PushResult> r = Push("dev-a", 1, {central, northern});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "central_2");
  EXPECT_EQ(r->result.results(1).reject_reason(), v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION);
  EXPECT_THAT(r->result.results(1).detail(),
              HasSubstr("not in the region this change writes, northern"));
  EXPECT_EQ(ReadString(kOther, kOther, "region"), "<absent>");
}

TEST_F(IngestTest, ClearingTheDistrictIsApplied) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2,
                   {Upsert(Id(101), kCase, kCase, "case_registration",
                           {{"district", Enum("northern_1")}}, 0, HlcAt(kStartMicros))}),
              IsOk());

  absl::StatusOr<PushResult> r =
      Push("dev-a", 3,
           {Upsert(Id(102), kCase, kCase, "case_registration", {{"district", testing::Cleared()}},
                   2, HlcAt(kStartMicros + 1))});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "<absent>");
}

TEST_F(IngestTest, RegionWrittenAwayFromTheCasesDistrictIsRejectedUnlessTheDistrictMovesToo) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2,
                   {Upsert(Id(101), kCase, kCase, "case_registration",
                           {{"district", Enum("northern_1")}}, 0, HlcAt(kStartMicros))}),
              IsOk());

  absl::StatusOr<PushResult> alone =
      Push("dev-a", 3,
           {Upsert(Id(102), kCase, kCase, "case_registration", {{"region", Enum("western")}}, 1,
                   HlcAt(kStartMicros + 1))});
  absl::StatusOr<PushResult> both =
      Push("dev-a", 4,
           {Upsert(Id(103), kCase, kCase, "case_registration",
                   {{"region", Enum("western")}, {"district", Enum("western_2")}}, 0,
                   HlcAt(kStartMicros + 2))});

  ASSERT_THAT(alone, IsOk());
  EXPECT_EQ(alone->result.results(0).reject_reason(), v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION);
  EXPECT_THAT(alone->result.results(0).detail(),
              HasSubstr("the case's district northern_1 lies in region northern, not in the "
                        "region this change writes, western"));
  ASSERT_THAT(both, IsOk());
  EXPECT_NE(both->result.results(0).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(ReadString(kCase, kCase, "region"), "western");
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "western_2");
}

TEST_F(IngestTest, TransferMovesTheDistrictInTheSameLogEntry) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2,
                   {Upsert(Id(101), kCase, kCase, "case_registration",
                           {{"district", Enum("northern_1")}}, 0, HlcAt(kStartMicros))}),
              IsOk());

  absl::StatusOr<v1::ChangeResult> t =
      ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "central", "central_2", "officer-2", 0);

  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(ReadString(kCase, kCase, "region"), "central");
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "central_2");
  EXPECT_EQ(ReadString(kCase, kCase, "assigned_officer"), "officer-2");
  std::vector<std::string> written;
  for (const v1::FieldResult& f : t->fields()) {
    written.push_back(f.field());
    EXPECT_EQ(f.version(), t->log_position()) << f.field();
  }
  EXPECT_THAT(written, ::testing::ElementsAre("region", "assigned_officer", "district"));
}

TEST_F(IngestTest, TransferWithoutADistrictClearsIt) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2,
                   {Upsert(Id(101), kCase, kCase, "case_registration",
                           {{"district", Enum("northern_1")}}, 0, HlcAt(kStartMicros))}),
              IsOk());

  ASSERT_THAT(ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "eastern", "", "officer-2", 0),
              IsOk());

  EXPECT_EQ(ReadString(kCase, kCase, "region"), "eastern");
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "<absent>");
}

TEST_F(IngestTest, TransferToADistrictOfAnotherRegionIsRefusedNamingTheRegionsDistricts) {
  CreateCase();

  absl::StatusOr<v1::ChangeResult> t =
      ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "central", "northern_1", "officer-2", 0);

  EXPECT_THAT(t, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("to_district northern_1 is not a district of region central; "
                                    "the districts of region central are: central_1, central_2")));
  ASSERT_TRUE(GetSyncErrorDetail(t.status()).has_value());
  EXPECT_EQ(GetSyncErrorDetail(t.status())->reason(), v1::SYNC_ERROR_REASON_INVALID_VALUE);
  EXPECT_EQ(GetSyncErrorDetail(t.status())->field(), "district");
  EXPECT_THAT(ingest_->NextLogPosition(), fieldsync::testing::IsOkAndHolds(uint64_t{2}));
  EXPECT_EQ(ReadString(kCase, kCase, "region"), "northern");
  EXPECT_THAT(ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "central", "nowhere_9", "", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("central_1, central_2")));
}

TEST_F(IngestTest, DeviceWriteAfterATransferIsCheckedAgainstTheNewRegion) {
  CreateCase();
  absl::StatusOr<v1::ChangeResult> t =
      ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "central", "central_1", "officer-1", 0);
  ASSERT_THAT(t, IsOk());

  // Both saw the transfer (its position is their base).
  absl::StatusOr<PushResult> r =
      Push("dev-a", 2,
           {Upsert(Id(101), kCase, kCase, "case_registration", {{"district", Enum("northern_2")}},
                   t->log_position(), HlcAt(kStartMicros)),
            Upsert(Id(102), kCase, kCase, "case_registration", {{"district", Enum("central_2")}},
                   t->log_position(), HlcAt(kStartMicros + 1))});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).reject_reason(), v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION);
  EXPECT_EQ(r->result.results(1).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "central_2");
}

TEST_F(IngestTest, ResolutionTakingADistrictOutsideTheRegionIsRefused) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2,
                   {Upsert(Id(101), kCase, kCase, "case_registration",
                           {{"district", Enum("northern_1")}}, 0, HlcAt(kStartMicros))}),
              IsOk());
  ASSERT_THAT(Push("dev-b", 1,
                   {Upsert(Id(102), kCase, kCase, "case_registration",
                           {{"district", Enum("northern_2")}}, 0, HlcAt(kStartMicros - 5))}),
              IsOk());
  // The transfer replaces the current district only: the losing one stays
  // in the conflict.
  ASSERT_THAT(
      ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "eastern", "eastern_1", "officer-1", 0),
      IsOk());
  absl::StatusOr<v1::ListConflictsResponse> conflicts =
      feed_->ListConflicts("eastern", 0, "", ReadScope::AllClasses());
  ASSERT_THAT(conflicts, IsOk());
  ASSERT_EQ(conflicts->conflicts_size(), 1);
  const v1::Conflict& c = conflicts->conflicts(0);
  ASSERT_EQ(c.losing_value().enum_value(), "northern_2");

  absl::StatusOr<v1::ChangeResult> r =
      ingest_->ResolveConflict(StaffActor{"sup-1"}, c.id(), kCase, Ingest::Resolution::kTakeLosing,
                               0, v1::FieldValue(), c.version());

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("district northern_2 lies in region northern")));
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "eastern_1");
  EXPECT_THAT(
      ingest_->ResolveConflict(StaffActor{"sup-1"}, c.id(), kCase, Ingest::Resolution::kKeepCurrent,
                               0, v1::FieldValue(), c.version()),
      IsOk());
}

TEST_F(IngestTest, LogWrittenBeforeDistrictsWereDeclaredRebuildsUnchanged) {
  // The deployment's earlier schema: the same fields, no district_regions.
  v1::Schema before = schema_->proto();
  before.mutable_case_fields()->clear_district_field();
  before.mutable_case_fields()->clear_district_regions();
  std::unique_ptr<Schema> current = std::move(schema_);
  schema_ = *Schema::Create(before);
  ReopenStore();
  CreateCase();
  ASSERT_EQ(Push("dev-a", 2,
                 {Upsert(Id(101), kCase, kCase, "case_registration",
                         {{"district", Enum("western_1")}}, 0, HlcAt(kStartMicros))})
                ->result.results(0)
                .outcome(),
            v1::CHANGE_OUTCOME_APPLIED);
  ASSERT_THAT(ingest_->TransferCase(StaffActor{"sup-1"}, kCase, "central", "", "officer-2", 0),
              IsOk());
  storage::StoreOptions o;
  o.path = dir_.Sub("rebuilt");
  o.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<storage::Store>> rebuilt = storage::Store::Open(o);
  ASSERT_THAT(rebuilt, IsOk());

  absl::StatusOr<uint64_t> replayed =
      RebuildStateFromLog(*current, store_.get(), rebuilt->get(), /*entries_per_commit=*/1);

  ASSERT_THAT(replayed, fieldsync::testing::IsOkAndHolds(uint64_t{3}));
  for (storage::Cf cf : {storage::Cf::kRecords, storage::Cf::kCaseIndex, storage::Cf::kConflicts}) {
    EXPECT_EQ(testing::DumpCf(rebuilt->get(), cf), testing::DumpCf(store_.get(), cf))
        << storage::CfName(cf);
  }
  EXPECT_EQ(ReadString(kCase, kCase, "district"), "western_1");
}

TEST_F(IngestTest, AssignWithStaleBaseIsAborted) {
  CreateCase();

  EXPECT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, kCase, "officer-2", 99),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, kOther, "officer-2", 0),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(IngestTest, ResolveConflictByTakingTheLosingValue) {
  CreateCase();
  ASSERT_THAT(Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)}), IsOk());
  ASSERT_THAT(Push("dev-b", 1, {SetName(102, "Mina", 1, kStartMicros - 5)}), IsOk());
  v1::Conflict c = feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses())->conflicts(0);

  absl::StatusOr<v1::ChangeResult> r =
      ingest_->ResolveConflict(StaffActor{"sup-1"}, c.id(), kCase, Ingest::Resolution::kTakeLosing,
                               0, v1::FieldValue(), c.version());

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Mina");
  EXPECT_EQ(feed_->ListConflicts("northern", 0, "", ReadScope::AllClasses())->conflicts_size(), 0);
  EXPECT_THAT(
      ingest_->ResolveConflict(StaffActor{"sup-1"}, c.id(), kCase, Ingest::Resolution::kKeepCurrent,
                               0, v1::FieldValue(), c.version()),
      StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(IngestTest, AChangeIdSpelledInTwoLetterCasesIsRejectedTheSecondTime) {
  CreateCase();
  v1::RecordChange upper = SetName(101, "Mina", 1, kStartMicros + 1);
  upper.set_change_id(absl::AsciiStrToUpper(Id(101)));

  absl::StatusOr<PushResult> r =
      Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros), upper});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->result.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(r->result.results(1).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(r->result.results(1).reject_reason(), v1::REJECT_REASON_INVALID_ID);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Aminata");
}

TEST_F(IngestTest, EncryptedFieldsAreStoredAsCiphertext) {
  CreateCase();

  for (const auto& [key, value] : testing::DumpCf(store_.get(), storage::Cf::kRecords)) {
    EXPECT_EQ(value.find("Amina"), std::string::npos);
  }
  for (const auto& [key, value] : testing::DumpCf(store_.get(), storage::Cf::kCaseLog)) {
    EXPECT_EQ(value.find("Amina"), std::string::npos);
  }
  EXPECT_EQ(ReadString(kCase, kCase, "region"), "northern");
}

class RecordingObserver : public CommitObserver {
 public:
  absl::Status OnCommit(const CommittedUnit& unit, storage::WriteBatch* batch) override {
    units.push_back(unit);
    units.back().batch = nullptr;  // valid during OnCommit only
    batch_ids.push_back(unit.batch != nullptr ? unit.batch->batch_id : "");
    batch->Put(storage::Cf::kMetadata, "observer-was-here", std::to_string(units.size()));
    return fail ? absl::UnavailableError("observer told to fail") : absl::OkStatus();
  }
  DimensionNeeds RecordDimensionNeeds() const override { return needs; }
  std::vector<CommittedUnit> units;
  std::vector<std::string> batch_ids;  // by unit; "" for a server-side change
  bool fail = false;
  DimensionNeeds needs = {.fields = {{"case_registration", {"region", "case_status"}},
                                     {"protection_concern", {"concern_category"}}},
                          .shared_case_fields = {"region", "case_status"}};
};

TEST_F(IngestTest, ObserverSeesTheCaseViewBeforeAndAfterEachChange) {
  RecordingObserver observer;
  observers_ = {&observer};
  ReopenStore();
  CreateCase();

  ASSERT_THAT(ingest_->SetCaseStatus(StaffActor{"sup-1"}, kCase, true, "goals_achieved", 0),
              IsOk());

  ASSERT_EQ(observer.units.size(), 2u);
  const CommittedUnit& created = observer.units[0];
  EXPECT_EQ(observer.batch_ids[0], BatchId("dev-a", 1));
  EXPECT_EQ(observer.batch_ids[1], "") << "a server-side change has no batch";
  EXPECT_EQ(created.counts.applied, 1u);
  ASSERT_EQ(created.records.size(), 1u);
  const RecordDimensionChange& create = created.records[0];
  ASSERT_TRUE(create.dimensions_changed);
  EXPECT_EQ(create.before.case_id, kCase);
  EXPECT_THAT(create.before.records, ::testing::IsEmpty());
  ASSERT_NE(create.after.Registration(), nullptr);
  EXPECT_TRUE(create.after.Registration()->exists);
  EXPECT_EQ(create.after.Registration()->record_type, "case_registration");
  // Only the fields asked for: sex is a DIMENSION field no one asked for.
  EXPECT_EQ(create.after.Registration()->values,
            (std::map<std::string, std::string>{{"region", "northern"}, {"case_status", "open"}}));
  const CommittedUnit& closed = observer.units[1];
  EXPECT_EQ(closed.writer, "staff:sup-1");
  ASSERT_EQ(closed.records.size(), 1u);
  ASSERT_TRUE(closed.records[0].dimensions_changed);
  EXPECT_EQ(closed.records[0].before, create.after);
  EXPECT_EQ(closed.records[0].after.Registration()->values.at("case_status"), "closed");
  EXPECT_EQ(closed.records[0].after.Registration()->values.at("region"), "northern");
  EXPECT_THAT(store_->Get(storage::Cf::kMetadata, "observer-was-here"), IsOk());
}

// Changes of one case in one batch: each sees the view the one before it
// left; a child record joins the view, and stays in it, deleted. A change
// that moves no asked-for value gets no views.
TEST_F(IngestTest, ObserverSeesEachChangeOfABatchAsIfCommittedAlone) {
  RecordingObserver observer;
  observers_ = {&observer};
  ReopenStore();
  CreateCase();
  const std::string concern = Id(300);
  v1::RecordChange del =
      Upsert(Id(203), kCase, concern, "protection_concern", {}, 0, HlcAt(kStartMicros + 3));
  del.clear_fields();
  del.set_kind(v1::CHANGE_KIND_DELETE);
  del.set_base_version(2);

  absl::StatusOr<PushResult> r = Push(
      "dev-a", 2,
      {Upsert(Id(201), kCase, concern, "protection_concern",
              {{"concern_category", Enum("neglect")}, {"identified_date", DateValue(2026, 11, 1)}},
              0, HlcAt(kStartMicros + 1)),
       SetName(202, "Aminata", 1, kStartMicros + 2), del});

  ASSERT_THAT(r, IsOk());
  for (const v1::ChangeResult& c : r->result.results()) {
    EXPECT_NE(c.outcome(), v1::CHANGE_OUTCOME_REJECTED) << c.detail();
  }
  ASSERT_EQ(observer.units.size(), 2u);
  const std::vector<RecordDimensionChange>& changes = observer.units[1].records;
  ASSERT_EQ(changes.size(), 3u);
  ASSERT_TRUE(changes[0].dimensions_changed);
  EXPECT_EQ(changes[0].before.Find(concern), nullptr);
  ASSERT_NE(changes[0].after.Find(concern), nullptr);
  EXPECT_TRUE(changes[0].after.Find(concern)->exists);
  EXPECT_EQ(changes[0].after.Find(concern)->values.at("concern_category"), "neglect");
  // A name is no dimension: the view does not change.
  EXPECT_FALSE(changes[1].dimensions_changed);
  EXPECT_THAT(changes[1].after.records, ::testing::IsEmpty());
  ASSERT_TRUE(changes[2].dimensions_changed);
  EXPECT_EQ(changes[2].before, changes[0].after);
  ASSERT_NE(changes[2].after.Find(concern), nullptr);
  EXPECT_FALSE(changes[2].after.Find(concern)->exists);
  // What the views say is what a read of the committed state says.
  absl::StatusOr<Uuid> case_id = ParseUuid(kCase);
  ASSERT_THAT(case_id, IsOk());
  storage::WriteBatch unused;
  StateView view(store_.get(), &unused);
  EXPECT_THAT(ReadCaseDimensions(&view, ViewEntryReader(&view), *schema_, observer.needs, *case_id),
              IsOkAndHolds(changes[2].after));
}

TEST_F(IngestTest, ViewsAreNotReadWhenNoObserverAsks) {
  RecordingObserver observer;
  observer.needs = {};
  observers_ = {&observer};
  ReopenStore();
  CreateCase();

  ASSERT_EQ(observer.units.size(), 1u);
  ASSERT_EQ(observer.units[0].records.size(), 1u);
  EXPECT_EQ(observer.units[0].records[0].record_id, kCase);
  EXPECT_FALSE(observer.units[0].records[0].dimensions_changed);
  EXPECT_THAT(observer.units[0].records[0].after.records, ::testing::IsEmpty());
}

TEST_F(IngestTest, ObserverFailureFailsTheWholeCommit) {
  RecordingObserver observer;
  observers_ = {&observer};
  ReopenStore();
  CreateCase();
  observer.fail = true;

  absl::StatusOr<PushResult> r = Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)});

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Amina");
  observer.fail = false;
  absl::StatusOr<PushResult> retry = Push("dev-a", 2, {SetName(101, "Aminata", 1, kStartMicros)});
  ASSERT_THAT(retry, IsOk());
  EXPECT_FALSE(retry->is_retry_answer);
  EXPECT_EQ(retry->result.results(0).log_position(), 2u);
}

// The views of a group that failed are not those the next group sees: it
// reads the committed state again.
TEST_F(IngestTest, ViewsOfAFailedGroupAreForgotten) {
  RecordingObserver observer;
  observers_ = {&observer};
  ReopenStore();
  observer.fail = true;
  ASSERT_THAT(Push("dev-a", 1,
                   {NewCase(Id(100), kCase, "northern", HlcAt(kStartMicros - 1000)),
                    Upsert(Id(101), kCase, Id(300), "protection_concern",
                           {{"concern_category", Enum("neglect")},
                            {"identified_date", DateValue(2026, 11, 1)}},
                           0, HlcAt(kStartMicros - 999))}),
              StatusIs(absl::StatusCode::kUnavailable));
  observer.fail = false;
  observer.units.clear();

  CreateCase();

  ASSERT_EQ(observer.units.size(), 1u);
  ASSERT_EQ(observer.units[0].records.size(), 1u);
  const RecordDimensionChange& created = observer.units[0].records[0];
  ASSERT_TRUE(created.dimensions_changed);
  EXPECT_THAT(created.before.records, ::testing::IsEmpty());
  ASSERT_EQ(created.after.records.size(), 1u);  // no concern: it was never committed
  EXPECT_NE(created.after.Registration(), nullptr);
}

TEST_F(IngestTest, ConcurrentPushesAllCommitWithContiguousPositions) {
  constexpr int kThreads = 4, kBatches = 10;
  std::vector<std::thread> threads;
  std::vector<absl::Status> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string device = absl::StrFormat("dev-t%d", t);
      for (int b = 1; b <= kBatches; ++b) {
        absl::StatusOr<PushResult> r =
            Push(device, b,
                 {NewCase(Id(1000 * (t + 1) + b), Id(100000 * (t + 1) + b), "central",
                          HlcAt(kStartMicros))});
        if (!r.ok()) errors[t] = r.status();
      }
    });
  }
  for (std::thread& th : threads) th.join();

  for (const absl::Status& e : errors) EXPECT_THAT(e, IsOk());
  EXPECT_THAT(ingest_->NextLogPosition(),
              fieldsync::testing::IsOkAndHolds(uint64_t{kThreads * kBatches + 1}));
}

// Every commit group runs on the Ingest's own thread, at the priority of
// the thread that made the Ingest, whatever the priority of the threads
// that push (the server's handlers run at a lower one): the step every push
// waits for is not slowed to the pushers' share of the CPU.
TEST_F(IngestTest, GroupsCommitOnOneThreadAtTheMakersPriority) {
  const int base = ThreadNiceness();
  if (base >= 19) GTEST_SKIP() << "this test already runs at the lowest priority";
  struct ThreadProbe : CommitObserver {
    absl::Status OnCommit(const CommittedUnit&, storage::WriteBatch*) override {
      absl::MutexLock lock(&mu);
      threads.insert(std::this_thread::get_id());
      niceness.insert(ThreadNiceness());
      return absl::OkStatus();
    }
    absl::Mutex mu;
    std::set<std::thread::id> threads;
    std::set<int> niceness;
  } probe;
  observers_ = {&probe};
  ReopenStore();  // made on this thread
  constexpr int kThreads = 4;
  std::vector<std::thread> pushers;
  std::vector<absl::Status> errors(kThreads);
  std::set<std::thread::id> pusher_ids;
  for (int t = 0; t < kThreads; ++t) {
    pushers.emplace_back([&, t] {
      errors[t] = SetThreadNiceness(std::min(19, base + 5));
      for (int b = 1; b <= 3 && errors[t].ok(); ++b) {
        const int n = 100 * t + b;
        absl::StatusOr<PushResult> r =
            Push(absl::StrFormat("dev-%d", t), b,
                 {NewCase(Id(n), Id(n + 5000), "central", HlcAt(kStartMicros))});
        if (!r.ok()) errors[t] = r.status();
      }
    });
    pusher_ids.insert(pushers.back().get_id());
  }
  for (std::thread& th : pushers) th.join();
  for (const absl::Status& e : errors) ASSERT_THAT(e, IsOk());

  absl::MutexLock lock(&probe.mu);
  ASSERT_EQ(probe.threads.size(), 1u);
  EXPECT_EQ(pusher_ids.count(*probe.threads.begin()), 0u) << "a pusher's thread committed";
  EXPECT_NE(*probe.threads.begin(), std::this_thread::get_id());
  EXPECT_EQ(probe.niceness, std::set<int>{base});
  EXPECT_THAT(ingest_->NextLogPosition(), fieldsync::testing::IsOkAndHolds(kThreads * 3 + 1));
}

// Preparing is CPU work: no more batches prepare at once than the limit,
// and the rest wait for a turn (all commit).
TEST_F(IngestTest, NoMoreBatchesPrepareAtOnceThanTheLimit) {
  constexpr int kThreads = 6, kBatches = 3;
  sealer_.set_seal_delay(absl::Milliseconds(2));
  uint64_t logged = 0;
  for (int limit : {1, 2, kThreads}) {
    max_concurrent_prepares_ = limit;
    ReopenStore();
    sealer_.ResetSealsAtOnce();
    std::vector<std::thread> threads;
    std::vector<absl::Status> errors(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string device = absl::StrFormat("dev-%d-%d", limit, t);
        for (int b = 1; b <= kBatches; ++b) {
          // A new case seals its child's name (IDENTIFYING) in Prepare.
          const int n = 10000 * limit + 100 * t + b;
          absl::StatusOr<PushResult> r =
              Push(device, b, {NewCase(Id(n), Id(n + 1000000), "central", HlcAt(kStartMicros))});
          if (!r.ok()) errors[t] = r.status();
        }
      });
    }
    for (std::thread& th : threads) th.join();

    for (const absl::Status& e : errors) EXPECT_THAT(e, IsOk()) << "limit " << limit;
    logged += kThreads * kBatches;
    EXPECT_THAT(ingest_->NextLogPosition(), fieldsync::testing::IsOkAndHolds(logged + 1));
    EXPECT_LE(sealer_.most_seals_at_once(), limit);
    // The probe sees overlap where the limit allows it (six threads, each
    // seal 2 ms).
    if (limit == kThreads) {
      EXPECT_GE(sealer_.most_seals_at_once(), 2);
    }
  }
}

// Turns to prepare are taken in arrival order: a batch never waits
// behind one that arrived after it.
TEST_F(IngestTest, BatchesTakeTheirTurnToPrepareInArrivalOrder) {
  constexpr int kWaiting = 4;
  max_concurrent_prepares_ = 1;
  ReopenStore();
  absl::Notification release;
  sealer_.set_seal_gate(&release);
  std::vector<std::thread> threads;
  std::vector<absl::Status> errors(kWaiting + 1);
  const auto push = [&](int i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<PushResult> r =
          Push(absl::StrFormat("dev-%d", i), 1,
               {NewCase(Id(100 + i), Id(200 + i), "central", HlcAt(kStartMicros))});
      if (!r.ok()) errors[i] = r.status();
    });
  };
  // The first batch holds the only turn (its seal waits at the gate)...
  push(0);
  while (sealer_.sealed_cases().empty()) absl::SleepFor(absl::Milliseconds(1));
  // ...while the others arrive one after another and wait.
  for (int i = 1; i <= kWaiting; ++i) {
    push(i);
    while (ingest_->PreparesWaiting() < static_cast<uint64_t>(i)) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  release.Notify();
  for (std::thread& th : threads) th.join();

  for (const absl::Status& e : errors) EXPECT_THAT(e, IsOk());
  std::vector<std::string> arrival;
  for (int i = 0; i <= kWaiting; ++i) arrival.push_back(Id(200 + i));
  EXPECT_EQ(sealer_.sealed_cases(), arrival);
  EXPECT_EQ(ingest_->PreparesWaiting(), 0u);
  sealer_.set_seal_gate(nullptr);
}

}  // namespace
}  // namespace fieldsync::sync
