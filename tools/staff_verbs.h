// `fieldsync staff list|update` and `fieldsync device codes list|cancel`:
// the administrator's view of who may reach the deployment (staff, officers,
// devices with their officer, label, creation and last sync) and of the
// enrolment codes still open (AdminService).
#ifndef FIELDSYNC_TOOLS_STAFF_VERBS_H_
#define FIELDSYNC_TOOLS_STAFF_VERBS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fieldsync/v1/admin.pb.h"
#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 refused or failed, 2 usage) and
// on failure sets *error to the one line to print.
int StaffList(const Args& args, std::string* error);
int StaffUpdate(const Args& args, std::string* error);
int DeviceCodesList(const Args& args, std::string* error);
int DeviceCodesCancel(const Args& args, std::string* error);

// Whether `p` was made by `fieldsync device simulate`: its officers
// (sim-<run>-officer-N), its supervisor (sim-<run>-supervisor), and its
// tablets, labelled "simulated tablet N (<run>)" AND enrolled for one of
// that run's officers (a label alone is the tablet's own word: a real
// tablet could give itself that label, but only an administrator registers
// officers).
bool IsSimulated(const v1::Principal& p);

// The ROLE column and --role value of a principal: "device", "supervisor",
// "analyst", "auditor", "administrator" or "officer".
std::string RoleOf(const v1::Principal& p);

struct StaffFilter {
  std::string role;     // "" = any; else one of RoleOf's names
  std::string officer;  // "" = any; else the officer and its devices
  bool include_revoked = false;
  bool include_simulated = false;
};

// kInvalidArgument naming the known roles when `role` is none of them.
absl::Status CheckRoleName(std::string_view role);

// The principals of `all` that `filter` keeps, in their order. Returns
// kInvalidArgument when filter.officer is not an officer of `known` (every
// principal the deployment has), naming the known officers (20 at most).
absl::StatusOr<std::vector<const v1::Principal*>> FilterPrincipals(
    const std::vector<v1::Principal>& all, const std::vector<v1::Principal>& known,
    const StaffFilter& filter);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_STAFF_VERBS_H_
