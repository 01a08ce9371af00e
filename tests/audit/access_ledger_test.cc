// The access ledger (audit/access_ledger.h) over a real store and log:
// what a read writes, what a repeat within the window does not, what a
// failed commit withholds, and concurrent readers sharing entries and
// commits (AccessLedgerConcurrencyTest: no gRPC, for ThreadSanitizer).
#include "audit/access_ledger.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::audit {

using protocol::AccessKind;
using protocol::CaseAccess;
using protocol::DecodeEvent;
using protocol::Event;
using protocol::PrincipalKind;

namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;

Uuid CaseN(int n) {
  Uuid u{};
  u[0] = static_cast<uint8_t>(n);
  u[1] = static_cast<uint8_t>(n >> 8);
  u[6] = 0x40;
  u[8] = 0x80;
  return u;
}

// A pull chunk of `principal` over log positions (from, to] in which case
// `case_of(p)` changed at every position p.
AccessRead Chunk(
    const std::string& principal, uint64_t from, uint64_t to,
    int (*case_of)(uint64_t) = [](uint64_t p) { return static_cast<int>(p % 5); }) {
  AccessRead read;
  read.principal_kind = PrincipalKind::kDevice;
  read.principal_id = principal;
  read.access = AccessKind::kDevicePull;
  read.from_position = from;
  read.to_position = to;
  for (uint64_t p = from + 1; p <= to; ++p) read.changes.emplace_back(p, CaseN(case_of(p)));
  return read;
}

class AccessLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<fieldsync::testing::FaultyFileSystem>();
    env_ = fieldsync::testing::NewFaultyEnv(fs_);
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    options.env = env_.get();
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    AuditLogOptions log_options;
    log_options.store = store_.get();
    log_options.clock = &clock_;
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(log_options);
    ASSERT_THAT(log, IsOk());
    log_ = *std::move(log);
  }
  void TearDown() override {
    ledger_.reset();
    log_.reset();
    store_.reset();
  }

  AccessLedger& Ledger(absl::Duration window = absl::Minutes(5)) {
    AccessLedgerOptions options;
    options.repeat_window = window;
    ledger_ = std::make_unique<AccessLedger>(log_.get(), store_.get(), &clock_, options);
    return *ledger_;
  }

  // Every CaseAccess in the committed log, in order.
  std::vector<CaseAccess> Accesses() {
    std::vector<CaseAccess> out;
    EXPECT_THAT(log_->ReadEntries(0, log_->size(),
                                  [&](uint64_t, std::string_view entry) -> absl::Status {
                                    absl::StatusOr<Event> e = DecodeEvent(entry);
                                    if (!e.ok()) return e.status();
                                    if (auto* a = std::get_if<CaseAccess>(&e->body)) {
                                      out.push_back(*a);
                                    }
                                    return absl::OkStatus();
                                  }),
                IsOk());
    return out;
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_;
  std::shared_ptr<fieldsync::testing::FaultyFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<AuditLog> log_;
  std::unique_ptr<AccessLedger> ledger_;
};

TEST_F(AccessLedgerTest, AReadIsWrittenWithItsRangeAndCasesInFirstSeenOrder) {
  AccessLedger& ledger = Ledger();

  EXPECT_THAT(ledger.Record(Chunk("dev-1", 10, 17)), IsOkAndHolds(AccessRecorded::kWritten));

  std::vector<CaseAccess> accesses = Accesses();
  ASSERT_EQ(accesses.size(), 1u);
  EXPECT_EQ(accesses[0].principal_id, "dev-1");
  EXPECT_EQ(accesses[0].access, AccessKind::kDevicePull);
  EXPECT_EQ(accesses[0].from_position, 10u);
  EXPECT_EQ(accesses[0].to_position, 17u);
  // Positions 11..17: cases 1, 2, 3, 4, 0 (then 1, 2 again).
  EXPECT_EQ(accesses[0].case_ids,
            (std::vector<Uuid>{CaseN(1), CaseN(2), CaseN(3), CaseN(4), CaseN(0)}));
}

TEST_F(AccessLedgerTest, AChunkWithoutChangesRecordsNothing) {
  AccessLedger& ledger = Ledger();
  EXPECT_THAT(ledger.Record(Chunk("dev-1", 10, 10)),
              IsOkAndHolds(AccessRecorded::kNothingToRecord));
  EXPECT_EQ(log_->size(), 0u);
}

TEST_F(AccessLedgerTest, ARepeatWithinTheWindowIsCoveredWhateverItsChunkBoundaries) {
  AccessLedger& ledger = Ledger(absl::Minutes(5));
  ASSERT_THAT(ledger.Record(Chunk("dev-1", 0, 100)), IsOk());
  ASSERT_THAT(ledger.Record(Chunk("dev-1", 100, 200)), IsOk());

  clock_.Advance(absl::Minutes(4));
  // Smaller chunks, other boundaries, one across both entries.
  for (uint64_t from = 0; from < 200; from += 7) {
    EXPECT_THAT(ledger.Record(Chunk("dev-1", from, std::min<uint64_t>(from + 7, 200))),
                IsOkAndHolds(AccessRecorded::kCovered))
        << from;
  }

  EXPECT_EQ(Accesses().size(), 2u);
}

TEST_F(AccessLedgerTest, NewPositionsAnotherCaseOrAnotherPrincipalAreWritten) {
  AccessLedger& ledger = Ledger();
  ASSERT_THAT(ledger.Record(Chunk("dev-1", 0, 100)), IsOk());

  // A change beyond the entry's range (new data).
  EXPECT_THAT(ledger.Record(Chunk("dev-1", 90, 101)), IsOkAndHolds(AccessRecorded::kWritten));
  // A case the entry does not name, inside its range.
  EXPECT_THAT(ledger.Record(Chunk("dev-1", 40, 41, [](uint64_t) { return 99; })),
              IsOkAndHolds(AccessRecorded::kWritten));
  // The same chunk read by another device.
  EXPECT_THAT(ledger.Record(Chunk("dev-2", 0, 100)), IsOkAndHolds(AccessRecorded::kWritten));
  // A supervisor with the same id text is another principal.
  AccessRead staff = Chunk("dev-1", 0, 100);
  staff.principal_kind = PrincipalKind::kStaff;
  EXPECT_THAT(ledger.Record(staff), IsOkAndHolds(AccessRecorded::kWritten));

  EXPECT_EQ(Accesses().size(), 5u);
}

TEST_F(AccessLedgerTest, AfterTheWindowTheSameReadIsWrittenAgainWithItsNewTime) {
  AccessLedger& ledger = Ledger(absl::Minutes(5));
  ASSERT_THAT(ledger.Record(Chunk("dev-1", 0, 50)), IsOk());
  clock_.Advance(absl::Minutes(5));

  EXPECT_THAT(ledger.Record(Chunk("dev-1", 0, 50)), IsOkAndHolds(AccessRecorded::kWritten));

  EXPECT_EQ(Accesses().size(), 2u);
}

TEST_F(AccessLedgerTest, AZeroWindowWritesEveryRead) {
  AccessLedger& ledger = Ledger(absl::ZeroDuration());
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(ledger.Record(Chunk("dev-1", 0, 50)), IsOkAndHolds(AccessRecorded::kWritten));
  }
  EXPECT_EQ(Accesses().size(), 3u);
}

TEST_F(AccessLedgerTest, AFailedCommitIsUnavailableRecordsNothingAndIsNotRemembered) {
  AccessLedger& ledger = Ledger();
  fs_->FailSyncs(true);

  absl::StatusOr<AccessRecorded> failed = ledger.Record(Chunk("dev-1", 0, 50));

  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(failed.status().message(), ::testing::HasSubstr("nothing was sent: retry"));
  EXPECT_EQ(log_->size(), 0u);
  // The failed entry is not remembered: the same read is not "covered"
  // by it, it is tried again (and fails again).
  EXPECT_THAT(ledger.Record(Chunk("dev-1", 0, 50)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(log_->size(), 0u);
  EXPECT_EQ(ledger.entries_written(), 0u);
}

TEST_F(AccessLedgerTest, ManyPrincipalsStayWithinTheMemoryBound) {
  AccessLedgerOptions options;
  options.max_principals = 8;
  options.max_entries_per_principal = 2;
  AccessLedger ledger(log_.get(), store_.get(), &clock_, options);
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(ledger.Record(Chunk(absl::StrFormat("dev-%d", i), 0, 10)), IsOk());
  }
  // dev-0 was dropped: its repeat is written again (never left out).
  EXPECT_THAT(ledger.Record(Chunk("dev-0", 0, 10)), IsOkAndHolds(AccessRecorded::kWritten));
  // dev-19 is still known.
  EXPECT_THAT(ledger.Record(Chunk("dev-19", 0, 10)), IsOkAndHolds(AccessRecorded::kCovered));
  // Only the newest two entries of a principal are kept.
  for (uint64_t from : {100, 200, 300}) {
    ASSERT_THAT(ledger.Record(Chunk("dev-19", from, from + 10)), IsOk());
  }
  EXPECT_THAT(ledger.Record(Chunk("dev-19", 100, 110)), IsOkAndHolds(AccessRecorded::kWritten));
  EXPECT_THAT(ledger.Record(Chunk("dev-19", 300, 310)), IsOkAndHolds(AccessRecorded::kCovered));
}

TEST_F(AccessLedgerTest, TheCasesKeptStayWithinTheMemoryBound) {
  AccessLedgerOptions options;
  options.max_cases = 25;  // five entries of five cases
  AccessLedger ledger(log_.get(), store_.get(), &clock_, options);
  for (int i = 0; i < 6; ++i) {
    ASSERT_THAT(ledger.Record(Chunk(absl::StrFormat("dev-%d", i), 0, 10)), IsOk());
  }
  // The sixth entry went over: the least recent principal was dropped.
  EXPECT_THAT(ledger.Record(Chunk("dev-5", 0, 10)), IsOkAndHolds(AccessRecorded::kCovered));
  EXPECT_THAT(ledger.Record(Chunk("dev-1", 0, 10)), IsOkAndHolds(AccessRecorded::kCovered));
  EXPECT_THAT(ledger.Record(Chunk("dev-0", 0, 10)), IsOkAndHolds(AccessRecorded::kWritten));
}

// --- Concurrency (no gRPC: runs under ThreadSanitizer) ----------------------

using AccessLedgerConcurrencyTest = AccessLedgerTest;

TEST_F(AccessLedgerConcurrencyTest, EightStreamsReadingTheSameChunkWriteOneEntry) {
  AccessLedger& ledger = Ledger();
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round) {
        if (!ledger.Record(Chunk("sup-1", 0, 300)).ok()) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ledger.entries_written(), 1u);
  EXPECT_EQ(Accesses().size(), 1u);
}

TEST_F(AccessLedgerConcurrencyTest, EightPrincipalsAtOnceAreAllWrittenInSharedCommits) {
  AccessLedger& ledger = Ledger();
  constexpr int kThreads = 8, kReads = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kReads; ++r) {
        // New data every time: each read needs its own entry.
        if (!ledger.Record(Chunk(absl::StrFormat("dev-%d", t), r * 10, r * 10 + 10)).ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ledger.entries_written(), uint64_t{kThreads * kReads});
  EXPECT_EQ(log_->size(), uint64_t{kThreads * kReads});
  EXPECT_LE(ledger.commits(), ledger.entries_written());
  std::printf("%llu entries in %llu synced commits\n",
              static_cast<unsigned long long>(ledger.entries_written()),
              static_cast<unsigned long long>(ledger.commits()));
  // Every reader's every read is in the log.
  std::vector<int> per_device(kThreads, 0);
  for (const CaseAccess& a : Accesses()) {
    int device = -1;
    ASSERT_EQ(std::sscanf(a.principal_id.c_str(), "dev-%d", &device), 1);
    ++per_device[device];
  }
  for (int n : per_device) EXPECT_EQ(n, kReads);
}

}  // namespace
}  // namespace fieldsync::audit
