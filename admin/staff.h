// Registering and revoking principals: the administrator's operations on
// the registry. gRPC-free; server/admin_service.cc adapts it.
#ifndef FIELDSYNC_ADMIN_STAFF_H_
#define FIELDSYNC_ADMIN_STAFF_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "admin/certificates.h"
#include "admin/principals.h"
#include "audit/log.h"
#include "common/clock.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.pb.h"
#include "storage/store.h"
#include "sync/schema.h"

namespace fieldsync::admin {

struct NewStaff {
  std::string id;
  v1::Role role = v1::ROLE_UNSPECIFIED;
  std::vector<std::string> regions;
  std::string csr_pem;
};

// The AdminAction name of a change to a staff member's regions
// (docs/AUDIT.md): subjects (staff id, each new region).
inline constexpr std::string_view kUpdateStaffAction = "staff.update";

struct UpdatedStaff {
  v1::Principal principal;
  std::vector<std::string> previous_regions;
  uint64_t audit_leaf_index = 0;  // 0 without an audit log
};

struct IssuedStaff {
  v1::Principal principal;
  std::string certificate_pem;
};

// Thread-safe: registry writes hold the registry's write mutex. Pointers
// are not owned and must outlive this object.
class StaffAdmin {
 public:
  // `registry` is `store`'s; `schema` is the deployment's (its regions).
  // `audit` (may be null: nothing is logged) gets a StaffAdded or
  // PrincipalRevoked event in the same write as the registry change.
  StaffAdmin(storage::Store* store, PrincipalRegistry* registry, const sync::Schema* schema,
             const CertificateAuthorities* cas, Clock* clock, audit::AuditLog* audit = nullptr)
      : store_(store),
        registry_(registry),
        schema_(schema),
        cas_(cas),
        clock_(clock),
        audit_(audit) {}

  // Registers a staff principal and signs its CSR; `actor` is the caller's
  // URI, recorded in the entry. kUnavailable if the audit log is busy or
  // storage fails (nothing is registered).
  // kInvalidArgument: malformed id, role or CSR, or a region that is not
  //   one of the schema's (the message says which and why, naming the
  //   known regions). kAlreadyExists: the id is taken (ids are never reused,
  //   even after revocation).
  absl::StatusOr<IssuedStaff> Add(const NewStaff& request, const std::string& actor);

  // Revokes a staff or device principal from the next call on. Revoking a
  // revoked principal returns it unchanged. kNotFound: no such principal.
  // kFailedPrecondition: `name` is the caller itself. kInvalidArgument: an
  // officer (OfficerAdmin::Revoke revokes it with its devices).
  absl::StatusOr<v1::Principal> Revoke(const PrincipalName& name, const std::string& actor);

  // Replaces the regions of the active supervisor or analyst `id` with
  // `regions`; audited as AdminAction kUpdateStaffAction in the same
  // commit. Setting the regions it has is a no-op that is still audited.
  // kInvalidArgument: a region the schema does not know (the message names
  //   the known ones), none, or one given twice.
  // kNotFound: `id` is no staff member (the message names the supervisors
  //   and analysts). kFailedPrecondition: revoked, or an administrator or
  //   auditor (whose scope is the whole deployment).
  // kUnavailable: storage or the audit log (nothing changes).
  absl::StatusOr<UpdatedStaff> UpdateRegions(std::string_view id,
                                             const std::vector<std::string>& regions,
                                             const std::string& actor);

 private:
  storage::Store* store_;
  PrincipalRegistry* registry_;
  const sync::Schema* schema_;
  const CertificateAuthorities* cas_;
  Clock* clock_;
  audit::AuditLog* audit_;
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_STAFF_H_
