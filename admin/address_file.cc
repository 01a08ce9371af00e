#include "admin/address_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/status_macros.h"

namespace fieldsync::admin {
namespace {

constexpr size_t kMaxFileBytes = 4096;
constexpr size_t kMaxAddressBytes = 300;

absl::Status SystemError(std::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(
      absl::StrFormat("cannot %s %s: %s", std::string(what), path, std::strerror(errno)));
}

}  // namespace

std::string AddressFilePath(const std::string& data_dir) {
  return data_dir + "/fieldsyncd.address";
}

std::string DialableAddress(std::string_view bound) {
  if (bound.starts_with("0.0.0.0:")) return absl::StrFormat("127.0.0.1:%s", bound.substr(8));
  if (bound.starts_with("[::]:")) return absl::StrFormat("[::1]:%s", bound.substr(5));
  return std::string(bound);
}

std::string FormatAddressFile(const ServerAddress& address) {
  return absl::StrFormat("address=%s\npid=%d\n", address.address, address.pid);
}

absl::StatusOr<ServerAddress> ParseAddressFile(std::string_view text) {
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError("the address file is over 4 KiB");
  }
  ServerAddress out;
  bool has_address = false;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError("a line of the address file has no '='");
    }
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "address") {
      if (value.empty() || value.size() > kMaxAddressBytes ||
          value.find_first_of(" \t") != std::string_view::npos) {
        return absl::InvalidArgumentError("the address file's address is empty or malformed");
      }
      out.address = std::string(value);
      has_address = true;
    } else if (key == "pid") {
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &out.pid) ||
          out.pid <= 0) {
        return absl::InvalidArgumentError("the address file's pid is not a positive number");
      }
    }
  }
  if (!has_address) return absl::InvalidArgumentError("the address file names no address");
  return out;
}

absl::Status WriteAddressFile(const std::string& data_dir, const ServerAddress& address) {
  const std::string path = AddressFilePath(data_dir);
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  if (absl::Status s = WriteNewFile(tmp, FormatAddressFile(address), 0644); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = SystemError("rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDirectory(data_dir);
}

absl::Status RemoveAddressFile(const std::string& data_dir, int pid) {
  const std::string path = AddressFilePath(data_dir);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) return absl::OkStatus();
  RETURN_IF_ERROR(text.status());
  absl::StatusOr<ServerAddress> parsed = ParseAddressFile(*text);
  if (parsed.ok() && parsed->pid != pid) return absl::OkStatus();  // another server's
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return SystemError("remove", path);
  return absl::OkStatus();
}

}  // namespace fieldsync::admin
