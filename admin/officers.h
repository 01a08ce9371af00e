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

// Metadata (Cf::kMetadata) name whose value "1" records that
// RegisterOfficersOfExistingDevices ran. Persisted.
inline constexpr std::string_view kOfficersRegisteredName = "admin.officers_registered";
// The actor recorded for the officers that upgrade registers.
inline constexpr std::string_view kUpgradeActor = "fieldsync://server/upgrade";

struct OfficerUpgrade {
  bool ran = false;                     // false: an earlier start ran it
  std::vector<std::string> registered;  // officer ids, in id order
};

// Brings a deployment from before officers were principals up to date, once:
// registers (active) every officer named by a device entry or an enrolment
// code (of any status) that has no officer entry, with that device's or
// code's region; when they name several regions, the most recently created
// device's or code's, with a warning log line (ids and regions only). Each
// registration is audited as AdminAction kAddOfficerAction by kUpgradeActor,
// in one commit that also records kOfficersRegisteredName; later calls find
// it and do nothing. An officer id that is not a staff id, or an empty
// region, is skipped with a warning; a region the schema does not know is
// registered with a warning. kUnavailable / kDataLoss from storage.
// REQUIRES: nothing else writes the registry meanwhile (run before serving).
absl::StatusOr<OfficerUpgrade> RegisterOfficersOfExistingDevices(storage::Store* store,
                                                                 PrincipalRegistry* registry,
                                                                 const sync::Schema& schema,
                                                                 Clock* clock,
                                                                 audit::AuditLog* audit);

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
