// What this build of fieldsync is: the project version, the git commit it
// was configured from and the CMake build type (`--version` on both
// executables, AdminService.GetStatus).
#ifndef FIELDSYNC_COMMON_BUILD_INFO_H_
#define FIELDSYNC_COMMON_BUILD_INFO_H_

#include <string>
#include <string_view>

namespace fieldsync {

// The project's version, from CMake's project(VERSION), e.g. "0.1.0".
std::string_view BuildVersion();
// The git commit the build was configured from (12 hex digits, with
// "-dirty" when the tree had uncommitted changes then), the value of
// -DFIELDSYNC_GIT_COMMIT=..., or "unknown" when built outside a git
// checkout.
std::string_view BuildCommit();
// CMAKE_BUILD_TYPE, e.g. "RelWithDebInfo"; "unspecified" when empty.
std::string_view BuildType();

// "<program> <version> (commit <commit>, <build type> build)".
std::string VersionLine(std::string_view program);

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_BUILD_INFO_H_
