// Authorization as data: one table maps every RPC the server exposes to the
// roles that may call it and the scope their answers are limited to.
// Authenticator::Authorize (server/auth.h) enforces it for every call of
// every service; a service adds rows here, never checks of its own.
#ifndef FIELDSYNC_SERVER_AUTHZ_H_
#define FIELDSYNC_SERVER_AUTHZ_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/admin.pb.h"

namespace fieldsync::server {

// Which part of the data an allowed caller reaches.
enum class Scope {
  kPublic,      // no data: health checks, enrolment with a one-time code
  kSelf,        // only the caller's own principal
  kRegions,     // cases and aggregates of the caller's regions
  kAssigned,    // cases assigned to the device's officer
  kDeployment,  // the whole deployment (administrators, auditors' log view)
};

// A set of roles, one bit per v1::Role value.
using RoleSet = uint32_t;
constexpr RoleSet RoleBit(v1::Role role) { return RoleSet{1} << static_cast<int>(role); }
constexpr RoleSet kAnyRole = RoleBit(v1::ROLE_DEVICE) | RoleBit(v1::ROLE_SUPERVISOR) |
                             RoleBit(v1::ROLE_ANALYST) | RoleBit(v1::ROLE_AUDITOR) |
                             RoleBit(v1::ROLE_ADMINISTRATOR);
constexpr RoleSet kAnyStaff = kAnyRole & ~RoleBit(v1::ROLE_DEVICE);

struct RpcRule {
  // Full gRPC method name, "/package.Service/Method".
  std::string_view method;
  // False only for calls a device makes before it has a certificate.
  bool requires_certificate;
  // Roles allowed; ignored when !requires_certificate.
  RoleSet roles;
  Scope scope;
  // True for a service gRPC itself serves (reflection), which no adapter
  // of ours authorizes: CertificateGate authorizes its calls fully
  // (server/auth.h).
  bool authorized_by_gate = false;
};

// Every RPC of every service the server registers, in one table.
std::span<const RpcRule> AuthorizationTable();

// The rule for `method`; kPermissionDenied if it has none (an RPC without a
// row is never served).
absl::StatusOr<const RpcRule*> FindRule(std::string_view method);

// OK if `role` may call `rule.method`; kPermissionDenied naming the method
// and the role otherwise.
absl::Status CheckRole(const RpcRule& rule, v1::Role role);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_AUTHZ_H_
