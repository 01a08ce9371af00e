// Backups of a deployment on RocksDB's checkpoints (docs/OPERATIONS.md,
// "Backup and restore"): made by fieldsyncd while it serves
// (AdminService.CreateBackup), checked offline (`fieldsync backup verify`),
// restored into a new data directory (`fieldsync backup restore`).
//
// Layout of a backup directory (persisted: operators and both tools rely
// on these names):
//   MANIFEST.textproto  v1.BackupManifest (proto/fieldsync/v1/backup.proto),
//                       protobuf text form
//   tree-head.note      the C2SP signed checkpoint note of the audit tree in
//                       db/ at exactly its size, signed with the
//                       deployment's audit key when the backup was made
//   db/                 a RocksDB checkpoint of the store
//   files/NAME          copies of the data directory's files, under their
//                       data-directory names (BackupFileKinds()); never
//                       master.key: the master key is kept apart
// The backup is built in a sibling directory and renamed into place, so a
// directory named by out_dir is always a whole backup.
#ifndef FIELDSYNC_ADMIN_BACKUP_H_
#define FIELDSYNC_ADMIN_BACKUP_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "admin/deployment.h"
#include "audit/log.h"
#include "common/clock.h"
#include "fieldsync/v1/backup.pb.h"
#include "protocol/checkpoint.h"
#include "storage/store.h"

namespace fieldsync::admin {

inline constexpr uint32_t kBackupFormatVersion = 1;
inline constexpr std::string_view kBackupManifestName = "MANIFEST.textproto";
inline constexpr std::string_view kBackupHeadName = "tree-head.note";
inline constexpr std::string_view kBackupDbName = "db";
inline constexpr std::string_view kBackupFilesName = "files";
// The AdminAction recorded for each backup (docs/AUDIT.md).
inline constexpr std::string_view kBackupAction = "backup.create";

// A data-directory file a backup may hold (persisted names).
struct BackupFileKind {
  std::string_view name;  // as in DeploymentPaths, relative to the data directory
  bool is_secret;         // restored with mode 0600 (else 0644)
  bool is_required;       // a backup without it is refused
};
// Every such file: DEPLOYMENT, fieldsyncd.conf, tls/ca.crt, tls/server.crt,
// tls/server.key, admin/admin.crt, admin/admin.key, admin/ca.crt,
// audit-log.pub, schema.textproto, metrics.textproto, dhis2-mapping.json.
std::span<const BackupFileKind> BackupFileKinds();

struct BackupWriterOptions {
  // The live store and its audit log (which records each backup and signs
  // its head with the key in force). Not owned; must outlive the writer.
  storage::Store* store = nullptr;
  audit::AuditLog* audit = nullptr;
  const Clock* clock = nullptr;
  DeploymentInfo info;
  // Where this server reads each file of BackupFileKinds(), by name (its
  // config may point elsewhere than the data directory). An optional file
  // missing here or on disk is left out.
  std::vector<std::pair<std::string, std::string>> files;
};

struct CreatedBackup {
  std::string path;
  audit::SignedTreeHead head;  // head.checkpoint.size: the checkpoint's tree size
  std::vector<std::string> files;
  uint64_t audit_leaf_index = 0;  // of the backup.create event
};

// Makes backups of a serving deployment. Thread-safe: backups run one at a
// time; pushes and every other call go on meanwhile.
class BackupWriter {
 public:
  explicit BackupWriter(BackupWriterOptions options) : options_(std::move(options)) {}

  // Writes a backup of the store, as of one instant, to `out_dir` (a new
  // or empty directory on this machine): a checkpoint, the signed head of
  // the audit tree that the checkpoint holds (its size read from the
  // checkpoint itself, so head and tree match whatever committed
  // meanwhile), the files and the manifest. Then appends AdminAction
  // "backup.create" (actor; subjects "tree_size=N", "root=<hex>") to the
  // live log, and only then renames the backup into place: no backup
  // exists that the log does not record. Errors:
  //   kInvalidArgument    out_dir empty, relative, or inside the store;
  //   kAlreadyExists      out_dir holds something;
  //   kFailedPrecondition its parent is not a directory; a required file
  //                       is missing;
  //   kUnavailable / kDataLoss from storage or the audit log (nothing is
  //                       left behind: retry).
  absl::StatusOr<CreatedBackup> Create(const std::string& out_dir, const std::string& actor);

 private:
  absl::StatusOr<CreatedBackup> Write(const std::string& staging, const std::string& actor);
  // The signed head of the audit tree in the checkpoint at `db`.
  absl::StatusOr<audit::SignedTreeHead> SignCheckpointTree(const std::string& db, absl::Time now);
  // Copies the files of options_.files into `files_dir` (new) and lists
  // them, with their SHA-256, in `manifest`.
  absl::Status CopyFiles(const std::string& files_dir, v1::BackupManifest* manifest);

  const BackupWriterOptions options_;
  absl::Mutex mu_;  // one backup at a time
};

// One check of VerifyBackup.
struct BackupCheck {
  std::string name;  // "manifest", "files", "tree head", "database", "audit tree", "audit log"
  bool ok = false;
  std::string detail;  // what was found, or why it failed
};

struct BackupReport {
  bool ok = false;
  // In order; when !ok, the last one is the first that failed and the
  // later ones were not run.
  std::vector<BackupCheck> checks;
  v1::BackupManifest manifest;
  protocol::Checkpoint head;
  // "check: detail" of the failed check ("" when ok).
  std::string Failure() const;
};

// Checks the backup in `dir` offline, with the audit log key `key` (the
// auditor's or operator's copy), stopping at the first failure:
//   manifest    MANIFEST.textproto parses strictly: format 1, a deployment
//               id, known file names only, each at most once, the required
//               ones present;
//   files       each listed file's SHA-256 matches, its DEPLOYMENT marker
//               names the manifest's deployment, and no master.key is there;
//   tree head   tree-head.note is signed by `key` for the log's origin, and
//               its size and timestamp are the manifest's;
//   database    db/ opens read-only, every block checksum verifies, and it
//               is the manifest's deployment;
//   audit tree  the stored tree's size and root (from its stored nodes, as
//               a restored server reads them) are the head's;
//   audit log   every stored leaf, replayed through the export verifier
//               (audit/export.h), hashes to the head's root: entries
//               decode, device signatures verify, nothing is missing.
// Never fails: a bad backup is a report naming its first failed check.
BackupReport VerifyBackup(const std::string& dir, const protocol::NoteVerifier& key);

struct RestoreOptions {
  std::string backup_dir;
  // The new data directory: must not exist or be empty; its parent must exist.
  std::string data_dir;
  // A master key file (mode 0600) to copy to DATA_DIR/master.key; "" leaves
  // the key to the operator.
  std::string master_key_file;
  // The audit log key to verify the backup with; null: the backup's own
  // files/audit-log.pub.
  const protocol::NoteVerifier* key = nullptr;
};

struct RestoredDeployment {
  BackupReport report;
  DeploymentInfo info;
  bool is_master_key_installed = false;  // copied from master_key_file
  // Where fieldsyncd will read the master key from ("" when the config
  // runs master_key_command).
  std::string master_key_path;
  // Config keys that named files outside the old data directory, reset so
  // that the restored copies are used.
  std::vector<std::string> config_keys_reset;
};

// Verifies the backup (as VerifyBackup), then builds a data directory from
// it in a sibling directory and renames it to `data_dir`: the store, the
// files (secrets 0600, directories 0700 but tls/), the backup's head as
// audit-head.note, and the master key only from master_key_file (checked
// to open the backup's keys). fieldsyncd --data-dir DATA_DIR serves it.
// Errors (nothing is left behind):
//   kAlreadyExists      data_dir holds something;
//   kFailedPrecondition its parent is missing; the master key file is
//                       missing, readable by others, or does not open the
//                       backup's keys; the config does not parse;
//   kInvalidArgument    the master key file is malformed;
//   kDataLoss           the backup does not verify (the message names the
//                       failed check).
absl::StatusOr<RestoredDeployment> RestoreBackup(const RestoreOptions& options);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_BACKUP_H_
