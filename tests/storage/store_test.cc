#include "storage/store.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/status.h"
#include "storage/column_families.h"
#include "storage/counter.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "storage/rocksdb_status.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::testing::FaultyFileSystem;
using ::fieldsync::testing::FilesContaining;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::ScopedTempDir;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// A counter key of the retired one-key-per-counter layout (still merged:
// a store written before counter pages holds them until its first start).
std::string Counter(std::string_view name) {
  return KeyBuilder().U8(kCounterTag).Bytes(name).Finish();
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(Open(), IsOk()); }

  StoreOptions Options() {
    StoreOptions o;
    o.path = path_;
    o.create_if_missing = true;
    o.env = env_.get();
    return o;
  }

  absl::Status Open() {
    absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(Options());
    if (!s.ok()) return s.status();
    store_ = *std::move(s);
    return absl::OkStatus();
  }

  // Closes (whatever that reports after an injected fault) and opens again.
  void Reopen() {
    store_.reset();
    ASSERT_THAT(Open(), IsOk());
  }

  absl::Status Put(Cf cf, std::string_view key, std::string_view value) {
    WriteBatch b;
    b.Put(cf, key, value);
    return store_->Commit(&b);
  }

  absl::Status AddCounter(std::string_view name, int64_t delta) {
    WriteBatch b;
    b.Merge(Cf::kAggregates, Counter(name), EncodeInt64Counter(delta));
    return store_->Commit(&b);
  }

  absl::StatusOr<int64_t> ReadCounter(std::string_view name) {
    absl::StatusOr<std::string> v = store_->Get(Cf::kAggregates, Counter(name));
    if (!v.ok()) return v.status();
    return DecodeInt64Counter(*v);
  }

  std::vector<std::pair<std::string, std::string>> Scan(Cf cf, std::string_view lower,
                                                        std::string_view upper,
                                                        const Snapshot* snap = nullptr) {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<Iterator> it = store_->NewIterator(cf, lower, upper, snap);
    for (; it->Valid(); it->Next()) out.emplace_back(it->key(), it->value());
    EXPECT_THAT(it->status(), IsOk());
    return out;
  }

  ScopedTempDir dir_;
  std::string path_ = dir_.Sub("db");
  std::shared_ptr<FaultyFileSystem> fs_ = std::make_shared<FaultyFileSystem>();
  std::unique_ptr<rocksdb::Env> env_ = testing::NewFaultyEnv(fs_);
  std::unique_ptr<Store> store_;
};

using Kv = std::pair<std::string, std::string>;

TEST_F(StoreTest, CommittedBatchSurvivesCloseAndReopen) {
  WriteBatch b;
  b.Put(Cf::kRecords, "r1", "v1");
  b.Put(Cf::kCaseLog, EncodeCaseLogKey(1), "entry");
  ASSERT_THAT(store_->Commit(&b), IsOk());

  ASSERT_THAT(store_->Close(), IsOk());
  Reopen();

  EXPECT_THAT(store_->Get(Cf::kRecords, "r1"), IsOkAndHolds("v1"));
  EXPECT_THAT(store_->Get(Cf::kCaseLog, EncodeCaseLogKey(1)), IsOkAndHolds("entry"));
}

TEST_F(StoreTest, SyncedCommitSurvivesWithoutClose) {
  ASSERT_THAT(Put(Cf::kRecords, "r1", "v1"), IsOk());

  // Reopen a copy of the directory taken while the store is still open, as
  // after a crash: only the synced WAL brings the write back.
  const std::string copy = dir_.Sub("crashed");
  std::filesystem::copy(path_, copy);
  std::filesystem::remove(copy + "/LOCK");
  StoreOptions o = Options();
  o.path = copy;
  absl::StatusOr<std::unique_ptr<Store>> crashed = Store::Open(o);
  ASSERT_THAT(crashed, IsOk());

  EXPECT_THAT((*crashed)->Get(Cf::kRecords, "r1"), IsOkAndHolds("v1"));
}

TEST_F(StoreTest, MissingKeyIsNotFound) {
  EXPECT_THAT(store_->Get(Cf::kRecords, "absent"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreTest, ColumnFamiliesAreSeparate) {
  ASSERT_THAT(Put(Cf::kRecords, "k", "record"), IsOk());
  ASSERT_THAT(Put(Cf::kConflicts, "k", "conflict"), IsOk());

  EXPECT_THAT(store_->Get(Cf::kRecords, "k"), IsOkAndHolds("record"));
  EXPECT_THAT(store_->Get(Cf::kConflicts, "k"), IsOkAndHolds("conflict"));
  EXPECT_THAT(store_->Get(Cf::kKeys, "k"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreTest, MultiGetAnswersEachKeyInOrder) {
  ASSERT_THAT(Put(Cf::kAuditNodes, "b", "vb"), IsOk());
  ASSERT_THAT(Put(Cf::kAuditNodes, "a", "va"), IsOk());
  ASSERT_THAT(Put(Cf::kRecords, "c", "other cf"), IsOk());
  ASSERT_THAT(store_->Flush(), IsOk());  // one key on disk, one in the memtable
  ASSERT_THAT(Put(Cf::kAuditNodes, "d", "vd"), IsOk());
  const std::vector<std::string_view> keys = {"d", "a", "c", "b", "a"};

  std::vector<absl::StatusOr<std::string>> got = store_->MultiGet(Cf::kAuditNodes, keys);

  ASSERT_EQ(got.size(), keys.size());
  EXPECT_THAT(got[0], IsOkAndHolds("vd"));
  EXPECT_THAT(got[1], IsOkAndHolds("va"));
  EXPECT_THAT(got[2], StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(got[3], IsOkAndHolds("vb"));
  EXPECT_THAT(got[4], IsOkAndHolds("va"));
}

TEST_F(StoreTest, MultiGetReadsAsOfSnapshot) {
  ASSERT_THAT(Put(Cf::kAuditNodes, "a", "old"), IsOk());
  std::unique_ptr<Snapshot> snap = store_->GetSnapshot();
  ASSERT_THAT(Put(Cf::kAuditNodes, "a", "new"), IsOk());
  ASSERT_THAT(Put(Cf::kAuditNodes, "b", "later"), IsOk());
  const std::vector<std::string_view> keys = {"a", "b"};

  std::vector<absl::StatusOr<std::string>> got =
      store_->MultiGet(Cf::kAuditNodes, keys, snap.get());

  ASSERT_EQ(got.size(), 2u);
  EXPECT_THAT(got[0], IsOkAndHolds("old"));
  EXPECT_THAT(got[1], StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreTest, MultiGetAfterCloseFailsEveryKey) {
  ASSERT_THAT(store_->Close(), IsOk());
  const std::vector<std::string_view> keys = {"a", "b"};

  std::vector<absl::StatusOr<std::string>> got = store_->MultiGet(Cf::kAuditNodes, keys);

  ASSERT_EQ(got.size(), 2u);
  EXPECT_THAT(got[0], StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(got[1], StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(StoreTest, EmptyBatchCommitsNothing) {
  WriteBatch b;
  EXPECT_THAT(store_->Commit(&b), IsOk());
  EXPECT_EQ(b.Count(), 0);
}

TEST_F(StoreTest, BatchCountsItsOperations) {
  WriteBatch b;
  b.Put(Cf::kRecords, "a", "1");
  b.Delete(Cf::kRecords, "b");
  b.Merge(Cf::kAggregates, Counter("c"), EncodeInt64Counter(1));
  b.DeleteRange(Cf::kRecords, "d", "e");
  EXPECT_EQ(b.Count(), 4);
  EXPECT_GT(b.ByteSize(), 0u);
  b.Clear();
  EXPECT_EQ(b.Count(), 0);
}

TEST_F(StoreTest, DeleteAndDeleteRangeRemoveKeys) {
  WriteBatch b;
  for (const char* k : {"a", "b", "c", "d"}) b.Put(Cf::kRecords, k, "v");
  ASSERT_THAT(store_->Commit(&b), IsOk());

  WriteBatch del;
  del.Delete(Cf::kRecords, "a");
  del.DeleteRange(Cf::kRecords, "b", "d");  // end excluded
  ASSERT_THAT(store_->Commit(&del), IsOk());

  EXPECT_THAT(Scan(Cf::kRecords, "", ""), ::testing::ElementsAre(Kv("d", "v")));
}

// The column families whose memtables keep insert hints refuse range
// deletions (RocksDB 7.8 mixes the two up); the batch then commits nothing
// and says which family and why. Others take them.
TEST_F(StoreTest, RangeDeletionOnAHintedColumnFamilyIsRefused) {
  ASSERT_THAT(Put(Cf::kCaseLog, "a", "1"), IsOk());
  for (Cf cf : {Cf::kCaseLog, Cf::kMetadata, Cf::kAuditLeaves, Cf::kAuditNodes}) {
    WriteBatch b;
    b.Put(Cf::kRecords, "r", "1");
    b.DeleteRange(cf, "", "z");
    EXPECT_THAT(store_->Commit(&b),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(std::string(CfName(cf)))));
  }
  EXPECT_THAT(store_->Get(Cf::kRecords, "r"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get(Cf::kCaseLog, "a"), IsOkAndHolds("1"));
  WriteBatch b;
  b.DeleteRange(Cf::kRecords, "", "z");
  b.DeleteRange(Cf::kAggregates, "", "z");
  EXPECT_THAT(store_->Commit(&b), IsOk());
}

TEST_F(StoreTest, IteratorWalksHalfOpenRangeInByteOrder) {
  WriteBatch b;
  for (uint64_t p : {5, 1, 3, 2, 4}) b.Put(Cf::kCaseLog, EncodeCaseLogKey(p), std::to_string(p));
  b.Put(Cf::kRecords, EncodeCaseLogKey(3), "other cf");
  ASSERT_THAT(store_->Commit(&b), IsOk());

  EXPECT_THAT(Scan(Cf::kCaseLog, EncodeCaseLogKey(2), EncodeCaseLogKey(5)),
              ::testing::ElementsAre(Kv(EncodeCaseLogKey(2), "2"), Kv(EncodeCaseLogKey(3), "3"),
                                     Kv(EncodeCaseLogKey(4), "4")));
  EXPECT_EQ(Scan(Cf::kCaseLog, "", "").size(), 5u);
}

TEST_F(StoreTest, IteratorSeekStaysInsideBounds) {
  WriteBatch b;
  for (const char* k : {"a", "b", "c", "d"}) b.Put(Cf::kRecords, k, k);
  ASSERT_THAT(store_->Commit(&b), IsOk());
  std::unique_ptr<Iterator> it = store_->NewIterator(Cf::kRecords, "b", "d");

  it->Seek("c");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Seek("");  // below lower: lands on lower
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");
  it->Seek("d");  // the upper bound is excluded
  EXPECT_FALSE(it->Valid());
  EXPECT_THAT(it->status(), IsOk());
}

TEST_F(StoreTest, PrefixScanWithPrefixUpperBound) {
  WriteBatch b;
  b.Put(Cf::kPrincipals, EncodePrincipalKey(PrincipalKind::kDevice, "d1"), "");
  b.Put(Cf::kPrincipals, EncodePrincipalKey(PrincipalKind::kDevice, "d2"), "");
  b.Put(Cf::kPrincipals, EncodePrincipalKey(PrincipalKind::kStaff, "s1"), "");
  b.Put(Cf::kPrincipals, EncodeEnrolmentCodeKey("abcd"), "");
  ASSERT_THAT(store_->Commit(&b), IsOk());
  const std::string prefix = PrincipalKindPrefix(PrincipalKind::kDevice);

  std::vector<Kv> devices = Scan(Cf::kPrincipals, prefix, PrefixUpperBound(prefix));

  ASSERT_EQ(devices.size(), 2u);
  EXPECT_THAT(DecodePrincipalKey(devices[1].first),
              IsOkAndHolds(PrincipalKey{PrincipalKind::kDevice, "d2"}));
}

TEST_F(StoreTest, SnapshotReadsDoNotSeeLaterWrites) {
  ASSERT_THAT(Put(Cf::kRecords, "a", "old"), IsOk());
  std::unique_ptr<Snapshot> snap = store_->GetSnapshot();

  ASSERT_THAT(Put(Cf::kRecords, "a", "new"), IsOk());
  ASSERT_THAT(Put(Cf::kRecords, "b", "later"), IsOk());

  EXPECT_THAT(store_->Get(Cf::kRecords, "a", snap.get()), IsOkAndHolds("old"));
  EXPECT_THAT(store_->Get(Cf::kRecords, "b", snap.get()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Scan(Cf::kRecords, "", "", snap.get()), ::testing::ElementsAre(Kv("a", "old")));
  EXPECT_THAT(store_->Get(Cf::kRecords, "a"), IsOkAndHolds("new"));
}

TEST_F(StoreTest, MergeCounterAddsAcrossReopen) {
  ASSERT_THAT(AddCounter("open_cases", 3), IsOk());
  ASSERT_THAT(AddCounter("open_cases", -1), IsOk());
  ASSERT_THAT(store_->Close(), IsOk());
  Reopen();

  ASSERT_THAT(AddCounter("open_cases", 5), IsOk());
  EXPECT_THAT(ReadCounter("open_cases"), IsOkAndHolds(7));
  ASSERT_THAT(store_->Flush(), IsOk());
  ASSERT_THAT(AddCounter("open_cases", -10), IsOk());
  ASSERT_THAT(store_->CompactRange(Cf::kAggregates, "", ""), IsOk());
  EXPECT_THAT(ReadCounter("open_cases"), IsOkAndHolds(-3));
}

TEST_F(StoreTest, KeyedSumsMergeAcrossFlushCompactionAndReopen) {
  const std::string page = EncodeCounterPageKey("registrations", 'W', 202649);
  const std::string list = EncodeCaseScopeListKey("north", "officer-1");
  auto add = [&](Cf cf, const std::string& key, const KeyedSums& delta) {
    WriteBatch b;
    b.Merge(cf, key, EncodeKeyedSums(delta));
    return store_->Commit(&b);
  };
  auto read = [&](Cf cf, const std::string& key) -> absl::StatusOr<KeyedSums> {
    ASSIGN_OR_RETURN(std::string v, store_->Get(cf, key));
    KeyedSums sums;
    RETURN_IF_ERROR(AddKeyedSums(v, &sums));
    return sums;
  };
  ASSERT_THAT(add(Cf::kAggregates, page, {{"a", 3}, {"b", 1}}), IsOk());
  ASSERT_THAT(add(Cf::kAggregates, page, {{"b", -1}, {"c", 2}}), IsOk());
  ASSERT_THAT(add(Cf::kCaseIndex, list, {{"case-1", 1}, {"case-2", 1}}), IsOk());
  ASSERT_THAT(store_->Flush(), IsOk());
  ASSERT_THAT(add(Cf::kCaseIndex, list, {{"case-1", -1}}), IsOk());
  ASSERT_THAT(add(Cf::kAggregates, page, {{"a", -3}, {"d", -5}}), IsOk());

  EXPECT_THAT(read(Cf::kAggregates, page), IsOkAndHolds(KeyedSums{{"c", 2}, {"d", -5}}));
  EXPECT_THAT(read(Cf::kCaseIndex, list), IsOkAndHolds(KeyedSums{{"case-2", 1}}));
  ASSERT_THAT(store_->Close(), IsOk());
  Reopen();
  ASSERT_THAT(add(Cf::kCaseIndex, list, {{"case-2", -1}}), IsOk());
  ASSERT_THAT(store_->CompactRange(Cf::kAggregates, "", ""), IsOk());
  ASSERT_THAT(store_->CompactRange(Cf::kCaseIndex, "", ""), IsOk());
  EXPECT_THAT(read(Cf::kAggregates, page), IsOkAndHolds(KeyedSums{{"c", 2}, {"d", -5}}));
  // Every member back to 0: the value is empty, as if never written.
  EXPECT_THAT(store_->Get(Cf::kCaseIndex, list), IsOkAndHolds(""));
}

TEST_F(StoreTest, MalformedKeyedSumsOperandIsDataLoss) {
  const std::string list = EncodeCaseScopeListKey("north", "");
  WriteBatch b;
  b.Merge(Cf::kCaseIndex, list, EncodeKeyedSums({{"case-1", 1}}));
  b.Merge(Cf::kCaseIndex, list,
          std::string("\x05"
                      "ab"));  // a member longer than its bytes
  ASSERT_THAT(store_->Commit(&b), IsOk());

  EXPECT_THAT(store_->Get(Cf::kCaseIndex, list), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(StoreTest, MergeOnAKeyThatDoesNotSumIsInvalidArgument) {
  for (const auto& [cf, key] : std::vector<std::pair<Cf, std::string>>{
           {Cf::kCaseIndex, EncodeCaseEntryKey(std::array<uint8_t, 16>{}, 1)},
           {Cf::kAggregates, EncodeCaseScopeListKey("north", "")},
           {Cf::kAggregates, ""}}) {
    WriteBatch b;
    b.Put(Cf::kRecords, "a", "v");
    b.Merge(cf, key, EncodeKeyedSums({{"x", 1}}));
    EXPECT_THAT(store_->Commit(&b),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("refused")));
    EXPECT_THAT(store_->Get(Cf::kRecords, "a"), StatusIs(absl::StatusCode::kNotFound));
  }
}

TEST_F(StoreTest, MergeOutsideAggregatesIsInvalidArgument) {
  WriteBatch b;
  b.Put(Cf::kRecords, "a", "v");
  b.Merge(Cf::kRecords, "c", EncodeInt64Counter(1));

  EXPECT_THAT(store_->Commit(&b), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Get(Cf::kRecords, "a"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreTest, MalformedCounterIsDataLoss) {
  ASSERT_THAT(Put(Cf::kAggregates, Counter("c"), "bad"), IsOk());
  ASSERT_THAT(AddCounter("c", 1), IsOk());

  EXPECT_THAT(store_->Get(Cf::kAggregates, Counter("c")), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(StoreTest, DeleteRangeAndCompactRangeShredBytesFromFiles) {
  SeededRandom rng;
  std::string marker(48, '\0');
  rng.Fill({reinterpret_cast<uint8_t*>(marker.data()), marker.size()});
  const std::string case_prefix = KeyBuilder().String("case-7").Finish();
  WriteBatch b;
  b.Put(Cf::kKeys, KeyBuilder().String("case-7").U32(1).Finish(), marker);
  b.Put(Cf::kKeys, KeyBuilder().String("case-7").U32(2).Finish(), marker + "x");
  b.Put(Cf::kKeys, KeyBuilder().String("case-8").U32(1).Finish(), "kept");
  b.Put(Cf::kRecords, "other", "unflushed elsewhere");
  ASSERT_THAT(store_->Commit(&b), IsOk());
  ASSERT_THAT(store_->Flush(), IsOk());
  ASSERT_THAT(FilesContaining(path_, marker), ::testing::Not(::testing::IsEmpty()));
  ASSERT_THAT(Put(Cf::kRecords, "other2", "keeps a later WAL busy"), IsOk());

  WriteBatch del;
  del.DeleteRange(Cf::kKeys, case_prefix, PrefixUpperBound(case_prefix));
  ASSERT_THAT(store_->Commit(&del), IsOk());
  ASSERT_THAT(store_->CompactRange(Cf::kKeys, "", ""), IsOk());

  EXPECT_THAT(FilesContaining(path_, marker), ::testing::IsEmpty());
  EXPECT_THAT(Scan(Cf::kKeys, "", ""),
              ::testing::ElementsAre(Kv(KeyBuilder().String("case-8").U32(1).Finish(), "kept")));
}

// The deleted value was never flushed: it sits in a WAL file that another
// column family's unflushed write keeps alive.
TEST_F(StoreTest, CompactRangeShredsBytesStillInTheWal) {
  SeededRandom rng;
  std::string marker(48, '\0');
  rng.Fill({reinterpret_cast<uint8_t*>(marker.data()), marker.size()});
  WriteBatch b;
  b.Put(Cf::kKeys, "dek-case-9", marker);
  b.Put(Cf::kRecords, "unflushed", "keeps the WAL file alive");
  ASSERT_THAT(store_->Commit(&b), IsOk());
  ASSERT_THAT(FilesContaining(path_, marker), ::testing::Not(::testing::IsEmpty()));

  WriteBatch del;
  del.Delete(Cf::kKeys, "dek-case-9");
  ASSERT_THAT(store_->Commit(&del), IsOk());
  ASSERT_THAT(store_->CompactRange(Cf::kKeys, "", ""), IsOk());

  EXPECT_THAT(FilesContaining(path_, marker), ::testing::IsEmpty());
  EXPECT_THAT(store_->Get(Cf::kRecords, "unflushed"), IsOk());
}

TEST_F(StoreTest, CheckpointOpensWithTheSameData) {
  ASSERT_THAT(Put(Cf::kRecords, "a", "1"), IsOk());
  const std::string cp = dir_.Sub("checkpoint");

  ASSERT_THAT(store_->CreateCheckpoint(cp), IsOk());
  ASSERT_THAT(Put(Cf::kRecords, "b", "after"), IsOk());

  StoreOptions o;
  o.path = cp;
  absl::StatusOr<std::unique_ptr<Store>> copy = Store::Open(o);
  ASSERT_THAT(copy, IsOk());
  EXPECT_THAT((*copy)->Get(Cf::kRecords, "a"), IsOkAndHolds("1"));
  EXPECT_THAT((*copy)->Get(Cf::kRecords, "b"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->CreateCheckpoint(cp), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// The files of the directory tree `root` with their bytes, for checking
// that nothing wrote to it.
std::map<std::string, std::string> TreeBytes(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

TEST_F(StoreTest, ReadOnlyCheckpointReadsAndWritesNothing) {
  ASSERT_THAT(Put(Cf::kRecords, "a", "1"), IsOk());
  const std::string cp = dir_.Sub("checkpoint");
  ASSERT_THAT(store_->CreateCheckpoint(cp), IsOk());
  const std::map<std::string, std::string> before = TreeBytes(cp);
  StoreOptions o;
  o.path = cp;
  o.read_only = true;

  absl::StatusOr<std::unique_ptr<Store>> copy = Store::Open(o);
  ASSERT_THAT(copy, IsOk());
  EXPECT_THAT((*copy)->Get(Cf::kRecords, "a"), IsOkAndHolds("1"));
  WriteBatch b;
  b.Put(Cf::kRecords, "b", "2");
  EXPECT_THAT((*copy)->Commit(&b), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*copy)->Flush(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*copy)->CreateCheckpoint(dir_.Sub("again")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*copy)->VerifyChecksums(), IsOk());
  EXPECT_THAT((*copy)->Close(), IsOk());
  EXPECT_EQ(TreeBytes(cp), before);
}

TEST(StoreOpenTest, ReadOnlyOpenOfAMissingStoreIsFailedPrecondition) {
  ScopedTempDir dir;
  StoreOptions o;
  o.path = dir.Sub("none");
  o.read_only = true;
  o.create_if_missing = true;  // ignored

  EXPECT_THAT(Store::Open(o), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(std::filesystem::exists(o.path));
}

TEST_F(StoreTest, VerifyChecksumsFindsAFlippedByteInAnSstFile) {
  for (int i = 0; i < 100; ++i) {
    ASSERT_THAT(Put(Cf::kRecords, absl::StrFormat("key%03d", i), std::string(100, 'v')), IsOk());
  }
  ASSERT_THAT(store_->Flush(), IsOk());
  ASSERT_THAT(store_->VerifyChecksums(), IsOk());
  ASSERT_THAT(store_->Close(), IsOk());
  std::string sst;
  for (const auto& e : std::filesystem::directory_iterator(path_)) {
    if (e.path().extension() == ".sst") sst = e.path().string();
  }
  ASSERT_FALSE(sst.empty());
  {
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    f.seekp(100);
    f.write(&c, 1);
  }
  StoreOptions o;
  o.path = path_;
  o.read_only = true;
  absl::StatusOr<std::unique_ptr<Store>> damaged = Store::Open(o);
  ASSERT_THAT(damaged, IsOk());

  EXPECT_THAT((*damaged)->VerifyChecksums(), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(StoreTest, CloseIsIdempotentAndLaterCallsFail) {
  ASSERT_THAT(store_->Close(), IsOk());
  EXPECT_THAT(store_->Close(), IsOk());
  EXPECT_THAT(Put(Cf::kRecords, "a", "1"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(store_->Get(Cf::kRecords, "a"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(store_->NewIterator(Cf::kRecords, "", "")->status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(StoreTest, CloseRefusesWhileASnapshotIsAlive) {
  std::unique_ptr<Snapshot> snap = store_->GetSnapshot();
  EXPECT_THAT(store_->Close(), StatusIs(absl::StatusCode::kFailedPrecondition));
  snap.reset();
  EXPECT_THAT(store_->Close(), IsOk());
}

TEST_F(StoreTest, SecondOpenOfALockedStoreIsUnavailable) {
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(Options());
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("in use")));
}

TEST_F(StoreTest, OpenOfAStoreLockedByAnotherProcessIsUnavailable) {
  store_.reset();
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    close(release[1]);  // else the read below never sees end-of-file
    StoreOptions o;
    o.path = path_;
    absl::StatusOr<std::unique_ptr<Store>> held = Store::Open(o);
    char c = held.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(2);
    if (read(release[0], &c, 1) < 0) _exit(3);
    _exit(0);  // the kernel drops the lock; no destructors in a forked child
  }
  close(ready[1]);
  close(release[0]);
  char c = 0;
  const bool child_holds_lock = read(ready[0], &c, 1) == 1 && c == 'y';

  absl::Status s = child_holds_lock ? Open() : absl::OkStatus();

  close(release[1]);
  close(ready[0]);
  int wstatus = 0;
  waitpid(child, &wstatus, 0);
  ASSERT_TRUE(child_holds_lock);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("in use")));
  std::cout << s.message() << "\n";
}

TEST_F(StoreTest, ErrorIfExistsRefusesAnExistingStore) {
  store_.reset();
  StoreOptions o = Options();
  o.error_if_exists = true;
  EXPECT_THAT(Store::Open(o), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(StoreOpenTest, ForeignDirectoryIsFailedPrecondition) {
  ScopedTempDir dir;
  std::ofstream(dir.Sub("notes.txt")) << "not a store";
  StoreOptions o;
  o.path = dir.path();
  o.create_if_missing = true;

  EXPECT_THAT(Store::Open(o), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("is not a fieldsync store")));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("CURRENT")));
}

TEST(StoreOpenTest, FileAsPathIsFailedPrecondition) {
  ScopedTempDir dir;
  std::ofstream(dir.Sub("file")) << "x";
  StoreOptions o;
  o.path = dir.Sub("file");
  o.create_if_missing = true;

  EXPECT_THAT(Store::Open(o),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is a file")));
}

TEST(StoreOpenTest, MissingStoreWithoutCreateIsFailedPrecondition) {
  ScopedTempDir dir;
  StoreOptions o;
  o.path = dir.Sub("none");

  EXPECT_THAT(Store::Open(o),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no store at")));
}

TEST(StoreOpenTest, EmptyPathIsInvalidArgument) {
  EXPECT_THAT(Store::Open(StoreOptions{}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(StoreOpenTest, UnknownColumnFamilyIsFailedPreconditionNamingIt) {
  ScopedTempDir dir;
  {
    // A store written by a "newer" fieldsync, made with RocksDB directly.
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &db).ok());
    rocksdb::ColumnFamilyHandle* h = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future_cf", &h).ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }
  StoreOptions o;
  o.path = dir.path();

  EXPECT_THAT(Store::Open(o),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("'future_cf'")));
}

// Makes a bare RocksDB database at `path` with the column families of
// `create` (besides "default"), created in that order.
void MakeBareRocksDb(const std::string& path, const std::vector<Cf>& create) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, path, &db).ok());
  for (Cf cf : create) {
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    ASSERT_TRUE(
        db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), std::string(CfName(cf)), &handle)
            .ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  }
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

TEST(StoreOpenTest, OlderStoreGainsMissingColumnFamilies) {
  ScopedTempDir dir;
  ASSERT_NO_FATAL_FAILURE(MakeBareRocksDb(dir.path(), {}));
  StoreOptions o;
  o.path = dir.path();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(o);
  ASSERT_THAT(store, IsOk());
  WriteBatch b;
  b.Put(Cf::kMetadata, "m", "1");
  ASSERT_THAT((*store)->Commit(&b), IsOk());

  EXPECT_THAT((*store)->Get(Cf::kMetadata, "m"), IsOkAndHolds("1"));
}

// A batch of random operations on a few keys of several column families:
// puts, deletes, rewrites, revivals and counter merges, in no key order.
// `model` gets what applying them one by one in order leaves (a counter as
// its encoded sum).
using StoreModel = std::map<std::pair<Cf, std::string>, std::string>;
constexpr Cf kRandomBatchCfs[] = {Cf::kRecords, Cf::kKeys,     Cf::kCaseIndex, Cf::kBatches,
                                  Cf::kCaseLog, Cf::kMetadata, Cf::kAggregates};
void RandomBatch(SeededRandom& rng, int operations, WriteBatch* batch, StoreModel* model) {
  for (int i = 0; i < operations; ++i) {
    const Cf cf = kRandomBatchCfs[rng.Uniform(std::size(kRandomBatchCfs))];
    std::string key = absl::StrFormat("k%02d", rng.Uniform(40));
    if (cf == Cf::kAggregates) key = Counter(key);
    const auto at = std::make_pair(cf, key);
    if (cf == Cf::kAggregates) {
      const int64_t delta = static_cast<int64_t>(rng.Uniform(21)) - 10;
      batch->Merge(cf, key, EncodeInt64Counter(delta));
      const int64_t before = model->contains(at) ? *DecodeInt64Counter((*model)[at]) : 0;
      (*model)[at] = EncodeInt64Counter(before + delta);
    } else if (rng.Uniform(4) == 0) {
      batch->Delete(cf, key);
      model->erase(at);
    } else {
      const std::string value = absl::StrFormat("v%d", i);
      batch->Put(cf, key, value);
      (*model)[at] = value;
    }
  }
}

// Every key of the column families RandomBatch writes, as the store holds it.
StoreModel ReadAll(Store& store) {
  StoreModel out;
  for (Cf cf : kRandomBatchCfs) {
    std::unique_ptr<Iterator> it = store.NewIterator(cf, "", "");
    for (; it->Valid(); it->Next()) out[{cf, std::string(it->key())}] = std::string(it->value());
    EXPECT_THAT(it->status(), IsOk());
  }
  return out;
}

// A store whose column families RocksDB numbered in another order (made
// by hand here) still gets every operation of a batch in the family it
// was meant for (Store::Commit remaps the ids).
TEST(StoreOpenTest, ColumnFamiliesNumberedInAnotherOrderGetTheirOwnOperations) {
  ScopedTempDir dir;
  std::vector<Cf> reversed(kAllCfs.rbegin(), kAllCfs.rend() - 1);  // all but kDefault
  ASSERT_NO_FATAL_FAILURE(MakeBareRocksDb(dir.path(), reversed));
  StoreOptions o;
  o.path = dir.path();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(o);
  ASSERT_THAT(store, IsOk());
  SeededRandom rng;
  StoreModel model;
  WriteBatch b;
  RandomBatch(rng, 500, &b, &model);
  ASSERT_THAT((*store)->Commit(&b), IsOk());
  EXPECT_EQ(ReadAll(**store), model) << "seed " << rng.seed();
}

TEST(RocksDbStatusTest, MapsCodesPerStyle) {
  EXPECT_THAT(FromRocksDb(rocksdb::Status::OK(), "ctx"), IsOk());
  EXPECT_THAT(FromRocksDb(rocksdb::Status::NotFound("x"), "ctx"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(FromRocksDb(rocksdb::Status::Corruption("bad block"), "read records"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("read records: rocksdb says Corruption: bad block")));
  EXPECT_THAT(FromRocksDb(rocksdb::Status::IOError("disk"), "ctx"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(FromRocksDb(rocksdb::Status::Busy(), "ctx"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(FromRocksDb(rocksdb::Status::TryAgain(), "ctx"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(FromRocksDb(rocksdb::Status::InvalidArgument("x"), "ctx"),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(FromRocksDb(rocksdb::Status::NotSupported("x"), "ctx"),
              StatusIs(absl::StatusCode::kInternal));
}

// --- Fault injection: a batch is there whole or not at all ------------------

TEST_F(StoreTest, FailedWalSyncLeavesNoPartialBatch) {
  WriteBatch first;
  first.Put(Cf::kRecords, "case-1", "v1");
  ASSERT_THAT(store_->Commit(&first), IsOk());
  fs_->FailSyncs(true);

  WriteBatch second;
  second.Put(Cf::kRecords, "case-1", "v2");
  second.Put(Cf::kCaseLog, EncodeCaseLogKey(2), "entry");
  second.Merge(Cf::kAggregates, Counter("open"), EncodeInt64Counter(1));
  absl::Status s = store_->Commit(&second);

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  fs_->FailSyncs(false);
  Reopen();
  EXPECT_THAT(store_->Get(Cf::kRecords, "case-1"), IsOkAndHolds("v1"));
  EXPECT_THAT(store_->Get(Cf::kCaseLog, EncodeCaseLogKey(2)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadCounter("open"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreTest, FailedWalAppendLeavesNoPartialBatch) {
  ASSERT_THAT(Put(Cf::kRecords, "case-1", "v1"), IsOk());
  fs_->FailAppends(true);

  WriteBatch second;
  second.Put(Cf::kRecords, "case-1", "v2");
  second.Put(Cf::kCaseLog, EncodeCaseLogKey(2), "entry");
  absl::Status s = store_->Commit(&second);

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  fs_->FailAppends(false);
  Reopen();
  EXPECT_THAT(store_->Get(Cf::kRecords, "case-1"), IsOkAndHolds("v1"));
  EXPECT_THAT(store_->Get(Cf::kCaseLog, EncodeCaseLogKey(2)),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreTest, CommitsAfterAWalFailureKeepFailingUntilReopen) {
  fs_->FailSyncs(true);
  ASSERT_THAT(Put(Cf::kRecords, "a", "1"), StatusIs(absl::StatusCode::kUnavailable));
  fs_->FailSyncs(false);

  EXPECT_THAT(Put(Cf::kRecords, "b", "2"), StatusIs(absl::StatusCode::kUnavailable));
  Reopen();
  EXPECT_THAT(Put(Cf::kRecords, "b", "2"), IsOk());
}

// Fails the Nth append for many N: every acknowledged batch is there after
// reopen, and each batch is whole or absent.
TEST_F(StoreTest, FailingTheNthWriteNeverSplitsABatch) {
  constexpr int kBatches = 6;
  int failed_runs = 0;
  for (int n = 0; n < 12; ++n) {
    SCOPED_TRACE(absl::StrFormat("fail after %d writes", n));
    std::vector<bool> acked(kBatches, false);
    fs_->FailAfterNWrites(n);
    for (int i = 0; i < kBatches; ++i) {
      WriteBatch b;
      const std::string tag = absl::StrFormat("run%d-batch%d", n, i);
      b.Put(Cf::kRecords, tag + "-a", "x");
      b.Put(Cf::kCaseLog, tag + "-b", std::string(3000, 'y'));  // several appends' worth
      b.Merge(Cf::kAggregates, Counter(tag), EncodeInt64Counter(1));
      acked[i] = store_->Commit(&b).ok();
    }
    fs_->Reset();
    Reopen();
    bool any_failed = false;
    for (int i = 0; i < kBatches; ++i) {
      const std::string tag = absl::StrFormat("run%d-batch%d", n, i);
      const bool a = store_->Get(Cf::kRecords, tag + "-a").ok();
      const bool b = store_->Get(Cf::kCaseLog, tag + "-b").ok();
      const bool c = store_->Get(Cf::kAggregates, Counter(tag)).ok();
      EXPECT_EQ(a, b) << tag;
      EXPECT_EQ(a, c) << tag;
      if (acked[i]) {
        EXPECT_TRUE(a) << tag << " was acknowledged";
      }
      any_failed |= !acked[i];
    }
    failed_runs += any_failed ? 1 : 0;
  }
  std::cout << "runs with an injected failure: " << failed_runs << " of 12\n";
  EXPECT_GT(failed_runs, 0);
}

TEST_F(StoreTest, ConcurrentCommitsFromEightThreadsAllLand) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  const int64_t syncs_before = fs_->syncs();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        WriteBatch b;
        b.Put(Cf::kRecords, absl::StrFormat("t%d-%04d", t, i), "v");
        b.Put(Cf::kBatches, absl::StrFormat("t%d-%04d", t, i), "seen");
        b.Merge(Cf::kAggregates, Counter("total"), EncodeInt64Counter(1));
        if (!store_->Commit(&b).ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const int64_t syncs = fs_->syncs() - syncs_before;

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Scan(Cf::kRecords, "", "").size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(Scan(Cf::kBatches, "", "").size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_THAT(ReadCounter("total"), IsOkAndHolds(kThreads * kPerThread));
  std::cout << kThreads * kPerThread << " commits used " << syncs << " WAL syncs\n";
}

// --- Opening a store an operator cannot use --------------------------------

// A store made and closed in a temp dir, to be opened again as fieldsyncd does.
class StoreOpenErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.path = path_;
    o.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(o);
    ASSERT_THAT(store, IsOk());
    WriteBatch b;
    b.Put(Cf::kMetadata, "k", "v");
    ASSERT_THAT((*store)->Commit(&b), IsOk());
    ASSERT_THAT((*store)->Close(), IsOk());
  }
  void TearDown() override { ::chmod(path_.c_str(), 0700); }

  absl::Status Reopen() {
    StoreOptions o;
    o.path = path_;
    return Store::Open(o).status();
  }

  ScopedTempDir dir_;
  std::string path_ = dir_.Sub("db");
};

TEST_F(StoreOpenErrorTest, UnreadableDirectoryNamesItTheUserAndTheFix) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any directory: the message is tested through "
                    "StorePermissionDenied and FromRocksDbOpen";
  }
  ASSERT_EQ(::chmod(path_.c_str(), 0), 0);
  absl::Status s = Reopen();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          ::testing::AllOf(HasSubstr("permission denied on " + path_),
                                           HasSubstr("mode 0000"), HasSubstr(ProcessUser()),
                                           HasSubstr("chown -R"), Not(HasSubstr("NotFound")))));
}

TEST_F(StoreOpenErrorTest, UnreadableFileInsideIsNamed) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  std::string current = path_ + "/CURRENT";
  ASSERT_EQ(::chmod(current.c_str(), 0), 0);
  EXPECT_THAT(Reopen(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                 ::testing::AllOf(HasSubstr("permission denied on " + current),
                                                  HasSubstr("chown -R"))));
  ::chmod(current.c_str(), 0644);
}

TEST_F(StoreOpenErrorTest, MissingStoreSaysInitOrRestore) {
  StoreOptions o;
  o.path = dir_.Sub("nowhere");
  EXPECT_THAT(
      Store::Open(o).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               ::testing::AllOf(HasSubstr("no store at " + o.path), HasSubstr("fieldsync init"),
                                HasSubstr("fieldsync backup restore"))));
}

TEST_F(StoreOpenErrorTest, ManifestGoneIsIncompleteWithRestoreAdvice) {
  for (const auto& e : std::filesystem::directory_iterator(path_)) {
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0) {
      std::filesystem::remove(e.path());
    }
  }
  EXPECT_THAT(Reopen(), StatusIs(absl::StatusCode::kDataLoss,
                                 ::testing::AllOf(HasSubstr("store " + path_ + " is"),
                                                  HasSubstr("fieldsync backup restore"))));
}

TEST_F(StoreOpenErrorTest, GarbledManifestIsCorruptWithRestoreAdvice) {
  for (const auto& e : std::filesystem::directory_iterator(path_)) {
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0) {
      std::ofstream(e.path(), std::ios::binary | std::ios::trunc) << std::string(300, '\x5a');
    }
  }
  EXPECT_THAT(Reopen(), StatusIs(absl::StatusCode::kDataLoss,
                                 ::testing::AllOf(HasSubstr("corrupt"),
                                                  HasSubstr("fieldsync backup restore"))));
}

TEST(StoreOpenMessageTest, PermissionDeniedNamesDirectoryUserAndFix) {
  absl::Status s = StorePermissionDenied("/var/lib/fieldsync/db", "/var/lib/fieldsync/db",
                                         "owner root (uid 0), mode 0700", "fieldsync (uid 998)");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          "cannot open the store: permission denied on /var/lib/fieldsync/db "
                          "(owner root (uid 0), mode 0700) for user fieldsync (uid 998); the "
                          "store must belong to the user fieldsyncd runs as: run `chown -R "
                          "fieldsync /var/lib/fieldsync/db && chmod -R u+rwX "
                          "/var/lib/fieldsync/db`, or start fieldsyncd as the user that owns it"));
  EXPECT_THAT(StorePermissionDenied("/d/db", "/d/db", "", "uid 1234"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("chown -R 1234 /d/db")));
}

TEST(StoreOpenMessageTest, RocksDbOpenFailuresMapByTheOperatorsNextStep) {
  const std::string user = "fieldsync (uid 998)";
  EXPECT_THAT(FromRocksDbOpen(rocksdb::Status::IOError("While open a file for lock: /d/db/LOCK",
                                                       "Permission denied"),
                              "/d/db", user),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("permission denied on a file of /d/db"),
                                        HasSubstr("/d/db/LOCK"), HasSubstr("fieldsync (uid 998)"),
                                        HasSubstr("chown -R fieldsync /d/db"))));
  EXPECT_THAT(FromRocksDbOpen(rocksdb::Status::Corruption("bad block"), "/d/db", user),
              StatusIs(absl::StatusCode::kDataLoss,
                       ::testing::AllOf(HasSubstr("store /d/db is corrupt"),
                                        HasSubstr("fieldsync backup restore"))));
  EXPECT_THAT(FromRocksDbOpen(rocksdb::Status::NotFound("/d/db/MANIFEST-000005"), "/d/db", user),
              StatusIs(absl::StatusCode::kDataLoss,
                       ::testing::AllOf(HasSubstr("store /d/db is incomplete"),
                                        HasSubstr("fieldsync backup restore"))));
  EXPECT_THAT(FromRocksDbOpen(rocksdb::Status::IOError("While opening /d/db/MANIFEST-000005",
                                                       "No such file or directory"),
                              "/d/db", user),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("store /d/db is incomplete")));
  EXPECT_THAT(FromRocksDbOpen(rocksdb::Status::IOError("disk on fire"), "/d/db", user),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(FromRocksDbOpen(rocksdb::Status::OK(), "/d/db", user), IsOk());
}

TEST(StoreOpenMessageTest, ProcessUserNamesTheEffectiveUid) {
  EXPECT_THAT(ProcessUser(), HasSubstr(absl::StrFormat("uid %d", ::geteuid())));
}

}  // namespace
}  // namespace fieldsync::storage
