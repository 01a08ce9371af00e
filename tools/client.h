// Connecting the fieldsync tool to a fieldsyncd with a principal's
// certificate (the administrator's in DIR/admin/ unless told otherwise).
#ifndef FIELDSYNC_TOOLS_CLIENT_H_
#define FIELDSYNC_TOOLS_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
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
// for transport failures.
std::string DescribeRpcError(const grpc::Status& status, const std::string& server);

// A client deadline for unary administrative calls.
std::chrono::system_clock::time_point Deadline();

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CLIENT_H_
