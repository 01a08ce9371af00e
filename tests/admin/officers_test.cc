// admin/officers.h over a real RocksDB store in a temp dir.
#include "admin/officers.h"

#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "admin/principals.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::admin {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class OfficerRegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    registry_ = std::make_unique<PrincipalRegistry>(store_.get());
  }

  void PutOfficer(const std::string& id, const std::string& region, bool is_revoked = false) {
    v1::Principal p;
    p.set_id(id);
    p.set_kind(v1::PRINCIPAL_KIND_OFFICER);
    p.set_role(v1::ROLE_OFFICER);
    p.add_regions(region);
    p.set_status(is_revoked ? v1::PRINCIPAL_STATUS_REVOKED : v1::PRINCIPAL_STATUS_ACTIVE);
    storage::WriteBatch batch;
    ASSERT_THAT(registry_->Put(p, &batch), IsOk());
    ASSERT_THAT(store_->Commit(&batch), IsOk());
  }

  fieldsync::testing::ScopedTempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<PrincipalRegistry> registry_;
};

TEST_F(OfficerRegionTest, ActiveOfficerOfTheRegionPasses) {
  PutOfficer("amina", "northern");

  EXPECT_THAT(CheckOfficerOfRegion(*registry_, "amina", "northern"), IsOk());
}

TEST_F(OfficerRegionTest, UnknownOfficerNamesTheRegionsActiveOfficers) {
  PutOfficer("amina", "northern");
  PutOfficer("bello", "northern");
  PutOfficer("chidi", "northern", /*is_revoked=*/true);
  PutOfficer("dayo", "eastern");

  absl::Status s = CheckOfficerOfRegion(*registry_, "zara", "northern");

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("zara is not a registered officer"),
                                HasSubstr("active officers of region northern are: amina, bello"),
                                Not(HasSubstr("chidi")), Not(HasSubstr("dayo")))));
}

TEST_F(OfficerRegionTest, RevokedOfficerIsRefused) {
  PutOfficer("amina", "northern", /*is_revoked=*/true);

  EXPECT_THAT(CheckOfficerOfRegion(*registry_, "amina", "northern"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("amina is revoked")));
}

TEST_F(OfficerRegionTest, OfficerOfAnotherRegionIsRefusedNamingItsRegion) {
  PutOfficer("dayo", "eastern");
  PutOfficer("amina", "northern");

  EXPECT_THAT(
      CheckOfficerOfRegion(*registry_, "dayo", "northern"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("dayo is an officer of region eastern"), HasSubstr("are: amina"))));
}

TEST_F(OfficerRegionTest, RegionWithoutOfficersSaysHowToAddOne) {
  PutOfficer("dayo", "eastern");

  EXPECT_THAT(CheckOfficerOfRegion(*registry_, "dayo", "western"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("region western has no active officer"),
                             HasSubstr("fieldsync officer add"))));
}

TEST_F(OfficerRegionTest, ManyOfficersAreNamedTwentyAtMost) {
  for (int i = 0; i < 23; ++i) PutOfficer(absl::StrFormat("off%02d", i), "central");

  absl::Status s = CheckOfficerOfRegion(*registry_, "nobody", "central");

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("off00, "), HasSubstr("off19 and 3 more"),
                                Not(HasSubstr("off20")))));
}

TEST_F(OfficerRegionTest, StaffWithTheOfficersIdIsNoOfficer) {
  v1::Principal staff;
  staff.set_id("amina");
  staff.set_kind(v1::PRINCIPAL_KIND_STAFF);
  staff.set_role(v1::ROLE_SUPERVISOR);
  staff.add_regions("northern");
  staff.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  storage::WriteBatch batch;
  ASSERT_THAT(registry_->Put(staff, &batch), IsOk());
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  EXPECT_THAT(CheckOfficerOfRegion(*registry_, "amina", "northern"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a registered officer")));
}

TEST_F(OfficerRegionTest, MalformedIdIsNotEchoed) {
  EXPECT_THAT(CheckOfficerOfRegion(*registry_, "Jane Doe", "northern"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("malformed"), Not(HasSubstr("Jane")))));
}

TEST_F(OfficerRegionTest, ActiveOfficerReturnsItsEntry) {
  PutOfficer("amina", "northern");

  absl::StatusOr<v1::Principal> officer = ActiveOfficer(*registry_, "amina");

  ASSERT_THAT(officer, IsOk());
  EXPECT_EQ(officer->id(), "amina");
  EXPECT_THAT(officer->regions(), ::testing::ElementsAre("northern"));
}

TEST_F(OfficerRegionTest, ActiveOfficerRefusesARevokedOneNamingTheActiveOfAnyRegion) {
  PutOfficer("amina", "northern", /*is_revoked=*/true);
  PutOfficer("dayo", "eastern");
  PutOfficer("bello", "northern");

  EXPECT_THAT(
      ActiveOfficer(*registry_, "amina"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("amina is revoked"), HasSubstr("active officers are: bello, dayo"),
                     HasSubstr("fieldsync officer add"))));
}

TEST(PrincipalRegistryOfficerTest, OfficersAreListedWithTheOtherKindsButNeverEnrolmentCodes) {
  fieldsync::testing::ScopedTempDir dir;
  storage::StoreOptions options;
  options.path = dir.Sub("db");
  options.create_if_missing = true;
  auto store = storage::Store::Open(options);
  ASSERT_THAT(store, IsOk());
  PrincipalRegistry registry(store->get());
  storage::WriteBatch batch;
  v1::Principal officer;
  officer.set_id("amina");
  officer.set_kind(v1::PRINCIPAL_KIND_OFFICER);
  ASSERT_THAT(registry.Put(officer, &batch), IsOk());
  v1::Principal staff;
  staff.set_id("admin");
  staff.set_kind(v1::PRINCIPAL_KIND_STAFF);
  ASSERT_THAT(registry.Put(staff, &batch), IsOk());
  batch.Put(storage::Cf::kPrincipals, storage::EncodeEnrolmentCodeKey("ab12"), "not a principal");
  ASSERT_THAT((*store)->Commit(&batch), IsOk());

  absl::StatusOr<std::vector<v1::Principal>> all = registry.List(v1::PRINCIPAL_KIND_UNSPECIFIED);
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id(), "admin");
  EXPECT_EQ((*all)[1].id(), "amina");
  EXPECT_THAT(registry.List(static_cast<v1::PrincipalKind>(3)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry.Get({v1::PRINCIPAL_KIND_OFFICER, "amina"}), IsOk());
  EXPECT_THAT(registry.Get({v1::PRINCIPAL_KIND_STAFF, "amina"}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(PrincipalUriTest, OfficerUriNamesButNeverParses) {
  EXPECT_EQ(PrincipalUri({v1::PRINCIPAL_KIND_OFFICER, "amina"}), "fieldsync://officer/amina");
  EXPECT_THAT(ParsePrincipalUri("fieldsync://officer/amina"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePrincipalUri("fieldsync://staff/amina"), IsOk());
}

}  // namespace
}  // namespace fieldsync::admin
