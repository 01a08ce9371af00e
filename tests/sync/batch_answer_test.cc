#include "sync/batch_answer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "sync/ingest.h"
#include "sync/state_view.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using testing::DateValue;
using ::testing::ElementsAre;
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
const std::string kFollowUp = Id(50);
constexpr int64_t kHour = int64_t{3600} * 1000000;

class BatchAnswerTest : public testing::IngestFixture {
 protected:
  // dev-a: kCase (1) and its follow-up (2); given name (3), family name (4)
  // and village (5) at kStartMicros; deletes the follow-up (6).
  void Prepare() {
    ASSERT_THAT(Push("dev-a", 1,
                     {NewCase(Id(100), kCase, "northern", HlcAt(kStartMicros - 1000)),
                      Upsert(Id(101), kCase, kFollowUp, "follow_up",
                             {{"follow_up_date", DateValue(2026, 1, 1)}, {"notes", Str("first")}},
                             0, HlcAt(kStartMicros - 999))}),
                IsOk());
    v1::RecordChange del;
    del.set_change_id(Id(105));
    del.set_case_id(kCase);
    del.set_record_id(kFollowUp);
    del.set_record_type("follow_up");
    del.set_kind(v1::CHANGE_KIND_DELETE);
    del.set_base_version(2);
    *del.mutable_hlc() = HlcAt(kStartMicros + 10);
    ASSERT_THAT(Push("dev-a", 2,
                     {SetOnCase(102, "given_name", "Aminata", 1, kStartMicros),
                      SetOnCase(103, "family_name", "Kato", 0, kStartMicros),
                      SetOnCase(104, "village", "Upper", 0, kStartMicros), del}),
                IsOk());
  }
  static v1::RecordChange SetOnCase(int change, const std::string& field, const std::string& value,
                                    uint64_t base, int64_t at) {
    return Upsert(Id(change), kCase, kCase, "case_registration", {{field, Str(value)}}, base,
                  HlcAt(at));
  }
  // dev-b's first batch: every outcome, rejections at the first, a middle
  // and the last index.
  static std::vector<v1::RecordChange> MixedBatch() {
    return {
        // 0: rejected (no such field).
        SetOnCase(200, "nickname", "x", 1, kStartMicros),
        // 1: a new case, with server-set fields.
        NewCase(Id(201), kOther, "northern", HlcAt(kStartMicros)),
        // 2: converged with dev-a's equal value.
        SetOnCase(202, "given_name", "Aminata", 1, kStartMicros + 5),
        // 3: superseded by dev-a's later value.
        SetOnCase(203, "family_name", "Okello", 0, kStartMicros - 5),
        // 4: rejected (enum value not allowed).
        Upsert(Id(204), kCase, kCase, "case_registration", {{"sex", Enum("lizard")}}, 1,
               HlcAt(kStartMicros)),
        // 5: conflict, winning over dev-a's earlier value.
        SetOnCase(205, "village", "Lower", 0, kStartMicros + 5),
        // 6: revives the follow-up dev-a deleted without seeing this write.
        Upsert(Id(206), kCase, kFollowUp, "follow_up", {{"notes", Str("visited")}}, 2,
               HlcAt(kStartMicros)),
        // 7: an hour ahead of the server: clamped.
        Upsert(Id(207), kOther, kOther, "case_registration", {{"caregiver_name", Str("Ali")}}, 0,
               HlcAt(kStartMicros + kHour)),
        // 8: rejected at commit (a child of a case that does not exist).
        Upsert(Id(208), Id(3), Id(51), "follow_up", {{"follow_up_date", DateValue(2026, 1, 2)}}, 0,
               HlcAt(kStartMicros)),
    };
  }

  std::string BatchKey(const std::string& device, uint64_t sequence) {
    absl::StatusOr<Uuid> id = ParseUuid(BatchId(device, sequence));
    EXPECT_THAT(id, IsOk());
    return storage::EncodeBatchKey(device, *id);
  }
  std::string StoredBytes(const std::string& device, uint64_t sequence) {
    absl::StatusOr<std::string> raw =
        store_->Get(storage::Cf::kBatches, BatchKey(device, sequence));
    EXPECT_THAT(raw, IsOk());
    return raw.ok() ? *raw : "";
  }
  v1::BatchRecord StoredRecord(const std::string& device, uint64_t sequence) {
    v1::BatchRecord record;
    EXPECT_TRUE(record.ParseFromString(StoredBytes(device, sequence)));
    return record;
  }
  void Store(const std::string& device, uint64_t sequence, const v1::BatchRecord& record) {
    storage::WriteBatch wb;
    wb.Put(storage::Cf::kBatches, BatchKey(device, sequence), record.SerializeAsString());
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }
  // The record the ingest stored before the compact form: the whole answer.
  v1::BatchRecord FullRecord(const std::string& device, uint64_t sequence,
                             const v1::BatchResult& answer) {
    v1::BatchRecord record;
    record.set_payload_hash(StoredRecord(device, sequence).payload_hash());
    record.set_sequence(sequence);
    *record.mutable_result() = answer;
    return record;
  }
  absl::StatusOr<v1::BatchResult> Rebuild(const v1::BatchRecord& record,
                                          const BatchIdentity& identity = {}) {
    storage::WriteBatch unused;
    StateView view(store_.get(), &unused);
    return RebuildBatchResult(record, CaseLogReader(&view), identity);
  }
  absl::StatusOr<bool> Compact(v1::BatchRecord* record) {
    storage::WriteBatch unused;
    StateView view(store_.get(), &unused);
    return CompactStoredBatchRecord(record, CaseLogReader(&view));
  }
};

TEST_F(BatchAnswerTest, RetryOfAMixedBatchGetsTheFirstAnswerByteForByte) {
  Prepare();
  absl::StatusOr<PushResult> first = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(first, IsOk());
  const auto& r = first->result.results();
  ASSERT_EQ(r.size(), 9);
  // The batch holds every kind of answer this test is about.
  EXPECT_EQ(r[0].outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(r[1].outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_TRUE(r[1].fields(r[1].fields_size() - 1).server_set());
  EXPECT_EQ(r[2].outcome(), v1::CHANGE_OUTCOME_CONVERGED);
  EXPECT_EQ(r[3].outcome(), v1::CHANGE_OUTCOME_SUPERSEDED);
  EXPECT_EQ(r[3].fields(0).version(), 4u);  // dev-a's value stays
  EXPECT_EQ(r[4].outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(r[5].outcome(), v1::CHANGE_OUTCOME_CONFLICT);
  EXPECT_TRUE(r[6].revived());
  EXPECT_TRUE(r[7].clock_clamped());
  EXPECT_EQ(r[8].reject_reason(), v1::REJECT_REASON_CASE_NOT_FOUND);
  EXPECT_EQ(first->result.first_position(), 7u);
  EXPECT_EQ(first->result.last_position(), 12u);

  absl::StatusOr<PushResult> again = Push("dev-b", 1, MixedBatch());

  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->is_retry_answer);
  EXPECT_EQ(again->next_sequence, 2u);
  EXPECT_EQ(again->result.SerializeAsString(), first->result.SerializeAsString());
}

TEST_F(BatchAnswerTest, StoredRecordKeepsOnlyTheRejectedResultsAndTheLogRange) {
  Prepare();
  absl::StatusOr<PushResult> first = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(first, IsOk());

  v1::BatchRecord stored = StoredRecord("dev-b", 1);

  EXPECT_TRUE(stored.results_from_log());
  EXPECT_EQ(stored.sequence(), 1u);
  EXPECT_THAT(stored.rejected_index(), ElementsAre(0u, 4u, 8u));
  ASSERT_EQ(stored.result().results_size(), 3);
  EXPECT_EQ(stored.result().results(1).SerializeAsString(),
            first->result.results(4).SerializeAsString());
  EXPECT_EQ(stored.result().first_position(), 7u);
  EXPECT_EQ(stored.result().last_position(), 12u);
}

TEST_F(BatchAnswerTest, AllRejectedBatchIsAnsweredAgainWithoutALogRange) {
  Prepare();
  const std::vector<v1::RecordChange> batch = {
      SetOnCase(300, "nickname", "x", 1, kStartMicros),
      Upsert(Id(301), kCase, kCase, "case_registration", {{"sex", Enum("lizard")}}, 1,
             HlcAt(kStartMicros + kHour))};
  absl::StatusOr<PushResult> first = Push("dev-b", 1, batch);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->result.first_position(), 0u);

  absl::StatusOr<PushResult> again = Push("dev-b", 1, batch);

  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->is_retry_answer);
  EXPECT_EQ(again->result.SerializeAsString(), first->result.SerializeAsString());
  v1::BatchRecord stored = StoredRecord("dev-b", 1);
  EXPECT_TRUE(stored.results_from_log());
  EXPECT_THAT(stored.rejected_index(), ElementsAre(0u, 1u));
  EXPECT_EQ(stored.result().last_position(), 0u);
}

TEST_F(BatchAnswerTest, MissingLogEntryGivesDataLossAndOtherBatchesStillCommit) {
  Prepare();
  ASSERT_THAT(Push("dev-b", 1, MixedBatch()), IsOk());
  storage::WriteBatch damage;
  damage.Delete(storage::Cf::kCaseLog, storage::EncodeCaseLogKey(9));
  ASSERT_THAT(store_->Commit(&damage), IsOk());

  absl::StatusOr<PushResult> again = Push("dev-b", 1, MixedBatch());

  EXPECT_THAT(again, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry 9 is missing")));
  EXPECT_THAT(Push("dev-a", 3, {SetOnCase(400, "given_name", "Amina", 3, kStartMicros + 50)}),
              IsOk());
}

TEST_F(BatchAnswerTest, DamagedCompactRecordsGiveDataLoss) {
  Prepare();
  ASSERT_THAT(Push("dev-b", 1, MixedBatch()), IsOk());
  const v1::BatchRecord stored = StoredRecord("dev-b", 1);
  const std::string batch_id = BatchId("dev-b", 1);
  const BatchIdentity dev_b{.device_id = "dev-b", .batch_id = batch_id, .change_count = {}};
  ASSERT_THAT(Rebuild(stored, dev_b), IsOk());

  v1::BatchRecord unordered = stored;
  unordered.set_rejected_index(0, 5);
  EXPECT_THAT(Rebuild(unordered), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ascending")));
  v1::BatchRecord unindexed = stored;
  unindexed.mutable_rejected_index()->RemoveLast();
  EXPECT_THAT(Rebuild(unindexed), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("indexes")));
  // Shifted onto dev-a's entries: another batch's.
  v1::BatchRecord shifted = stored;
  shifted.mutable_result()->set_first_position(2);
  shifted.mutable_result()->set_last_position(7);
  EXPECT_THAT(Rebuild(shifted, dev_b),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("another writer")));
  v1::BatchRecord backwards = stored;
  backwards.mutable_result()->set_first_position(12);
  backwards.mutable_result()->set_last_position(7);
  EXPECT_THAT(Rebuild(backwards), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("log range")));
  v1::BatchRecord past_end = stored;
  past_end.mutable_result()->set_last_position(13);
  EXPECT_THAT(Rebuild(past_end, dev_b),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry 13 is missing")));
  EXPECT_THAT(Rebuild(stored, BatchIdentity{.device_id = {}, .batch_id = {}, .change_count = 8}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("the batch has 8")));
}

TEST_F(BatchAnswerTest, RangeMovedOntoAnotherBatchOfTheSameDeviceIsCaughtByItsChangeIds) {
  Prepare();  // dev-a's batch 1 logged at 1..2
  const std::vector<v1::RecordChange> third = {
      SetOnCase(110, "given_name", "Amina", 3, kStartMicros + 20),
      SetOnCase(111, "village", "Middle", 5, kStartMicros + 20)};
  absl::StatusOr<PushResult> first = Push("dev-a", 3, third);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->result.first_position(), 7u);
  // Damage: batch 3's stored answer now names batch 1's two entries, which
  // the same device wrote.
  v1::BatchRecord moved = StoredRecord("dev-a", 3);
  moved.mutable_result()->set_first_position(1);
  moved.mutable_result()->set_last_position(2);
  Store("dev-a", 3, moved);

  absl::StatusOr<PushResult> again = Push("dev-a", 3, third);

  EXPECT_THAT(again, StatusIs(absl::StatusCode::kDataLoss,
                              HasSubstr("entry 1 is not the change at index 0")));
  EXPECT_THAT(Push("dev-a", 4, {SetOnCase(112, "village", "Far", 8, kStartMicros + 30)}), IsOk());
}

TEST_F(BatchAnswerTest, StoredRecordIsSmallWhateverTheBatchSize) {
  std::vector<v1::RecordChange> cases;
  for (int i = 0; i < 20; ++i) {
    cases.push_back(NewCase(Id(500 + i), Id(600 + i), "northern", HlcAt(kStartMicros)));
  }
  absl::StatusOr<PushResult> first = Push("dev-a", 1, cases);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->result.last_position(), 20u);

  const std::string stored = StoredBytes("dev-a", 1);

  // Hash, sequence, log range and form: under 64 bytes. The whole answer
  // (the full form) is over 150 bytes per new case.
  EXPECT_LE(stored.size(), 64u);
  EXPECT_GT(FullRecord("dev-a", 1, first->result).ByteSizeLong(), 20u * 150);
}

TEST_F(BatchAnswerTest, FullFormRecordIsStillAnsweredAsStored) {
  Prepare();
  absl::StatusOr<PushResult> first = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(first, IsOk());
  Store("dev-b", 1, FullRecord("dev-b", 1, first->result));

  absl::StatusOr<PushResult> again = Push("dev-b", 1, MixedBatch());

  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->is_retry_answer);
  EXPECT_EQ(again->result.SerializeAsString(), first->result.SerializeAsString());
}

TEST_F(BatchAnswerTest, FullRecordTheLogRebuildsIsCompactedAndAnswersIdentically) {
  Prepare();
  absl::StatusOr<PushResult> first = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(first, IsOk());
  v1::BatchRecord record = FullRecord("dev-b", 1, first->result);
  const size_t full_size = record.ByteSizeLong();

  ASSERT_THAT(Compact(&record), IsOkAndHolds(true));

  EXPECT_TRUE(record.results_from_log());
  EXPECT_EQ(record.SerializeAsString(), StoredRecord("dev-b", 1).SerializeAsString());
  EXPECT_LT(record.ByteSizeLong(), full_size);
  Store("dev-b", 1, record);
  absl::StatusOr<PushResult> again = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->result.SerializeAsString(), first->result.SerializeAsString());
}

TEST_F(BatchAnswerTest, FullRecordTheLogDoesNotRebuildIsLeftAsIs) {
  Prepare();
  absl::StatusOr<PushResult> first = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(first, IsOk());
  // A stored answer that differs from its log entries in one field version.
  v1::BatchRecord record = FullRecord("dev-b", 1, first->result);
  record.mutable_result()->mutable_results(3)->mutable_fields(0)->set_version(7);
  const std::string before = record.SerializeAsString();

  EXPECT_THAT(Compact(&record), IsOkAndHolds(false));

  EXPECT_EQ(record.SerializeAsString(), before);
}

TEST_F(BatchAnswerTest, FullRecordWhoseLogEntryIsGoneIsLeftAsIs) {
  Prepare();
  absl::StatusOr<PushResult> first = Push("dev-b", 1, MixedBatch());
  ASSERT_THAT(first, IsOk());
  v1::BatchRecord record = FullRecord("dev-b", 1, first->result);
  const std::string before = record.SerializeAsString();
  storage::WriteBatch damage;
  damage.Delete(storage::Cf::kCaseLog, storage::EncodeCaseLogKey(9));
  ASSERT_THAT(store_->Commit(&damage), IsOk());

  EXPECT_THAT(Compact(&record), IsOkAndHolds(false));

  EXPECT_EQ(record.SerializeAsString(), before);
}

TEST_F(BatchAnswerTest, CompactRecordIsNotCompactedAgain) {
  Prepare();
  ASSERT_THAT(Push("dev-b", 1, MixedBatch()), IsOk());
  v1::BatchRecord record = StoredRecord("dev-b", 1);
  const std::string before = record.SerializeAsString();

  EXPECT_THAT(Compact(&record), IsOkAndHolds(false));

  EXPECT_EQ(record.SerializeAsString(), before);
}

}  // namespace
}  // namespace fieldsync::sync
