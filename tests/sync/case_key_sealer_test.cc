#include "sync/case_key_sealer.h"

#include <memory>

#include "crypto/case_keys.h"
#include "crypto/master_key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;

class CaseKeySealerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    store_ = *storage::Store::Open(o);
    keys_ = std::make_unique<crypto::CaseKeyStore>(store_.get(), &ring_);
    sealer_ = std::make_unique<CaseKeySealer>(store_.get(), keys_.get(), &random_);
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SeededRandom random_;
  crypto::MasterKeyRing ring_ = crypto::MasterKeyRing::Generate(random_);
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<crypto::CaseKeyStore> keys_;
  std::unique_ptr<CaseKeySealer> sealer_;
};

const std::string kCase = testing::Id(1);
const std::string kRecord = testing::Id(2);

TEST_F(CaseKeySealerTest, SealedValueOpensOnlyAtItsAddress) {
  absl::StatusOr<std::string> sealed =
      sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina");
  ASSERT_THAT(sealed, IsOk());

  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              IsOkAndHolds(std::string("Amina")));
  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "family_name"}, *sealed),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(CaseKeySealerTest, DigestIsDeterministicPerCaseAndField) {
  absl::StatusOr<std::string> a = sealer_->Digest(kCase, "given_name", "Amina");
  ASSERT_THAT(a, IsOk());

  EXPECT_THAT(sealer_->Digest(kCase, "given_name", "Amina"), IsOkAndHolds(*a));
  EXPECT_NE(*sealer_->Digest(kCase, "family_name", "Amina"), *a);
  EXPECT_NE(*sealer_->Digest(testing::Id(9), "given_name", "Amina"), *a);
}

TEST_F(CaseKeySealerTest, ErasedCaseNoLongerOpens) {
  absl::StatusOr<std::string> sealed =
      sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina");
  ASSERT_THAT(sealed, IsOk());

  ASSERT_THAT(keys_->Erase(*ParseUuid(kCase)), IsOk());

  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace fieldsync::sync
