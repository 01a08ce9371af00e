// DATA_DIR/fieldsyncd.address: where a running fieldsyncd listens, so that
// `fieldsync --data-dir DIR` reaches the server of that deployment (not
// whatever answers on the config's `listen`, which may be another
// deployment's, or a port 0 resolved at start). fieldsyncd writes it once
// it listens and removes it at a clean stop.
#ifndef FIELDSYNC_ADMIN_ADDRESS_FILE_H_
#define FIELDSYNC_ADMIN_ADDRESS_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fieldsync::admin {

// The file's content (persisted: scripts read it), lines of key=value:
//   address=HOST:PORT   the address to dial on this machine: the bound
//                       address, with a wildcard host (0.0.0.0, ::) as the
//                       loopback address of its family
//   pid=N               the server's process id
// Unknown keys are ignored by readers.
struct ServerAddress {
  std::string address;
  int pid = 0;
};

// DATA_DIR/fieldsyncd.address.
std::string AddressFilePath(const std::string& data_dir);

// The address a client on this machine dials for a server bound to
// `bound` (HOST:PORT, [V6]:PORT).
std::string DialableAddress(std::string_view bound);

std::string FormatAddressFile(const ServerAddress& address);
// kInvalidArgument naming what is wrong: no address line, an empty or
// over-long address, a pid that is not a positive number, a line without
// '=', a file over 4 KiB.
absl::StatusOr<ServerAddress> ParseAddressFile(std::string_view text);

// Writes the file (mode 0644) through a temporary file and a rename, so a
// reader never sees half of it; replaces one left by a server that did not
// stop cleanly. kFailedPrecondition naming the path and reason.
absl::Status WriteAddressFile(const std::string& data_dir, const ServerAddress& address);

// Removes the file if it still names `pid` (a newer server's is kept).
// OK when there is none.
absl::Status RemoveAddressFile(const std::string& data_dir, int pid);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_ADDRESS_FILE_H_
