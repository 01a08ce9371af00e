#include "server/authz.h"

#include <array>

#include "absl/strings/str_format.h"
#include "admin/principals.h"

namespace fieldsync::server {
namespace {

constexpr RoleSet kAdministrator = RoleBit(v1::ROLE_ADMINISTRATOR);
// The audit log's readers: it holds ids, counts and hashes, no case content.
constexpr RoleSet kAuditReaders = RoleBit(v1::ROLE_AUDITOR) | kAdministrator;
constexpr RoleSet kDevice = RoleBit(v1::ROLE_DEVICE);
constexpr RoleSet kSupervisor = RoleBit(v1::ROLE_SUPERVISOR);
// Aggregates: counts only, within the caller's regions, suppressed.
constexpr RoleSet kAggregateReaders = RoleBit(v1::ROLE_ANALYST) | kSupervisor;
// The deployment's schema (record types, fields, sensitivity classes; no
// case data): the roles that read and write case records.
constexpr RoleSet kSchemaReaders = kDevice | kSupervisor;

// Keep sorted by service, then method. tests/server/authz_test.cc checks
// that every method of every service has exactly one row.
constexpr std::array kTable = {
    RpcRule{"/fieldsync.v1.AdminService/AddOfficer", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/AddStaff", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/CancelEnrolmentCode", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/CreateBackup", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/CreateEnrolmentCode", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/EraseCase", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/GetCertificateStatus", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/GetStatus", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/ListEnrolmentCodes", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/ListSealingKeys", true, kAdministrator, Scope::kDeployment},
    // Administrators: the deployment; supervisors: the officers of their
    // regions only (admin::ListPrincipalsFor narrows the answer).
    RpcRule{"/fieldsync.v1.AdminService/ListPrincipals", true, kAdministrator | kSupervisor,
            Scope::kRegions},
    RpcRule{"/fieldsync.v1.AdminService/RenewServerCertificate", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/RenewStaffCertificate", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/RevokePrincipal", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/RotateCa", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/RotateAuditKey", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/RotateMasterKey", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/RotateSealingKey", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/UpdateStaff", true, kAdministrator, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AdminService/WhoAmI", true, kAnyRole, Scope::kSelf},
    RpcRule{"/fieldsync.v1.AggregateService/ListMetrics", true, kAggregateReaders, Scope::kRegions},
    RpcRule{"/fieldsync.v1.AggregateService/Query", true, kAggregateReaders, Scope::kRegions},
    RpcRule{"/fieldsync.v1.AggregateService/VerifyCounters", true, kAdministrator,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AuditService/GetConsistencyProof", true, kAuditReaders,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AuditService/GetEntries", true, kAuditReaders, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AuditService/GetInclusionProof", true, kAuditReaders,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AuditService/GetKeyTransitions", true, kAuditReaders,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.AuditService/GetSignedTreeHead", true, kAuditReaders,
            Scope::kDeployment},
    RpcRule{"/fieldsync.v1.CaseService/AssignCase", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/GetCase", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/GetCaseHistory", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/GetConflict", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/ListCases", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/ListConflicts", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/ResolveConflict", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/SetCaseStatus", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.CaseService/TransferCase", true, kSupervisor, Scope::kRegions},
    RpcRule{"/fieldsync.v1.SyncService/Enroll", false, 0, Scope::kPublic},
    RpcRule{"/fieldsync.v1.SyncService/GetSchema", true, kSchemaReaders, Scope::kDeployment},
    // The server's public sealing keys, which only devices seal to.
    RpcRule{"/fieldsync.v1.SyncService/GetSealingKeys", true, kDevice, Scope::kDeployment},
    RpcRule{"/fieldsync.v1.SyncService/Pull", true, kDevice | kSupervisor, Scope::kAssigned},
    RpcRule{"/fieldsync.v1.SyncService/Push", true, kDevice, Scope::kAssigned},
    RpcRule{"/fieldsync.v1.SyncService/RenewCertificate", true, kDevice, Scope::kSelf},
    RpcRule{"/grpc.health.v1.Health/Check", false, 0, Scope::kPublic},
    RpcRule{"/grpc.health.v1.Health/Watch", false, 0, Scope::kPublic},
    // Lists the services and their message types (no data) to any
    // authenticated principal: a valid chain to the deployment's CA(s),
    // clientAuth, a known and active principal.
    RpcRule{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", true, kAnyRole,
            Scope::kPublic, /*authorized_by_gate=*/true},
};

}  // namespace

std::span<const RpcRule> AuthorizationTable() { return kTable; }

absl::StatusOr<const RpcRule*> FindRule(std::string_view method) {
  for (const RpcRule& rule : kTable) {
    if (rule.method == method) return &rule;
  }
  return absl::PermissionDeniedError(
      absl::StrFormat("no authorization rule for %s: the call is not served", std::string(method)));
}

absl::Status CheckRole(const RpcRule& rule, v1::Role role) {
  if (!rule.requires_certificate) return absl::OkStatus();
  int r = static_cast<int>(role);
  if (r > 0 && r < 32 && (rule.roles & (RoleSet{1} << r)) != 0) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrFormat(
      "role %s may not call %s", std::string(admin::RoleName(role)), std::string(rule.method)));
}

}  // namespace fieldsync::server
