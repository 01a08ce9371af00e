#include "storage/store.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tsan.h"
#include "rocksdb/cache.h"
#include "rocksdb/comparator.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
#include "storage/counter.h"
#include "storage/keyed_sums.h"
#include "storage/name_dictionary.h"
#include "storage/rocksdb_status.h"

namespace fieldsync::storage {
namespace {

// What the merge operator does with a key's operands, by its column family
// and first byte (column_families.h); kNone refuses a Merge.
enum class MergeKind { kNone, kInt64Add, kKeyedSums };

MergeKind MergeKindOf(Cf cf, std::string_view key) {
  if (key.empty()) return MergeKind::kNone;
  const auto tag = static_cast<uint8_t>(key[0]);
  if (cf == Cf::kAggregates && tag == kCounterTag) return MergeKind::kInt64Add;
  if (cf == Cf::kAggregates && tag == kCounterPageTag) return MergeKind::kKeyedSums;
  if (cf == Cf::kCaseIndex && tag == kCaseScopeListTag) return MergeKind::kKeyedSums;
  return MergeKind::kNone;
}

// Persisted: RocksDB records this name in the store's OPTIONS file. For
// each key the operator adds what MergeKindOf says: 8-byte little-endian
// two's complement int64s (counter.h) or keyed sums (keyed_sums.h).
constexpr char kMergeOperatorName[] = "fieldsync.Sums";

// Returning false makes RocksDB report Corruption (-> kDataLoss) for the
// key: a malformed value or operand, or a key no Merge should have reached.
class SumsOperator final : public rocksdb::MergeOperator {
 public:
  explicit SumsOperator(Cf cf) : cf_(cf) {}

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    return Merge(in.key, in.existing_value, in.operand_list, &out->new_value);
  }
  bool PartialMergeMulti(const rocksdb::Slice& key, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    return Merge(key, nullptr, operands, new_value);
  }
  const char* Name() const override { return kMergeOperatorName; }

 private:
  template <typename Operands>
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing, const Operands& operands,
             std::string* out) const {
    switch (MergeKindOf(cf_, key.ToStringView())) {
      case MergeKind::kInt64Add: {
        // Two's complement wrap-around, without signed-overflow UB.
        uint64_t sum = 0;
        if (existing != nullptr) {
          absl::StatusOr<int64_t> base = DecodeInt64Counter(existing->ToStringView());
          if (!base.ok()) return false;
          sum = static_cast<uint64_t>(*base);
        }
        for (const rocksdb::Slice& operand : operands) {
          absl::StatusOr<int64_t> delta = DecodeInt64Counter(operand.ToStringView());
          if (!delta.ok()) return false;
          sum += static_cast<uint64_t>(*delta);
        }
        *out = EncodeInt64Counter(static_cast<int64_t>(sum));
        return true;
      }
      case MergeKind::kKeyedSums: {
        KeyedSums sums;
        if (existing != nullptr && !AddKeyedSums(existing->ToStringView(), &sums).ok()) {
          return false;
        }
        for (const rocksdb::Slice& operand : operands) {
          if (!AddKeyedSums(operand.ToStringView(), &sums).ok()) return false;
        }
        *out = EncodeKeyedSums(sums);
        return true;
      }
      case MergeKind::kNone:
        break;
    }
    return false;
  }

  Cf cf_;
};

// Our WriteBatch is built without a Store, so it cannot hold real column
// family handles. rocksdb::WriteBatch only asks a handle for its id and
// comparator; this one answers with the Cf's number. Store::Commit remaps
// the ids if the store's real ids ever differ (see Rep::ids_match_cf).
class CfIdHandle final : public rocksdb::ColumnFamilyHandle {
 public:
  explicit CfIdHandle(Cf cf) : cf_(cf), name_(CfName(cf)) {}
  const std::string& GetName() const override { return name_; }
  uint32_t GetID() const override { return static_cast<uint32_t>(cf_); }
  rocksdb::Status GetDescriptor(rocksdb::ColumnFamilyDescriptor* /*desc*/) override {
    return rocksdb::Status::NotSupported("fieldsync batch handle");
  }
  const rocksdb::Comparator* GetComparator() const override {
    return rocksdb::BytewiseComparator();
  }

 private:
  Cf cf_;
  std::string name_;
};

rocksdb::ColumnFamilyHandle* BatchHandle(Cf cf) {
  static auto* handles = [] {
    auto* h = new std::array<CfIdHandle*, kNumCfs>();
    for (Cf c : kAllCfs) (*h)[static_cast<size_t>(c)] = new CfIdHandle(c);
    return h;
  }();
  const size_t i = static_cast<size_t>(cf);
  if (i >= kNumCfs) std::abort();  // not a Cf: a bug in the caller
  return (*handles)[i];
}

// Rewrites a batch built with Cf numbers into one with the store's real
// column family ids.
class RemapHandler final : public rocksdb::WriteBatch::Handler {
 public:
  RemapHandler(const std::vector<rocksdb::ColumnFamilyHandle*>* handles, rocksdb::WriteBatch* out)
      : handles_(handles), out_(out) {}
  rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
    return out_->Put((*handles_)[id], k, v);
  }
  rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& k) override {
    return out_->Delete((*handles_)[id], k);
  }
  rocksdb::Status MergeCF(uint32_t id, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
    return out_->Merge((*handles_)[id], k, v);
  }
  rocksdb::Status DeleteRangeCF(uint32_t id, const rocksdb::Slice& b,
                                const rocksdb::Slice& e) override {
    return out_->DeleteRange((*handles_)[id], b, e);
  }

 private:
  const std::vector<rocksdb::ColumnFamilyHandle*>* handles_;
  rocksdb::WriteBatch* out_;
};

// The column families whose memtables keep insert hints (CfOptions). The
// RocksDB this is built with (7.8) shares a memtable's hints between its
// point entries and its range deletions (RocksDB issue 5118, fixed in 9.2),
// so a range deletion in one of them corrupts the memtable:
// WriteBatch::DeleteRange refuses them.
bool UsesInsertHints(Cf cf) {
  return cf == Cf::kAuditLeaves || cf == Cf::kAuditNodes || cf == Cf::kCaseLog ||
         cf == Cf::kMetadata;
}

// The info log of a read-only store: RocksDB would otherwise create (and
// rotate) LOG files in a directory that must stay as it is.
class DiscardLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

absl::Status ClosedError() {
  return absl::FailedPreconditionError("store is closed; open it again to use it");
}

absl::Status ReadOnlyError(const std::string& path, std::string_view op) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "store %s is open read-only: cannot %s; open it for writing", path, std::string(op)));
}

}  // namespace

// --- WriteBatch ---------------------------------------------------------------

struct WriteBatch::Rep {
  explicit Rep(size_t reserved_bytes = 0) : batch(reserved_bytes) {}
  rocksdb::WriteBatch batch;
  // The first operation the batch refused; Commit returns it.
  absl::Status first_error;
  // Name-dictionary ids this batch writes, and the dictionary they belong
  // to: the store whose dictionary it is marks them durable on commit.
  const NameDictionary* names_owner = nullptr;
  std::vector<std::pair<NameKind, uint32_t>> names;
  // Unique per batch and per Clear(), so that a name is written once per
  // batch however often the batch's values use it.
  uint64_t serial = NextSerial();

  static uint64_t NextSerial() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  void Note(const rocksdb::Status& s, std::string_view op, Cf cf) {
    if (s.ok()) return;
    Refuse(absl::InvalidArgumentError(
        absl::StrFormat("%s on %s refused (key or value too large?): rocksdb says %s", op,
                        CfName(cf), s.ToString())));
  }
  // Keeps the first refusal; Commit returns it.
  void Refuse(absl::Status s) {
    if (first_error.ok()) first_error = std::move(s);
  }
};

WriteBatch::WriteBatch() : rep_(std::make_unique<Rep>()) {}
WriteBatch::WriteBatch(size_t reserved_bytes) : rep_(std::make_unique<Rep>(reserved_bytes)) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

void WriteBatch::Put(Cf cf, std::string_view key, std::string_view value) {
  rep_->Note(rep_->batch.Put(BatchHandle(cf), key, value), "Put", cf);
}

void WriteBatch::Delete(Cf cf, std::string_view key) {
  rep_->Note(rep_->batch.Delete(BatchHandle(cf), key), "Delete", cf);
}

void WriteBatch::Merge(Cf cf, std::string_view key, std::string_view value) {
  if (MergeKindOf(cf, key) == MergeKind::kNone) {
    rep_->Refuse(absl::InvalidArgumentError(absl::StrFormat(
        "Merge on %s refused: only counters, counter pages and case scope lists merge",
        CfName(cf))));
    return;
  }
  rep_->Note(rep_->batch.Merge(BatchHandle(cf), key, value), "Merge", cf);
}

void WriteBatch::DeleteRange(Cf cf, std::string_view begin, std::string_view end) {
  if (UsesInsertHints(cf)) {
    rep_->Refuse(absl::InvalidArgumentError(absl::StrFormat(
        "DeleteRange on %s refused: its memtable keeps insert hints, which RocksDB 7.8 "
        "mixes up with range deletions; delete its keys one by one",
        CfName(cf))));
    return;
  }
  rep_->Note(rep_->batch.DeleteRange(BatchHandle(cf), begin, end), "DeleteRange", cf);
}

int WriteBatch::Count() const { return static_cast<int>(rep_->batch.Count()); }
size_t WriteBatch::ByteSize() const { return rep_->batch.GetDataSize(); }

void WriteBatch::Clear() {
  rep_->batch.Clear();
  rep_->first_error = absl::OkStatus();
  rep_->names.clear();
  rep_->names_owner = nullptr;
  rep_->serial = Rep::NextSerial();
}

uint64_t WriteBatch::serial() const { return rep_->serial; }

void WriteBatch::NoteName(const NameDictionary* dictionary, NameKind kind, uint32_t id) {
  rep_->names_owner = dictionary;
  rep_->names.emplace_back(kind, id);
}

// --- Snapshot -----------------------------------------------------------------

struct Snapshot::Rep {
  const void* owner;
  rocksdb::DB* db;
  const rocksdb::Snapshot* snapshot;
  std::atomic<int>* live_views;
};

Snapshot::Snapshot(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

Snapshot::~Snapshot() {
  rep_->db->ReleaseSnapshot(rep_->snapshot);
  rep_->live_views->fetch_sub(1);
}

// --- Iterator -----------------------------------------------------------------

struct Iterator::Rep {
  Cf cf = Cf::kDefault;
  // The bounds' bytes; ReadOptions points at the slices, which point here.
  std::string lower;
  std::string upper;
  rocksdb::Slice lower_slice;
  rocksdb::Slice upper_slice;
  std::unique_ptr<rocksdb::Iterator> it;  // null when the store was closed
  std::atomic<int>* live_views = nullptr;
};

Iterator::Iterator(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

Iterator::~Iterator() {
  if (rep_->it != nullptr) {
    rep_->it.reset();
    rep_->live_views->fetch_sub(1);
  }
}

bool Iterator::Valid() const { return rep_->it != nullptr && rep_->it->Valid(); }
void Iterator::Next() { rep_->it->Next(); }

void Iterator::Seek(std::string_view target) {
  if (rep_->it == nullptr) return;
  if (target < std::string_view(rep_->lower)) target = rep_->lower;
  rep_->it->Seek(target);
}

std::string_view Iterator::key() const { return rep_->it->key().ToStringView(); }
std::string_view Iterator::value() const { return rep_->it->value().ToStringView(); }

absl::Status Iterator::status() const {
  if (rep_->it == nullptr) return ClosedError();
  return FromRocksDb(rep_->it->status(), absl::StrFormat("iterate %s", CfName(rep_->cf)));
}

// --- Store ----------------------------------------------------------------------

struct Store::Rep {
  std::string path;
  rocksdb::Env* env = nullptr;
  rocksdb::WriteOptions write_options;
  bool read_only = false;
  // True when every handle's RocksDB id equals its Cf number, so batches
  // built with CfIdHandle can be written as they are.
  bool ids_match_cf = true;
  // Snapshots and iterators alive; Close refuses while any is.
  std::atomic<int> live_views{0};
  // The store's name dictionary, loaded at Open.
  NameDictionary names;

  // Readers: every operation. Writer: Close.
  absl::Mutex mu;
  std::unique_ptr<rocksdb::DB> db ABSL_GUARDED_BY(mu);
  // Indexed by Cf number.
  std::vector<rocksdb::ColumnFamilyHandle*> handles ABSL_GUARDED_BY(mu);
};

namespace {

// "owner fieldsync (uid 998), mode 0700" for `st`.
std::string OwnerAndMode(const struct stat& st) {
  passwd pw;
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  std::string owner = absl::StrFormat("uid %d", st.st_uid);
  if (::getpwuid_r(st.st_uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    owner = absl::StrFormat("%s (uid %d)", found->pw_name, st.st_uid);
  }
  return absl::StrFormat("owner %s, mode %04o", owner, st.st_mode & 07777);
}

// Checks, with the system's own permission rules, that this process may
// use the store directory `path` and read every file in it, so that a
// store it may not use is reported as such (RocksDB reports an unreadable
// directory as NotFound). A missing directory passes: the callers say what
// to do about that.
absl::Status CheckStoreAccess(const std::string& path, bool read_only) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == EACCES) {
      std::string parent = std::filesystem::path(path).parent_path().string();
      struct stat parent_st;
      return StorePermissionDenied(
          path, parent.empty() ? path : parent,
          !parent.empty() && ::stat(parent.c_str(), &parent_st) == 0 ? OwnerAndMode(parent_st) : "",
          ProcessUser());
    }
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) return absl::OkStatus();  // CheckNewStorePath names it
  const int need = R_OK | X_OK | (read_only ? 0 : W_OK);
  if (::faccessat(AT_FDCWD, path.c_str(), need, AT_EACCESS) != 0 && errno == EACCES) {
    return StorePermissionDenied(path, path, OwnerAndMode(st), ProcessUser());
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string file = entry.path().string();
    struct stat file_st;
    if (::lstat(file.c_str(), &file_st) != 0 || !S_ISREG(file_st.st_mode)) continue;
    // LOCK is opened for writing; every other file is only read, or
    // replaced by a new one.
    const bool is_lock = entry.path().filename() == "LOCK";
    const int file_need = R_OK | (is_lock && !read_only ? W_OK : 0);
    if (::faccessat(AT_FDCWD, file.c_str(), file_need, AT_EACCESS) != 0 && errno == EACCES) {
      return StorePermissionDenied(path, file, OwnerAndMode(file_st), ProcessUser());
    }
  }
  return absl::OkStatus();
}

// Refuses directories that hold something other than a store, so that a
// wrong --path never scatters RocksDB files among someone else's.
absl::Status CheckNewStorePath(rocksdb::Env* env, const StoreOptions& options) {
  const std::string& path = options.path;
  if (env->FileExists(path).ok()) {
    bool is_dir = false;
    rocksdb::Status s = env->IsDirectory(path, &is_dir);
    if (s.ok() && !is_dir) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "store path %s is a file, not a directory; point the store at a directory", path));
    }
    std::vector<std::string> children;
    RETURN_IF_ERROR(FromRocksDb(env->GetChildren(path, &children),
                                absl::StrFormat("list store directory %s", path)));
    for (const std::string& child : children) {
      // What a store open that died before writing CURRENT leaves behind.
      if (child == "." || child == ".." || child == "LOCK" || child.rfind("LOG", 0) == 0) {
        continue;
      }
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s is not a fieldsync store (no RocksDB CURRENT file) but holds other files "
          "such as %s; point the store at its own directory or a new, empty one",
          path, child));
    }
  }
  if (!options.create_if_missing) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "no store at %s (no RocksDB CURRENT file): this data directory has no database; create "
        "a deployment with `fieldsync init --data-dir NEWDIR`, or restore one with `fieldsync "
        "backup restore`, or fix the path",
        path));
  }
  return absl::OkStatus();
}

// Column family names of the existing store at `path`; refuses unknown ones.
absl::Status CheckExistingCfs(rocksdb::Env* env, const std::string& path) {
  rocksdb::DBOptions db_options;
  db_options.env = env;
  std::vector<std::string> names;
  RETURN_IF_ERROR(FromRocksDbOpen(rocksdb::DB::ListColumnFamilies(db_options, path, &names), path,
                                  ProcessUser()));
  for (const std::string& name : names) {
    Cf cf;
    if (!CfFromName(name, &cf)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "store %s has column family '%s', unknown to this fieldsync version: it was "
          "written by a newer one; run that version or restore a matching backup",
          path, name));
    }
  }
  return absl::OkStatus();
}

rocksdb::ColumnFamilyOptions CfOptions(Cf cf, const std::shared_ptr<rocksdb::TableFactory>& table) {
  rocksdb::ColumnFamilyOptions o;
  o.table_factory = table;
  // 12 column families share db_write_buffer_size; keep each memtable small.
  o.write_buffer_size = 16 << 20;
  // Memtable memory in blocks under fieldsyncd's allocator's 256 KiB, which
  // are kept and reused when a flushed memtable frees them; RocksDB's
  // default (1 MiB here) would be given back to the system at once and the
  // next memtable's pages faulted in afresh (common/arena_blocks.h).
  o.arena_block_size = 192 << 10;
  if (cf == Cf::kAggregates || cf == Cf::kCaseIndex) {
    o.merge_operator = std::make_shared<SumsOperator>(cf);
  }
  if (cf == Cf::kRecords || cf == Cf::kKeys || cf == Cf::kBatches || cf == Cf::kCaseIndex ||
      cf == Cf::kConflicts) {
    // Ingest looks up many keys that do not exist yet (the header, fields
    // and data key of a new case, a batch id never seen): a whole-key bloom
    // filter over the memtable answers those without a skiplist search.
    // Memtable-only (2% of its size): nothing persisted changes.
    o.memtable_prefix_bloom_size_ratio = 0.02;
    o.memtable_whole_key_filtering = true;
  }
  if (cf == Cf::kAuditLeaves || cf == Cf::kAuditNodes) {
    // The audit log appends, in one batch, keys that are sequential within
    // their first byte (a tag in audit_leaves, a tree level in audit_nodes)
    // but interleaved across them. One memtable insert hint per first byte
    // keeps each run's inserts O(1) instead of a skiplist search each.
    // Memtable-only: nothing of it is persisted or affects reads.
    o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  }
  if (cf == Cf::kCaseLog) {
    // Log positions only grow: one hint for the whole column family makes
    // each entry's insert start where the previous one ended instead of a
    // skiplist search from the top. Memtable-only, like the ones below.
    o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(0));
  }
  if (cf == Cf::kMetadata) {
    // A few named values, some rewritten in every commit (the audit tree
    // size, sync's next case-log position): a hint per key makes each
    // rewrite land next to the previous one without a skiplist search.
    o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewNoopTransform());
  }
  if (cf == Cf::kAuditNodes) {
    // Values are SHA-256 hashes and keys 9 bytes: nothing to compress, so
    // don't spend flush and compaction CPU trying (and reads decompressing).
    o.compression = rocksdb::kNoCompression;
  }
  // A hinted family missing from UsesInsertHints would accept range
  // deletions that corrupt its memtable: a bug, caught at the first open.
  if ((o.memtable_insert_with_hint_prefix_extractor != nullptr) != UsesInsertHints(cf)) {
    std::abort();
  }
  return o;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("store path is empty");
  rocksdb::Env* env = options.env != nullptr ? options.env : rocksdb::Env::Default();

  RETURN_IF_ERROR(CheckStoreAccess(options.path, options.read_only));
  const bool exists = env->FileExists(options.path + "/CURRENT").ok();
  if (options.read_only && !exists) {
    return absl::FailedPreconditionError(
        absl::StrFormat("no store at %s (no RocksDB CURRENT file): check the path", options.path));
  }
  if (options.read_only) {
    RETURN_IF_ERROR(CheckExistingCfs(env, options.path));
  } else if (exists) {
    if (options.error_if_exists) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "a store already exists at %s; remove it or choose another path", options.path));
    }
    RETURN_IF_ERROR(CheckExistingCfs(env, options.path));
  } else {
    RETURN_IF_ERROR(CheckNewStorePath(env, options));
  }

  rocksdb::DBOptions db_options;
  db_options.env = env;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = options.max_background_jobs;
  db_options.db_write_buffer_size = 128 << 20;
  db_options.keep_log_file_num = 5;
  if (options.read_only) db_options.info_log = std::make_shared<DiscardLogger>();

  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  std::shared_ptr<rocksdb::TableFactory> table(rocksdb::NewBlockBasedTableFactory(table_options));

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (Cf cf : kAllCfs) descriptors.emplace_back(std::string(CfName(cf)), CfOptions(cf, table));

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, descriptors, &handles, &raw_db)
          : rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw_db);
  if (!s.ok()) {
    absl::Status mapped = FromRocksDbOpen(s, options.path, ProcessUser());
    if (absl::IsFailedPrecondition(mapped)) return mapped;  // permission denied
    if (s.IsIOError() && s.ToString().find("/LOCK") != std::string::npos) {
      return absl::UnavailableError(absl::StrFormat(
          "store %s is in use: another process (or another open Store in this one) holds "
          "its LOCK; stop that server or point this one at another path (rocksdb says %s)",
          options.path, s.ToString()));
    }
    return mapped;
  }

  auto rep = std::make_unique<Rep>();
  rep->path = options.path;
  rep->env = env;
  rep->write_options.sync = options.sync_writes;
  rep->read_only = options.read_only;
  for (size_t i = 0; i < handles.size(); ++i) {
    if (handles[i]->GetID() != i) rep->ids_match_cf = false;
  }
  {
    absl::MutexLock lock(&rep->mu);
    rep->db.reset(raw_db);
    rep->handles = std::move(handles);
  }
  log::Info("storage.open", {{"path", options.path},
                             {"ids_match_cf", rep->ids_match_cf ? 1 : 0},
                             {"read_only", options.read_only ? 1 : 0}});
  std::unique_ptr<Store> store(new Store(std::move(rep)));
  RETURN_IF_ERROR(store->rep_->names.Load(store.get()));
  return store;
}

Store::Store(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

Store::~Store() {
  if (rep_->live_views.load() != 0) {
    log::Error("storage.destroyed_with_live_views",
               {{"path", rep_->path}, {"count", rep_->live_views.load()}});
    std::abort();  // a Snapshot or Iterator would dangle: a bug in the caller
  }
  absl::Status s = Close();
  if (!s.ok()) log::Warn("storage.close_failed", {{"path", rep_->path}, {"error", s.ToString()}});
}

const std::string& Store::path() const { return rep_->path; }

NameDictionary& Store::names() { return rep_->names; }

absl::Status Store::Commit(WriteBatch* batch) {
  if (!batch->rep_->first_error.ok()) return batch->rep_->first_error;
  if (batch->Count() == 0) return absl::OkStatus();
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return ClosedError();
  if (rep_->read_only) return ReadOnlyError(rep_->path, "commit");
  rocksdb::WriteBatch* to_write = &batch->rep_->batch;
  rocksdb::WriteBatch remapped;
  if (!rep_->ids_match_cf) {
    RemapHandler remap(&rep_->handles, &remapped);
    RETURN_IF_ERROR(FromRocksDb(to_write->Iterate(&remap), "remap batch column families"));
    to_write = &remapped;
  }
  // Concurrent callers meet in RocksDB's write group: one WAL append and
  // one sync for the group (see the class comment).
  rocksdb::Status s;
  {
    ScopedTsanIgnoreAccesses tsan_ignore;  // RocksDB's write group (common/tsan.h)
    s = rep_->db->Write(rep_->write_options, to_write);
  }
  if (s.ok() && batch->rep_->names_owner == &rep_->names)
    rep_->names.MarkDurable(batch->rep_->names);
  return FromRocksDb(s, "commit batch");
}

absl::StatusOr<std::string> Store::Get(Cf cf, std::string_view key, const Snapshot* snap) {
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return ClosedError();
  rocksdb::ReadOptions read_options;
  if (snap != nullptr) {
    if (snap->rep_->owner != rep_.get()) std::abort();  // another store's snapshot: a bug
    read_options.snapshot = snap->rep_->snapshot;
  }
  std::string value;
  rocksdb::Status s =
      rep_->db->Get(read_options, rep_->handles[static_cast<size_t>(cf)], key, &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrFormat("get from %s: no such key", CfName(cf)));
  }
  RETURN_IF_ERROR(FromRocksDb(s, absl::StrFormat("get from %s", CfName(cf))));
  return value;
}

std::vector<absl::StatusOr<std::string>> Store::MultiGet(Cf cf,
                                                         std::span<const std::string_view> keys,
                                                         const Snapshot* snap) {
  std::vector<absl::StatusOr<std::string>> out;
  out.reserve(keys.size());
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) {
    out.assign(keys.size(), ClosedError());
    return out;
  }
  if (keys.empty()) return out;
  rocksdb::ReadOptions read_options;
  if (snap != nullptr) {
    if (snap->rep_->owner != rep_.get()) std::abort();  // another store's snapshot: a bug
    read_options.snapshot = snap->rep_->snapshot;
  }
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  rep_->db->MultiGet(read_options, rep_->handles[static_cast<size_t>(cf)], keys.size(),
                     slices.data(), values.data(), statuses.data());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) {
      out.push_back(absl::NotFoundError(absl::StrFormat("get from %s: no such key", CfName(cf))));
    } else if (!statuses[i].ok()) {
      out.push_back(FromRocksDb(statuses[i], absl::StrFormat("get from %s", CfName(cf))));
    } else {
      out.push_back(values[i].ToString());
    }
  }
  return out;
}

std::unique_ptr<Snapshot> Store::GetSnapshot() {
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) std::abort();  // REQUIRES: open; a bug in the caller
  auto rep = std::make_unique<Snapshot::Rep>();
  rep->owner = rep_.get();
  rep->db = rep_->db.get();
  rep->snapshot = rep_->db->GetSnapshot();
  rep->live_views = &rep_->live_views;
  rep_->live_views.fetch_add(1);
  return std::unique_ptr<Snapshot>(new Snapshot(std::move(rep)));
}

std::unique_ptr<Iterator> Store::NewIterator(Cf cf, std::string_view lower, std::string_view upper,
                                             const Snapshot* snap) {
  auto rep = std::make_unique<Iterator::Rep>();
  rep->cf = cf;
  rep->lower = std::string(lower);
  rep->upper = std::string(upper);
  rep->lower_slice = rocksdb::Slice(rep->lower);
  rep->upper_slice = rocksdb::Slice(rep->upper);
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return std::unique_ptr<Iterator>(new Iterator(std::move(rep)));
  rocksdb::ReadOptions read_options;
  if (!rep->lower.empty()) read_options.iterate_lower_bound = &rep->lower_slice;
  if (!rep->upper.empty()) read_options.iterate_upper_bound = &rep->upper_slice;
  if (snap != nullptr) {
    if (snap->rep_->owner != rep_.get()) std::abort();  // another store's snapshot: a bug
    read_options.snapshot = snap->rep_->snapshot;
  }
  rep->it.reset(rep_->db->NewIterator(read_options, rep_->handles[static_cast<size_t>(cf)]));
  rep->live_views = &rep_->live_views;
  rep_->live_views.fetch_add(1);
  rep->it->Seek(rep->lower);
  return std::unique_ptr<Iterator>(new Iterator(std::move(rep)));
}

absl::Status Store::Flush() {
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return ClosedError();
  if (rep_->read_only) return ReadOnlyError(rep_->path, "flush");
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  return FromRocksDb(rep_->db->Flush(flush_options, rep_->handles), "flush all column families");
}

absl::Status Store::CompactRange(Cf cf, std::string_view begin, std::string_view end) {
  // Flush every column family first: a WAL file stays on disk until all of
  // them have flushed past it, and it may hold the deleted bytes.
  RETURN_IF_ERROR(Flush());
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return ClosedError();
  rocksdb::CompactRangeOptions compact_options;
  compact_options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  compact_options.exclusive_manual_compaction = false;
  const rocksdb::Slice b(begin);
  const rocksdb::Slice e(end);
  return FromRocksDb(
      rep_->db->CompactRange(compact_options, rep_->handles[static_cast<size_t>(cf)],
                             begin.empty() ? nullptr : &b, end.empty() ? nullptr : &e),
      absl::StrFormat("compact %s", CfName(cf)));
}

absl::Status Store::CreateCheckpoint(const std::string& dir) {
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return ClosedError();
  if (rep_->read_only) return ReadOnlyError(rep_->path, "create a checkpoint");
  if (rep_->env->FileExists(dir).ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("checkpoint directory %s already exists; choose a new path", dir));
  }
  rocksdb::Checkpoint* raw = nullptr;
  RETURN_IF_ERROR(
      FromRocksDb(rocksdb::Checkpoint::Create(rep_->db.get(), &raw), "create checkpoint object"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: always flush, so the copy needs no WAL replay.
  return FromRocksDb(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                     absl::StrFormat("create checkpoint in %s", dir));
}

absl::Status Store::VerifyChecksums() {
  absl::ReaderMutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return ClosedError();
  return FromRocksDb(rep_->db->VerifyChecksum(),
                     absl::StrFormat("verify the checksums of store %s", rep_->path));
}

absl::Status Store::Close() {
  absl::MutexLock lock(&rep_->mu);
  if (rep_->db == nullptr) return absl::OkStatus();
  if (rep_->live_views.load() != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot close store %s: %d snapshots or iterators are still alive; destroy them "
        "first",
        rep_->path, rep_->live_views.load()));
  }
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  absl::Status first = rep_->read_only ? absl::OkStatus()
                                       : FromRocksDb(rep_->db->Flush(flush_options, rep_->handles),
                                                     "flush before close");
  for (rocksdb::ColumnFamilyHandle* h : rep_->handles) {
    absl::Status s = FromRocksDb(rep_->db->DestroyColumnFamilyHandle(h), "release handle");
    if (first.ok()) first = s;
  }
  rep_->handles.clear();
  absl::Status s = FromRocksDb(rep_->db->Close(), "close store");
  if (first.ok()) first = s;
  rep_->db.reset();
  log::Info("storage.close", {{"path", rep_->path}, {"ok", first.ok() ? 1 : 0}});
  return first;
}

}  // namespace fieldsync::storage
