// Small, careful file operations for keys, certificates and markers.
#ifndef FIELDSYNC_COMMON_FILE_IO_H_
#define FIELDSYNC_COMMON_FILE_IO_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fieldsync {

// Creates `path` with `mode` (never an existing file: kAlreadyExists),
// writes `content` and fsyncs it. Other errors: kFailedPrecondition naming
// the path and the system's reason.
absl::Status WriteNewFile(const std::string& path, std::string_view content, mode_t mode);

// The whole content of `path`. kNotFound if it does not exist,
// kFailedPrecondition if it cannot be read (naming the path and reason).
absl::StatusOr<std::string> ReadFile(const std::string& path);

// fsyncs a directory, so that a rename or a new entry in it is durable.
absl::Status SyncDirectory(const std::string& path);

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_FILE_IO_H_
