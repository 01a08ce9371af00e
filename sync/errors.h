// Machine-readable sync errors: an absl::Status carrying a
// v1::SyncErrorDetail payload that server/ copies into the gRPC status
// details, so that a tablet can act on the reason (PROTOCOL.md).
#ifndef FIELDSYNC_SYNC_ERRORS_H_
#define FIELDSYNC_SYNC_ERRORS_H_

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "fieldsync/v1/sync.pb.h"

namespace fieldsync::sync {

// The payload's type URL (also google.rpc.Status.details' Any type URL).
inline constexpr std::string_view kSyncErrorDetailTypeUrl =
    "type.googleapis.com/fieldsync.v1.SyncErrorDetail";

// A status with `code`, `message` (ids only, never values) and `detail`
// (its reason set to `reason`) attached as payload.
absl::Status SyncError(absl::StatusCode code, v1::SyncErrorReason reason,
                       std::string_view message, v1::SyncErrorDetail detail = {});

// The detail attached by SyncError, or nullopt.
std::optional<v1::SyncErrorDetail> GetSyncErrorDetail(const absl::Status& status);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_ERRORS_H_
