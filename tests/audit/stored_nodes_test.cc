// The stored tree nodes and their in-memory cache of the upper levels: the
// cache never changes an answer (roots and proofs equal the in-memory tree's
// for every cache level, before and after a reopen, across commits that
// cross the cached/uncached boundary, with a reader running during appends),
// and a missing cached node is caught at open.
#include "audit/stored_nodes.h"

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/str_format.h"
#include "audit/log.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "tests/audit/audit_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::audit {

using protocol::CompactMerkleTree;
using protocol::EncodeEvent;
using protocol::Event;
using protocol::Hash;
using protocol::HashBytes;
using protocol::LeafHash;
using protocol::MemoryNodeSource;
using protocol::RootAt;
using protocol::StoredNode;
using protocol::VerifyConsistency;
using protocol::VerifyInclusion;

namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using storage::Cf;

// Complete subtrees of a tree of `size` leaves at `level` and above.
uint64_t NodesAtOrAbove(uint64_t size, int level) {
  uint64_t count = 0;
  for (int l = level; l < 64; ++l) count += size >> l;
  return count;
}

class StoredNodesTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }
  void TearDown() override { CloseAll(); }

  void OpenStore() {
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }
  // A small recent window (16 leaves), so that 700 leaves cross it.
  absl::Status OpenLog(int cached_node_min_level, uint64_t recent_leaves = 16) {
    AuditLogOptions options;
    options.store = store_.get();
    options.clock = &clock_;
    options.cached_node_min_level = cached_node_min_level;
    options.cached_recent_leaves = recent_leaves;
    ASSIGN_OR_RETURN(log_, AuditLog::Open(options));
    return absl::OkStatus();
  }
  void CloseAll() {
    log_.reset();
    if (store_ != nullptr) (void)store_->Close();
    store_.reset();
  }
  void Reopen(int cached_node_min_level) {
    CloseAll();
    OpenStore();
    ASSERT_THAT(OpenLog(cached_node_min_level), IsOk());
  }

  // Appends events_[from, to) in one committed batch, and to mem_.
  void AppendCommitted(size_t from, size_t to) {
    storage::WriteBatch batch;
    AuditSession session(log_.get(), &batch);
    for (size_t i = from; i < to; ++i) ASSERT_THAT(session.Append(events_[i]), IsOk());
    ASSERT_THAT(store_->Commit(&batch), IsOk());
    session.Committed();
    for (size_t i = from; i < to; ++i) mem_.AppendLeaf(leaf_hashes_[i]);
  }
  // Appends all of events_ in commits of 1 to 40 leaves.
  void AppendAllInRandomCommits() {
    for (size_t i = 0; i < events_.size();) {
      const size_t n = std::min<size_t>(1 + rng_.Uniform(40), events_.size() - i);
      AppendCommitted(i, i + n);
      i += n;
    }
  }
  // Compares the log's roots and proofs at sizes spread over [1, size())
  // with mem_'s; returns how many it compared.
  int ExpectProofsEqualMemory() {
    const uint64_t n = log_->size();
    int checked = 0;
    for (uint64_t size = 1; size <= n; size += 1 + rng_.Uniform(n / 8 + 1)) {
      EXPECT_EQ(*log_->RootAt(size), *RootAt(mem_, size)) << size;
      for (uint64_t i = 0; i < size; i += 1 + rng_.Uniform(size / 4 + 1)) {
        EXPECT_EQ(*log_->InclusionProof(i, size), *InclusionProof(mem_, i, size));
        EXPECT_EQ(*log_->ConsistencyProof(i + 1, size), *ConsistencyProof(mem_, i + 1, size));
        checked += 2;
      }
    }
    return checked;
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_;
  fieldsync::testing::SeededRandom rng_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<AuditLog> log_;
  std::vector<Event> events_ = testing::MixedEvents(700);
  std::vector<Hash> leaf_hashes_ = [this] {
    std::vector<Hash> out;
    for (const Event& e : events_) out.push_back(LeafHash(*EncodeEvent(e)));
    return out;
  }();
  MemoryNodeSource mem_;
};

TEST_F(StoredNodesTest, EveryCacheLevelGivesTheInMemoryProofs) {
  for (auto [level, recent] : std::vector<std::pair<int, uint64_t>>{
           {0, 0}, {1, 16}, {3, 0}, {3, 64}, {6, 4096}, {kNoNodeCache, 0}, {kNoNodeCache, 32}}) {
    SCOPED_TRACE(absl::StrFormat("level %d, recent leaves %d", level, recent));
    CloseAll();
    std::filesystem::remove_all(dir_.Sub("db"));
    mem_ = MemoryNodeSource();
    OpenStore();
    ASSERT_THAT(OpenLog(level, recent), IsOk());

    AppendAllInRandomCommits();

    ASSERT_EQ(log_->size(), events_.size());
    EXPECT_EQ(log_->root(), mem_.Root());
    EXPECT_GT(ExpectProofsEqualMemory(), 100);
  }
}

TEST_F(StoredNodesTest, ProofsAfterReopenEqualThoseBefore) {
  ASSERT_THAT(OpenLog(3), IsOk());
  AppendAllInRandomCommits();
  std::vector<std::vector<Hash>> before;
  for (uint64_t size : {1u, 8u, 255u, 256u, 257u, 699u, 700u}) {
    before.push_back(*log_->InclusionProof(size / 2, size));
    before.push_back(*log_->ConsistencyProof(size / 3 + 1, size));
    before.push_back({*log_->RootAt(size)});
  }

  Reopen(3);

  std::vector<std::vector<Hash>> after;
  for (uint64_t size : {1u, 8u, 255u, 256u, 257u, 699u, 700u}) {
    after.push_back(*log_->InclusionProof(size / 2, size));
    after.push_back(*log_->ConsistencyProof(size / 3 + 1, size));
    after.push_back({*log_->RootAt(size)});
  }
  EXPECT_EQ(after, before);
  EXPECT_EQ(log_->root(), mem_.Root());
}

TEST_F(StoredNodesTest, CacheFollowsAppendsAfterReopen) {
  ASSERT_THAT(OpenLog(2), IsOk());
  AppendCommitted(0, 301);
  Reopen(2);

  // Commits of 1..40 leaves cross level-2+ node boundaries in every way;
  // after each, a proof at the new size touches its newest nodes.
  for (size_t i = 301; i < events_.size();) {
    const size_t n = std::min<size_t>(1 + rng_.Uniform(40), events_.size() - i);
    AppendCommitted(i, i + n);
    i += n;
    const uint64_t size = log_->size();
    const uint64_t index = rng_.Uniform(size);
    ASSERT_EQ(*log_->InclusionProof(index, size), *InclusionProof(mem_, index, size)) << size;
    ASSERT_EQ(*log_->ConsistencyProof(size - n, size), *ConsistencyProof(mem_, size - n, size))
        << size;
  }
  EXPECT_EQ(log_->root(), mem_.Root());
  EXPECT_GT(ExpectProofsEqualMemory(), 100);
}

TEST_F(StoredNodesTest, AbortedSessionLeavesNothingInTheCache) {
  ASSERT_THAT(OpenLog(1), IsOk());
  AppendCommitted(0, 5);
  {
    // Other events at indexes 5..24: their nodes must not be cached.
    storage::WriteBatch batch;
    AuditSession session(log_.get(), &batch);
    for (size_t i = 600; i < 620; ++i) ASSERT_THAT(session.Append(events_[i]), IsOk());
  }  // aborted

  AppendCommitted(5, 40);

  EXPECT_EQ(log_->root(), mem_.Root());
  EXPECT_GT(ExpectProofsEqualMemory(), 20);
}

TEST_F(StoredNodesTest, ReaderDuringAppendsGetsProofsOfTheSizeItAsked) {
  ASSERT_THAT(OpenLog(2), IsOk());
  AppendCommitted(0, 1);
  std::atomic<bool> done{false};
  std::atomic<int> verified{0};
  std::atomic<int> failures{0};
  std::thread reader([&] {
    fieldsync::testing::SeededRandom rng;
    uint64_t last_size = 1;
    Hash last_root = leaf_hashes_[0];
    while (!done.load() || verified.load() < 50) {
      const uint64_t size = log_->size();
      absl::StatusOr<Hash> root = log_->RootAt(size);
      const uint64_t index = rng.Uniform(size);
      absl::StatusOr<std::vector<Hash>> inclusion = log_->InclusionProof(index, size);
      absl::StatusOr<std::vector<Hash>> consistency = log_->ConsistencyProof(last_size, size);
      if (!root.ok() || !inclusion.ok() || !consistency.ok() ||
          !VerifyInclusion(leaf_hashes_[index], index, size, *inclusion, *root).ok() ||
          !VerifyConsistency(last_size, size, *consistency, last_root, *root).ok()) {
        failures.fetch_add(1);
      }
      last_size = size;
      if (root.ok()) last_root = *root;
      verified.fetch_add(1);
    }
  });

  for (size_t i = 1; i < events_.size();) {
    const size_t n = std::min<size_t>(1 + rng_.Uniform(12), events_.size() - i);
    AppendCommitted(i, i + n);
    i += n;
  }
  done.store(true);
  reader.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(verified.load(), 50);
}

TEST_F(StoredNodesTest, LoadCacheReadsTheCachedLevelsAndTheRecentWindow) {
  constexpr uint64_t kSize = 1000;
  for (size_t i = 0; i < kSize; ++i) mem_.AppendLeaf(leaf_hashes_[i % leaf_hashes_.size()]);
  storage::WriteBatch batch;
  for (uint64_t level = 0; level < 10; ++level) {
    for (uint64_t i = 0; i < (kSize >> level); ++i) {
      batch.Put(Cf::kAuditNodes, storage::EncodeAuditNodeKey(level, i),
                HashBytes(*mem_.Node({level, i})));
    }
  }
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  StoredNodeSource nodes(store_.get(), 3, /*recent_leaves=*/64);

  ASSERT_THAT(nodes.LoadCache(kSize), IsOk());

  // Levels 0..2 keep the nodes over the last 64 leaves: 64 + 32 + 16.
  EXPECT_EQ(nodes.cached_nodes(), NodesAtOrAbove(kSize, 3) + 64 + 32 + 16);
  for (uint64_t level = 0; level < 10; ++level) {
    for (uint64_t i = 0; i < (kSize >> level); ++i) {
      EXPECT_THAT(nodes.Node({level, i}), IsOkAndHolds(*mem_.Node({level, i})));
    }
  }
  EXPECT_THAT(nodes.Node({2, 250}), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(nodes.Node({64, 0}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(StoredNodesTest, RecentWindowSlidesWithAppends) {
  StoredNodeSource nodes(store_.get(), kNoNodeCache, /*recent_leaves=*/8);
  CompactMerkleTree tree;
  std::vector<StoredNode> created;
  for (size_t i = 0; i < 37; ++i) {
    ASSERT_THAT(tree.Append(leaf_hashes_[i], &created), IsOk());
    mem_.AppendLeaf(leaf_hashes_[i]);
  }
  storage::WriteBatch batch;
  for (const StoredNode& node : created) {
    batch.Put(Cf::kAuditNodes, storage::EncodeAuditNodeKey(node.id.level, node.id.index),
              HashBytes(node.hash));
  }
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  nodes.AddCommitted(created);

  // Each level l keeps its newest 8 >> l nodes: 8 leaves, 4 pairs, 2
  // quads, 1 node of 8; nothing above.
  EXPECT_EQ(nodes.cached_nodes(), 8u + 4u + 2u + 1u);
  for (const StoredNode& node : created) {
    EXPECT_THAT(nodes.Node(node.id), IsOkAndHolds(node.hash));
  }
  EXPECT_THAT(RootAt(nodes, 37), IsOkAndHolds(mem_.Root()));
}

TEST_F(StoredNodesTest, MissingCachedNodeIsDataLossAtOpen) {
  ASSERT_THAT(OpenLog(3), IsOk());
  AppendCommitted(0, 100);
  log_.reset();
  storage::WriteBatch batch;
  batch.Delete(Cf::kAuditNodes, storage::EncodeAuditNodeKey(4, 2));
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  EXPECT_THAT(OpenLog(3), StatusIs(absl::StatusCode::kDataLoss));
  // Without a cache the node is only needed by proofs that cover it.
  ASSERT_THAT(OpenLog(kNoNodeCache), IsOk());
  EXPECT_THAT(log_->InclusionProof(48, 100), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(StoredNodesTest, NodesOutOfOrderAreNotCachedButStayReadable) {
  for (size_t i = 0; i < 16; ++i) mem_.AppendLeaf(leaf_hashes_[i]);
  storage::WriteBatch batch;
  for (uint64_t i = 0; i < 8; ++i) {
    batch.Put(Cf::kAuditNodes, storage::EncodeAuditNodeKey(1, i), HashBytes(*mem_.Node({1, i})));
  }
  ASSERT_THAT(store_->Commit(&batch), IsOk());
  StoredNodeSource nodes(store_.get(), 1);
  const StoredNode gap[] = {{{1, 3}, *mem_.Node({1, 3})}};

  nodes.AddCommitted(gap);  // nodes 0..2 of level 1 were never added

  EXPECT_EQ(nodes.cached_nodes(), 0u);
  EXPECT_THAT(nodes.Node({1, 3}), IsOkAndHolds(*mem_.Node({1, 3})));
}

TEST_F(StoredNodesTest, CacheLevelOutOfRangeIsInvalidArgument) {
  EXPECT_THAT(OpenLog(65), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenLog(-1), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace fieldsync::audit
