// Field officers: the principals cases are assigned to. An officer has one
// region and no certificate (its enrolled devices call the server for it).
// gRPC-free; server/admin_service.cc and server/sync_service.cc adapt it.
#ifndef FIELDSYNC_ADMIN_OFFICERS_H_
#define FIELDSYNC_ADMIN_OFFICERS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "admin/principals.h"
#include "audit/log.h"
#include "common/clock.h"
#include "fieldsync/v1/admin.pb.h"
#include "storage/store.h"
#include "sync/schema.h"

namespace fieldsync::admin {

// OK when officer_id is a registered, active officer of region; otherwise
// kInvalidArgument naming the active officers of that region (or saying it
// has none and how to add one: fieldsync officer add). Also kUnavailable or
// kDataLoss when the registry cannot be read. For AssignCase and
// TransferCase: the officer a case goes to must be able to receive it.
absl::Status CheckOfficerOfRegion(const PrincipalRegistry& registry, std::string_view officer_id,
                                  std::string_view region);

// The registered, active officer `officer_id`. kInvalidArgument when it is
// none, naming the active officers (20 at most, then how many more) and how
// to add one (fieldsync officer add); registry errors as CheckOfficerOfRegion.
absl::StatusOr<v1::Principal> ActiveOfficer(const PrincipalRegistry& registry,
                                            std::string_view officer_id);

// What AdminService.ListPrincipals answers `caller` (its registry entry):
// principals of `request.kind` (any if unspecified), revoked ones only with
// `request.include_revoked`, in kind then id order. `request.region`, when
// set, keeps those whose regions include it.
//   Administrators see every principal.
//   Supervisors see only the officers of their own regions.
// kInvalidArgument: `request.region` is not one of the schema's (the message
//   names them), or the kind is not a PrincipalKind.
// kPermissionDenied: a supervisor asking for another kind than officers or
//   a region outside its own; any other role.
absl::StatusOr<std::vector<v1::Principal>> ListPrincipalsFor(
    const PrincipalRegistry& registry, const sync::Schema& schema, const v1::Principal& caller,
    const v1::ListPrincipalsRequest& request);

// The AdminAction names of officer changes (docs/AUDIT.md): subjects
// (officer id, region) and (officer id).
inline constexpr std::string_view kAddOfficerAction = "officer.add";
inline constexpr std::string_view kRevokeOfficerAction = "officer.revoke";

struct RevokedOfficer {
  v1::Principal officer;
  // The devices revoked with it (those that were active), in id order.
  std::vector<std::string> device_ids;
};

// Registers and revokes officers. Thread-safe: writes hold the registry's
// write mutex. Pointers are not owned and must outlive this object.
class OfficerAdmin {
 public:
  // `registry` is `store`'s; `schema` is the deployment's (its regions).
  // `audit` may be null: nothing is logged.
  OfficerAdmin(storage::Store* store, PrincipalRegistry* registry, const sync::Schema* schema,
               Clock* clock, audit::AuditLog* audit = nullptr)
      : store_(store), registry_(registry), schema_(schema), clock_(clock), audit_(audit) {}

  // Registers officer `id` of `region`, active; `actor` (the caller's URI)
  // is recorded in the entry and in the AdminAction kAddOfficerAction
  // committed with it.
  // kInvalidArgument: `id` is not a staff id (1-40 of [a-z0-9._-]), or
  //   `region` is not one of the schema's (the message names them).
  // kAlreadyExists: an officer `id` exists, even revoked (never reused).
  // kUnavailable: storage or the audit log (nothing is registered).
  absl::StatusOr<v1::Principal> Add(std::string_view id, std::string_view region,
                                    const std::string& actor);

  // Revokes officer `id` and, in the same commit, every active device whose
  // officer it is: they are refused from their next call on. Audited in
  // that commit: AdminAction kRevokeOfficerAction, and PrincipalRevoked for
  // each device. A revoked officer is returned unchanged (with any device
  // of it still active revoked). kNotFound: no officer `id`;
  // kUnavailable: storage or the audit log (nothing is revoked).
  absl::StatusOr<RevokedOfficer> Revoke(std::string_view id, const std::string& actor);

 private:
  storage::Store* store_;
  PrincipalRegistry* registry_;
  const sync::Schema* schema_;
  Clock* clock_;
  audit::AuditLog* audit_;
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_OFFICERS_H_
