// The commit group's read-your-writes view: the overlay wins over the
// store, a prefetch reads only what the overlay lacks, and what the store
// lacks is remembered as absent.
#include "sync/state_view.h"

#include <memory>
#include <string>
#include <vector>

#include "fieldsync/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/column_families.h"
#include "storage/store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using storage::Cf;

class StateViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    store_ = *storage::Store::Open(o);
  }

  void PutInStore(std::string_view key, std::string_view value) {
    storage::WriteBatch b;
    b.Put(Cf::kRecords, key, value);
    ASSERT_THAT(store_->Commit(&b), IsOk());
  }

  fieldsync::testing::ScopedTempDir dir_;
  std::unique_ptr<storage::Store> store_;
};

TEST_F(StateViewTest, PrefetchKeepsTheGroupsOwnWritesAndRemembersAbsentKeys) {
  PutInStore("a", "stored a");
  PutInStore("b", "stored b");
  storage::WriteBatch batch;
  StateView view(store_.get(), &batch);
  view.Put(Cf::kRecords, "b", "written b");

  const std::vector<std::string> keys = {"a", "b", "c", "a"};
  ASSERT_THAT(view.Prefetch(Cf::kRecords, keys), IsOk());
  // Written to the store after the prefetch: the view answers what it read.
  PutInStore("a", "later a");
  PutInStore("c", "later c");

  EXPECT_THAT(view.Get(Cf::kRecords, "a"), IsOkAndHolds(std::optional<std::string>("stored a")));
  EXPECT_THAT(view.Get(Cf::kRecords, "b"), IsOkAndHolds(std::optional<std::string>("written b")));
  EXPECT_THAT(view.Get(Cf::kRecords, "c"), IsOkAndHolds(std::optional<std::string>()));
  EXPECT_EQ(batch.Count(), 1);  // reads write nothing
}

TEST_F(StateViewTest, GetProtoParsesTheValueItWroteAndReportsAbsence) {
  storage::WriteBatch batch;
  StateView view(store_.get(), &batch);
  v1::FieldState state;
  state.set_version(42);
  view.PutProto(Cf::kRecords, "s", state);

  v1::FieldState read;
  EXPECT_THAT(view.GetProto(Cf::kRecords, "s", &read), IsOkAndHolds(true));
  EXPECT_EQ(read.version(), 42u);
  EXPECT_THAT(view.GetProto(Cf::kRecords, "missing", &read), IsOkAndHolds(false));
  view.Delete(Cf::kRecords, "s");
  EXPECT_THAT(view.GetProto(Cf::kRecords, "s", &read), IsOkAndHolds(false));
}

TEST_F(StateViewTest, UnparsableValueIsDataLoss) {
  PutInStore("bad", std::string("\xff\xff\xff", 3));
  storage::WriteBatch batch;
  StateView view(store_.get(), &batch);
  v1::FieldState read;
  EXPECT_THAT(view.GetProto(Cf::kRecords, "bad", &read),
              ::fieldsync::testing::StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace fieldsync::sync
