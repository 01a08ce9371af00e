#include "server/rpc.h"

#include "common/logging.h"

namespace fieldsync::server {

std::string PeerToLog(const grpc::CallbackServerContext& context, std::string_view who) {
  if (who == "anonymous" || who == "unauthenticated" || who.empty()) return context.peer();
  return "";
}

std::string PeerAddress(std::string_view grpc_peer) {
  std::string_view rest = grpc_peer;
  if (rest.starts_with("ipv4:")) {
    rest.remove_prefix(5);
    const size_t colon = rest.rfind(':');
    return std::string(colon == std::string_view::npos ? rest : rest.substr(0, colon));
  }
  if (rest.starts_with("ipv6:")) {
    rest.remove_prefix(5);
    // "[::1]:41234", which gRPC writes percent-encoded: "%5B::1%5D:41234".
    std::string_view open = rest.starts_with("%5B") ? "%5B" : "[";
    std::string_view close = open == "[" ? "]" : "%5D";
    const size_t end = rest.find(close);
    if (rest.starts_with(open) && end != std::string_view::npos) {
      return std::string(rest.substr(open.size(), end - open.size()));
    }
  }
  return std::string(grpc_peer);
}

void LogRpc(std::string_view method, std::string_view principal_uri, const absl::Status& status,
            absl::Duration elapsed, std::string_view peer) {
  std::string code = absl::StatusCodeToString(status.code());
  double ms = absl::ToDoubleMilliseconds(elapsed);
  if (status.ok()) {
    if (!peer.empty()) {
      log::Info("rpc", {{"rpc", method},
                        {"principal", principal_uri},
                        {"peer", peer},
                        {"code", code},
                        {"ms", ms}});
      return;
    }
    log::Info("rpc", {{"rpc", method}, {"principal", principal_uri}, {"code", code}, {"ms", ms}});
  } else if (!peer.empty()) {
    log::Warn("rpc", {{"rpc", method},
                      {"principal", principal_uri},
                      {"peer", peer},
                      {"code", code},
                      {"ms", ms},
                      {"reason", status.message()}});
  } else {
    // The message carries ids and the next step only (STYLE §2), so it may
    // be logged.
    log::Warn("rpc", {{"rpc", method},
                      {"principal", principal_uri},
                      {"code", code},
                      {"ms", ms},
                      {"reason", status.message()}});
  }
}

}  // namespace fieldsync::server
