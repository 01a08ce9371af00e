// The shape of every unary handler: authorize through the table, run one
// module call, log one line, convert the status. Services call RunUnary and
// never check roles themselves.
#ifndef FIELDSYNC_SERVER_RPC_H_
#define FIELDSYNC_SERVER_RPC_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/auth.h"
#include "server/grpc_status.h"
#include "server/work_pool.h"

namespace fieldsync::server {

// Logs the outcome of one call: principal (also when refused, once its
// certificate verified: Authenticator::Authorize's `who`), method, code,
// duration. Never the request or response content.
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
  std::string who;
  absl::StatusOr<Caller> caller = auth->Authorize(*context, method, &who);
  absl::Status status = caller.ok() ? std::forward<Handler>(handler)(*caller) : caller.status();
  LogRpc(method, who, status, absl::Now() - start);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// RunUnary for handlers that block (a synced commit, a certificate
// signature): authorization, the handler, the log line and Finish run on a
// `pool` thread, so gRPC's polling threads go on serving other calls. The
// handler is moved into the task: it must capture by value (the request and
// response pointers, `this`), never by reference to this function's
// parameters. With a null pool, the same as RunUnary.
template <typename Handler>
grpc::ServerUnaryReactor* RunUnaryBlocking(grpc::CallbackServerContext* context,
                                           std::string_view method, Authenticator* auth,
                                           WorkPool* pool, Handler handler) {
  if (pool == nullptr) return RunUnary(context, method, auth, std::move(handler));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  pool->Run([context, reactor, method, auth, start = absl::Now(),
             handler = std::move(handler)]() mutable {
    std::string who;
    absl::StatusOr<Caller> caller = auth->Authorize(*context, method, &who);
    absl::Status status = caller.ok() ? handler(*caller) : caller.status();
    LogRpc(method, who, status, absl::Now() - start);
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_RPC_H_
