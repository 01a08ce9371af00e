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

// The address of the fieldsyncd serving `data_dir`, from the address file
// it writes while it runs (admin/address_file.h). kUnavailable, in one line
// saying how to start it, when none runs: no file, or a file left by a
// process that has exited; kFailedPrecondition for a malformed file.
absl::StatusOr<std::string> RunningServerAddress(const std::string& data_dir);

// Uses --server (else the running server's address: RunningServerAddress,
// never the config's `listen`, which another deployment may answer on),
// --cert/--key (else DIR/admin/admin.{crt,key}) and --ca (else
// DIR/admin/ca.crt). kNotFound / kInvalidArgument naming the missing file
// or option; RunningServerAddress's errors.
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
