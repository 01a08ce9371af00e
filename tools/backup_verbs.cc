#include "tools/backup_verbs.h"

#include <chrono>
#include <iostream>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "admin/backup.h"
#include "common/file_io.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "protocol/checkpoint.h"
#include "tools/client.h"

namespace fieldsync::tools {

const char kBackupUsage[] =
    "usage: fieldsync backup create --out DIR          (fieldsyncd writes DIR on ITS machine)\n"
    "       fieldsync backup verify DIR --key KEYFILE [--json]              (offline)\n"
    "       fieldsync backup restore --from DIR --data-dir NEWDIR [--master-key-file FILE]\n"
    "                                [--key KEYFILE]                         (offline)\n"
    "see fieldsync backup VERB --help\n";

namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

constexpr char kCreateHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] backup create --out BACKUP_DIR\n"
    "\n"
    "Asks fieldsyncd (administrators only) to back its deployment up while it\n"
    "keeps serving. BACKUP_DIR is a path ON THE SERVER'S MACHINE, not on the\n"
    "machine running this tool: an absolute path that does not exist yet (or\n"
    "an empty directory) in an existing parent directory, outside the\n"
    "database. The server writes there a RocksDB checkpoint of its store (one\n"
    "consistent instant; pushes go on meanwhile), the signed tree head of the\n"
    "audit tree in that checkpoint, copies of the data directory's files a\n"
    "restore needs and a manifest, and records the backup in the audit log.\n"
    "The master key is NEVER in a backup: keep it apart.\n"
    "Check a backup with `fieldsync backup verify`, restore it with\n"
    "`fieldsync backup restore` (docs/OPERATIONS.md, \"Backup and restore\").\n";

constexpr char kVerifyHelp[] =
    "usage: fieldsync backup verify BACKUP_DIR --key KEYFILE [--json]\n"
    "\n"
    "Checks a backup offline (no server), printing one line per check and\n"
    "stopping at the first that fails (exit 1): the manifest; each copied\n"
    "file against its SHA-256; the tree head's signature with KEYFILE (the\n"
    "audit-log.pub you keep, never the backup's own); the database (opened\n"
    "read-only, every block checksum); the stored audit tree's size and root\n"
    "against the head; and every audit entry, replayed through the audit\n"
    "verifier, to the head's root (device signatures included).\n"
    "--json prints {\"ok\", \"checks\": [{\"name\", \"ok\", \"detail\"}], ...}.\n";

constexpr char kRestoreHelp[] =
    "usage: fieldsync backup restore --from BACKUP_DIR --data-dir NEWDIR\n"
    "                                [--master-key-file FILE] [--key KEYFILE]\n"
    "\n"
    "Makes a new deployment directory NEWDIR (which must not exist, or be\n"
    "empty) from a backup on this machine, offline. The backup is verified\n"
    "first, as `backup verify` does, with KEYFILE or else the backup's own\n"
    "audit-log.pub. The master key is copied (mode 0600) only from --master-\n"
    "key-file, after checking it opens the backup's keys; without it, put the\n"
    "deployment's master key at NEWDIR/master.key (chmod 600) or set\n"
    "master_key_command in NEWDIR/fieldsyncd.conf before starting.\n"
    "Then: fieldsyncd --data-dir NEWDIR\n";

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

int Failed(std::string* error, const absl::Status& status) {
  *error = std::string(status.message());
  return 1;
}

absl::StatusOr<protocol::NoteVerifier> LoadKey(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<protocol::NoteVerifier> key = protocol::NoteVerifier::FromVerifierKey(
      std::string(absl::StripTrailingAsciiWhitespace(*text)));
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not a signed-note verifier key: %s", path, key.status().message()));
  }
  return key;
}

void PrintChecks(const admin::BackupReport& report) {
  for (const admin::BackupCheck& c : report.checks) {
    std::cout << absl::StrFormat("%-4s  %-10s  %s\n", c.ok ? "ok" : "FAIL", c.name, c.detail);
  }
}

}  // namespace

int BackupCreate(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kCreateHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.push_back("--out");
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "backup create takes no operand; see --help");
  if (args.Get("--out").empty()) {
    return Usage(error, "backup create needs --out DIR (a new directory on the server's machine)");
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, conn.status());
  v1::CreateBackupRequest request;
  request.set_out_dir(args.Get("--out"));
  grpc::ClientContext context;
  // A checkpoint flushes and links the store's files: seconds, but allow
  // for a slow disk under load.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  v1::CreateBackupResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status =
      v1::AdminService::NewStub(conn->channel)->CreateBackup(&context, request, &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::cout << absl::StrFormat(
      "backup written by %s to %s (on the server's machine) in %.2f s\n"
      "  audit tree size:  %d (its signed head: %s/tree-head.note)\n"
      "  files:            %s\n"
      "  audit log entry:  %d\n"
      "the master key is not in the backup: keep it apart. Check the backup with\n"
      "  fieldsync backup verify %s --key audit-log.pub\n",
      conn->server, response.path(), absl::ToDoubleSeconds(absl::Now() - start),
      response.tree_size(), response.path(), absl::StrJoin(response.files(), " "),
      response.audit_leaf_index(), response.path());
  return 0;
}

int BackupVerify(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kVerifyHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, {"--key", "--json"}); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 3) return Usage(error, "backup verify needs one BACKUP_DIR");
  if (args.Get("--key").empty()) {
    return Usage(error, "backup verify needs --key KEYFILE (the audit-log.pub you keep)");
  }
  absl::StatusOr<protocol::NoteVerifier> key = LoadKey(args.Get("--key"));
  if (!key.ok()) return Failed(error, key.status());
  const absl::Time start = absl::Now();
  admin::BackupReport report = admin::VerifyBackup(args.words[2], *key);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (args.Has("--json")) {
    nlohmann::json j;
    j["ok"] = report.ok;
    j["checks"] = nlohmann::json::array();
    for (const admin::BackupCheck& c : report.checks) {
      j["checks"].push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    }
    if (report.ok) {
      j["deployment_id"] = report.manifest.deployment_id();
      j["tree_size"] = report.head.size;
    } else {
      j["error"] = report.Failure();
    }
    j["seconds"] = seconds;
    std::cout << j.dump() << "\n";
  } else {
    PrintChecks(report);
  }
  if (!report.ok) {
    *error = absl::StrFormat("backup %s does not verify: %s", args.words[2], report.Failure());
    return 1;
  }
  if (!args.Has("--json")) {
    std::cout << absl::StrFormat("backup %s verifies (%.2f s)\n", args.words[2], seconds);
  }
  return 0;
}

int BackupRestore(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRestoreHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, {"--from", "--data-dir", "--master-key-file", "--key"});
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "backup restore takes no operand; see --help");
  admin::RestoreOptions options;
  options.backup_dir = args.Get("--from");
  options.data_dir = args.Get("--data-dir");
  options.master_key_file = args.Get("--master-key-file");
  if (options.backup_dir.empty() || options.data_dir.empty()) {
    return Usage(error, "backup restore needs --from BACKUP_DIR and --data-dir NEWDIR");
  }
  std::optional<protocol::NoteVerifier> key;
  if (args.Has("--key")) {
    absl::StatusOr<protocol::NoteVerifier> loaded = LoadKey(args.Get("--key"));
    if (!loaded.ok()) return Failed(error, loaded.status());
    key.emplace(*std::move(loaded));
    options.key = &*key;
  }
  absl::StatusOr<admin::RestoredDeployment> restored = admin::RestoreBackup(options);
  if (!restored.ok()) return Failed(error, restored.status());
  PrintChecks(restored->report);
  const std::string& dir = options.data_dir;
  std::cout << absl::StrFormat("restored deployment %s into %s (audit tree size %d)\n",
                               restored->info.deployment_id, dir, restored->report.head.size);
  if (restored->is_master_key_installed) {
    std::cout << absl::StrFormat("  master key: copied to %s (mode 0600)\n",
                                 restored->master_key_path);
    // As `fieldsync init` warns: the production place is outside.
    std::cerr << absl::StrFormat(
        "fieldsync: warning: the master key is inside the data directory (%s): a copy of %s is "
        "then a copy of every key; for production move it to /etc/fieldsync/master.key and set "
        "master_key_file (docs/OPERATIONS.md)\n",
        restored->master_key_path, dir);
  } else if (restored->master_key_path.empty()) {
    std::cout << "  master key: the restored config runs master_key_command; check that it "
                 "works on this machine\n";
  } else {
    std::cout << absl::StrFormat(
        "  master key: NOT restored (never in a backup). Before starting, copy the\n"
        "    deployment's master key to %s and chmod 600 it, or set\n"
        "    master_key_command in %s/fieldsyncd.conf\n",
        restored->master_key_path, dir);
  }
  if (!restored->config_keys_reset.empty()) {
    std::cout << absl::StrFormat("  config: %s reset to this directory's copies\n",
                                 absl::StrJoin(restored->config_keys_reset, ", "));
  }
  std::cout << absl::StrFormat(
      "start the server with: fieldsyncd --data-dir %s\n"
      "(what was committed after the backup was made is not in it; the audit log goes\n"
      "on from tree size %d: see docs/OPERATIONS.md, \"Backup and restore\")\n",
      dir, restored->report.head.size);
  return 0;
}

}  // namespace fieldsync::tools
