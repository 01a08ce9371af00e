// `fieldsync status`: a running fieldsyncd's health and state at a glance
// (AdminService.GetStatus), for an administrator.
#ifndef FIELDSYNC_TOOLS_STATUS_VERBS_H_
#define FIELDSYNC_TOOLS_STATUS_VERBS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/cli.h"

namespace fieldsync::tools {

// Returns the exit code (0 serving, 1 not running, refused or failed, 2
// usage) and on failure sets *error to the one line to print.
int Status(const Args& args, std::string* error);

// Parses "30m", "24h", "7d", "90s" (a positive duration; days as Nd).
// kInvalidArgument otherwise.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text);

// "3d 4h", "2h 5m", "12m", "40s": a duration for people, two units at most.
std::string HumanDuration(absl::Duration d);

// "12.3 MiB", "512 B".
std::string HumanBytes(uint64_t bytes);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_STATUS_VERBS_H_
