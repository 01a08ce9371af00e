// Listen addresses: HOST:PORT, with [v6]:PORT for IPv6 literals.
#ifndef FIELDSYNC_SERVER_LISTEN_ADDRESS_H_
#define FIELDSYNC_SERVER_LISTEN_ADDRESS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fieldsync::server {

struct ListenAddress {
  std::string host;  // without brackets
  int port = 0;      // 0: any free port
  // HOST:PORT as gRPC takes it (brackets around IPv6 literals).
  std::string ToString() const;
  // 127.0.0.0/8, ::1 or "localhost".
  bool IsLoopback() const;
};

// kInvalidArgument naming the expected form.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// Tries to bind a TCP socket to `address` and releases it, so that an
// address in use or not on this machine is reported before gRPC starts:
// kFailedPrecondition "port in use" or "address not on this machine".
absl::Status ProbeListenAddress(const ListenAddress& address);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_LISTEN_ADDRESS_H_
