#include "server/grpc_status.h"

#include <string>

#include "fieldsync/v1/rpc_status.pb.h"
#include "sync/errors.h"

namespace fieldsync::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  // A sync error's reason travels in the trailer grpc-status-details-bin as
  // a google.rpc.Status-compatible message (fieldsync.v1.RpcStatus) holding
  // one Any of SyncErrorDetail (docs/PROTOCOL.md §8).
  std::optional<v1::SyncErrorDetail> detail = sync::GetSyncErrorDetail(status);
  if (!detail.has_value()) return grpc::Status(code, message);
  v1::RpcStatus rich;
  rich.set_code(static_cast<int32_t>(status.code()));
  rich.set_message(message);
  rich.add_details()->PackFrom(*detail);
  return grpc::Status(code, message, rich.SerializeAsString());
}

}  // namespace fieldsync::server
