// fieldsync's one RocksDB instance: a column family per kind of data
// (column_families.h), atomic synced commits of WriteBatches, snapshot reads
// and bounded iteration, compaction for crypto-shredding, checkpoints.
// RocksDB types stay behind this header (pimpl); keys come from key_codec.h.
#ifndef FIELDSYNC_STORAGE_STORE_H_
#define FIELDSYNC_STORAGE_STORE_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/column_families.h"

namespace rocksdb {
class Env;
class FileSystem;
}  // namespace rocksdb

namespace fieldsync::storage {

class NameDictionary;

struct StoreOptions {
  // The store's directory.
  std::string path;
  // Create an empty store (all column families) when `path` holds none.
  bool create_if_missing = false;
  // Fail with kAlreadyExists when `path` already holds a store.
  bool error_if_exists = false;
  // Disk access; nullptr means rocksdb::Env::Default(). Not owned; must
  // outlive the Store. Tests pass a FaultyFileSystem's Env here.
  rocksdb::Env* env = nullptr;
  // The LRU block cache shared by every column family.
  size_t block_cache_bytes = 64 << 20;
  // RocksDB's flush + compaction threads.
  int max_background_jobs = 2;
  // Commit() syncs the WAL before it returns. Only tests and benches that
  // accept losing the last commits on power loss turn this off.
  bool sync_writes = true;
  // Opens an existing store for reading only (a backup's checkpoint): no
  // file of `path` is written, Commit, Flush, CompactRange and
  // CreateCheckpoint fail with kFailedPrecondition, and several read-only
  // Stores (or one writer) may have the same path open. Ignores
  // create_if_missing and error_if_exists.
  bool read_only = false;
};

// A set of changes that Store::Commit applies atomically: all or none,
// in order. Not thread-safe; independent of any Store (it may be built
// before a Store is open and committed to any of them). A moved-from batch
// may only be destroyed or assigned to.
class WriteBatch {
 public:
  WriteBatch();
  // Reserves room for about `reserved_bytes` of operations up front, so that
  // a large batch is not copied as it grows.
  explicit WriteBatch(size_t reserved_bytes);
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void Put(Cf cf, std::string_view key, std::string_view value);
  void Delete(Cf cf, std::string_view key);
  // Adds a merge operand; only counter pages and the retired counters
  // (Cf::kAggregates) and case scope lists (Cf::kCaseIndex) merge
  // (keyed_sums.h, counter.h). A Merge to another key makes Commit of this
  // batch fail with kInvalidArgument.
  void Merge(Cf cf, std::string_view key, std::string_view value);
  // Deletes every key in [begin, end). Refused (Commit fails with
  // kInvalidArgument, nothing written) for the column families whose
  // memtables keep insert hints: case_log, metadata, audit_leaves and
  // audit_nodes (RocksDB 7.8 mixes hints and range deletions up).
  void DeleteRange(Cf cf, std::string_view begin, std::string_view end);

  // Records that the batch writes name-dictionary id `id` of `dictionary`
  // (NameDictionary::Intern calls it), so that committing it to the store
  // owning that dictionary marks the id durable.
  void NoteName(const NameDictionary* dictionary, NameKind kind, uint32_t id);
  // A number no other batch (nor this one before its last Clear) has.
  uint64_t serial() const;

  // Number of operations added since construction or Clear().
  int Count() const;
  // Bytes of the batch's serialized form (about what the WAL gets).
  size_t ByteSize() const;
  void Clear();

 private:
  friend class Store;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

// A consistent point-in-time view for Get and NewIterator; released on
// destruction. REQUIRES: destroyed before its Store is closed or destroyed.
// Thread-safe to read through from several threads.
class Snapshot {
 public:
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

 private:
  friend class Store;
  struct Rep;
  explicit Snapshot(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

// Walks the keys of one column family in [lower, upper) in byte order. It
// starts at the first key >= lower. key() and value() are valid until the
// next move. Not thread-safe. REQUIRES: destroyed before its Store is closed.
class Iterator {
 public:
  ~Iterator();
  Iterator(const Iterator&) = delete;
  Iterator& operator=(const Iterator&) = delete;

  bool Valid() const;
  // REQUIRES: Valid().
  void Next();
  // Positions at the first key >= max(target, lower).
  void Seek(std::string_view target);
  // REQUIRES: Valid().
  std::string_view key() const;
  std::string_view value() const;
  // OK while iterating and at a clean end; kDataLoss/kUnavailable when the
  // iteration stopped (!Valid()) because of corruption or an I/O error.
  absl::Status status() const;

 private:
  friend class Store;
  struct Rep;
  explicit Iterator(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

// The store. Thread-safe: Commit, Get, GetSnapshot, NewIterator, Flush,
// CompactRange and CreateCheckpoint may be called concurrently; Close waits
// for calls in progress, and every call after Close returns
// kFailedPrecondition (NewIterator an iterator with that status).
//
// Group commit: concurrent Commit()s are grouped by RocksDB's write thread:
// the first writer becomes the leader, appends the whole group's batches to
// the WAL and syncs once for all of them, so N concurrent commits cost about
// one fsync, not N, with each caller still returning only after its own
// batch is durable.
class Store {
 public:
  // Opens the store at options.path, creating it (with every column family
  // of Cf) when create_if_missing is set and the directory is absent or
  // empty (never when read_only). Errors, each with the fix in its message:
  //   kInvalidArgument     empty path.
  //   kFailedPrecondition  no store there and create_if_missing is false; the
  //                        path is a file, or a directory of other files;
  //                        the store has a column family this code does not
  //                        know (named in the message: a newer fieldsync
  //                        wrote it).
  //   kAlreadyExists       a store is there and error_if_exists is set.
  //   kUnavailable         the store's LOCK is held (another process, or
  //                        another open Store in this one), or an I/O error.
  //   kDataLoss            RocksDB found corruption.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);

  // Closes (see Close()). REQUIRES: no Snapshot or Iterator of this store
  // is alive (a bug: the process aborts).
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies `batch` atomically; with sync_writes, the WAL is synced before
  // this returns OK, so the batch survives a crash or power loss. On error
  // none of the batch is applied. kUnavailable on an I/O error: once the WAL
  // has failed, RocksDB refuses every later write and Commit keeps
  // returning kUnavailable until the Store is reopened. kInvalidArgument
  // when the batch holds a key or value RocksDB rejects (over 4 GiB) or a
  // Merge outside Cf::kAggregates. kFailedPrecondition after Close().
  // An empty batch is OK and writes nothing. The batch is left unchanged.
  absl::Status Commit(WriteBatch* batch);

  // The value at `key`, as of `snap` when given. kNotFound when absent;
  // kDataLoss on corruption (or a malformed counter operand in kAggregates).
  absl::StatusOr<std::string> Get(Cf cf, std::string_view key, const Snapshot* snap = nullptr);

  // The values at `keys` of `cf` (as of `snap` when given), one result per
  // key in the same order, each as Get would return it: the value,
  // kNotFound when absent, kDataLoss on corruption, kUnavailable on an I/O
  // error; kFailedPrecondition for every key after Close(). One RocksDB
  // MultiGet: the keys share one version lookup and their block reads are
  // batched, so n keys cost much less than n Get calls. Keys may repeat and
  // need not be sorted.
  std::vector<absl::StatusOr<std::string>> MultiGet(Cf cf, std::span<const std::string_view> keys,
                                                    const Snapshot* snap = nullptr);

  // A snapshot of the current state.
  std::unique_ptr<Snapshot> GetSnapshot();

  // An iterator over [lower, upper) of `cf`; "" means unbounded on that side.
  std::unique_ptr<Iterator> NewIterator(Cf cf, std::string_view lower, std::string_view upper,
                                        const Snapshot* snap = nullptr);

  // Writes every column family's memtable to SST files and waits.
  absl::Status Flush();

  // Flushes, then compacts `cf`'s keys in [begin, end] ("" = unbounded) all
  // the way down (bottommost level forced), so that deleted values leave the
  // SST files and the WAL files that held them become obsolete: the
  // crypto-shredding step after a Delete/DeleteRange. A value stays on disk
  // while a Snapshot older than its deletion is alive.
  absl::Status CompactRange(Cf cf, std::string_view begin, std::string_view end);

  // Writes a consistent, openable copy of the store to `dir` (hard links
  // where possible). kFailedPrecondition if `dir` already exists.
  absl::Status CreateCheckpoint(const std::string& dir);

  // Reads every block of every SST file of the store and checks its
  // checksum. kDataLoss naming the first damaged file; kUnavailable on an
  // I/O error.
  absl::Status VerifyChecksums();

  // Flushes and closes. Idempotent. Returns the first error met, but always
  // releases the database. kFailedPrecondition (and nothing is closed) while
  // a Snapshot or Iterator is alive.
  absl::Status Close();

  const std::string& path() const;

  // The store's name dictionary (name_dictionary.h), loaded at Open.
  NameDictionary& names();

 private:
  struct Rep;
  explicit Store(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_STORE_H_
