// Failures injected at each step of a commit (sealing, an observer, every
// WAL append, the WAL sync) leave a batch all there or not there, and every
// acknowledged batch survives a reopen. Also the change feed's resumption.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "sync/change_feed.h"
#include "sync/ingest.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using testing::Enum;
using testing::HlcAt;
using testing::Id;
using testing::kStartMicros;
using testing::Str;

const std::string kCase = Id(1);
const std::string kOther = Id(2);
const std::string kReferral = Id(3);

class CommitFaultTest : public testing::IngestFixture {
 protected:
  std::vector<v1::RecordChange> SecondBatch() {
    return {testing::Upsert(Id(101), kCase, kCase, "case_registration",
                            {{"given_name", Str("Aminata")}}, 1, HlcAt(kStartMicros)),
            testing::NewCase(Id(102), kOther, "central", HlcAt(kStartMicros)),
            testing::Upsert(Id(103), kCase, kReferral, "referral",
                            {{"referral_date", testing::DateValue(2026, 1, 1)},
                             {"service_type", Enum("legal_aid")},
                             {"referral_status", Enum("pending")}},
                            0, HlcAt(kStartMicros))};
  }
  // 0 when none of the second batch is there, 3 when all of it is.
  int SecondBatchPartsPresent() {
    int n = 0;
    n += ReadString(kCase, kCase, "given_name") == "Aminata";
    n += ReadString(kOther, kOther, "given_name") == "Amina";
    n += ReadString(kCase, kReferral, "service_type") == "legal_aid";
    return n;
  }
};

TEST_F(CommitFaultTest, FailureAtEachWriteLeavesTheBatchWholeOrAbsent) {
  int committed_runs = 0, failed_runs = 0;
  for (int n = 0; n < 8; ++n) {
    SCOPED_TRACE(absl::StrFormat("failing after %d appends", n));
    CloseStore();
    ASSERT_THAT(OpenStore(absl::StrFormat("db-%d", n)), IsOk());
    ASSERT_THAT(Push("dev-a", 1, {testing::NewCase(Id(100), kCase, "northern",
                                                   HlcAt(kStartMicros - 10))}),
                IsOk());
    fs_->FailAfterNWrites(n);

    absl::StatusOr<PushResult> r = Push("dev-a", 2, SecondBatch());

    fs_->Reset();
    CloseStore();
    ASSERT_THAT(OpenStore(absl::StrFormat("db-%d", n)), IsOk());
    const int present = SecondBatchPartsPresent();
    EXPECT_TRUE(present == 0 || present == 3) << present;
    EXPECT_EQ(ReadString(kCase, kCase, "region"), "northern");  // acknowledged batch 1
    if (r.ok()) {
      EXPECT_EQ(present, 3);
      ++committed_runs;
    } else {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
      ++failed_runs;
    }
    // The device retries; either way the batch ends up there exactly once.
    absl::StatusOr<PushResult> retry = Push("dev-a", 2, SecondBatch());
    ASSERT_THAT(retry, IsOk());
    EXPECT_EQ(retry->is_retry_answer, present == 3);
    EXPECT_EQ(SecondBatchPartsPresent(), 3);
    EXPECT_THAT(ingest_->NextLogPosition(), fieldsync::testing::IsOkAndHolds(uint64_t{5}));
  }
  EXPECT_GT(failed_runs, 0);
  std::cout << "fault runs: " << failed_runs << " failed, " << committed_runs << " committed\n";
}

TEST_F(CommitFaultTest, FailedWalSyncLeavesNoPartialBatch) {
  ASSERT_THAT(Push("dev-a", 1, {testing::NewCase(Id(100), kCase, "northern",
                                                 HlcAt(kStartMicros - 10))}),
              IsOk());
  fs_->FailSyncs(true);

  absl::StatusOr<PushResult> r = Push("dev-a", 2, SecondBatch());

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  ReopenStore();
  EXPECT_EQ(SecondBatchPartsPresent(), 0);
  EXPECT_EQ(ReadString(kCase, kCase, "given_name"), "Amina");
}

TEST_F(CommitFaultTest, SealingFailureRefusesTheBatchBeforeTheCommit) {
  ASSERT_THAT(Push("dev-a", 1, {testing::NewCase(Id(100), kCase, "northern",
                                                 HlcAt(kStartMicros - 10))}),
              IsOk());
  sealer_.set_fail(true);

  EXPECT_THAT(Push("dev-a", 2, SecondBatch()), StatusIs(absl::StatusCode::kUnavailable));

  sealer_.set_fail(false);
  EXPECT_EQ(SecondBatchPartsPresent(), 0);
  EXPECT_THAT(Push("dev-a", 2, SecondBatch()), IsOk());
  EXPECT_EQ(SecondBatchPartsPresent(), 3);
}

TEST_F(CommitFaultTest, InterruptedPullResumesWithoutGapsOrDuplicates) {
  for (int i = 1; i <= 20; ++i) {
    ASSERT_THAT(Push(i % 3 == 0 ? "dev-c" : "dev-a", i % 3 == 0 ? i / 3 : i - i / 3,
                     {testing::NewCase(Id(200 + i), Id(300 + i), "northern",
                                       HlcAt(kStartMicros))}),
                IsOk());
  }
  ReadScope officer1;
  officer1.officer_id = "officer-1";
  officer1.readable = ReadScope::AllClasses();

  std::vector<uint64_t> positions;
  uint64_t cursor = 0;
  int chunks = 0;
  for (bool done = false; !done; ++chunks) {
    absl::StatusOr<v1::PulledChanges> chunk =
        feed_->Read(officer1, FeedOptions{.cursor = cursor, .max_changes = 3});
    ASSERT_THAT(chunk, IsOk());
    for (const v1::PulledChange& c : chunk->changes()) positions.push_back(c.position());
    cursor = chunk->next_cursor();  // a new stream resumes from here
    done = chunk->caught_up();
  }

  std::vector<uint64_t> expected;
  for (uint64_t p = 1; p <= 20; ++p) {
    if (p % 3 != 0) expected.push_back(p);
  }
  EXPECT_EQ(positions, expected);
  EXPECT_GE(chunks, 5);
}

TEST_F(CommitFaultTest, PullWithholdsClassesTheRoleMayNotRead) {
  ASSERT_THAT(Push("dev-a", 1, {testing::NewCase(Id(100), kCase, "northern",
                                                 HlcAt(kStartMicros))}),
              IsOk());
  ReadScope dims;
  dims.regions = {"northern"};
  dims.readable = {v1::SENSITIVITY_DIMENSION};

  absl::StatusOr<v1::PulledChanges> chunk = feed_->Read(dims, FeedOptions{});

  ASSERT_THAT(chunk, IsOk());
  ASSERT_EQ(chunk->changes_size(), 1);
  for (const v1::PulledField& f : chunk->changes(0).fields()) {
    EXPECT_NE(f.field(), "given_name");
    EXPECT_NE(f.field(), "assigned_officer");
  }
  EXPECT_EQ(chunk->changes(0).withheld_fields(), 3u);  // given_name, date, officer
}

}  // namespace
}  // namespace fieldsync::sync
