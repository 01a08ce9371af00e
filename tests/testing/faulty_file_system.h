// A rocksdb::FileSystem for fault-injection tests (STYLE §9): it passes every
// call to a real file system but fails file writes and syncs on command, and
// models the OS page cache so that a failed sync loses what it did not sync.
//
//   auto fs = std::make_shared<FaultyFileSystem>();
//   std::unique_ptr<rocksdb::Env> env = NewFaultyEnv(fs);
//   options.env = env.get();        // StoreOptions; env must outlive the Store
//   fs->FailSyncs(true);            // the next Commit returns kUnavailable
//
// Thread-safe.
#ifndef FIELDSYNC_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
#define FIELDSYNC_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace fieldsync::testing {

// Writable files opened through it keep appended bytes in memory (the "page
// cache") and hand them to the real file only on Sync/Fsync/RangeSync or
// Close. An injected Sync failure discards the unsynced bytes, as a power
// loss would, so a reopen sees exactly what was synced before the failure.
// The info log files (LOG*) are never failed nor counted.
class FaultyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultyFileSystem(
      std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());

  static const char* kClassName() { return "FieldsyncFaultyFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // While true, Sync and Fsync of every writable file fail with an IOError
  // and drop that file's unsynced bytes.
  void FailSyncs(bool fail) { fail_syncs_.store(fail); }
  // While true, every Append fails with an IOError and writes nothing.
  void FailAppends(bool fail) { fail_appends_.store(fail); }
  // The next `n` Appends succeed; every later one fails until
  // FailAfterNWrites(-1) or Reset(). n = 0 fails the very next Append.
  void FailAfterNWrites(int64_t n) { appends_left_.store(n); }
  // Stops every injected failure.
  void Reset();

  // Counters since construction: Appends seen, Syncs seen, failures injected.
  int64_t appends() const { return appends_.load(); }
  int64_t syncs() const { return syncs_.load(); }
  int64_t injected_failures() const { return injected_.load(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname,
                                    const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

  // Used by the files it opens: OK, or the injected IOError for this call.
  rocksdb::IOStatus CheckAppend();
  rocksdb::IOStatus CheckSync();

 private:
  void Wrap(const std::string& fname, std::unique_ptr<rocksdb::FSWritableFile>* file);

  std::atomic<bool> fail_syncs_{false};
  std::atomic<bool> fail_appends_{false};
  std::atomic<int64_t> appends_left_{-1};
  std::atomic<int64_t> appends_{0};
  std::atomic<int64_t> syncs_{0};
  std::atomic<int64_t> injected_{0};
};

// An Env that uses `fs` for files and the default Env for everything else
// (rocksdb::NewCompositeEnv). It keeps `fs` alive.
std::unique_ptr<rocksdb::Env> NewFaultyEnv(std::shared_ptr<FaultyFileSystem> fs);

}  // namespace fieldsync::testing

#endif  // FIELDSYNC_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
