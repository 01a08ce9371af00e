#include "server/authz.h"

#include <set>
#include <string>

#include "fieldsync/v1/admin.pb.h"
#include "fieldsync/v1/aggregates.pb.h"
#include "fieldsync/v1/audit.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

constexpr v1::Role kAllRoles[] = {v1::ROLE_DEVICE,  v1::ROLE_SUPERVISOR,    v1::ROLE_ANALYST,
                                  v1::ROLE_AUDITOR, v1::ROLE_ADMINISTRATOR, v1::ROLE_OFFICER};

// The services fieldsyncd registers; each later service adds its name.
constexpr const char* kServices[] = {"fieldsync.v1.AdminService", "fieldsync.v1.SyncService",
                                     "fieldsync.v1.CaseService", "fieldsync.v1.AuditService",
                                     "fieldsync.v1.AggregateService"};

TEST(AuthzTableTest, EveryRpcTimesEveryRoleIsAllowedExactlyAsTheTableSays) {
  int checked = 0;
  for (const RpcRule& rule : AuthorizationTable()) {
    for (v1::Role role : kAllRoles) {
      absl::Status s = CheckRole(rule, role);
      bool allowed = !rule.requires_certificate || (rule.roles & RoleBit(role)) != 0;
      if (allowed) {
        EXPECT_THAT(s, IsOk()) << rule.method << " role " << role;
      } else {
        EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied))
            << rule.method << " role " << role;
      }
      ++checked;
    }
    // An unspecified role never passes a method that needs a certificate.
    if (rule.requires_certificate) {
      EXPECT_THAT(CheckRole(rule, v1::ROLE_UNSPECIFIED),
                  StatusIs(absl::StatusCode::kPermissionDenied));
    }
  }
  EXPECT_EQ(checked, static_cast<int>(AuthorizationTable().size() * std::size(kAllRoles)));
}

TEST(AuthzTableTest, EveryMethodOfEveryServiceHasExactlyOneRow) {
  std::multiset<std::string> rows;
  for (const RpcRule& rule : AuthorizationTable()) rows.insert(std::string(rule.method));
  // Links the generated sync.proto descriptors in (the pool only holds what
  // the binary links).
  ASSERT_NE(v1::PushRequest::descriptor(), nullptr);
  ASSERT_NE(v1::AuditReceipt::descriptor(), nullptr);
  ASSERT_NE(v1::QueryRequest::descriptor(), nullptr);
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* service_name : kServices) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(service_name);
    ASSERT_NE(service, nullptr) << service_name;
    for (int i = 0; i < service->method_count(); ++i) {
      std::string method = "/" + service->full_name() + "/" + service->method(i)->name();
      EXPECT_EQ(rows.count(method), 1u) << method;
    }
  }
  for (const std::string& method : rows) EXPECT_EQ(rows.count(method), 1u) << method;
}

TEST(AuthzTableTest, OnlyEnrolmentAndHealthAreServedWithoutCertificate) {
  for (const RpcRule& rule : AuthorizationTable()) {
    if (rule.requires_certificate) continue;
    std::string m(rule.method);
    EXPECT_TRUE(m.rfind("/grpc.health.v1.Health/", 0) == 0 ||
                m == "/fieldsync.v1.SyncService/Enroll")
        << m;
  }
}

TEST(AuthzTableTest, AdministrationIsForAdministratorsOnly) {
  for (const char* m :
       {"/fieldsync.v1.AdminService/AddStaff", "/fieldsync.v1.AdminService/AddOfficer",
        "/fieldsync.v1.AdminService/RevokePrincipal",
        "/fieldsync.v1.AdminService/CreateEnrolmentCode", "/fieldsync.v1.AdminService/CreateBackup",
        "/fieldsync.v1.AdminService/RotateSealingKey", "/fieldsync.v1.AdminService/ListSealingKeys",
        "/fieldsync.v1.AdminService/RotateAuditKey", "/fieldsync.v1.AdminService/RotateMasterKey",
        "/fieldsync.v1.AdminService/RotateCa"}) {
    absl::StatusOr<const RpcRule*> rule = FindRule(m);
    ASSERT_THAT(rule, IsOk());
    EXPECT_EQ((*rule)->roles, RoleBit(v1::ROLE_ADMINISTRATOR)) << m;
  }
}

TEST(AuthzTableTest, KeyTransitionsAreForAuditorsAndAdministrators) {
  absl::StatusOr<const RpcRule*> rule = FindRule("/fieldsync.v1.AuditService/GetKeyTransitions");
  ASSERT_THAT(rule, IsOk());
  EXPECT_THAT(CheckRole(**rule, v1::ROLE_AUDITOR), IsOk());
  EXPECT_THAT(CheckRole(**rule, v1::ROLE_ADMINISTRATOR), IsOk());
  for (v1::Role role : {v1::ROLE_DEVICE, v1::ROLE_SUPERVISOR, v1::ROLE_ANALYST}) {
    EXPECT_THAT(CheckRole(**rule, role), StatusIs(absl::StatusCode::kPermissionDenied)) << role;
  }
}

TEST(AuthzTableTest, SchemaIsForDevicesAndSupervisorsOnly) {
  absl::StatusOr<const RpcRule*> rule = FindRule("/fieldsync.v1.SyncService/GetSchema");
  ASSERT_THAT(rule, IsOk());
  EXPECT_TRUE((*rule)->requires_certificate);
  EXPECT_THAT(CheckRole(**rule, v1::ROLE_DEVICE), IsOk());
  EXPECT_THAT(CheckRole(**rule, v1::ROLE_SUPERVISOR), IsOk());
  for (v1::Role role : {v1::ROLE_ANALYST, v1::ROLE_AUDITOR, v1::ROLE_ADMINISTRATOR}) {
    EXPECT_THAT(CheckRole(**rule, role), StatusIs(absl::StatusCode::kPermissionDenied)) << role;
  }
}

TEST(AuthzTableTest, SealingKeysAreFetchedByDevicesOnly) {
  absl::StatusOr<const RpcRule*> rule = FindRule("/fieldsync.v1.SyncService/GetSealingKeys");
  ASSERT_THAT(rule, IsOk());
  EXPECT_TRUE((*rule)->requires_certificate);
  EXPECT_EQ((*rule)->roles, RoleBit(v1::ROLE_DEVICE));
}

// Supervisors list the officers of their regions (the handler narrows).
TEST(AuthzTableTest, PrincipalsAreListedByAdministratorsAndSupervisors) {
  absl::StatusOr<const RpcRule*> rule = FindRule("/fieldsync.v1.AdminService/ListPrincipals");
  ASSERT_THAT(rule, IsOk());
  EXPECT_EQ((*rule)->roles, RoleBit(v1::ROLE_ADMINISTRATOR) | RoleBit(v1::ROLE_SUPERVISOR));
}

// Officers have no certificate and never call the server: no row lets
// their role through, should a registry entry ever be presented as a caller.
TEST(AuthzTableTest, NoMethodAllowsTheOfficerRole) {
  for (const RpcRule& rule : AuthorizationTable()) {
    if (!rule.requires_certificate) continue;
    EXPECT_THAT(CheckRole(rule, v1::ROLE_OFFICER), StatusIs(absl::StatusCode::kPermissionDenied))
        << rule.method;
  }
}

TEST(AuthzTableTest, UnknownMethodIsDenied) {
  EXPECT_THAT(FindRule("/fieldsync.v1.AdminService/DropEverything"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace fieldsync::server
