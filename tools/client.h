// Connecting the fieldsync tool to a fieldsyncd with a principal's
// certificate (the administrator's in DIR/admin/ unless told otherwise).
#ifndef FIELDSYNC_TOOLS_CLIENT_H_
#define FIELDSYNC_TOOLS_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fieldsync/v1/sync.pb.h"
#include "tools/cli.h"

namespace fieldsync::tools {

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::string server;  // HOST:PORT
};

// Uses --server (else the listen address in DIR/fieldsyncd.conf, with a
// wildcard host replaced by 127.0.0.1), --cert/--key (else
// DIR/admin/admin.{crt,key}) and --ca (else DIR/admin/ca.crt).
// kNotFound / kInvalidArgument naming the missing file or option.
absl::StatusOr<Connection> Connect(const Args& args);

// "UNAUTHENTICATED: principal ... is revoked" style one-liner, with a hint
// for transport failures. When the status carries a SyncErrorDetail whose
// reason says more than the code, the reason follows the message:
// "PERMISSION_DENIED: case ... is not in the caller's regions [OUT_OF_SCOPE]".
std::string DescribeRpcError(const grpc::Status& status, const std::string& server);

// The SyncErrorDetail a refused call carries in its status details
// (rpc_status.proto); a default one (reason UNSPECIFIED) when there is none
// or the details do not parse.
v1::SyncErrorDetail SyncErrorDetailOf(const grpc::Status& status);

// "OUT_OF_SCOPE" for SYNC_ERROR_REASON_OUT_OF_SCOPE; "" for UNSPECIFIED.
std::string SyncErrorReasonName(v1::SyncErrorReason reason);

// A client deadline for unary administrative calls.
std::chrono::system_clock::time_point Deadline();

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CLIENT_H_
