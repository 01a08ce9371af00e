// The RocksDB-backed audit log: proofs equal the in-memory ones, restart,
// atomicity with the caller's change under injected faults, signed-head
// durability and the refusal to sign a head that does not extend the last.
#include "audit/log.h"

#include <filesystem>

#include "common/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "tests/audit/audit_test_util.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::audit {

using protocol::BatchAccepted;
using protocol::Checkpoint;
using protocol::CheckpointTimestamp;
using protocol::DecodeEvent;
using protocol::EmptyRoot;
using protocol::EncodeEvent;
using protocol::Event;
using protocol::Hash;
using protocol::kAuditSigningPurpose;
using protocol::KeyRotated;
using protocol::LeafHash;
using protocol::MemoryNodeSource;
using protocol::NoteSigner;
using protocol::NoteVerifier;
using protocol::OpenCheckpoint;
using protocol::RollbackAccepted;
using protocol::RootAt;
using protocol::SignCheckpoint;
using protocol::VerifyInclusion;

namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using storage::Cf;

constexpr std::string_view kOrigin = "audit.test.example/log";

NoteSigner MakeSigner(uint8_t fill = 7) {
  std::array<uint8_t, 32> seed;
  seed.fill(fill);
  return *NoteSigner::Create(kOrigin, seed);
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenAll(); }
  void TearDown() override { CloseAll(); }

  void OpenAll(rocksdb::Env* env = nullptr) {
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    options.env = env;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    OpenLog();
  }
  void OpenLog() {
    AuditLogOptions options;
    options.store = store_.get();
    options.clock = &clock_;
    options.signer = open_signer_;
    options.former_keys = former_keys_;
    options.head_file = dir_.Sub("audit-head.note");
    options.head_file_interval = head_file_interval_;
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
    ASSERT_THAT(log, IsOk());
    log_ = *std::move(log);
  }
  void CloseAll() {
    log_.reset();
    if (store_ != nullptr) (void)store_->Close();
    store_.reset();
  }

  // Appends `events` in one committed batch.
  void AppendCommitted(const std::vector<Event>& events) {
    storage::WriteBatch batch;
    AuditSession session(log_.get(), &batch);
    for (const Event& e : events) ASSERT_THAT(session.Append(e), IsOk());
    ASSERT_THAT(store_->Commit(&batch), IsOk());
    session.Committed();
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_;
  NoteSigner signer_ = MakeSigner();
  // What OpenLog gives the log: the key in force and the earlier ones.
  const NoteSigner* open_signer_ = &signer_;
  std::vector<NoteVerifier> former_keys_;
  absl::Duration head_file_interval_ = absl::ZeroDuration();
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditLogTest, AppendIsInvisibleUntilCommitted) {
  std::vector<Event> events = testing::MixedEvents(3);
  storage::WriteBatch batch;
  AuditSession session = log_->Begin(&batch);
  EXPECT_FALSE(session.holds_session());
  EXPECT_THAT(session.Append(events[0]), IsOkAndHolds(0u));
  EXPECT_TRUE(session.holds_session());
  EXPECT_THAT(session.Append(events[1]), IsOkAndHolds(1u));
  EXPECT_EQ(log_->size(), 0u);
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  session.Committed();
  EXPECT_FALSE(session.holds_session());
  EXPECT_EQ(log_->size(), 2u);
  // An ended handle appends nothing more.
  EXPECT_THAT(session.Append(events[2]), StatusIs(absl::StatusCode::kFailedPrecondition));
  MemoryNodeSource mem;
  mem.AppendLeaf(LeafHash(*EncodeEvent(events[0])));
  mem.AppendLeaf(LeafHash(*EncodeEvent(events[1])));
  EXPECT_EQ(log_->root(), mem.Root());
}

TEST_F(AuditLogTest, AbortPendingDropsTheLeavesAndReusesTheirIndexes) {
  std::vector<Event> events = testing::MixedEvents(3);
  {
    storage::WriteBatch batch;
    AuditSession session(log_.get(), &batch);
    ASSERT_THAT(session.Append(events[0]), IsOkAndHolds(0u));
  }  // not committed: aborted
  EXPECT_EQ(log_->size(), 0u);
  storage::WriteBatch batch;
  AuditSession session(log_.get(), &batch);
  EXPECT_THAT(session.Append(events[1]), IsOkAndHolds(0u));
  session.Abort();
  EXPECT_EQ(log_->size(), 0u);
}

TEST_F(AuditLogTest, TwoBatchesAtOneAddressAreTwoSessions) {
  // Sessions belong to handles, not to batch addresses: a handle that was
  // ended does not end (or join) the next one on a batch at that address.
  std::vector<Event> events = testing::MixedEvents(3);
  storage::WriteBatch batch;
  {
    AuditSession first(log_.get(), &batch);
    ASSERT_THAT(first.Append(events[0]), IsOkAndHolds(0u));
    AuditSession moved(std::move(first));
    EXPECT_FALSE(first.holds_session());
    first.Abort();  // the moved-from handle ends nothing
    EXPECT_TRUE(moved.holds_session());
    ASSERT_THAT(store_->Commit(&batch), IsOk());
    moved.Committed();
  }
  batch.Clear();
  AuditSession second(log_.get(), &batch);
  EXPECT_THAT(second.Append(events[1]), IsOkAndHolds(1u));
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  second.Committed();
  EXPECT_EQ(log_->size(), 2u);
}

TEST_F(AuditLogTest, AnOpenHandleMakesOthersWaitThenUnavailable) {
  std::vector<Event> events = testing::MixedEvents(2);
  storage::WriteBatch held_batch;
  AuditSession held(log_.get(), &held_batch);
  ASSERT_THAT(held.Append(events[0]), IsOk());
  storage::WriteBatch other_batch;
  AuditSession other(log_.get(), &other_batch);
  // Another handle waits (10 s) for the open one, then gives up with
  // nothing added.
  EXPECT_THAT(other.Append(events[1]), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(other_batch.Count(), 0);
  held.Abort();
  EXPECT_THAT(other.Append(events[1]), IsOkAndHolds(0u));
}

TEST_F(AuditLogTest, ProofsFromStorageEqualTheInMemoryOnes) {
  std::vector<Event> events = testing::MixedEvents(300);
  MemoryNodeSource mem;
  fieldsync::testing::SeededRandom rng;
  for (size_t i = 0; i < events.size();) {
    size_t n = std::min<size_t>(1 + rng.Uniform(9), events.size() - i);
    AppendCommitted({events.begin() + i, events.begin() + i + n});
    for (size_t j = i; j < i + n; ++j) mem.AppendLeaf(LeafHash(*EncodeEvent(events[j])));
    i += n;
  }
  ASSERT_EQ(log_->size(), 300u);
  int checked = 0;
  for (uint64_t size = 1; size <= 300; size += 1 + rng.Uniform(7)) {
    EXPECT_EQ(*log_->RootAt(size), *RootAt(mem, size));
    for (uint64_t i = 0; i < size; i += 1 + rng.Uniform(size)) {
      EXPECT_EQ(*log_->InclusionProof(i, size), *InclusionProof(mem, i, size));
      ++checked;
    }
    for (uint64_t s1 = 1; s1 <= size; s1 += 1 + rng.Uniform(size)) {
      EXPECT_EQ(*log_->ConsistencyProof(s1, size), *ConsistencyProof(mem, s1, size));
      ++checked;
    }
  }
  EXPECT_GT(checked, 200);
  EXPECT_THAT(log_->RootAt(301), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST_F(AuditLogTest, AppendAllStoresWhatAppendStores) {
  std::vector<Event> events = testing::MixedEvents(40);
  MemoryNodeSource mem;
  for (const Event& e : events) mem.AppendLeaf(LeafHash(*EncodeEvent(e)));
  storage::WriteBatch batch;
  AuditSession session(log_.get(), &batch);
  ASSERT_THAT(session.Append(events[0]), IsOkAndHolds(0u));

  EXPECT_THAT(session.AppendAll(std::span(events).subspan(1)), IsOkAndHolds(1u));

  ASSERT_THAT(store_->Commit(&batch), IsOk());
  session.Committed();
  EXPECT_EQ(log_->root(), mem.Root());
  EXPECT_EQ(*log_->InclusionProof(17, 40), *InclusionProof(mem, 17, 40));
  const auto& accepted = std::get<BatchAccepted>(events[4].body);
  EXPECT_THAT(log_->IndexOfBatch(accepted.device_id, accepted.batch_id), IsOkAndHolds(4u));
  EXPECT_THAT(log_->IndexOfLeafHash(LeafHash(*EncodeEvent(events[39]))), IsOkAndHolds(39u));
  CloseAll();
  OpenAll();  // the stored tree size covers every event
  EXPECT_EQ(log_->size(), 40u);
  EXPECT_EQ(log_->root(), mem.Root());
}

TEST_F(AuditLogTest, AppendAllOfNothingIsInvalidArgument) {
  storage::WriteBatch batch;
  AuditSession session(log_.get(), &batch);
  EXPECT_THAT(session.AppendAll({}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(batch.Count(), 0);
}

TEST_F(AuditLogTest, ReopenRestoresTheFrontierAndContinues) {
  std::vector<Event> events = testing::MixedEvents(100);
  MemoryNodeSource mem;
  for (size_t i = 0; i < 57; ++i) mem.AppendLeaf(LeafHash(*EncodeEvent(events[i])));
  AppendCommitted({events.begin(), events.begin() + 57});
  CloseAll();
  OpenAll();
  EXPECT_EQ(log_->size(), 57u);
  EXPECT_EQ(log_->root(), mem.Root());
  for (size_t i = 57; i < 100; ++i) mem.AppendLeaf(LeafHash(*EncodeEvent(events[i])));
  AppendCommitted({events.begin() + 57, events.end()});
  EXPECT_EQ(log_->root(), mem.Root());
}

TEST_F(AuditLogTest, LeafHashAndBatchIndexesFindTheEntry) {
  std::vector<Event> events = testing::MixedEvents(10);
  AppendCommitted(events);
  EXPECT_THAT(log_->IndexOfLeafHash(LeafHash(*EncodeEvent(events[7]))), IsOkAndHolds(7u));
  const auto& batch = std::get<BatchAccepted>(events[4].body);
  EXPECT_THAT(log_->IndexOfBatch(batch.device_id, batch.batch_id), IsOkAndHolds(4u));
  EXPECT_THAT(log_->IndexOfLeafHash(Hash{}), StatusIs(absl::StatusCode::kNotFound));
  std::vector<std::string> read;
  ASSERT_THAT(log_->ReadEntries(2, 6,
                                [&](uint64_t, std::string_view e) {
                                  read.emplace_back(e);
                                  return absl::OkStatus();
                                }),
              IsOk());
  ASSERT_EQ(read.size(), 4u);
  EXPECT_EQ(read[0], *EncodeEvent(events[2]));
}

TEST_F(AuditLogTest, ReceiptProvesTheBatchEventUnderASignedHead) {
  std::vector<Event> events = testing::MixedEvents(12);
  AppendCommitted(events);
  const auto& batch = std::get<BatchAccepted>(events[5].body);
  absl::StatusOr<Receipt> receipt = log_->ReceiptForBatch(batch.device_id, batch.batch_id);
  ASSERT_THAT(receipt, IsOk());
  EXPECT_EQ(receipt->leaf_index, 5u);
  absl::StatusOr<Checkpoint> cp = OpenCheckpoint(receipt->head.note, signer_.verifier());
  ASSERT_THAT(cp, IsOk());
  EXPECT_EQ(cp->size, 12u);
  EXPECT_THAT(
      VerifyInclusion(LeafHash(receipt->entry), 5, cp->size, receipt->inclusion_proof, cp->root),
      IsOk());
  EXPECT_THAT(DecodeEvent(receipt->entry), IsOkAndHolds(events[5]));
}

TEST_F(AuditLogTest, SignedHeadIsStoredBeforeItIsReturnedAndSurvivesReopen) {
  AppendCommitted(testing::MixedEvents(9));
  absl::StatusOr<SignedTreeHead> head = log_->SignTreeHead();
  ASSERT_THAT(head, IsOk());
  EXPECT_EQ(head->checkpoint.origin, kOrigin);
  EXPECT_EQ(head->checkpoint.size, 9u);
  EXPECT_THAT(CheckpointTimestamp(head->checkpoint), IsOkAndHolds(clock_.Now()));
  EXPECT_THAT(store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata)),
              IsOkAndHolds(head->note));
  EXPECT_EQ(fieldsync::testing::ReadFileOrDie(dir_.Sub("audit-head.note")), head->note);
  CloseAll();
  OpenAll();
  absl::StatusOr<SignedTreeHead> latest = log_->LatestSignedHead();
  ASSERT_THAT(latest, IsOk());
  EXPECT_EQ(latest->note, head->note);
}

// Appends `events` and signs the session's head in one committed batch.
SignedTreeHead CommitWithHead(AuditLog& log, storage::Store& store,
                              const std::vector<Event>& events) {
  storage::WriteBatch batch;
  AuditSession session(&log, &batch);
  for (const Event& e : events) EXPECT_THAT(session.Append(e), IsOk());
  EXPECT_THAT(session.SignHead(), IsOk());
  EXPECT_THAT(store.Commit(&batch), IsOk());
  session.Committed();
  return *log.LatestSignedHead();
}

TEST_F(AuditLogTest, SessionHeadCommitsWithItsLeavesAndServesTheirReceipts) {
  std::vector<Event> events = testing::MixedEvents(12);
  AppendCommitted({events.begin(), events.begin() + 4});

  SignedTreeHead head = CommitWithHead(*log_, *store_, {events.begin() + 4, events.end()});

  EXPECT_EQ(head.checkpoint.size, 12u);
  EXPECT_EQ(head.checkpoint.root, log_->root());
  // Stored by the leaves' own commit: nothing else wrote since.
  EXPECT_THAT(store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata)),
              IsOkAndHolds(head.note));
  EXPECT_EQ(fieldsync::testing::ReadFileOrDie(dir_.Sub("audit-head.note")), head.note);
  // A receipt uses it rather than signing another (which would carry the
  // later time).
  clock_.Advance(absl::Seconds(30));
  const auto& batch = std::get<BatchAccepted>(events[5].body);
  absl::StatusOr<Receipt> receipt = log_->ReceiptForBatch(batch.device_id, batch.batch_id);
  ASSERT_THAT(receipt, IsOk());
  EXPECT_EQ(receipt->head.note, head.note);
  absl::StatusOr<Checkpoint> cp = OpenCheckpoint(receipt->head.note, signer_.verifier());
  ASSERT_THAT(cp, IsOk());
  EXPECT_THAT(
      VerifyInclusion(LeafHash(receipt->entry), 5, cp->size, receipt->inclusion_proof, cp->root),
      IsOk());
  // The next head extends it, never goes back in time, and survives a
  // reopen as the last head.
  SignedTreeHead next = CommitWithHead(*log_, *store_, {testing::MixedEvents(13)[12]});
  EXPECT_EQ(next.checkpoint.size, 13u);
  EXPECT_THAT(CheckpointTimestamp(next.checkpoint), IsOkAndHolds(clock_.Now()));
  CloseAll();
  OpenAll();
  EXPECT_THAT(log_->UnextendedHeads(), IsOkAndHolds(::testing::IsEmpty()));
  EXPECT_EQ(log_->LatestSignedHead()->note, next.note);
}

TEST_F(AuditLogTest, SessionHeadOfAnUncommittedSessionIsNeverPublished) {
  std::vector<Event> events = testing::MixedEvents(3);
  SignedTreeHead first = CommitWithHead(*log_, *store_, {events[0]});
  {
    storage::WriteBatch batch;
    AuditSession session(log_.get(), &batch);
    ASSERT_THAT(session.Append(events[1]), IsOk());
    ASSERT_THAT(session.SignHead(), IsOk());
  }  // the commit failed: aborted

  EXPECT_EQ(log_->LatestSignedHead()->note, first.note);
  // Signing goes on (nothing waits for the dropped head), in size order.
  AppendCommitted({events[2]});
  absl::StatusOr<SignedTreeHead> signed_head = log_->SignTreeHead();
  ASSERT_THAT(signed_head, IsOk());
  EXPECT_EQ(signed_head->checkpoint.size, 2u);
}

TEST_F(AuditLogTest, HeadFilesGetSessionHeadsAtMostOncePerInterval) {
  CloseAll();
  head_file_interval_ = absl::Minutes(1);
  OpenAll();
  std::vector<Event> events = testing::MixedEvents(3);
  const std::string head_file = dir_.Sub("audit-head.note");
  SignedTreeHead first = CommitWithHead(*log_, *store_, {events[0]});
  EXPECT_EQ(fieldsync::testing::ReadFileOrDie(head_file), first.note);

  clock_.Advance(absl::Seconds(10));
  SignedTreeHead second = CommitWithHead(*log_, *store_, {events[1]});

  // Held back: the store holds the newer head, the file the older one,
  // which the tree extends.
  EXPECT_EQ(fieldsync::testing::ReadFileOrDie(head_file), first.note);
  EXPECT_THAT(store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata)),
              IsOkAndHolds(second.note));
  log_->WriteHeadFilesIfBehind();
  EXPECT_EQ(fieldsync::testing::ReadFileOrDie(head_file), second.note);
  clock_.Advance(absl::Minutes(1));
  SignedTreeHead third = CommitWithHead(*log_, *store_, {events[2]});
  EXPECT_EQ(fieldsync::testing::ReadFileOrDie(head_file), third.note);
}

TEST_F(AuditLogTest, SessionHeadIsRefusedAfterARestoreFromAnOlderCheckpoint) {
  std::vector<Event> events = testing::MixedEvents(30);
  AppendCommitted({events.begin(), events.begin() + 10});
  ASSERT_THAT(store_->CreateCheckpoint(dir_.Sub("backup")), IsOk());
  CommitWithHead(*log_, *store_, {events.begin() + 10, events.begin() + 20});  // published: 20
  CloseAll();
  std::filesystem::remove_all(dir_.Sub("db"));
  std::filesystem::rename(dir_.Sub("backup"), dir_.Sub("db"));
  OpenAll();

  storage::WriteBatch batch;
  AuditSession session(log_.get(), &batch);
  ASSERT_THAT(session.Append(events[25]), IsOk());
  const int ops = batch.Count();
  EXPECT_THAT(session.SignHead(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(batch.Count(), ops);  // no head added
}

TEST_F(AuditLogTest, MaybeSignTreeHeadReusesTheHeadUntilTheTreeGrows) {
  AppendCommitted(testing::MixedEvents(3));
  absl::StatusOr<SignedTreeHead> a = log_->MaybeSignTreeHead();
  ASSERT_THAT(a, IsOk());
  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<SignedTreeHead> b = log_->MaybeSignTreeHead();
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->note, b->note);
  AppendCommitted({testing::MixedEvents(4)[3]});
  absl::StatusOr<SignedTreeHead> c = log_->MaybeSignTreeHead();
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->checkpoint.size, 4u);
}

TEST_F(AuditLogTest, RefusesToSignAfterRestoreFromAnOlderCheckpoint) {
  std::vector<Event> events = testing::MixedEvents(40);
  AppendCommitted({events.begin(), events.begin() + 10});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  ASSERT_THAT(store_->CreateCheckpoint(dir_.Sub("backup")), IsOk());
  AppendCommitted({events.begin() + 10, events.begin() + 20});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());  // published: size 20
  CloseAll();

  // The operator restores the old backup over the store.
  std::filesystem::remove_all(dir_.Sub("db"));
  std::filesystem::rename(dir_.Sub("backup"), dir_.Sub("db"));
  OpenAll();
  EXPECT_EQ(log_->size(), 10u);
  EXPECT_THAT(log_->SignTreeHead(), StatusIs(absl::StatusCode::kFailedPrecondition));

  // Growing the restored tree to the old size with other events is a fork.
  AppendCommitted({events.begin() + 25, events.begin() + 35});
  EXPECT_EQ(log_->size(), 20u);
  EXPECT_THAT(log_->SignTreeHead(), StatusIs(absl::StatusCode::kFailedPrecondition));
  AppendCommitted({events.begin() + 35, events.end()});
  EXPECT_THAT(log_->SignTreeHead(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(AuditLogTest, UnextendedHeadsNamesTheNewerHeadAfterARestore) {
  std::vector<Event> events = testing::MixedEvents(20);
  AppendCommitted({events.begin(), events.begin() + 10});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  EXPECT_THAT(log_->UnextendedHeads(), IsOkAndHolds(::testing::IsEmpty()));
  ASSERT_THAT(store_->CreateCheckpoint(dir_.Sub("backup")), IsOk());
  AppendCommitted({events.begin() + 10, events.end()});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  CloseAll();
  std::filesystem::remove_all(dir_.Sub("db"));
  std::filesystem::rename(dir_.Sub("backup"), dir_.Sub("db"));
  OpenAll();

  absl::StatusOr<std::vector<UnextendedHead>> heads = log_->UnextendedHeads();

  ASSERT_THAT(heads, IsOk());
  ASSERT_EQ(heads->size(), 1u);
  EXPECT_EQ((*heads)[0].checkpoint.size, 20u);
  EXPECT_EQ((*heads)[0].where, dir_.Sub("audit-head.note"));
  EXPECT_TRUE((*heads)[0].is_rollback);
}

TEST_F(AuditLogTest, AcceptedRollbackIsAnEntryAndItsHeadsAreNotReportedAgain) {
  std::vector<Event> events = testing::MixedEvents(20);
  AppendCommitted({events.begin(), events.begin() + 10});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  ASSERT_THAT(store_->CreateCheckpoint(dir_.Sub("backup")), IsOk());
  AppendCommitted({events.begin() + 10, events.end()});
  absl::StatusOr<SignedTreeHead> abandoned = log_->SignTreeHead();
  ASSERT_THAT(abandoned, IsOk());
  CloseAll();
  std::filesystem::remove_all(dir_.Sub("db"));
  std::filesystem::rename(dir_.Sub("backup"), dir_.Sub("db"));
  OpenAll();
  const Hash continued_root = log_->root();

  EXPECT_THAT(log_->AcceptRollback(11, "local-operator:uid=0"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(log_->size(), 10u);
  absl::StatusOr<SignedTreeHead> head = log_->AcceptRollback(10, "local-operator:uid=0");

  ASSERT_THAT(head, IsOk());
  EXPECT_EQ(head->checkpoint.size, 11u);
  EXPECT_THAT(ReadFile(dir_.Sub("audit-head.note")), IsOkAndHolds(head->note));
  std::string entry;
  ASSERT_THAT(log_->ReadEntries(10, 11,
                                [&](uint64_t, std::string_view e) {
                                  entry = std::string(e);
                                  return absl::OkStatus();
                                }),
              IsOk());
  absl::StatusOr<Event> event = DecodeEvent(entry);
  ASSERT_THAT(event, IsOk());
  const auto* accepted = std::get_if<RollbackAccepted>(&event->body);
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->continued_size, 10u);
  EXPECT_EQ(accepted->continued_root, continued_root);
  EXPECT_EQ(accepted->abandoned_heads, std::vector<std::string>{abandoned->note});
  // Nothing left to accept.
  EXPECT_THAT(log_->AcceptRollback(11, "local-operator:uid=0"),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // Had the process stopped before the new head reached the head file, the
  // abandoned head found there again is known as abandoned.
  CloseAll();
  std::filesystem::remove(dir_.Sub("audit-head.note"));
  ASSERT_THAT(WriteNewFile(dir_.Sub("audit-head.note"), abandoned->note, 0644), IsOk());
  OpenAll();
  EXPECT_THAT(log_->UnextendedHeads(), IsOkAndHolds(::testing::IsEmpty()));
  AppendCommitted({events.begin(), events.begin() + 2});
  absl::StatusOr<SignedTreeHead> next = log_->SignTreeHead();
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(next->checkpoint.size, 13u);
}

TEST_F(AuditLogTest, HeadCopyFileIsWrittenAndCatchesARestoredHeadFile) {
  CloseAll();
  storage::StoreOptions store_options;
  store_options.path = dir_.Sub("db");
  store_options.create_if_missing = true;
  store_ = *storage::Store::Open(store_options);
  AuditLogOptions options;
  options.store = store_.get();
  options.clock = &clock_;
  options.signer = &signer_;
  options.head_file = dir_.Sub("audit-head.note");
  options.head_copy_file = dir_.Sub("copy.note");
  log_ = *AuditLog::Open(options);
  std::vector<Event> events = testing::MixedEvents(8);
  AppendCommitted({events.begin(), events.begin() + 4});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  const std::string old_head = *ReadFile(dir_.Sub("audit-head.note"));
  ASSERT_THAT(store_->CreateCheckpoint(dir_.Sub("backup")), IsOk());
  AppendCommitted({events.begin() + 4, events.end()});
  absl::StatusOr<SignedTreeHead> newer = log_->SignTreeHead();
  ASSERT_THAT(newer, IsOk());
  EXPECT_THAT(ReadFile(dir_.Sub("copy.note")), IsOkAndHolds(newer->note));
  log_.reset();
  (void)store_->Close();
  store_.reset();
  // The store and the head file both from the older state.
  std::filesystem::remove_all(dir_.Sub("db"));
  std::filesystem::rename(dir_.Sub("backup"), dir_.Sub("db"));
  std::filesystem::remove(dir_.Sub("audit-head.note"));
  ASSERT_THAT(WriteNewFile(dir_.Sub("audit-head.note"), old_head, 0644), IsOk());
  store_ = *storage::Store::Open(store_options);
  options.store = store_.get();
  log_ = *AuditLog::Open(options);

  absl::StatusOr<std::vector<UnextendedHead>> heads = log_->UnextendedHeads();

  ASSERT_THAT(heads, IsOk());
  ASSERT_EQ(heads->size(), 1u);
  EXPECT_EQ((*heads)[0].where, dir_.Sub("copy.note"));
  EXPECT_EQ((*heads)[0].checkpoint.size, 8u);
  EXPECT_THAT(log_->SignTreeHead(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(AuditLogTest, SignsAgainAfterAnExtension) {
  std::vector<Event> events = testing::MixedEvents(30);
  AppendCommitted({events.begin(), events.begin() + 7});
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  AppendCommitted({events.begin() + 7, events.end()});
  absl::StatusOr<SignedTreeHead> head = log_->SignTreeHead();
  ASSERT_THAT(head, IsOk());
  EXPECT_EQ(head->checkpoint.size, 30u);
}

TEST_F(AuditLogTest, RefusesAHeadFileSignedByAnotherKey) {
  NoteSigner other = MakeSigner(9);
  Checkpoint cp{std::string(kOrigin), 0, EmptyRoot(), {}};
  ASSERT_THAT(WriteNewFile(dir_.Sub("audit-head.note"), *SignCheckpoint(cp, other), 0644), IsOk());
  EXPECT_THAT(log_->SignTreeHead(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(AuditLogTest, OpenFindsAMissingLeafAsDataLoss) {
  AppendCommitted(testing::MixedEvents(5));
  storage::WriteBatch batch;
  batch.Delete(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(4));
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  AuditLogOptions options;
  options.store = store_.get();
  options.clock = &clock_;
  EXPECT_THAT(AuditLog::Open(options), StatusIs(absl::StatusCode::kDataLoss));
}

// A failure injected at every write of a commit: after a reopen, the
// change and its audit event are both there or both absent, and the log
// opens with exactly one leaf per committed change.
TEST_F(AuditLogTest, FailureAtAnyWriteNeverSplitsAChangeFromItsEvent) {
  CloseAll();
  std::vector<Event> events = testing::MixedEvents(64);
  int injected = 0;
  for (int64_t fail_after = 0; fail_after < 8; ++fail_after) {
    for (bool fail_sync : {false, true}) {
      std::filesystem::remove_all(dir_.Sub("db"));
      std::filesystem::remove(dir_.Sub("audit-head.note"));
      auto fs = std::make_shared<fieldsync::testing::FaultyFileSystem>();
      std::unique_ptr<rocksdb::Env> env = fieldsync::testing::NewFaultyEnv(fs);
      OpenAll(env.get());
      uint64_t committed_changes = 0;
      for (int round = 0; round < 6; ++round) {
        if (round == 3) {
          if (fail_sync) {
            fs->FailSyncs(true);
          } else {
            fs->FailAfterNWrites(fail_after);
          }
        }
        storage::WriteBatch batch;
        AuditSession session(log_.get(), &batch);
        batch.Put(Cf::kRecords, "change-" + std::to_string(round), "v");
        ASSERT_THAT(session.Append(events[round]), IsOk());
        if (store_->Commit(&batch).ok()) {
          session.Committed();
          ++committed_changes;
        } else {
          ++injected;
        }
      }
      EXPECT_EQ(log_->size(), committed_changes);
      CloseAll();
      fs->Reset();
      OpenAll(env.get());
      uint64_t present = 0;
      for (int round = 0; round < 6; ++round) {
        if (store_->Get(Cf::kRecords, "change-" + std::to_string(round)).ok()) ++present;
      }
      EXPECT_EQ(log_->size(), present) << "fail_after " << fail_after << " sync " << fail_sync;
      for (uint64_t i = 0; i < present; ++i) {
        EXPECT_THAT(log_->InclusionProof(i, present), IsOk());
        EXPECT_TRUE(store_->Get(Cf::kRecords, "change-" + std::to_string(i)).ok());
      }
      CloseAll();
    }
  }
  EXPECT_GT(injected, 0);
  std::printf("injected %d commit failures\n", injected);
}

// --- Signing key rotation (docs/AUDIT.md §9) ---------------------------------

KeyRotated RotationTo(const NoteSigner& next) {
  const auto& pk = next.verifier().public_key();
  return KeyRotated{"fieldsync://staff/admin", std::string(kAuditSigningPurpose), 1, 2,
                    std::string(pk.begin(), pk.end())};
}

std::unique_ptr<NoteSigner> OwnedSigner(uint8_t fill) {
  return std::make_unique<NoteSigner>(MakeSigner(fill));
}

TEST_F(AuditLogTest, RotationSignsTheTransitionHeadWithBothKeysAndLaterHeadsWithTheNewOne) {
  AppendCommitted(testing::MixedEvents(10));
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  const NoteSigner next = MakeSigner(11);
  storage::WriteBatch batch;
  batch.Put(Cf::kMetadata, storage::EncodeMetadataKey("caller/key"), "stored with the event");
  absl::StatusOr<KeyTransition> t =
      log_->RotateSigningKey(OwnedSigner(11), RotationTo(next), &batch);
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(t->leaf_index, 10u);
  EXPECT_EQ(t->head.checkpoint.size, 11u);
  EXPECT_EQ(t->new_version, 2u);
  // One commit: the caller's key, the event, the head.
  EXPECT_THAT(store_->Get(Cf::kMetadata, storage::EncodeMetadataKey("caller/key")), IsOk());
  EXPECT_THAT(OpenCheckpoint(t->head.note, signer_.verifier()), IsOk());
  EXPECT_THAT(OpenCheckpoint(t->head.note, next.verifier()), IsOk());
  EXPECT_THAT(DecodeEvent(t->entry), IsOk());
  EXPECT_THAT(
      VerifyInclusion(LeafHash(t->entry), 10, 11, t->inclusion_proof, t->head.checkpoint.root),
      IsOk());
  EXPECT_THAT(ReadFile(dir_.Sub("audit-head.note")), IsOkAndHolds(t->head.note));
  EXPECT_THAT(log_->CurrentKey(), IsOk());
  EXPECT_EQ(log_->CurrentKey()->key_id(), next.verifier().key_id());

  AppendCommitted(testing::MixedEvents(3));
  absl::StatusOr<SignedTreeHead> later = log_->SignTreeHead();
  ASSERT_THAT(later, IsOk());
  EXPECT_THAT(OpenCheckpoint(later->note, next.verifier()), IsOk());
  EXPECT_THAT(OpenCheckpoint(later->note, signer_.verifier()),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AuditLogTest, ReceiptsCarryTheKeyTransitions) {
  std::vector<Event> events = testing::MixedEvents(12);
  AppendCommitted(events);
  storage::WriteBatch batch;
  ASSERT_THAT(log_->RotateSigningKey(OwnedSigner(11), RotationTo(MakeSigner(11)), &batch), IsOk());
  const auto& b = std::get<BatchAccepted>(events[5].body);
  absl::StatusOr<Receipt> receipt = log_->ReceiptForBatch(b.device_id, b.batch_id);
  ASSERT_THAT(receipt, IsOk());
  ASSERT_EQ(receipt->key_transitions.size(), 1u);
  EXPECT_EQ(receipt->key_transitions[0].leaf_index, 12u);
  EXPECT_THAT(OpenCheckpoint(receipt->head.note, MakeSigner(11).verifier()), IsOk());
}

TEST_F(AuditLogTest, ARotationSurvivesReopenAndAHeadFileOfTheOldKeyStillCounts) {
  AppendCommitted(testing::MixedEvents(6));
  ASSERT_THAT(log_->SignTreeHead(), IsOk());
  const std::string old_head = *ReadFile(dir_.Sub("audit-head.note"));
  storage::WriteBatch batch;
  NoteSigner next = MakeSigner(11);
  ASSERT_THAT(log_->RotateSigningKey(OwnedSigner(11), RotationTo(next), &batch), IsOk());
  AppendCommitted(testing::MixedEvents(2));

  // Restarted with the new key in force; the head file is put back to the
  // one signed before the rotation (as after a crash before it was
  // rewritten): it is the log's own, and the tree extends it.
  CloseAll();
  ASSERT_THAT(WriteNewFile(dir_.Sub("audit-head.note.tmp"), old_head, 0644), IsOk());
  std::filesystem::rename(dir_.Sub("audit-head.note.tmp"), dir_.Sub("audit-head.note"));
  open_signer_ = &next;
  former_keys_ = {signer_.verifier()};
  OpenAll();
  EXPECT_THAT(log_->UnextendedHeads(), IsOkAndHolds(::testing::IsEmpty()));
  ASSERT_EQ(log_->KeyTransitions().size(), 1u);
  EXPECT_EQ(log_->KeyTransitions()[0].leaf_index, 6u);
  absl::StatusOr<SignedTreeHead> head = log_->SignTreeHead();
  ASSERT_THAT(head, IsOk());
  EXPECT_EQ(head->checkpoint.size, 9u);
  EXPECT_THAT(OpenCheckpoint(head->note, next.verifier()), IsOk());

  // Without the former key, the old head file is not the log's.
  CloseAll();
  ASSERT_THAT(WriteNewFile(dir_.Sub("audit-head.note.tmp"), old_head, 0644), IsOk());
  std::filesystem::rename(dir_.Sub("audit-head.note.tmp"), dir_.Sub("audit-head.note"));
  former_keys_.clear();
  OpenAll();
  EXPECT_THAT(log_->UnextendedHeads(), StatusIs(absl::StatusCode::kFailedPrecondition));
  open_signer_ = &signer_;
}

TEST_F(AuditLogTest, ARotationIsRefusedForAReusedKeyOrAnotherPurpose) {
  AppendCommitted(testing::MixedEvents(3));
  storage::WriteBatch batch;
  EXPECT_THAT(log_->RotateSigningKey(OwnedSigner(7), RotationTo(signer_), &batch),
              StatusIs(absl::StatusCode::kInvalidArgument));
  KeyRotated kek = RotationTo(MakeSigner(11));
  kek.purpose = "kek";
  EXPECT_THAT(log_->RotateSigningKey(OwnedSigner(11), kek, &batch),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // The event names another key than the one given.
  EXPECT_THAT(log_->RotateSigningKey(OwnedSigner(12), RotationTo(MakeSigner(11)), &batch),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(log_->size(), 3u);
  EXPECT_TRUE(log_->KeyTransitions().empty());
}

TEST_F(AuditLogTest, ADetachedHeadBeforeARotationIsRefused) {
  AppendCommitted(testing::MixedEvents(5));
  Checkpoint at3{"", 3, *log_->RootAt(3), {}};
  EXPECT_THAT(log_->SignDetachedHead(at3), IsOk());
  storage::WriteBatch batch;
  ASSERT_THAT(log_->RotateSigningKey(OwnedSigner(11), RotationTo(MakeSigner(11)), &batch), IsOk());
  EXPECT_THAT(log_->SignDetachedHead(at3), StatusIs(absl::StatusCode::kAborted));
  Checkpoint at6{"", 6, *log_->RootAt(6), {}};
  absl::StatusOr<SignedTreeHead> after = log_->SignDetachedHead(at6);
  ASSERT_THAT(after, IsOk());
  EXPECT_THAT(OpenCheckpoint(after->note, MakeSigner(11).verifier()), IsOk());
}

}  // namespace
}  // namespace fieldsync::audit
