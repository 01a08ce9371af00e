#include "server/rpc.h"

#include "common/logging.h"

namespace fieldsync::server {

void LogRpc(std::string_view method, std::string_view principal_uri, const absl::Status& status,
            absl::Duration elapsed) {
  std::string code = absl::StatusCodeToString(status.code());
  double ms = absl::ToDoubleMilliseconds(elapsed);
  if (status.ok()) {
    log::Info("rpc", {{"rpc", method}, {"principal", principal_uri}, {"code", code}, {"ms", ms}});
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
