// Converts RocksDB statuses to absl::Status, once, at the storage edge
// (STYLE §2). Only storage/'s .cc files use it.
#ifndef FIELDSYNC_STORAGE_ROCKSDB_STATUS_H_
#define FIELDSYNC_STORAGE_ROCKSDB_STATUS_H_

#include <string>
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

// The user this process runs as, for messages: "fieldsync (uid 998)", or
// "uid 998" when it has no name.
std::string ProcessUser();

// The operator's message for a store path this process may not use:
// kFailedPrecondition naming `path` (the store directory or a file in it),
// `detail` when not empty (its owner and mode, or what RocksDB said),
// `user`, and the fix (chown the store to that user, or run as its owner).
absl::Status StorePermissionDenied(std::string_view store_dir, std::string_view path,
                                   std::string_view detail, std::string_view user);

// The error for a failed open of the existing store in `store_dir`, by
// what an operator does next:
//   permission denied (an IOError saying so) -> StorePermissionDenied;
//   Corruption -> kDataLoss "store DIR is corrupt ...: restore a backup";
//   NotFound, or an IOError saying ENOENT (a file the store names is
//   missing) -> kDataLoss "store DIR
//     is incomplete ...: restore a backup";
//   anything else -> FromRocksDb.
absl::Status FromRocksDbOpen(const rocksdb::Status& s, std::string_view store_dir,
                             std::string_view user);

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_ROCKSDB_STATUS_H_
