// The one conversion from absl::Status to grpc::Status: the code is cast
// one to one, the message is kept (messages never hold values or keys).
#ifndef FIELDSYNC_SERVER_GRPC_STATUS_H_
#define FIELDSYNC_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace fieldsync::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_GRPC_STATUS_H_
