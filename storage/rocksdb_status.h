// Converts RocksDB statuses to absl::Status, once, at the storage edge
// (STYLE §2). Only storage/'s .cc files use it.
#ifndef FIELDSYNC_STORAGE_ROCKSDB_STATUS_H_
#define FIELDSYNC_STORAGE_ROCKSDB_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace rocksdb {
class Status;
}  // namespace rocksdb

namespace fieldsync::storage {

// OK for an OK status. Otherwise NotFound -> kNotFound, Corruption ->
// kDataLoss, IOError/Busy/TryAgain -> kUnavailable (an IOError also logs a
// "storage.io_error" alert naming `context`), everything else -> kInternal.
// The message is "<context>: rocksdb says <rocksdb's message>"; `context`
// must name the operation and column family, never a key or value.
absl::Status FromRocksDb(const rocksdb::Status& s, std::string_view context);

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_ROCKSDB_STATUS_H_
