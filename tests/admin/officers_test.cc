// admin/officers.h over a real RocksDB store in a temp dir.
#include "admin/officers.h"

#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "admin/default_schema.h"
#include "admin/enrolment.h"
#include "admin/principals.h"
#include "audit/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/schema.h"
#include "tests/testing/simulated_clock.h"
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

// --- The upgrade of deployments from before officers were principals --------

class OfficerUpgradeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    registry_ = std::make_unique<PrincipalRegistry>(store_.get());
    absl::StatusOr<v1::Schema> proto = sync::ParseSchema(DefaultSchemaText());
    ASSERT_THAT(proto, IsOk());
    absl::StatusOr<std::unique_ptr<sync::Schema>> schema = sync::Schema::Create(*proto);
    ASSERT_THAT(schema, IsOk());
    schema_ = *std::move(schema);
    audit::AuditLogOptions audit;
    audit.store = store_.get();
    audit.clock = &clock_;
    absl::StatusOr<std::unique_ptr<audit::AuditLog>> log = audit::AuditLog::Open(audit);
    ASSERT_THAT(log, IsOk());
    audit_ = *std::move(log);
  }

  // A device of `officer` in `region`, enrolled `age` before the clock.
  void PutDevice(int n, const std::string& officer, const std::string& region, absl::Duration age,
                 bool is_revoked = false) {
    v1::Principal d;
    d.set_id(absl::StrFormat("00000000-0000-4000-8000-%012d", n));
    d.set_kind(v1::PRINCIPAL_KIND_DEVICE);
    d.set_role(v1::ROLE_DEVICE);
    d.add_regions(region);
    d.set_officer_id(officer);
    d.set_created_unix_micros(absl::ToUnixMicros(clock_.Now() - age));
    d.set_status(is_revoked ? v1::PRINCIPAL_STATUS_REVOKED : v1::PRINCIPAL_STATUS_ACTIVE);
    storage::WriteBatch batch;
    ASSERT_THAT(registry_->Put(d, &batch), IsOk());
    ASSERT_THAT(store_->Commit(&batch), IsOk());
  }

  // An enrolment code for `officer` in `region`, issued `age` ago.
  void PutCode(int n, const std::string& officer, const std::string& region, absl::Duration age) {
    v1::EnrolmentCode code;
    code.set_officer_id(officer);
    code.set_region(region);
    code.set_created_unix_micros(absl::ToUnixMicros(clock_.Now() - age));
    code.set_expires_unix_micros(absl::ToUnixMicros(clock_.Now() - age + absl::Hours(24)));
    code.set_created_by("fieldsync://staff/admin");
    storage::WriteBatch batch;
    batch.Put(storage::Cf::kPrincipals,
              storage::EncodeEnrolmentCodeKey(absl::StrFormat("%064d", n)),
              code.SerializeAsString());
    ASSERT_THAT(store_->Commit(&batch), IsOk());
  }

  absl::StatusOr<OfficerUpgrade> Upgrade() {
    return RegisterOfficersOfExistingDevices(store_.get(), registry_.get(), *schema_, &clock_,
                                             audit_.get());
  }

  // The region of registered officer `id` ("" if it has none).
  std::string RegionOf(const std::string& id) {
    absl::StatusOr<v1::Principal> p = registry_->Get({v1::PRINCIPAL_KIND_OFFICER, id});
    return p.ok() && p->regions_size() == 1 ? p->regions(0) : "";
  }

  std::vector<protocol::Event> AuditEntries() {
    std::vector<protocol::Event> out;
    EXPECT_THAT(audit_->ReadEntries(0, audit_->size(),
                                    [&](uint64_t, std::string_view entry) {
                                      absl::StatusOr<protocol::Event> e =
                                          protocol::DecodeEvent(entry);
                                      if (e.ok()) out.push_back(*std::move(e));
                                      return e.status();
                                    }),
                IsOk());
    return out;
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<PrincipalRegistry> registry_;
  std::unique_ptr<sync::Schema> schema_;
  std::unique_ptr<audit::AuditLog> audit_;
};

TEST_F(OfficerUpgradeTest, RegistersTheOfficersOfDevicesAndCodesOnceWithTheirRegions) {
  PutDevice(1, "amina", "northern", absl::Hours(1));
  PutCode(1, "amina", "eastern", absl::Hours(5));  // older: the device's region wins
  PutCode(2, "bello", "central", absl::Hours(2));  // a code never used
  PutDevice(2, "chidi", "western", absl::Hours(3), /*is_revoked=*/true);

  absl::StatusOr<OfficerUpgrade> first = Upgrade();

  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(first->ran);
  EXPECT_THAT(first->registered, ::testing::ElementsAre("amina", "bello", "chidi"));
  EXPECT_EQ(RegionOf("amina"), "northern");
  EXPECT_EQ(RegionOf("bello"), "central");
  EXPECT_EQ(RegionOf("chidi"), "western");
  absl::StatusOr<v1::Principal> amina = registry_->Get({v1::PRINCIPAL_KIND_OFFICER, "amina"});
  ASSERT_THAT(amina, IsOk());
  EXPECT_EQ(amina->status(), v1::PRINCIPAL_STATUS_ACTIVE);
  EXPECT_EQ(amina->role(), v1::ROLE_OFFICER);
  EXPECT_EQ(amina->changed_by(), "fieldsync://server/upgrade");
  EXPECT_THAT(CheckOfficerOfRegion(*registry_, "amina", "northern"), IsOk());
}

TEST_F(OfficerUpgradeTest, EachRegistrationIsAuditedByTheUpgrade) {
  PutDevice(1, "amina", "northern", absl::Hours(1));
  PutCode(1, "bello", "central", absl::Hours(2));

  ASSERT_THAT(Upgrade(), IsOk());

  std::vector<protocol::Event> events = AuditEntries();
  ASSERT_EQ(events.size(), 2u);
  std::vector<std::vector<std::string>> subjects;
  for (const protocol::Event& e : events) {
    const auto* action = std::get_if<protocol::AdminAction>(&e.body);
    ASSERT_NE(action, nullptr);
    EXPECT_EQ(action->actor, "fieldsync://server/upgrade");
    EXPECT_EQ(action->action, "officer.add");
    subjects.push_back(action->subject_ids);
  }
  EXPECT_THAT(subjects, ::testing::ElementsAre(std::vector<std::string>{"amina", "northern"},
                                               std::vector<std::string>{"bello", "central"}));
}

TEST_F(OfficerUpgradeTest, SecondRunDoesNothing) {
  PutDevice(1, "amina", "northern", absl::Hours(1));
  ASSERT_THAT(Upgrade(), IsOk());
  const uint64_t audited = audit_->size();
  // Even an officer that appears afterwards (it cannot, through the
  // server: codes need a registered officer) is not registered by it.
  PutDevice(2, "zed", "eastern", absl::Hours(1));

  absl::StatusOr<OfficerUpgrade> second = Upgrade();

  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(second->ran);
  EXPECT_THAT(second->registered, ::testing::IsEmpty());
  EXPECT_EQ(audit_->size(), audited);
  EXPECT_THAT(registry_->Get({v1::PRINCIPAL_KIND_OFFICER, "zed"}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey("admin.officers_registered")),
      ::fieldsync::testing::IsOkAndHolds(std::string("1")));
}

TEST_F(OfficerUpgradeTest, RegisteredOfficersAreLeftAsTheyAre) {
  OfficerAdmin officers(store_.get(), registry_.get(), schema_.get(), &clock_, audit_.get());
  ASSERT_THAT(officers.Add("dayo", "eastern", "fieldsync://staff/admin"), IsOk());
  ASSERT_THAT(officers.Revoke("dayo", "fieldsync://staff/admin"), IsOk());
  PutDevice(1, "dayo", "northern", absl::Minutes(1));

  absl::StatusOr<OfficerUpgrade> upgrade = Upgrade();

  ASSERT_THAT(upgrade, IsOk());
  EXPECT_THAT(upgrade->registered, ::testing::IsEmpty());
  absl::StatusOr<v1::Principal> dayo = registry_->Get({v1::PRINCIPAL_KIND_OFFICER, "dayo"});
  ASSERT_THAT(dayo, IsOk());
  EXPECT_EQ(dayo->status(), v1::PRINCIPAL_STATUS_REVOKED);
  EXPECT_THAT(dayo->regions(), ::testing::ElementsAre("eastern"));
}

TEST_F(OfficerUpgradeTest, AnOfficerIdThatIsNoStaffIdIsSkipped) {
  PutDevice(1, "Not An Id", "northern", absl::Hours(1));
  PutDevice(2, "amina", "northern", absl::Hours(1));

  absl::StatusOr<OfficerUpgrade> upgrade = Upgrade();

  ASSERT_THAT(upgrade, IsOk());
  EXPECT_THAT(upgrade->registered, ::testing::ElementsAre("amina"));
}

}  // namespace
}  // namespace fieldsync::admin
