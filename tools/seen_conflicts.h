// What `fieldsync conflict list` and `conflict show` last printed, so that
// `conflict resolve` sends the version the supervisor saw: a small state
// file, per server address and conflict id, holding the Conflict.version
// shown. Ids and versions only, never a value.
//
// File ($XDG_STATE_HOME/fieldsync/seen-conflicts, else
// $HOME/.local/state/fieldsync/seen-conflicts; mode 0600, directory 0700),
// one entry a line, oldest first, fields separated by one space:
//
//   SERVER CONFLICT_ID VERSION
//   127.0.0.1:7443 412/family_name 415
//
// SERVER is HOST:PORT as the tool connected, CONFLICT_ID is POSITION or
// POSITION/FIELD, VERSION is decimal. Lines starting with '#' are comments.
// A line that does not parse is dropped (the file is a cache: the worst
// outcome of a lost entry is that resolve fetches the conflict again).
#ifndef FIELDSYNC_TOOLS_SEEN_CONFLICTS_H_
#define FIELDSYNC_TOOLS_SEEN_CONFLICTS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fieldsync/v1/records.pb.h"

namespace fieldsync::tools {

// "412/family_name" for a field conflict, "412" for a record-level one.
std::string FormatConflictId(const v1::ConflictId& id);

// The inverse of FormatConflictId. kInvalidArgument unless `text` is a
// position (1 or more, decimal) optionally followed by '/' and a field name
// ([a-z][a-z0-9_]*).
absl::StatusOr<v1::ConflictId> ParseConflictId(std::string_view text);

struct SeenConflict {
  std::string server;
  std::string conflict_id;  // FormatConflictId's form
  uint64_t version = 0;
  friend bool operator==(const SeenConflict&, const SeenConflict&) = default;
};

// Parses the file's text; malformed lines are skipped.
std::vector<SeenConflict> ParseSeenConflicts(std::string_view text);
// The file's text for `entries` (with a header comment).
std::string FormatSeenConflicts(const std::vector<SeenConflict>& entries);

// The state file of one user. Not thread-safe; processes updating it at the
// same time take turns (an advisory lock on PATH.lock around each update).
class SeenConflictsFile {
 public:
  // The path from the environment: kFailedPrecondition when neither
  // XDG_STATE_HOME nor HOME is set.
  static absl::StatusOr<SeenConflictsFile> FromEnvironment();
  explicit SeenConflictsFile(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  // The version last remembered for `conflict_id` on `server`; nullopt when
  // none (or the file does not exist or cannot be read).
  std::optional<uint64_t> Find(const std::string& server, const std::string& conflict_id) const;

  // Records `entries` (replacing older entries of the same server and id)
  // and drops the oldest entries beyond kMaxEntries. Creates the directory
  // (0700) and the file (0600); the file is replaced atomically (written
  // aside, fsynced, renamed). kFailedPrecondition naming the path when it
  // cannot be written.
  absl::Status Remember(const std::vector<SeenConflict>& entries);

  // Drops the entry of `conflict_id` on `server`, if any. Errors as Remember.
  absl::Status Forget(const std::string& server, const std::string& conflict_id);

  static constexpr size_t kMaxEntries = 5000;

 private:
  // Reads, lets `change` edit the entries, writes back, under the lock.
  absl::Status Update(const std::function<void(std::vector<SeenConflict>&)>& change);

  std::string path_;
};

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_SEEN_CONFLICTS_H_
