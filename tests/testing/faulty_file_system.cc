#include "tests/testing/faulty_file_system.h"

#include <mutex>
#include <utility>

namespace fieldsync::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;

bool IsInfoLog(const std::string& fname) {
  const size_t slash = fname.rfind('/');
  const std::string base = slash == std::string::npos ? fname : fname.substr(slash + 1);
  return base.rfind("LOG", 0) == 0;
}

// Keeps appended bytes until a sync or close; see FaultyFileSystem.
class FaultyWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultyFileSystem* fs)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}

  ~FaultyWritableFile() override {
    // RocksDB closes files before dropping them; if not, keep the bytes as
    // the kernel would.
    std::lock_guard<std::mutex> lock(mu_);
    if (!pending_.empty()) WritePendingLocked(IOOptions(), nullptr).PermitUncheckedError();
  }

  IOStatus Append(const rocksdb::Slice& data, const IOOptions& /*options*/,
                  IODebugContext* /*dbg*/) override {
    IOStatus s = fs_->CheckAppend();
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    pending_.append(data.data(), data.size());
    return IOStatus::OK();
  }
  IOStatus Append(const rocksdb::Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& /*info*/, IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->CheckAppend();
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    s = WritePendingLocked(options, dbg);
    if (!s.ok()) return s;
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const IOOptions& options,
                            const rocksdb::DataVerificationInfo& /*info*/,
                            IODebugContext* dbg) override {
    return PositionedAppend(data, offset, options, dbg);
  }

  IOStatus Flush(const IOOptions& /*options*/, IODebugContext* /*dbg*/) override {
    return IOStatus::OK();  // bytes stay in the "page cache"
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncImpl(options, dbg, /*full=*/false);
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncImpl(options, dbg, /*full=*/true);
  }
  IOStatus RangeSync(uint64_t /*offset*/, uint64_t /*nbytes*/, const IOOptions& options,
                     IODebugContext* dbg) override {
    return SyncImpl(options, dbg, /*full=*/false);
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    IOStatus s = WritePendingLocked(options, dbg);
    if (!s.ok()) return s;
    return target()->Truncate(size, options, dbg);
  }
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    IOStatus s = WritePendingLocked(options, dbg);
    IOStatus c = target()->Close(options, dbg);
    return s.ok() ? c : s;
  }
  uint64_t GetFileSize(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    return target()->GetFileSize(options, dbg) + pending_.size();
  }
  bool IsSyncThreadSafe() const override { return true; }

 private:
  IOStatus SyncImpl(const IOOptions& options, IODebugContext* dbg, bool full) {
    IOStatus injected = fs_->CheckSync();
    std::lock_guard<std::mutex> lock(mu_);
    if (!injected.ok()) {
      pending_.clear();  // never reached the disk
      return injected;
    }
    IOStatus s = WritePendingLocked(options, dbg);
    if (!s.ok()) return s;
    return full ? target()->Fsync(options, dbg) : target()->Sync(options, dbg);
  }

  IOStatus WritePendingLocked(const IOOptions& options, IODebugContext* dbg) {
    if (pending_.empty()) return IOStatus::OK();
    IOStatus s = target()->Append(pending_, options, dbg);
    if (s.ok()) s = target()->Flush(options, dbg);
    pending_.clear();
    return s;
  }

  FaultyFileSystem* fs_;
  std::mutex mu_;
  std::string pending_;
};

}  // namespace

FaultyFileSystem::FaultyFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

void FaultyFileSystem::Reset() {
  fail_syncs_.store(false);
  fail_appends_.store(false);
  appends_left_.store(-1);
}

IOStatus FaultyFileSystem::CheckAppend() {
  appends_.fetch_add(1);
  bool fail = fail_appends_.load();
  if (!fail && appends_left_.load() >= 0) {
    // Take one allowance; at zero every later Append fails.
    int64_t left = appends_left_.load();
    while (left > 0 && !appends_left_.compare_exchange_weak(left, left - 1)) {
    }
    fail = left == 0;
  }
  if (!fail) return IOStatus::OK();
  injected_.fetch_add(1);
  return IOStatus::IOError("injected append failure (FaultyFileSystem)");
}

IOStatus FaultyFileSystem::CheckSync() {
  syncs_.fetch_add(1);
  if (!fail_syncs_.load()) return IOStatus::OK();
  injected_.fetch_add(1);
  return IOStatus::IOError("injected sync failure (FaultyFileSystem)");
}

void FaultyFileSystem::Wrap(const std::string& fname,
                            std::unique_ptr<rocksdb::FSWritableFile>* file) {
  if (IsInfoLog(fname)) return;
  *file = std::make_unique<FaultyWritableFile>(std::move(*file), this);
}

IOStatus FaultyFileSystem::NewWritableFile(const std::string& fname,
                                           const rocksdb::FileOptions& options,
                                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                                           IODebugContext* dbg) {
  IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
  if (s.ok()) Wrap(fname, result);
  return s;
}

IOStatus FaultyFileSystem::ReopenWritableFile(const std::string& fname,
                                              const rocksdb::FileOptions& options,
                                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                                              IODebugContext* dbg) {
  IOStatus s = target()->ReopenWritableFile(fname, options, result, dbg);
  if (s.ok()) Wrap(fname, result);
  return s;
}

IOStatus FaultyFileSystem::ReuseWritableFile(const std::string& fname,
                                             const std::string& old_fname,
                                             const rocksdb::FileOptions& options,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             IODebugContext* dbg) {
  IOStatus s = target()->ReuseWritableFile(fname, old_fname, options, result, dbg);
  if (s.ok()) Wrap(fname, result);
  return s;
}

std::unique_ptr<rocksdb::Env> NewFaultyEnv(std::shared_ptr<FaultyFileSystem> fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace fieldsync::testing
