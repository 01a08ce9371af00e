// The shape of every unary handler: authorize through the table, admit
// the caller under its limits (server/limits.h), run one module call, log
// one line, convert the status. Services call RunUnary or RunUnaryBlocking
// and never check roles themselves.
#ifndef FIELDSYNC_SERVER_RPC_H_
#define FIELDSYNC_SERVER_RPC_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/auth.h"
#include "server/grpc_status.h"
#include "server/limits.h"
#include "server/work_pool.h"

namespace fieldsync::server {

// Logs the outcome of one call: principal (also when refused, once its
// certificate verified: Authenticator::Authorize's `who`), method, code,
// duration, and for a call without a verified principal ("anonymous",
// "unauthenticated") the peer's network address `peer` (gRPC's form,
// "ipv4:10.0.0.5:41234"). Never the request or response content.
void LogRpc(std::string_view method, std::string_view principal_uri, const absl::Status& status,
            absl::Duration elapsed, std::string_view peer = "");

// The peer of `context` to log: its address for a call without a verified
// principal (`who` "anonymous" or "unauthenticated"), else "".
std::string PeerToLog(const grpc::CallbackServerContext& context, std::string_view who);

// The IP address of a gRPC peer string without its port ("10.0.0.5" for
// "ipv4:10.0.0.5:41234", "::1" for "ipv6:[::1]:41234"); the string itself
// when it has another form.
std::string PeerAddress(std::string_view grpc_peer);

// Runs `handler(const Caller&) -> absl::Status` for an authorized caller and
// finishes the call. The handler runs on a gRPC callback thread, which
// serves other calls too: use it only for handlers that never block (no
// synced write, no signature, no fsync, no scan of the log); the others
// use RunUnaryBlocking.
template <typename Handler>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context, std::string_view method,
                                   Authenticator* auth, Handler&& handler) {
  absl::Time start = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::string who;
  absl::StatusOr<Caller> caller = auth->Authorize(*context, method, &who);
  absl::Status status = caller.ok() ? std::forward<Handler>(handler)(*caller) : caller.status();
  LogRpc(method, who, status, absl::Now() - start, PeerToLog(*context, who));
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// RunUnary for handlers that block (a synced commit, a certificate
// signature, a key rotation, an erasure's compaction, a signed head's
// fsync): authorization, the handler, the log line and Finish run on a
// `pool` thread, so gRPC's polling threads go on serving other calls. When
// the pool's queue is full the call is refused at once (RESOURCE_EXHAUSTED
// SERVER_BUSY, server/limits.h); once authorized, a caller over the pool's
// concurrency limits (its principal's, or the shared one of calls without a
// certificate) is refused likewise (RATE_LIMITED, SERVER_BUSY). The
// handler is moved into the task: it must capture by value (the request
// and response pointers, `this`), never by reference to this function's
// parameters. With a null pool, the same as RunUnary.
template <typename Handler>
grpc::ServerUnaryReactor* RunUnaryBlocking(grpc::CallbackServerContext* context,
                                           std::string_view method, Authenticator* auth,
                                           WorkPool* pool, Handler handler) {
  if (pool == nullptr) return RunUnary(context, method, auth, std::move(handler));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  const bool queued = pool->TryRun([context, reactor, method, auth, pool, start,
                                    handler = std::move(handler)]() mutable {
    std::string who;
    absl::StatusOr<Caller> caller = auth->Authorize(*context, method, &who);
    absl::Status status = caller.status();
    if (caller.ok()) {
      absl::StatusOr<ConcurrencyLimit::Lease> lease =
          AdmitCall(pool->call_limits(), caller->has_principal ? caller->uri : "");
      status = lease.ok() ? handler(*caller) : lease.status();
    }
    LogRpc(method, who, status, absl::Now() - start, PeerToLog(*context, who));
    reactor->Finish(ToGrpcStatus(status));
  });
  if (!queued) {
    absl::Status busy = ServerBusy(
        absl::StrFormat("the server has %d calls waiting for a thread", pool->max_queued()),
        kBusyRetryAfter);
    LogRpc(method, "unchecked", busy, absl::Now() - start, context->peer());
    reactor->Finish(ToGrpcStatus(busy));
  }
  return reactor;
}

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_RPC_H_
