// tools/staff_verbs.h: which principals `device simulate` made, and the
// staff list filters.
#include "tools/staff_verbs.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::tools {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Principal Officer(const std::string& id, const std::string& region = "northern") {
  v1::Principal p;
  p.set_id(id);
  p.set_kind(v1::PRINCIPAL_KIND_OFFICER);
  p.set_role(v1::ROLE_OFFICER);
  p.add_regions(region);
  p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  return p;
}

v1::Principal Device(const std::string& id, const std::string& officer, const std::string& label) {
  v1::Principal p;
  p.set_id(id);
  p.set_kind(v1::PRINCIPAL_KIND_DEVICE);
  p.set_role(v1::ROLE_DEVICE);
  p.set_officer_id(officer);
  p.set_device_label(label);
  p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  return p;
}

v1::Principal Staff(const std::string& id, v1::Role role) {
  v1::Principal p;
  p.set_id(id);
  p.set_kind(v1::PRINCIPAL_KIND_STAFF);
  p.set_role(role);
  p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  return p;
}

TEST(IsSimulatedTest, TheSimulatorsOfficersSupervisorAndTabletsAre) {
  EXPECT_TRUE(IsSimulated(Officer("sim-1a2b3c-officer-1")));
  EXPECT_TRUE(IsSimulated(Staff("sim-1a2b3c-supervisor", v1::ROLE_SUPERVISOR)));
  EXPECT_TRUE(IsSimulated(Device("d1", "sim-1a2b3c-officer-2", "simulated tablet 7 (1a2b3c)")));
}

TEST(IsSimulatedTest, ALabelAloneDoesNotMakeARealTabletSimulated) {
  // A real tablet chose the label itself; its officer is a real one.
  EXPECT_FALSE(IsSimulated(Device("d1", "amina", "simulated tablet 1 (1a2b3c)")));
  // Another run's label, a label that only starts alike, no label.
  EXPECT_FALSE(IsSimulated(Device("d2", "sim-1a2b3c-officer-1", "simulated tablet 1 (ffffff)")));
  EXPECT_FALSE(IsSimulated(Device("d3", "sim-1a2b3c-officer-1", "simulated tablet x (1a2b3c)")));
  EXPECT_FALSE(IsSimulated(Device("d4", "sim-1a2b3c-officer-1", "")));
  for (const char* id : {"sim-officer-1", "sim-1A2B3C-officer-1", "sim-1a2b3c-officer-",
                         "sim-1a2b3c-officer-1x", "xsim-1a2b3c-officer-1", "amina"}) {
    EXPECT_FALSE(IsSimulated(Officer(id))) << id;
  }
  EXPECT_FALSE(IsSimulated(Staff("sim-1a2b3c-supervisor2", v1::ROLE_SUPERVISOR)));
  EXPECT_FALSE(IsSimulated(Staff("sim-1a2b3-supervisor", v1::ROLE_SUPERVISOR)));
}

StaffFilter Filter(std::string role, std::string officer, bool revoked = false,
                   bool simulated = false) {
  StaffFilter f;
  f.role = std::move(role);
  f.officer = std::move(officer);
  f.include_revoked = revoked;
  f.include_simulated = simulated;
  return f;
}

std::vector<std::string> Ids(const std::vector<const v1::Principal*>& ps) {
  std::vector<std::string> out;
  for (const v1::Principal* p : ps) out.push_back(p->id());
  return out;
}

class FilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    all_ = {Staff("admin", v1::ROLE_ADMINISTRATOR),
            Staff("sup", v1::ROLE_SUPERVISOR),
            Officer("amina"),
            Officer("bello", "central"),
            Officer("sim-1a2b3c-officer-1"),
            Device("d-amina", "amina", "blue tablet"),
            Device("d-sim", "sim-1a2b3c-officer-1", "simulated tablet 1 (1a2b3c)")};
    all_[3].set_status(v1::PRINCIPAL_STATUS_REVOKED);
  }
  std::vector<v1::Principal> all_;
};

TEST_F(FilterTest, HidesRevokedAndSimulatedByDefault) {
  absl::StatusOr<std::vector<const v1::Principal*>> shown =
      FilterPrincipals(all_, all_, Filter("", ""));
  ASSERT_THAT(shown, IsOk());
  EXPECT_THAT(Ids(*shown), ElementsAre("admin", "sup", "amina", "d-amina"));

  StaffFilter everything = Filter("", "", true, true);
  shown = FilterPrincipals(all_, all_, everything);
  ASSERT_THAT(shown, IsOk());
  EXPECT_EQ(shown->size(), all_.size());
}

TEST_F(FilterTest, RoleAndOfficerFilters) {
  absl::StatusOr<std::vector<const v1::Principal*>> shown =
      FilterPrincipals(all_, all_, Filter("officer", ""));
  ASSERT_THAT(shown, IsOk());
  EXPECT_THAT(Ids(*shown), ElementsAre("amina"));
  shown = FilterPrincipals(all_, all_, Filter("", "amina"));
  ASSERT_THAT(shown, IsOk());
  EXPECT_THAT(Ids(*shown), ElementsAre("amina", "d-amina"));
  // A revoked officer is known: its list is empty unless revoked ones are asked for.
  shown = FilterPrincipals(all_, all_, Filter("", "bello"));
  ASSERT_THAT(shown, IsOk());
  EXPECT_TRUE(shown->empty());
}

TEST_F(FilterTest, UnknownNamesAreRefusedNamingTheKnownOnes) {
  EXPECT_THAT(FilterPrincipals(all_, all_, Filter("janitor", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("supervisor")));
  // The simulator's officers are named only when simulated ones are shown.
  EXPECT_THAT(
      FilterPrincipals(all_, all_, Filter("", "zara")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("officers are: amina, bello")));
  // An officer outside the listed region is still known.
  std::vector<v1::Principal> northern = {all_[2]};
  EXPECT_THAT(FilterPrincipals(northern, all_, Filter("", "bello")), IsOk());
}

}  // namespace
}  // namespace fieldsync::tools
