#include "admin/backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <istream>
#include <optional>
#include <set>
#include <streambuf>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "admin/server_keys.h"
#include "audit/export.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/proto_text.h"
#include "common/status_macros.h"
#include "common/text_policy.h"
#include "common/uuid.h"
#include "crypto/hash.h"
#include "crypto/master_key.h"
#include "fieldsync/v1/config.pb.h"
#include "google/protobuf/text_format.h"
#include "protocol/events.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {
namespace {

namespace fs = std::filesystem;

// Persisted: the files a backup may hold, by data-directory name.
constexpr BackupFileKind kFileKinds[] = {
    {"DEPLOYMENT", false, true},         {"fieldsyncd.conf", false, false},
    {"tls/ca.crt", false, true},         {"tls/server.crt", false, true},
    {"tls/server.key", true, true},      {"admin/admin.crt", false, false},
    {"admin/admin.key", true, false},    {"admin/ca.crt", false, false},
    {"audit-log.pub", false, true},      {"schema.textproto", false, true},
    {"metrics.textproto", false, false}, {"dhis2-mapping.json", false, false},
};

// A manifest longer than this is refused before parsing.
constexpr size_t kMaxManifestBytes = 1 << 20;

const BackupFileKind* FindKind(std::string_view name) {
  for (const BackupFileKind& kind : kFileKinds) {
    if (kind.name == name) return &kind;
  }
  return nullptr;
}

std::string Hex(std::span<const uint8_t> bytes) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string HexSha256(std::string_view bytes) { return Hex(crypto::Sha256(bytes)); }

std::string Join(const std::string& dir, std::string_view name) {
  return absl::StrCat(dir, "/", std::string(name));
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot create directory %s: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Creates the directories of `name` (a relative file name) under `root`.
absl::Status MakeParents(const std::string& root, std::string_view name, mode_t mode) {
  fs::path parent = fs::path(std::string(name)).parent_path();
  if (parent.empty()) return absl::OkStatus();
  const std::string dir = Join(root, parent.string());
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return absl::OkStatus();
  return MakeDir(dir, mode);
}

// Refuses a target that exists and is not an empty directory, or whose
// parent is missing. `what` names the target in messages.
absl::Status CheckNewDirectory(const fs::path& target, std::string_view what) {
  std::error_code ec;
  if (fs::exists(target, ec) && (!fs::is_directory(target, ec) || !fs::is_empty(target, ec))) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "%s %s already exists and is not an empty directory: choose a new directory",
        std::string(what), target.string()));
  }
  if (!fs::is_directory(target.parent_path(), ec)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the parent directory %s of %s %s does not exist: create it first",
                        target.parent_path().string(), std::string(what), target.string()));
  }
  return absl::OkStatus();
}

// fsyncs `dir` and every directory below it, so that the files written
// there are all reachable after a crash.
absl::Status SyncTree(const std::string& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_directory() && !e.is_symlink()) RETURN_IF_ERROR(SyncDirectory(e.path().string()));
  }
  return SyncDirectory(dir);
}

// Moves the finished `staging` directory to `target` (an empty target
// directory is replaced) and makes the rename durable.
absl::Status MoveIntoPlace(const std::string& staging, const fs::path& target) {
  RETURN_IF_ERROR(SyncDirectory(staging));
  std::error_code ec;
  if (fs::exists(target, ec)) fs::remove(target, ec);
  fs::rename(staging, target, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot move %s to %s: %s", staging, target.string(), ec.message()));
  }
  return SyncDirectory(target.parent_path().string());
}

// Copies the regular files of the directory `from` (a checkpoint: no
// subdirectories) into the new directory `to` (mode 0700), each file
// fsynced, then the directory.
absl::Status CopyStoreFiles(const std::string& from, const std::string& to) {
  RETURN_IF_ERROR(MakeDir(to, 0700));
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(from, ec)) {
    if (e.is_symlink() || !e.is_regular_file()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s holds %s, which is not a file: not a checkpoint", from, e.path().string()));
    }
    const std::string src = e.path().string();
    const std::string dst = Join(to, e.path().filename().string());
    int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot read %s: %s", src, std::strerror(errno)));
    }
    int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
      ::close(in);
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot create %s: %s", dst, std::strerror(errno)));
    }
    std::string buf(1 << 20, '\0');
    bool ok = true;
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ok = false;
        break;
      }
      for (ssize_t done = 0; ok && done < n;) {
        ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
          ok = false;
        else
          done += w;
      }
      if (!ok) break;
    }
    if (ok && ::fsync(out) != 0) ok = false;
    const int saved = errno;
    ::close(in);
    if (::close(out) != 0) ok = false;
    if (!ok) {
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot copy %s to %s: %s", src, dst, std::strerror(saved)));
    }
  }
  if (ec) {
    return absl::FailedPreconditionError(absl::StrFormat("cannot list %s: %s", from, ec.message()));
  }
  return SyncDirectory(to);
}

// A read-only log never signs and never reads the time.
class NoClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::UnixEpoch(); }
};

absl::StatusOr<std::unique_ptr<storage::Store>> OpenReadOnly(const std::string& path) {
  storage::StoreOptions options;
  options.path = path;
  options.read_only = true;
  options.block_cache_bytes = 8 << 20;
  return storage::Store::Open(options);
}

// The committed audit tree of a store: its size and root from its stored
// nodes, as AuditLog::Open rebuilds them (no node cache).
absl::StatusOr<std::pair<uint64_t, protocol::Hash>> StoredTree(storage::Store* store) {
  static const NoClock kNoClock;
  audit::AuditLogOptions options;
  options.store = store;
  options.clock = &kNoClock;
  options.cached_node_min_level = audit::kNoNodeCache;
  options.cached_recent_leaves = 0;
  ASSIGN_OR_RETURN(std::unique_ptr<audit::AuditLog> log, audit::AuditLog::Open(options));
  return std::make_pair(log->size(), log->root());
}

}  // namespace

std::span<const BackupFileKind> BackupFileKinds() { return kFileKinds; }

// --- Create -------------------------------------------------------------------

absl::StatusOr<CreatedBackup> BackupWriter::Create(const std::string& out_dir,
                                                   const std::string& actor) {
  if (out_dir.empty()) return absl::InvalidArgumentError("the backup directory is empty");
  // The path is echoed in answers, logs and the audit log.
  RETURN_IF_ERROR(CheckText(out_dir, TextKind::kSingleLine, "backup directory (out_dir)"));
  fs::path target = fs::path(out_dir).lexically_normal();
  if (!target.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "backup directory %s is not an absolute path: give a full path on the server's machine",
        out_dir));
  }
  if (!target.has_filename()) target = target.parent_path();  // a trailing '/'
  std::error_code ec;
  const fs::path db = fs::weakly_canonical(options_.store->path(), ec);
  const fs::path resolved = fs::weakly_canonical(target, ec);
  const std::string db_text = db.string() + "/";
  if (resolved == db || resolved.string().starts_with(db_text)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "backup directory %s lies inside the database %s: choose a directory outside it",
        target.string(), db.string()));
  }
  RETURN_IF_ERROR(CheckNewDirectory(target, "backup directory"));

  absl::MutexLock lock(&mu_);
  const std::string staging =
      absl::StrFormat("%s.partial-%d", target.string(), absl::ToUnixMicros(options_.clock->Now()));
  RETURN_IF_ERROR(MakeDir(staging, 0700));
  absl::StatusOr<CreatedBackup> written = Write(staging, actor);
  if (written.ok()) {
    absl::Status moved = MoveIntoPlace(staging, target);
    if (moved.ok()) {
      written->path = target.string();
      log::Info("backup.created", {{"path", written->path},
                                   {"tree_size", written->head.checkpoint.size},
                                   {"audit_leaf", written->audit_leaf_index}});
      return written;
    }
    written = moved;
  }
  fs::remove_all(staging, ec);
  log::Error("backup.failed", {{"path", target.string()}, {"reason", written.status().message()}});
  return written.status();
}

absl::StatusOr<CreatedBackup> BackupWriter::Write(const std::string& staging,
                                                  const std::string& actor) {
  const absl::Time now = options_.clock->Now();
  // The checkpoint is one consistent instant of the store; everything
  // below describes that copy, not the live store, which moves on.
  RETURN_IF_ERROR(options_.store->CreateCheckpoint(Join(staging, kBackupDbName)));
  CreatedBackup out;
  ASSIGN_OR_RETURN(out.head, SignCheckpointTree(Join(staging, kBackupDbName), now));
  RETURN_IF_ERROR(WriteNewFile(Join(staging, kBackupHeadName), out.head.note, 0600));

  v1::BackupManifest manifest;
  manifest.set_format_version(kBackupFormatVersion);
  manifest.set_deployment_id(options_.info.deployment_id);
  manifest.set_audit_origin(options_.info.audit_origin);
  manifest.set_created_unix_micros(absl::ToUnixMicros(now));
  manifest.set_audit_tree_size(out.head.checkpoint.size);
  manifest.set_created_by(actor);
  RETURN_IF_ERROR(CopyFiles(Join(staging, kBackupFilesName), &manifest));
  for (const v1::BackupFile& f : manifest.files()) out.files.push_back(f.name());
  std::string manifest_text;
  if (!google::protobuf::TextFormat::PrintToString(manifest, &manifest_text)) {
    return absl::InternalError("cannot print the backup manifest");
  }
  RETURN_IF_ERROR(
      WriteNewFile(Join(staging, kBackupManifestName),
                   absl::StrCat("# fieldsync backup manifest (format 1)\n", manifest_text), 0600));

  // Recorded before the backup is moved into place: a backup that exists
  // is in the log. Subjects hold the size and root, never a path.
  storage::WriteBatch batch;
  audit::AuditSession session(options_.audit, &batch);
  protocol::AdminAction action;
  action.actor = actor;
  action.action = std::string(kBackupAction);
  action.subject_ids = {absl::StrCat("tree_size=", out.head.checkpoint.size),
                        absl::StrCat("root=", Hex(out.head.checkpoint.root))};
  ASSIGN_OR_RETURN(out.audit_leaf_index, session.Append(protocol::Event{now, std::move(action)}));
  RETURN_IF_ERROR(options_.store->Commit(&batch));
  session.Committed();
  return out;
}

absl::StatusOr<audit::SignedTreeHead> BackupWriter::SignCheckpointTree(const std::string& db,
                                                                       absl::Time now) {
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> copy, OpenReadOnly(db));
  ASSIGN_OR_RETURN(auto tree, StoredTree(copy.get()));
  RETURN_IF_ERROR(copy->Close());
  // A head for the checkpoint's size, which may be below the newest head
  // the live log signed: it states what the log held at that size, which
  // every later head extends. It is not stored as the log's last head.
  // Signed with the key in force (the log's: a rotation may replace it
  // while the server runs); kAborted when a key rotation committed after
  // the checkpoint was taken.
  protocol::Checkpoint checkpoint;
  checkpoint.size = tree.first;
  checkpoint.root = tree.second;
  checkpoint.extensions.push_back(protocol::TimestampExtension(now));
  return options_.audit->SignDetachedHead(std::move(checkpoint));
}

absl::Status BackupWriter::CopyFiles(const std::string& files_dir, v1::BackupManifest* manifest) {
  RETURN_IF_ERROR(MakeDir(files_dir, 0700));
  for (const BackupFileKind& kind : kFileKinds) {
    auto source = std::find_if(options_.files.begin(), options_.files.end(),
                               [&](const auto& f) { return f.first == kind.name; });
    absl::StatusOr<std::string> bytes = source == options_.files.end()
                                            ? absl::NotFoundError("not configured")
                                            : ReadFile(source->second);
    if (absl::IsNotFound(bytes.status()) && !kind.is_required) continue;
    if (!bytes.ok()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cannot back up %s: %s", std::string(kind.name), bytes.status().message()));
    }
    RETURN_IF_ERROR(MakeParents(files_dir, kind.name, 0700));
    RETURN_IF_ERROR(WriteNewFile(Join(files_dir, kind.name), *bytes, 0600));
    v1::BackupFile* file = manifest->add_files();
    file->set_name(std::string(kind.name));
    file->set_sha256(HexSha256(*bytes));
  }
  std::sort(manifest->mutable_files()->begin(), manifest->mutable_files()->end(),
            [](const v1::BackupFile& a, const v1::BackupFile& b) { return a.name() < b.name(); });
  return SyncTree(files_dir);
}

// --- Verify -------------------------------------------------------------------

std::string BackupReport::Failure() const {
  if (ok || checks.empty()) return "";
  return absl::StrCat(checks.back().name, ": ", checks.back().detail);
}

namespace {

// Serves the audit export format (audit/export.h) of a store's leaves
// [0, size) under its heads, a few records at a time as the verifier reads,
// so that a large log is never held in memory. Not thread-safe.
// REQUIRES: destroyed before `store` is closed.
class StoredLeavesExport final : public std::streambuf {
 public:
  StoredLeavesExport(storage::Store* store, uint64_t size, std::vector<std::string> head_notes)
      : store_(store), size_(size), head_notes_(std::move(head_notes)) {}

  // A storage error or malformed leaf key that ended the entries early.
  const absl::Status& status() const { return status_; }

 protected:
  int_type underflow() override {
    while (gptr() == egptr()) {
      if (!Refill()) return traits_type::eof();
      setg(buf_.data(), buf_.data(), buf_.data() + buf_.size());
    }
    return traits_type::to_int_type(*gptr());
  }

 private:
  // Puts the next records in buf_; false at the end.
  bool Refill() {
    buf_.clear();
    switch (stage_) {
      case Stage::kHead:
        buf_ = std::string(audit::kExportMagic);
        for (const std::string& note : head_notes_) buf_ += audit::ExportHeadRecord(note);
        it_ = store_->NewIterator(storage::Cf::kAuditLeaves, storage::EncodeAuditLeafKey(0),
                                  storage::EncodeAuditLeafKey(size_));
        stage_ = Stage::kEntries;
        return true;
      case Stage::kEntries:
        while (buf_.size() < (64 << 10) && it_->Valid()) {
          absl::StatusOr<uint64_t> index = storage::DecodeAuditLeafKey(it_->key());
          if (!index.ok()) {
            status_ = index.status();
            break;
          }
          buf_ += audit::ExportEntryRecord(*index, it_->value());
          ++entries_;
          it_->Next();
        }
        if (status_.ok() && !it_->Valid()) status_ = it_->status();
        if (!status_.ok() || !it_->Valid()) {
          it_.reset();
          stage_ = Stage::kEnd;
        }
        return true;
      case Stage::kEnd:
        buf_ = audit::ExportEndRecord(entries_, static_cast<uint32_t>(head_notes_.size()));
        stage_ = Stage::kDone;
        return true;
      case Stage::kDone:
        return false;
    }
    return false;
  }

  enum class Stage { kHead, kEntries, kEnd, kDone };
  storage::Store* store_;
  const uint64_t size_;
  const std::vector<std::string> head_notes_;
  Stage stage_ = Stage::kHead;
  std::unique_ptr<storage::Iterator> it_;
  uint64_t entries_ = 0;
  absl::Status status_;
  std::string buf_;
};

// The checks of VerifyBackup, each adding its line to the report.
class BackupVerifier {
 public:
  BackupVerifier(const std::string& dir, const protocol::NoteVerifier& key)
      : dir_(dir), key_(key) {}

  BackupReport Run() {
    if (Manifest() && Files() && Head() && Database() && Tree() && Log()) report_.ok = true;
    return std::move(report_);
  }

 private:
  bool Pass(std::string name, std::string detail) {
    report_.checks.push_back({std::move(name), true, std::move(detail)});
    return true;
  }
  bool Fail(std::string name, std::string detail) {
    report_.checks.push_back({std::move(name), false, std::move(detail)});
    return false;
  }

  bool Manifest() {
    const std::string path = Join(dir_, kBackupManifestName);
    absl::StatusOr<std::string> text = ReadFile(path);
    if (absl::IsNotFound(text.status())) {
      return Fail("manifest", absl::StrFormat("%s has no %s: it is not a fieldsync backup, or an "
                                              "incomplete one",
                                              dir_, std::string(kBackupManifestName)));
    }
    if (!text.ok()) return Fail("manifest", std::string(text.status().message()));
    if (text->size() > kMaxManifestBytes) return Fail("manifest", "the manifest is too large");
    v1::BackupManifest& m = report_.manifest;
    if (absl::Status s = ParseTextOrJson(*text, "the manifest", &m); !s.ok()) {
      return Fail("manifest", absl::StrCat(s.message(), " (malformed or truncated)"));
    }
    if (m.format_version() != kBackupFormatVersion) {
      return Fail("manifest", absl::StrFormat("format version %d is not %d: a newer fieldsync "
                                              "wrote it, or the manifest is damaged",
                                              m.format_version(), kBackupFormatVersion));
    }
    if (!ParseUuid(m.deployment_id()).ok() || m.audit_origin().empty()) {
      return Fail("manifest", "the manifest lacks a deployment id or audit origin");
    }
    std::set<std::string> seen;
    for (const v1::BackupFile& f : m.files()) {
      if (FindKind(f.name()) == nullptr) {
        return Fail("manifest", absl::StrFormat("the manifest lists \"%s\", which no backup "
                                                "holds",
                                                absl::CEscape(f.name())));
      }
      if (!seen.insert(f.name()).second) {
        return Fail("manifest", absl::StrFormat("the manifest lists %s twice", f.name()));
      }
      if (f.sha256().size() != 64 ||
          f.sha256().find_first_not_of("0123456789abcdef") != std::string::npos) {
        return Fail("manifest", absl::StrFormat("the SHA-256 of %s is malformed", f.name()));
      }
    }
    for (const BackupFileKind& kind : kFileKinds) {
      if (kind.is_required && seen.count(std::string(kind.name)) == 0) {
        return Fail("manifest", absl::StrFormat("the manifest lacks %s, which a restore needs",
                                                std::string(kind.name)));
      }
    }
    return Pass("manifest",
                absl::StrFormat("deployment %s, audit tree size %d, %d files, made %s by %s",
                                m.deployment_id(), m.audit_tree_size(), m.files_size(),
                                absl::FormatTime(absl::RFC3339_sec,
                                                 absl::FromUnixMicros(m.created_unix_micros()),
                                                 absl::UTCTimeZone()),
                                m.created_by()));
  }

  bool Files() {
    const std::string files = Join(dir_, kBackupFilesName);
    std::error_code ec;
    if (fs::exists(Join(files, "master.key"), ec) || fs::exists(Join(dir_, "master.key"), ec)) {
      return Fail("files",
                  "the backup holds a master.key: remove it and keep the master key "
                  "apart from backups");
    }
    for (const v1::BackupFile& f : report_.manifest.files()) {
      if (fs::symlink_status(Join(files, f.name()), ec).type() != fs::file_type::regular) {
        return Fail("files", absl::StrFormat("%s is missing or not a plain file", f.name()));
      }
      absl::StatusOr<std::string> bytes = ReadFile(Join(files, f.name()));
      if (!bytes.ok()) {
        return Fail("files", absl::StrFormat("%s: %s", f.name(), bytes.status().message()));
      }
      if (HexSha256(*bytes) != f.sha256()) {
        return Fail("files", absl::StrFormat("%s differs from the manifest's SHA-256: it was "
                                             "changed or damaged",
                                             f.name()));
      }
    }
    absl::StatusOr<DeploymentInfo> marker = CheckDeployment(files);
    if (!marker.ok()) return Fail("files", std::string(marker.status().message()));
    if (marker->deployment_id != report_.manifest.deployment_id() ||
        marker->audit_origin != report_.manifest.audit_origin()) {
      return Fail("files", "the DEPLOYMENT marker names another deployment than the manifest");
    }
    return Pass("files", absl::StrFormat("%d files match their SHA-256; no master key",
                                         report_.manifest.files_size()));
  }

  bool Head() {
    absl::StatusOr<std::string> note = ReadFile(Join(dir_, kBackupHeadName));
    if (!note.ok()) return Fail("tree head", std::string(note.status().message()));
    absl::StatusOr<protocol::Checkpoint> head = protocol::OpenCheckpoint(*note, key_);
    if (absl::IsUnauthenticated(head.status()) && !protocol::HasSignatureLineOf(*note, key_)) {
      // Signed by a later key of the log (after a key rotation) if a key
      // transition in the backup announces a key that signs it; the audit
      // log check then verifies the chain from `key_` to that key.
      absl::StatusOr<protocol::Checkpoint> by_later = OpenWithAnnouncedKey(*note);
      if (by_later.ok()) {
        head = std::move(by_later);
        is_head_by_later_key_ = true;
      }
    }
    if (!head.ok()) {
      return Fail(
          "tree head",
          absl::StrFormat("%s does not verify with the key %s: %s (a changed head, or "
                          "the key of another log)",
                          std::string(kBackupHeadName), key_.key_name(), head.status().message()));
    }
    if (head->origin != report_.manifest.audit_origin()) {
      return Fail("tree head", "the head's origin is not the manifest's deployment");
    }
    if (head->size != report_.manifest.audit_tree_size()) {
      return Fail("tree head", absl::StrFormat("the head is for tree size %d, the manifest says %d",
                                               head->size, report_.manifest.audit_tree_size()));
    }
    absl::StatusOr<absl::Time> signed_at = protocol::CheckpointTimestamp(*head);
    if (!signed_at.ok() ||
        absl::ToUnixMicros(*signed_at) != report_.manifest.created_unix_micros()) {
      return Fail("tree head",
                  "the head was not signed when the manifest says the backup was "
                  "made");
    }
    report_.head = *head;
    note_ = *std::move(note);
    if (is_head_by_later_key_) {
      return Pass("tree head",
                  absl::StrFormat("for tree size %d, signed by a later key of %s: checked with "
                                  "the log's key transitions (audit log)",
                                  head->size, key_.key_name()));
    }
    return Pass("tree head",
                absl::StrFormat("signed by %s for tree size %d", key_.key_name(), head->size));
  }

  // `note` opened with a key that a KeyRotated ("audit-signing") entry of
  // the backup's stored key transitions announces; kUnauthenticated if none
  // signs it.
  absl::StatusOr<protocol::Checkpoint> OpenWithAnnouncedKey(std::string_view note) {
    ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store,
                     OpenReadOnly(Join(dir_, kBackupDbName)));
    absl::StatusOr<protocol::Checkpoint> out =
        absl::UnauthenticatedError("no key transition of the backup announces its key");
    ASSIGN_OR_RETURN(std::vector<audit::StoredKeyTransition> transitions,
                     audit::ReadKeyTransitionRecords(*store));
    for (const audit::StoredKeyTransition& t : transitions) {
      absl::StatusOr<std::string> entry =
          store->Get(storage::Cf::kAuditLeaves, storage::EncodeAuditLeafKey(t.leaf_index));
      absl::StatusOr<protocol::Event> event = entry.ok()
                                                  ? protocol::DecodeEvent(*entry)
                                                  : absl::StatusOr<protocol::Event>(entry.status());
      const auto* rotated = event.ok() ? std::get_if<protocol::KeyRotated>(&event->body) : nullptr;
      if (rotated == nullptr || rotated->new_public_key.size() != 32) continue;
      crypto::Ed25519PublicKey raw;
      std::copy(rotated->new_public_key.begin(), rotated->new_public_key.end(), raw.begin());
      absl::StatusOr<protocol::NoteVerifier> announced =
          protocol::NoteVerifier::FromPublicKey(key_.key_name(), raw);
      if (!announced.ok()) continue;
      absl::StatusOr<protocol::Checkpoint> cp = protocol::OpenCheckpoint(note, *announced);
      if (cp.ok()) out = std::move(cp);
    }
    RETURN_IF_ERROR(store->Close());
    return out;
  }

  bool Database() {
    absl::StatusOr<std::unique_ptr<storage::Store>> store = OpenReadOnly(Join(dir_, kBackupDbName));
    if (!store.ok()) return Fail("database", std::string(store.status().message()));
    store_ = *std::move(store);
    if (absl::Status s = store_->VerifyChecksums(); !s.ok()) {
      return Fail("database", std::string(s.message()));
    }
    absl::StatusOr<std::string> id =
        store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey("deployment_id"));
    if (!id.ok() || *id != report_.manifest.deployment_id()) {
      return Fail("database", "the database is not the manifest's deployment's");
    }
    return Pass("database", "opens read-only; every block checksum verifies");
  }

  bool Tree() {
    absl::StatusOr<std::pair<uint64_t, protocol::Hash>> tree = StoredTree(store_.get());
    if (!tree.ok()) return Fail("audit tree", std::string(tree.status().message()));
    if (tree->first != report_.head.size) {
      return Fail("audit tree",
                  absl::StrFormat("the database's audit tree has %d leaves but the head is for "
                                  "size %d: the head belongs to another backup",
                                  tree->first, report_.head.size));
    }
    if (tree->second != report_.head.root) {
      return Fail("audit tree", absl::StrFormat("the database's audit tree of size %d has another "
                                                "root than the head: the tree was altered",
                                                tree->first));
    }
    return Pass("audit tree",
                absl::StrFormat("the stored tree of %d leaves has the head's root", tree->first));
  }

  bool Log() {
    audit::VerifyReport verified;
    absl::Status stream_status;
    // The heads of the key transitions the backup holds go first, so the
    // verifier can follow them to the key that signed the backup's head.
    std::vector<std::string> notes;
    absl::StatusOr<std::vector<audit::StoredKeyTransition>> transitions =
        audit::ReadKeyTransitionRecords(*store_);
    if (!transitions.ok()) return Fail("audit log", std::string(transitions.status().message()));
    for (audit::StoredKeyTransition& t : *transitions) {
      absl::StatusOr<protocol::Checkpoint> cp = protocol::ParseCheckpointNote(t.note);
      if (cp.ok() && cp->size <= report_.head.size) notes.push_back(std::move(t.note));
    }
    notes.push_back(note_);
    {
      StoredLeavesExport buf(store_.get(), report_.head.size, std::move(notes));
      std::istream in(&buf);
      audit::VerifyOptions options;
      options.key = &key_;
      verified = audit::VerifyExport(in, options);
      stream_status = buf.status();
    }
    if (!stream_status.ok()) return Fail("audit log", std::string(stream_status.message()));
    if (!verified.ok) {
      return Fail("audit log", absl::StrFormat("%s: %s", verified.bad_record, verified.error));
    }
    return Pass("audit log",
                absl::StrFormat("%d entries hash to the head's root; %d device signatures verify%s",
                                verified.entries, verified.device_signatures,
                                verified.key_transitions.empty()
                                    ? ""
                                    : absl::StrFormat("; %d audit key transition(s) followed",
                                                      verified.key_transitions.size())));
  }

  const std::string dir_;
  const protocol::NoteVerifier& key_;
  BackupReport report_;
  std::string note_;
  bool is_head_by_later_key_ = false;
  std::unique_ptr<storage::Store> store_;
};

}  // namespace

BackupReport VerifyBackup(const std::string& dir, const protocol::NoteVerifier& key) {
  return BackupVerifier(dir, key).Run();
}

// --- Restore ------------------------------------------------------------------

namespace {

// The restored fieldsyncd.conf: keys naming files the backup restores
// into the data directory are cleared (the defaults point there), and so
// are the master key's when a key file is installed. Returns the keys
// cleared; *text is rewritten only if there are any.
absl::StatusOr<std::vector<std::string>> ResetConfig(bool has_master_key, std::string* text,
                                                     v1::ServerConfig* config) {
  RETURN_IF_ERROR(ParseTextOrJson(*text, "the backup's fieldsyncd.conf", config));
  std::vector<std::string> reset;
  auto clear = [&](std::string_view key, std::string* value) {
    if (value->empty()) return;
    value->clear();
    reset.push_back(std::string(key));
  };
  clear("tls_cert_file", config->mutable_tls_cert_file());
  clear("tls_key_file", config->mutable_tls_key_file());
  clear("tls_ca_file", config->mutable_tls_ca_file());
  clear("schema_file", config->mutable_schema_file());
  clear("metrics_file", config->mutable_metrics_file());
  if (has_master_key) {
    clear("master_key_file", config->mutable_master_key_file());
    clear("master_key_command", config->mutable_master_key_command());
  }
  if (reset.empty()) return reset;
  std::string printed;
  if (!google::protobuf::TextFormat::PrintToString(*config, &printed)) {
    return absl::InternalError("cannot print the restored configuration");
  }
  *text = absl::StrCat(
      "# fieldsyncd configuration, restored from a backup; keys that named files\n"
      "# outside the data directory were reset to its restored copies.\n",
      printed);
  return reset;
}

absl::StatusOr<RestoredDeployment> Populate(const RestoreOptions& options,
                                            const std::string& staging, RestoredDeployment out) {
  const std::string& from = options.backup_dir;
  // The store: a plain copy of the checkpoint's files, which nothing
  // writes (the live store is never copied by hand).
  const std::string db = DeploymentPaths(staging).db;
  RETURN_IF_ERROR(CopyStoreFiles(Join(from, kBackupDbName), db));

  std::optional<crypto::MasterKeyRing> ring;
  if (!options.master_key_file.empty()) {
    ASSIGN_OR_RETURN(crypto::MasterKeyRing loaded,
                     crypto::MasterKeyRing::LoadFile(options.master_key_file));
    ring.emplace(std::move(loaded));
    ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store, OpenReadOnly(db));
    absl::StatusOr<ServerKeys> keys = LoadServerKeys(*store, *ring);
    if (!keys.ok()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the master key in %s does not open this backup's keys (%s): give the master key of "
          "deployment %s, holding the version in use when the backup was made",
          options.master_key_file, keys.status().message(), out.info.deployment_id));
    }
    RETURN_IF_ERROR(store->Close());
    ASSIGN_OR_RETURN(std::string key_text, ReadFile(options.master_key_file));
    RETURN_IF_ERROR(WriteNewFile(DeploymentPaths(staging).master_key, key_text, 0600));
    out.is_master_key_installed = true;
  }

  const std::string files = Join(from, kBackupFilesName);
  for (const v1::BackupFile& f : out.report.manifest.files()) {
    const BackupFileKind* kind = FindKind(f.name());  // verified: never null
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(Join(files, f.name())));
    if (HexSha256(bytes) != f.sha256()) {  // changed since it was verified
      return absl::DataLossError(absl::StrFormat(
          "%s changed in the backup during the restore: nothing was restored", f.name()));
    }
    if (f.name() == "fieldsyncd.conf") {
      v1::ServerConfig config;
      ASSIGN_OR_RETURN(out.config_keys_reset, ResetConfig(ring.has_value(), &bytes, &config));
      if (!config.master_key_command().empty()) {
        out.master_key_path.clear();
      } else if (!config.master_key_file().empty()) {
        out.master_key_path = config.master_key_file();
      }
    }
    // As fieldsync init makes them: tls/ readable, admin/ the owner's.
    RETURN_IF_ERROR(MakeParents(staging, f.name(), f.name().starts_with("tls/") ? 0755 : 0700));
    RETURN_IF_ERROR(WriteNewFile(Join(staging, f.name()), bytes, kind->is_secret ? 0600 : 0644));
  }
  // The backup's head is the last head this directory's log has signed:
  // fieldsyncd signs only heads that extend it.
  ASSIGN_OR_RETURN(std::string note, ReadFile(Join(from, kBackupHeadName)));
  RETURN_IF_ERROR(WriteNewFile(Join(staging, "audit-head.note"), note, 0644));
  RETURN_IF_ERROR(SyncTree(staging));
  return out;
}

}  // namespace

absl::StatusOr<RestoredDeployment> RestoreBackup(const RestoreOptions& options) {
  if (options.backup_dir.empty() || options.data_dir.empty()) {
    return absl::InvalidArgumentError("restore needs a backup directory and a data directory");
  }
  std::error_code ec;
  fs::path target = fs::absolute(options.data_dir, ec).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  RETURN_IF_ERROR(CheckNewDirectory(target, "data directory"));

  RestoredDeployment out;
  std::optional<protocol::NoteVerifier> own_key;
  const protocol::NoteVerifier* key = options.key;
  if (key == nullptr) {
    const std::string pub = Join(Join(options.backup_dir, kBackupFilesName), "audit-log.pub");
    absl::StatusOr<std::string> text = ReadFile(pub);
    absl::StatusOr<protocol::NoteVerifier> parsed =
        text.ok() ? protocol::NoteVerifier::FromVerifierKey(
                        std::string(absl::StripTrailingAsciiWhitespace(*text)))
                  : absl::StatusOr<protocol::NoteVerifier>(text.status());
    if (!parsed.ok()) {
      return absl::DataLossError(
          absl::StrFormat("the backup's audit-log.pub is unusable (%s): give the key with --key",
                          parsed.status().message()));
    }
    own_key.emplace(*std::move(parsed));
    key = &*own_key;
  }
  out.report = VerifyBackup(options.backup_dir, *key);
  if (!out.report.ok) {
    return absl::DataLossError(absl::StrFormat(
        "the backup does not verify, nothing was restored: %s", out.report.Failure()));
  }
  out.info.deployment_id = out.report.manifest.deployment_id();
  out.info.audit_origin = out.report.manifest.audit_origin();
  out.master_key_path = DeploymentPaths(target.string()).master_key;

  const std::string staging =
      absl::StrFormat("%s.restore-%s", target.string(), out.info.deployment_id.substr(0, 8));
  if (fs::exists(staging, ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is left from an interrupted restore: remove it and restore again", staging));
  }
  RETURN_IF_ERROR(MakeDir(staging, 0700));
  absl::StatusOr<RestoredDeployment> restored = Populate(options, staging, std::move(out));
  if (restored.ok()) {
    absl::Status moved = MoveIntoPlace(staging, target);
    if (moved.ok()) return restored;
    restored = moved;
  }
  fs::remove_all(staging, ec);
  return restored.status();
}

}  // namespace fieldsync::admin
