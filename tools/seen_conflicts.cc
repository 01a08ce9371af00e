#include "tools/seen_conflicts.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_io.h"

namespace fieldsync::tools {
namespace {

bool IsFieldName(std::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] < 'a' || s[0] > 'z') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(
      absl::StrFormat("cannot %s %s: %s", what, path, std::strerror(errno)));
}

// Holds an exclusive advisory lock on `path` (created 0600) while alive.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Take(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("open", path);
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        absl::Status s = Errno("lock", path);
        ::close(fd);
        return s;
      }
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

std::string FormatConflictId(const v1::ConflictId& id) {
  if (id.field().empty()) return absl::StrCat(id.position());
  return absl::StrCat(id.position(), "/", id.field());
}

absl::StatusOr<v1::ConflictId> ParseConflictId(std::string_view text) {
  std::string_view position = text, field;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    position = text.substr(0, slash);
    field = text.substr(slash + 1);
    if (!IsFieldName(field)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "conflict id \"%s\": after the '/' comes a field name (as in 412/family_name)", text));
    }
  }
  uint64_t n = 0;
  bool digits = !position.empty();
  for (char c : position) digits = digits && c >= '0' && c <= '9';
  if (!digits || !absl::SimpleAtoi(absl::string_view(position.data(), position.size()), &n) ||
      n == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "conflict id \"%s\" is not POSITION/FIELD (412/family_name) or POSITION (412) as "
        "`fieldsync conflict list` prints them",
        text));
  }
  v1::ConflictId id;
  id.set_position(n);
  id.set_field(std::string(field));
  return id;
}

std::vector<SeenConflict> ParseSeenConflicts(std::string_view text) {
  std::vector<SeenConflict> out;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    SeenConflict e;
    if (parts.size() != 3 || parts[0].empty() ||
        !ParseConflictId(std::string_view(parts[1].data(), parts[1].size())).ok() ||
        !absl::SimpleAtoi(parts[2], &e.version) || e.version == 0) {
      continue;
    }
    e.server = std::string(parts[0]);
    e.conflict_id = std::string(parts[1]);
    out.push_back(std::move(e));
  }
  return out;
}

std::string FormatSeenConflicts(const std::vector<SeenConflict>& entries) {
  std::string out =
      "# fieldsync: conflict versions shown by `conflict list` and `conflict show`\n"
      "# (server, conflict id, version; no values). Safe to delete.\n";
  for (const SeenConflict& e : entries) {
    absl::StrAppendFormat(&out, "%s %s %d\n", e.server, e.conflict_id, e.version);
  }
  return out;
}

absl::StatusOr<SeenConflictsFile> SeenConflictsFile::FromEnvironment() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') {
    return SeenConflictsFile(absl::StrCat(state, "/fieldsync/seen-conflicts"));
  }
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    return SeenConflictsFile(absl::StrCat(home, "/.local/state/fieldsync/seen-conflicts"));
  }
  return absl::FailedPreconditionError(
      "neither XDG_STATE_HOME nor HOME is set: nowhere to remember the conflict versions shown");
}

std::optional<uint64_t> SeenConflictsFile::Find(const std::string& server,
                                                const std::string& conflict_id) const {
  absl::StatusOr<std::string> text = ReadFile(path_);
  if (!text.ok()) return std::nullopt;
  std::optional<uint64_t> found;
  for (const SeenConflict& e : ParseSeenConflicts(*text)) {
    if (e.server == server && e.conflict_id == conflict_id) found = e.version;
  }
  return found;
}

absl::Status SeenConflictsFile::Update(
    const std::function<void(std::vector<SeenConflict>&)>& change) {
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot create %s: %s", dir, ec.message()));
  }
  // XDG: the state directory is the user's alone.
  ::chmod(dir.c_str(), 0700);
  absl::StatusOr<FileLock> lock = FileLock::Take(path_ + ".lock");
  if (!lock.ok()) return lock.status();
  std::vector<SeenConflict> entries;
  if (absl::StatusOr<std::string> text = ReadFile(path_); text.ok()) {
    entries = ParseSeenConflicts(*text);
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  change(entries);
  if (entries.size() > kMaxEntries) {
    entries.erase(entries.begin(), entries.end() - static_cast<std::ptrdiff_t>(kMaxEntries));
  }
  const std::string aside = path_ + ".tmp";
  ::unlink(aside.c_str());  // left by a process that died mid-write
  if (absl::Status s = WriteNewFile(aside, FormatSeenConflicts(entries), 0600); !s.ok()) return s;
  if (::rename(aside.c_str(), path_.c_str()) != 0) {
    absl::Status s = Errno("replace", path_);
    ::unlink(aside.c_str());
    return s;
  }
  return absl::OkStatus();
}

absl::Status SeenConflictsFile::Remember(const std::vector<SeenConflict>& seen) {
  return Update([&seen](std::vector<SeenConflict>& entries) {
    for (const SeenConflict& s : seen) {
      std::erase_if(entries, [&s](const SeenConflict& e) {
        return e.server == s.server && e.conflict_id == s.conflict_id;
      });
      entries.push_back(s);
    }
  });
}

absl::Status SeenConflictsFile::Forget(const std::string& server, const std::string& conflict_id) {
  if (!Find(server, conflict_id).has_value()) return absl::OkStatus();
  return Update([&](std::vector<SeenConflict>& entries) {
    std::erase_if(entries, [&](const SeenConflict& e) {
      return e.server == server && e.conflict_id == conflict_id;
    });
  });
}

}  // namespace fieldsync::tools
