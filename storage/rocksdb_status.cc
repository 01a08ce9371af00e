#include "storage/rocksdb_status.h"

#include <pwd.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "rocksdb/status.h"

namespace fieldsync::storage {

absl::Status FromRocksDb(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  // rocksdb's messages name files and operations, not keys or values.
  const std::string message = absl::StrFormat("%s: rocksdb says %s", context, s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kIOError:
      log::Error("storage.io_error", {{"context", context}, {"rocksdb", s.ToString()}});
      return absl::UnavailableError(message);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

std::string ProcessUser() {
  const uid_t uid = ::geteuid();
  passwd pw;
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    return absl::StrFormat("%s (uid %d)", found->pw_name, uid);
  }
  return absl::StrFormat("uid %d", uid);
}

absl::Status StorePermissionDenied(std::string_view store_dir, std::string_view path,
                                   std::string_view detail, std::string_view user) {
  // The user's name without " (uid N)", for the chown command.
  std::string_view name = user.substr(0, user.find(' '));
  if (name == "uid") name = user.substr(4);
  return absl::FailedPreconditionError(absl::StrFormat(
      "cannot open the store: permission denied on %s%s for user %s; the store must belong to "
      "the user fieldsyncd runs as: run `chown -R %s %s && chmod -R u+rwX %s`, or start "
      "fieldsyncd as the user that owns it",
      path, detail.empty() ? "" : absl::StrFormat(" (%s)", detail), user, name, store_dir,
      store_dir));
}

absl::Status FromRocksDbOpen(const rocksdb::Status& s, std::string_view store_dir,
                             std::string_view user) {
  if (s.ok()) return absl::OkStatus();
  const std::string said = s.ToString();
  if (s.IsIOError() && (said.find("Permission denied") != std::string::npos ||
                        said.find("Operation not permitted") != std::string::npos)) {
    return StorePermissionDenied(store_dir, absl::StrFormat("a file of %s", store_dir),
                                 absl::StrFormat("rocksdb says %s", said), user);
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(absl::StrFormat(
        "store %s is corrupt (rocksdb says %s): restore the latest backup with `fieldsync backup "
        "restore` into a new directory, and keep this one for investigation",
        store_dir, said));
  }
  if (s.IsNotFound() ||
      (s.IsIOError() && said.find("No such file or directory") != std::string::npos)) {
    return absl::DataLossError(absl::StrFormat(
        "store %s is incomplete: a file it needs is missing (rocksdb says %s); restore the "
        "latest backup with `fieldsync backup restore` into a new directory, and keep this one "
        "for investigation",
        store_dir, said));
  }
  return FromRocksDb(s, absl::StrFormat("open store %s", store_dir));
}

}  // namespace fieldsync::storage
