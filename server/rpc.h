// The shape of every unary handler: authorize through the table, run one
// module call, log one line, convert the status. Services call RunUnary and
// never check roles themselves.
#ifndef FIELDSYNC_SERVER_RPC_H_
#define FIELDSYNC_SERVER_RPC_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/auth.h"
#include "server/grpc_status.h"

namespace fieldsync::server {

// Logs the outcome of one call: principal, method, code, duration. Never the
// request or response content.
void LogRpc(std::string_view method, std::string_view principal_uri, const absl::Status& status,
            absl::Duration elapsed);

// Runs `handler(const Caller&) -> absl::Status` for an authorized caller and
// finishes the call. The handler runs on a gRPC callback thread: it may
// block on storage briefly, never for long.
template <typename Handler>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context, std::string_view method,
                                   Authenticator* auth, Handler&& handler) {
  absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth->Authorize(*context, method);
  absl::Status status = caller.ok() ? std::forward<Handler>(handler)(*caller) : caller.status();
  LogRpc(method, caller.ok() ? std::string_view(caller->uri) : std::string_view("unauthenticated"),
         status, absl::Now() - start);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_RPC_H_
