// Field officers: the principals cases are assigned to. An officer has one
// region and no certificate (its enrolled devices call the server for it).
// gRPC-free; server/admin_service.cc and server/sync_service.cc adapt it.
#ifndef FIELDSYNC_ADMIN_OFFICERS_H_
#define FIELDSYNC_ADMIN_OFFICERS_H_

#include <string_view>

#include "absl/status/status.h"
#include "admin/principals.h"

namespace fieldsync::admin {

// OK when officer_id is a registered, active officer of region; otherwise
// kInvalidArgument naming the active officers of that region (or saying it
// has none and how to add one: fieldsync officer add). Also kUnavailable or
// kDataLoss when the registry cannot be read. For AssignCase and
// TransferCase: the officer a case goes to must be able to receive it.
absl::Status CheckOfficerOfRegion(const PrincipalRegistry& registry, std::string_view officer_id,
                                  std::string_view region);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_OFFICERS_H_
