#include "common/build_info.h"

#include "absl/strings/str_format.h"
// Generated at configure time (common/CMakeLists.txt): only this file is
// rebuilt when the commit changes.
#include "common/build_info_values.h"

namespace fieldsync {

std::string_view BuildVersion() { return FIELDSYNC_BUILD_VERSION; }
std::string_view BuildCommit() { return FIELDSYNC_BUILD_COMMIT; }
std::string_view BuildType() {
  std::string_view type = FIELDSYNC_BUILD_TYPE;
  return type.empty() ? "unspecified" : type;
}

std::string VersionLine(std::string_view program) {
  return absl::StrFormat("%s %s (commit %s, %s build)", std::string(program),
                         std::string(BuildVersion()), std::string(BuildCommit()),
                         std::string(BuildType()));
}

}  // namespace fieldsync
