// The group commit with its audit appends, threaded, at the library level
// (no gRPC, so that it runs under ThreadSanitizer): 8 threads pushing
// device batches through one sync::Ingest whose IngestObserver appends each
// batch's event through the group's AuditSession, while other appenders
// (access records, an administrator's event with a slow step after its
// commit) share the log. Every batch commits, every event is in the log
// once, and the stored tree is the one the leaves make.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "audit/access_ledger.h"
#include "audit/ingest_observer.h"
#include "audit/log.h"
#include "gtest/gtest.h"
#include "protocol/merkle.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::audit {

using protocol::AdminAction;
using protocol::BatchAccepted;
using protocol::DecodeEvent;
using protocol::EncodeEvent;
using protocol::Event;
using protocol::Hash;
using protocol::LeafHash;
using protocol::MemoryNodeSource;
using protocol::PrincipalKind;
using protocol::VerifyInclusion;

namespace {

using ::fieldsync::testing::IsOk;
using sync::testing::HlcAt;
using sync::testing::Id;
using sync::testing::kStartMicros;
using sync::testing::NewCase;

class GroupCommitConcurrencyTest : public sync::testing::IngestFixture {
 protected:
  void SetUp() override {
    IngestFixture::SetUp();
    OpenLogAndIngest();
  }
  void TearDown() override {
    ledger_.reset();
    CloseStore();
    observer_.reset();
    log_.reset();
  }

  // The log on the fixture's store, and an Ingest that audits through it.
  void OpenLogAndIngest() {
    AuditLogOptions options;
    options.store = store_.get();
    options.clock = &clock_;
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
    ASSERT_THAT(log, IsOk());
    log_ = *std::move(log);
    observer_ = std::make_unique<IngestObserver>(log_.get());
    sync::Ingest::Options io;
    io.store = store_.get();
    io.schema = schema_.get();
    io.sealer = &sealer_;
    io.clock = &clock_;
    io.observers = {observer_.get()};
    ingest_ = std::make_unique<sync::Ingest>(io);
    ledger_ = std::make_unique<AccessLedger>(log_.get(), store_.get(), &clock_);
  }

  // Every committed entry, decoded, and the root the leaves make.
  std::vector<Event> Entries(Hash* root) {
    std::vector<Event> out;
    MemoryNodeSource mem;
    EXPECT_THAT(log_->ReadEntries(0, log_->size(),
                                  [&](uint64_t, std::string_view entry) -> absl::Status {
                                    mem.AppendLeaf(LeafHash(entry));
                                    absl::StatusOr<Event> e = DecodeEvent(entry);
                                    if (!e.ok()) return e.status();
                                    out.push_back(*std::move(e));
                                    return absl::OkStatus();
                                  }),
                IsOk());
    *root = mem.Root();
    return out;
  }

  std::unique_ptr<AuditLog> log_;
  std::unique_ptr<IngestObserver> observer_;
  std::unique_ptr<AccessLedger> ledger_;
};

TEST_F(GroupCommitConcurrencyTest, EightPushersAndOtherAppendersAllCommitIntoOneConsistentTree) {
  constexpr int kPushers = 8, kBatches = 25;
  std::vector<std::thread> threads;
  std::vector<absl::Status> push_errors(kPushers);
  std::atomic<int> pushers_done{0};
  for (int t = 0; t < kPushers; ++t) {
    threads.emplace_back([&, t] {
      const std::string device = absl::StrFormat("dev-t%d", t);
      for (int b = 1; b <= kBatches; ++b) {
        sync::BatchMeta meta;
        meta.device_id = device;
        meta.officer_id = OfficerOf(device);
        meta.batch_id = BatchId(device, b);
        meta.sequence = b;
        // What the batch's audit event carries (the server fills them from
        // the sealed batch).
        meta.sealed_batch_sha256 = std::string(32, static_cast<char>(b));
        meta.signature = std::string(64, static_cast<char>(t));
        v1::BatchPayload payload;
        *payload.add_changes() = NewCase(Id(1000 * (t + 1) + b), Id(100000 * (t + 1) + b),
                                         "central", HlcAt(kStartMicros));
        absl::StatusOr<sync::PushResult> r = ingest_->Push(meta, payload);
        if (!r.ok()) {
          push_errors[t] = r.status();
          break;
        }
      }
      ++pushers_done;
    });
  }
  // Another appender: readers' access records, each new (its own entry).
  std::atomic<int> accesses{0};
  absl::Status access_error;
  threads.emplace_back([&] {
    for (uint64_t from = 0; pushers_done.load() < kPushers; from += 10) {
      AccessRead read;
      read.principal_id = "sup-1";
      read.principal_kind = PrincipalKind::kStaff;
      read.from_position = from;
      read.to_position = from + 10;
      Uuid c{};
      c[0] = static_cast<uint8_t>(from);
      read.changes.emplace_back(from + 1, c);
      absl::StatusOr<AccessRecorded> r = ledger_->Record(read);
      if (!r.ok()) {
        access_error = r.status();
        return;
      }
      ++accesses;
    }
  });
  // An administrator's commits whose handle ends before a slow step (as an
  // erasure's compaction): pushers never wait for the slow step.
  std::atomic<int> admin_events{0};
  absl::Status admin_error;
  threads.emplace_back([&] {
    while (pushers_done.load() < kPushers) {
      storage::WriteBatch batch;
      AuditSession session = log_->Begin(&batch);
      AdminAction action;
      action.actor = "fieldsync://staff/admin";
      action.action = "test.slow-step";
      absl::Status s = session.Append(Event{clock_.Now(), action}).status();
      if (s.ok()) s = store_->Commit(&batch);
      if (!s.ok()) {
        admin_error = s;
        return;
      }
      session.Committed();
      ++admin_events;
      absl::SleepFor(absl::Milliseconds(20));  // the slow step, outside the session
    }
  });
  for (std::thread& th : threads) th.join();

  for (const absl::Status& e : push_errors) EXPECT_THAT(e, IsOk());
  EXPECT_THAT(access_error, IsOk());
  EXPECT_THAT(admin_error, IsOk());
  const uint64_t expected = kPushers * kBatches + accesses.load() + admin_events.load();
  EXPECT_EQ(log_->size(), expected);
  // The tree the stored leaves make is the log's, and every batch's event
  // is there once, found by its batch id.
  Hash root;
  std::vector<Event> entries = Entries(&root);
  ASSERT_EQ(entries.size(), expected);
  EXPECT_EQ(root, log_->root());
  int batches = 0;
  for (const Event& e : entries) {
    if (const auto* b = std::get_if<BatchAccepted>(&e.body)) {
      ++batches;
      EXPECT_THAT(log_->IndexOfBatch(b->device_id, b->batch_id), IsOk());
    }
  }
  EXPECT_EQ(batches, kPushers * kBatches);
  // Proofs over the stored nodes verify against the root.
  for (uint64_t i = 0; i < expected; i += 17) {
    absl::StatusOr<std::vector<Hash>> proof = log_->InclusionProof(i, expected);
    ASSERT_THAT(proof, IsOk());
    absl::StatusOr<std::string> encoded = EncodeEvent(entries[i]);
    ASSERT_THAT(encoded, IsOk());
    EXPECT_THAT(VerifyInclusion(LeafHash(*encoded), i, expected, *proof, root), IsOk()) << i;
  }
  // Reopened from the store, the log is the same tree.
  const Hash before = log_->root();
  ledger_.reset();
  ingest_.reset();
  observer_.reset();
  log_.reset();
  OpenLogAndIngest();
  EXPECT_EQ(log_->size(), expected);
  EXPECT_EQ(log_->root(), before);
}

}  // namespace
}  // namespace fieldsync::audit
