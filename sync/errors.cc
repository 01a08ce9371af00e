#include "sync/errors.h"

#include <string>

#include "absl/strings/cord.h"

namespace fieldsync::sync {

absl::Status SyncError(absl::StatusCode code, v1::SyncErrorReason reason,
                       std::string_view message, v1::SyncErrorDetail detail) {
  absl::Status status(code, absl::string_view(message.data(), message.size()));
  detail.set_reason(reason);
  status.SetPayload(absl::string_view(kSyncErrorDetailTypeUrl.data(),
                                      kSyncErrorDetailTypeUrl.size()),
                    absl::Cord(detail.SerializeAsString()));
  return status;
}

std::optional<v1::SyncErrorDetail> GetSyncErrorDetail(const absl::Status& status) {
  auto payload = status.GetPayload(
      absl::string_view(kSyncErrorDetailTypeUrl.data(), kSyncErrorDetailTypeUrl.size()));
  if (!payload.has_value()) return std::nullopt;
  v1::SyncErrorDetail detail;
  if (!detail.ParseFromString(std::string(*payload))) return std::nullopt;
  return detail;
}

}  // namespace fieldsync::sync
