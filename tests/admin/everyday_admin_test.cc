// admin/device_activity.h over a real RocksDB store in a temp dir with a
// simulated clock, and admin/address_file.h on real files.
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "admin/address_file.h"
#include "admin/device_activity.h"
#include "common/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::admin {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kDeviceA[] = "0b3c7a2e-0000-4000-8000-00000000000a";
constexpr char kDeviceB[] = "0b3c7a2e-0000-4000-8000-00000000000b";

class DeviceActivityTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    activity_.reset();
    store_.reset();
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    activity_ = std::make_unique<DeviceActivity>(store_.get(), &clock_);
  }

  // The last-sync entries in the store (not the ones held in memory).
  int StoredEntries() {
    const std::string lower = storage::DeviceLastSyncPrefix();
    std::unique_ptr<storage::Iterator> it =
        store_->NewIterator(storage::Cf::kPrincipals, lower, storage::PrefixUpperBound(lower));
    int n = 0;
    for (; it->Valid(); it->Next()) ++n;
    return n;
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<DeviceActivity> activity_;
};

TEST_F(DeviceActivityTest, WritesAtMostOncePerIntervalForAllDevices) {
  activity_->Record(kDeviceA);  // the first record flushes
  EXPECT_EQ(StoredEntries(), 1);
  clock_.Advance(absl::Seconds(10));
  activity_->Record(kDeviceB);
  activity_->Record(kDeviceA);
  EXPECT_EQ(StoredEntries(), 1);  // held until the interval has passed

  clock_.Advance(kLastSyncFlushInterval);
  activity_->Record(kDeviceA);

  EXPECT_EQ(StoredEntries(), 2);
  absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> last = activity_->LastSyncs();
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->at(kDeviceA), clock_.Now());
  EXPECT_EQ(last->at(kDeviceB), clock_.Now() - kLastSyncFlushInterval);
}

TEST_F(DeviceActivityTest, UnflushedTimesAreListedAndSurviveAFlushAndReopen) {
  activity_->Record(kDeviceA);
  clock_.Advance(absl::Seconds(5));
  const absl::Time b_time = clock_.Now();
  activity_->Record(kDeviceB);
  absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> before = activity_->LastSyncs();
  ASSERT_THAT(before, IsOk());
  EXPECT_EQ(before->at(kDeviceB), b_time);  // from memory
  ASSERT_THAT(activity_->Flush(), IsOk());

  Reopen();

  absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> after = activity_->LastSyncs();
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->size(), 2u);
  EXPECT_EQ(after->at(kDeviceB), b_time);
  // Connected devices count what this run saw, not what is stored.
  EXPECT_EQ(activity_->CountSince(clock_.Now() - absl::Hours(1)), 0);
}

TEST_F(DeviceActivityTest, CountsDistinctDevicesWithinTheWindow) {
  activity_->Record(kDeviceA);
  clock_.Advance(absl::Minutes(20));
  activity_->Record(kDeviceB);
  activity_->Record(kDeviceB);

  EXPECT_EQ(activity_->CountSince(clock_.Now() - absl::Minutes(15)), 1);
  EXPECT_EQ(activity_->CountSince(clock_.Now() - absl::Minutes(30)), 2);
}

TEST_F(DeviceActivityTest, AStoredTimeOfTheWrongSizeIsDataLoss) {
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kPrincipals, storage::EncodeDeviceLastSyncKey(kDeviceA), "short");
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  EXPECT_THAT(activity_->LastSyncs(), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(AddressFileTest, RoundTripsAndIgnoresUnknownKeys) {
  ServerAddress a{"127.0.0.1:7443", 1234};
  absl::StatusOr<ServerAddress> parsed = ParseAddressFile(FormatAddressFile(a));
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->address, "127.0.0.1:7443");
  EXPECT_EQ(parsed->pid, 1234);
  parsed = ParseAddressFile("future=1\r\naddress=[::1]:9\r\n");
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->address, "[::1]:9");
  EXPECT_EQ(parsed->pid, 0);
}

TEST(AddressFileTest, MalformedFilesAreRefusedWithAReason) {
  for (std::string bad : std::vector<std::string>{
           "", "\n", "pid=3\n", "address=\n", "address=a b:1\n", "address=127.0.0.1:1\npid=x\n",
           "address=127.0.0.1:1\npid=-4\n", "address=127.0.0.1:1\npid=0\n", "127.0.0.1:7443\n",
           std::string(5000, 'a')}) {
    EXPECT_THAT(ParseAddressFile(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  // Every truncation and every byte flip: a clean answer, never a crash.
  const std::string good = FormatAddressFile({"127.0.0.1:7443", 99});
  for (size_t i = 0; i <= good.size(); ++i) (void)ParseAddressFile(good.substr(0, i));
  for (size_t i = 0; i < good.size(); ++i) {
    std::string flipped = good;
    flipped[i] ^= 0x40;
    (void)ParseAddressFile(flipped);
  }
}

TEST(AddressFileTest, WildcardHostsBecomeLoopback) {
  EXPECT_EQ(DialableAddress("0.0.0.0:7443"), "127.0.0.1:7443");
  EXPECT_EQ(DialableAddress("[::]:7443"), "[::1]:7443");
  EXPECT_EQ(DialableAddress("10.0.0.5:7443"), "10.0.0.5:7443");
}

TEST(AddressFileTest, IsWrittenReplacedAndRemovedOnlyByItsServer) {
  fieldsync::testing::ScopedTempDir dir;
  const std::string data_dir = dir.Sub("d");
  ASSERT_EQ(::mkdir(data_dir.c_str(), 0700), 0);
  ASSERT_THAT(WriteAddressFile(data_dir, {"127.0.0.1:1", 10}), IsOk());
  ASSERT_THAT(WriteAddressFile(data_dir, {"127.0.0.1:2", 11}), IsOk());  // a stale one replaced
  EXPECT_THAT(ReadFile(AddressFilePath(data_dir)), IsOkAndHolds("address=127.0.0.1:2\npid=11\n"));

  ASSERT_THAT(RemoveAddressFile(data_dir, 10), IsOk());  // not its file
  EXPECT_THAT(ReadFile(AddressFilePath(data_dir)), IsOk());
  ASSERT_THAT(RemoveAddressFile(data_dir, 11), IsOk());
  EXPECT_THAT(ReadFile(AddressFilePath(data_dir)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(RemoveAddressFile(data_dir, 11), IsOk());  // none: fine
}

TEST(AddressFileTest, AnUnwritableDirectoryIsAClearError) {
  EXPECT_THAT(WriteAddressFile("/nonexistent-fieldsync-dir", {"127.0.0.1:1", 1}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fieldsyncd.address")));
}

}  // namespace
}  // namespace fieldsync::admin
