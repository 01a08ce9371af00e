#include "server/audit_rollback.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fieldsync::server {
namespace {

// "size 20, in DIR/audit-head.note (and 1 more head)".
std::string Describe(const std::vector<audit::UnextendedHead>& heads) {
  const audit::UnextendedHead& h = heads.front();
  std::string out = absl::StrFormat("size %d, in %s", h.checkpoint.size, h.where);
  if (heads.size() > 1) out += absl::StrFormat(" (and %d more head(s))", heads.size() - 1);
  return out;
}

// What went wrong, in one sentence, for the largest unextended head.
std::string Finding(const std::vector<audit::UnextendedHead>& heads, uint64_t tree_size) {
  const audit::UnextendedHead& h = heads.front();
  if (h.is_rollback) {
    return absl::StrFormat(
        "the store's audit tree (size %d) is older than the last signed tree head this "
        "deployment published (%s): the store was restored from an older backup, and the log's "
        "entries %d..%d are not in it",
        tree_size, Describe(heads), tree_size, h.checkpoint.size - 1);
  }
  return absl::StrFormat(
      "the store's audit tree (size %d) does not extend the last signed tree head this "
      "deployment published (%s; %s): the log forked, an older copy of the store was "
      "restored and then written to",
      tree_size, Describe(heads), h.reason);
}

}  // namespace

absl::Status CheckAuditRollback(audit::AuditLog* log, std::optional<uint64_t> accept_size,
                                const std::string& actor, const std::string& data_dir) {
  ASSIGN_OR_RETURN(std::vector<audit::UnextendedHead> heads, log->UnextendedHeads());
  const uint64_t tree_size = log->size();
  if (heads.empty()) {
    if (!accept_size.has_value()) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrFormat(
        "--accept-rollback %d: the store's audit tree (size %d) extends every tree head this "
        "deployment published, so there is no rollback to accept; start without "
        "--accept-rollback",
        *accept_size, tree_size));
  }
  const std::string finding = Finding(heads, tree_size);
  if (!accept_size.has_value()) {
    for (const audit::UnextendedHead& h : heads) {
      log::Error("audit.rollback.detected", {{"tree_size", tree_size},
                                             {"head_size", h.checkpoint.size},
                                             {"where", h.where},
                                             {"reason", h.reason}});
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s. Restore the newer store (or the data directory that published that head), or "
        "accept this state as an administrator, recorded in the audit log: fieldsyncd "
        "--data-dir %s --accept-rollback %d (docs/OPERATIONS.md, Restore drill)",
        finding, data_dir, tree_size));
  }
  if (*accept_size != tree_size) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "--accept-rollback %d does not match the store's audit tree size %d, so nothing was "
        "accepted: %s. Check that this is the store you meant, then give --accept-rollback %d",
        *accept_size, tree_size, finding, tree_size));
  }
  // AcceptRollback logs audit.rollback.accepted (entry, sizes, actor).
  return log->AcceptRollback(*accept_size, actor).status();
}

absl::Status CheckHeadCopyFile(const std::string& path, const std::string& data_dir) {
  if (path.empty()) return absl::OkStatus();
  const std::filesystem::path p(path);
  std::error_code ec;
  if (!p.is_absolute() || !p.has_filename()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "audit_head_copy_file %s must be an absolute path to a file (on another disk or "
        "mount than the data directory)",
        path));
  }
  if (!std::filesystem::is_directory(p.parent_path(), ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "audit_head_copy_file %s: the directory %s does not exist or is not mounted; create "
        "it (writable by fieldsyncd) or fix the path in the config",
        path, p.parent_path().string()));
  }
  const std::filesystem::path dir = std::filesystem::weakly_canonical(data_dir, ec);
  const std::filesystem::path copy = std::filesystem::weakly_canonical(p, ec);
  if (!ec && copy.string().rfind(dir.string() + "/", 0) == 0) {
    log::Warn("audit.head_copy", {{"path", path},
                                  {"note",
                                   "inside the data directory: it cannot catch a "
                                   "restore of the whole directory"}});
  }
  return absl::OkStatus();
}

std::string LocalOperatorActor() { return absl::StrFormat("local-operator:uid=%d", getuid()); }

}  // namespace fieldsync::server
