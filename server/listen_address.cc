#include "server/listen_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fieldsync::server {

std::string ListenAddress::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

bool ListenAddress::IsLoopback() const {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  return false;
}

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrFormat(
        "listen address \"%s\" is not HOST:PORT (e.g. 127.0.0.1:7443, 0.0.0.0:7443 or "
        "[::1]:7443)",
        std::string(text)));
  };
  ListenAddress out;
  std::string_view port_text;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad();
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return bad();
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty() ||
      !absl::SimpleAtoi(absl::string_view(port_text.data(), port_text.size()), &out.port) ||
      out.port < 0 || out.port > 65535) {
    return bad();
  }
  return out;
}

absl::Status ProbeListenAddress(const ListenAddress& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string port = absl::StrCat(address.port);
  int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot resolve listen host \"%s\": %s; use an IP address of this machine",
                        address.host, gai_strerror(rc)));
  }
  int err = 0;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      close(fd);
      freeaddrinfo(result);
      return absl::OkStatus();
    }
    err = errno;
    close(fd);
  }
  freeaddrinfo(result);
  if (err == EADDRINUSE) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "port %d on %s is in use (another fieldsyncd?): stop it or choose another port with "
        "--listen HOST:PORT",
        address.port, address.host));
  }
  if (err == EADDRNOTAVAIL) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is not an address of this machine: choose one of its addresses with --listen",
        address.host));
  }
  if (err == EACCES) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "not allowed to listen on port %d: use a port above 1023 or grant the capability",
        address.port));
  }
  return absl::FailedPreconditionError(
      absl::StrFormat("cannot listen on %s: %s", address.ToString(), std::strerror(err)));
}

}  // namespace fieldsync::server
