#include "storage/rocksdb_status.h"

#include <string>

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

}  // namespace fieldsync::storage
