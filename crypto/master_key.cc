#include "crypto/master_key.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/hkdf.h"

extern char** environ;

namespace fieldsync::crypto {
namespace {

constexpr std::string_view kHeader = "fieldsync-master-key v1";
constexpr std::string_view kWrapDomain = "fieldsync/wrap/v1";
constexpr std::string_view kDeriveSalt = "fieldsync/derive/v1";
constexpr size_t kKeySize = 32;
constexpr size_t kBase64KeySize = 44;  // 32 bytes, padded.
// A key file is a few lines; anything larger is not one.
constexpr size_t kMaxKeyText = 1 << 20;

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

uint32_t GetU32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

// The associated data of a wrapped key (layout in master_key.h).
std::string WrapAad(std::string_view purpose, uint32_t version) {
  std::string aad(kWrapDomain);
  PutU32(aad, static_cast<uint32_t>(purpose.size()));
  aad.append(purpose);
  PutU32(aad, version);
  return aad;
}

absl::Status DoesNotOpen(std::string_view purpose) {
  return absl::DataLossError(
      absl::StrFormat("wrapped key for %s does not open: wrong master key or corrupted", purpose));
}

// Decodes 44 characters of canonical padded base64 into 32 bytes; false if
// they are not exactly that.
bool DecodeKey(std::string_view text, SecretBytes* key) {
  if (text.size() != kBase64KeySize || text[43] != '=' || text[42] == '=') return false;
  SecretBytes decoded(33);  // EVP_DecodeBlock counts the padding as a byte.
  int n = EVP_DecodeBlock(decoded.data(), reinterpret_cast<const uint8_t*>(text.data()),
                          static_cast<int>(text.size()));
  if (n != 33) return false;
  SecretBytes out(decoded.span().first(kKeySize));
  // Reject non-canonical encodings (stray low bits in the last character):
  // one key, one spelling.
  std::string again(kBase64KeySize + 1, '\0');
  EVP_EncodeBlock(reinterpret_cast<uint8_t*>(again.data()), out.data(), kKeySize);
  bool canonical =
      ConstantTimeEquals(AsBytes(std::string_view(again).substr(0, kBase64KeySize)), AsBytes(text));
  Cleanse(again);
  if (!canonical) return false;
  *key = std::move(out);
  return true;
}

template <size_t N>
std::span<uint8_t> AsWritable(char (&buf)[N]) {
  return {reinterpret_cast<uint8_t*>(buf), N};
}

absl::Status Malformed(std::string_view source, size_t line, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("malformed %s, line %d: %s", source, line, what));
}

// Reads all of `fd` (at most kMaxKeyText bytes) into `out`.
absl::Status ReadAll(int fd, std::string_view source, std::string* out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      Cleanse(AsWritable(buf));
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot read %s: %s", source, std::strerror(err)));
    }
    if (n == 0) break;
    if (out->size() + static_cast<size_t>(n) > kMaxKeyText) {
      Cleanse(AsWritable(buf));
      return absl::InvalidArgumentError(
          absl::StrFormat("%s is over %d bytes: not a master key file", source, kMaxKeyText));
    }
    out->append(buf, static_cast<size_t>(n));
  }
  Cleanse(AsWritable(buf));
  return absl::OkStatus();
}

}  // namespace

absl::Status MasterKeyRing::Insert(uint32_t version, SecretBytes key) {
  if (keys_.contains(version)) {
    return absl::InvalidArgumentError(absl::StrFormat("master key version %d twice", version));
  }
  ASSIGN_OR_RETURN(AesGcm aead, AesGcm::Create(key.span()));
  keys_.emplace(version, Version{std::move(key), std::make_unique<AesGcm>(std::move(aead))});
  if (version > current_version_) current_version_ = version;
  return absl::OkStatus();
}

MasterKeyRing::MasterKeyRing(MasterKeyRing&& other) noexcept {
  absl::MutexLock lock(&other.mu_);
  keys_ = std::move(other.keys_);
  current_version_ = other.current_version_;
  other.keys_.clear();
  other.current_version_ = 0;
}

MasterKeyRing& MasterKeyRing::operator=(MasterKeyRing&& other) noexcept {
  if (this == &other) return *this;
  // Both locks, in address order, so that two crossed moves cannot deadlock.
  absl::Mutex* first = this < &other ? &mu_ : &other.mu_;
  absl::Mutex* second = this < &other ? &other.mu_ : &mu_;
  absl::MutexLock lock1(first);
  absl::MutexLock lock2(second);
  keys_ = std::move(other.keys_);
  current_version_ = other.current_version_;
  other.keys_.clear();
  other.current_version_ = 0;
  return *this;
}

uint32_t MasterKeyRing::current_version() const {
  absl::ReaderMutexLock lock(&mu_);
  return current_version_;
}

bool MasterKeyRing::has_version(uint32_t version) const {
  absl::ReaderMutexLock lock(&mu_);
  return keys_.contains(version);
}

MasterKeyRing MasterKeyRing::Generate(Random& random) {
  MasterKeyRing ring;
  SecretBytes key(kKeySize);
  random.Fill(key.mutable_span());
  absl::Status s;
  {
    absl::MutexLock lock(&ring.mu_);
    s = ring.Insert(1, std::move(key));
  }
  if (!s.ok()) std::abort();  // A 32-byte key into an empty ring cannot fail.
  return ring;
}

absl::StatusOr<MasterKeyRing> MasterKeyRing::Parse(std::string_view text) {
  return ParseText(text, "master key text");
}

absl::StatusOr<MasterKeyRing> MasterKeyRing::ParseText(std::string_view text,
                                                       std::string_view source) {
  MasterKeyRing ring;
  bool seen_header = false;
  size_t line_number = 0;
  for (absl::string_view absl_line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    std::string_view line(absl_line.data(), absl_line.size());
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (!seen_header) {
      if (line != kHeader) {
        return Malformed(source, line_number,
                         absl::StrFormat("expected the header \"%s\"", kHeader));
      }
      seen_header = true;
      continue;
    }
    std::vector<absl::string_view> fields = absl::StrSplit(
        absl::string_view(line.data(), line.size()), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    uint32_t version = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &version) || version == 0) {
      return Malformed(source, line_number, "expected \"<version> <base64 key>\", version >= 1");
    }
    SecretBytes key;
    if (!DecodeKey(std::string_view(fields[1].data(), fields[1].size()), &key)) {
      return Malformed(
          source, line_number,
          absl::StrFormat("version %d: the key is not 32 bytes of padded base64", version));
    }
    absl::MutexLock lock(&ring.mu_);
    if (ring.keys_.contains(version)) {
      return Malformed(source, line_number, absl::StrFormat("version %d appears twice", version));
    }
    RETURN_IF_ERROR(ring.Insert(version, std::move(key)));
  }
  if (!seen_header) return Malformed(source, line_number, "empty");
  if (ring.current_version() == 0) return Malformed(source, line_number, "no key versions");
  return ring;
}

absl::StatusOr<MasterKeyRing> MasterKeyRing::LoadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrFormat("master key file %s does not exist", path));
    }
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot open master key file %s: %s", path, std::strerror(err)));
  }
  // The checks run on the open descriptor, so the file read is the file
  // checked.
  struct stat st;
  absl::Status status;
  if (::fstat(fd, &st) != 0) {
    status = absl::FailedPreconditionError(
        absl::StrFormat("cannot stat master key file %s: %s", path, std::strerror(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::FailedPreconditionError(
        absl::StrFormat("master key file %s is not a regular file", path));
  } else if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    status = absl::FailedPreconditionError(absl::StrFormat(
        "master key file %s is readable by other users; run: chmod 600 %s", path, path));
  } else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    status = absl::FailedPreconditionError(absl::StrFormat(
        "master key file %s is accessible by other users; run: chmod 600 %s", path, path));
  }
  std::string text;
  const std::string source = absl::StrFormat("master key file %s", path);
  if (status.ok()) status = ReadAll(fd, source, &text);
  ::close(fd);
  absl::StatusOr<MasterKeyRing> ring =
      status.ok() ? ParseText(text, source) : absl::StatusOr<MasterKeyRing>(status);
  Cleanse(text);
  return ring;
}

namespace {

// A master key command started by RunKeyCommand: its process id (also its
// process group id) and the read end of its standard output.
struct KeyCommand {
  pid_t pid = -1;
  int out_fd = -1;
};

absl::StatusOr<KeyCommand> StartKeyCommand(const std::string& command) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot run the master key command: cannot make a pipe: %s", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  // It must not wait for input: nobody answers a prompt at start-up.
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so that a timeout kills whatever it started;
  // no blocked signals and default dispositions (fieldsyncd blocks its
  // stop signals and ignores SIGPIPE, which a child would inherit).
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGQUIT}) sigaddset(&defaults, sig);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  std::string sh = "sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  KeyCommand child;
  int err = ::posix_spawn(&child.pid, "/bin/sh", &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot run the master key command: %s", std::strerror(err)));
  }
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  child.out_fd = fds[0];
  return child;
}

// The first of `signals` pending for this process or thread, 0 if none.
int PendingStopSignal(const std::vector<int>& signals) {
  if (signals.empty()) return 0;
  sigset_t pending;
  sigemptyset(&pending);
  if (::sigpending(&pending) != 0) return 0;
  for (int sig : signals) {
    if (sigismember(&pending, sig) == 1) return sig;
  }
  return 0;
}

// Waits for the command to write its output and exit, reading the output
// into `out`. Kills its process group if it runs past the timeout, writes
// too much, or a stop signal is pending. Always reaps it and closes its fd.
absl::Status WaitForKeyCommand(KeyCommand child, const MasterKeyRing::CommandOptions& options,
                               std::string* out) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + absl::ToChronoNanoseconds(options.timeout);
  constexpr int kTickMs = 50;
  absl::Status status;
  bool is_eof = false;
  int wait_status = 0;
  bool has_exited = false;  // exited, not yet reaped
  char buf[4096];
  while (status.ok()) {
    if (!has_exited) {
      // WNOWAIT: it stays a zombie, so its process group id cannot be
      // reused before the kill below.
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(child.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == child.pid) {
        has_exited = true;
      }
    }
    if (has_exited && is_eof) break;
    if (int sig = PendingStopSignal(options.stop_signals); sig != 0) {
      status = absl::CancelledError(absl::StrFormat(
          "start-up stopped by %s while waiting for the master key command (killed)",
          sigabbrev_np(sig) != nullptr ? absl::StrCat("SIG", sigabbrev_np(sig)) : "a signal"));
      break;
    }
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      status = absl::DeadlineExceededError(absl::StrFormat(
          "the master key command did not finish within %d seconds (killed): check that it "
          "runs without prompting, or raise master_key_command_timeout_seconds",
          absl::ToInt64Seconds(options.timeout)));
      break;
    }
    const int wait_ms = static_cast<int>(std::min<int64_t>(
        kTickMs,
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
    if (is_eof) {
      ::poll(nullptr, 0, wait_ms);
      continue;
    }
    pollfd pfd{child.out_fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, wait_ms);
    if (ready <= 0) continue;  // timeout tick or EINTR
    ssize_t n = ::read(child.out_fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      status = absl::FailedPreconditionError(
          absl::StrFormat("cannot read the master key command's output: %s", std::strerror(errno)));
    } else if (n == 0) {
      is_eof = true;
    } else if (out->size() + static_cast<size_t>(n) > kMaxKeyText) {
      status = absl::InvalidArgumentError(absl::StrFormat(
          "the master key command's output is over %d bytes: not a master key file", kMaxKeyText));
    } else {
      out->append(buf, static_cast<size_t>(n));
    }
  }
  Cleanse(AsWritable(buf));
  ::close(child.out_fd);
  // On failure, whatever runs in its process group goes too (the group's
  // id is still reserved by the unreaped leader).
  if (!status.ok()) ::kill(-child.pid, SIGKILL);
  while (::waitpid(child.pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!status.ok()) return status;
  if (WIFSIGNALED(wait_status)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the master key command was killed by signal %d", WTERMSIG(wait_status)));
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the master key command exited with status %d (127: not found); see its "
                        "standard error",
                        WEXITSTATUS(wait_status)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MasterKeyRing> MasterKeyRing::LoadFromCommand(const std::string& command,
                                                             const CommandOptions& options) {
  ASSIGN_OR_RETURN(KeyCommand child, StartKeyCommand(command));
  std::string text;
  absl::Status status = WaitForKeyCommand(child, options, &text);
  absl::StatusOr<MasterKeyRing> ring = status.ok() ? ParseText(text, "master key command output")
                                                   : absl::StatusOr<MasterKeyRing>(status);
  Cleanse(text);
  return ring;
}

std::string MasterKeyRing::Serialize() const {
  std::string out(kHeader);
  out.push_back('\n');
  char b64[kBase64KeySize + 1];
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [version, v] : keys_) {
    EVP_EncodeBlock(reinterpret_cast<uint8_t*>(b64), v.key.data(), kKeySize);
    out.append(absl::StrFormat("%d ", version));
    out.append(b64, kBase64KeySize);
    out.push_back('\n');
  }
  Cleanse(AsWritable(b64));
  return out;
}

absl::Status MasterKeyRing::AddVersion(Random& random) {
  absl::MutexLock lock(&mu_);
  if (current_version_ == std::numeric_limits<uint32_t>::max()) {
    return absl::FailedPreconditionError("master key ring is at its last version number");
  }
  SecretBytes key(kKeySize);
  random.Fill(key.mutable_span());
  return Insert(current_version_ + 1, std::move(key));
}

absl::StatusOr<MasterKeyRing> MasterKeyRing::Clone() const {
  MasterKeyRing copy;
  {
    // Released before `copy` is moved out (the move locks it).
    absl::ReaderMutexLock lock(&mu_);
    absl::MutexLock copy_lock(&copy.mu_);
    for (const auto& [version, v] : keys_) {
      RETURN_IF_ERROR(copy.Insert(version, SecretBytes(v.key.span())));
    }
  }
  return copy;
}

absl::Status MasterKeyRing::Adopt(MasterKeyRing next) {
  absl::MutexLock lock(&mu_);
  absl::MutexLock next_lock(&next.mu_);
  for (const auto& [version, v] : keys_) {
    auto it = next.keys_.find(version);
    if (it == next.keys_.end() || !ConstantTimeEquals(v.key.span(), it->second.key.span())) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the new master key ring lacks version %d or holds another key for it: refusing "
          "to replace the ring (every key wrapped under it would become unreadable)",
          version));
    }
  }
  // The old versions are wiped when `next` (now holding them) goes.
  std::swap(keys_, next.keys_);
  std::swap(current_version_, next.current_version_);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MasterKeyRing::Wrap(std::string_view purpose,
                                                std::span<const uint8_t> secret,
                                                Random& random) const {
  absl::ReaderMutexLock lock(&mu_);
  return WrapLocked(purpose, secret, random);
}

absl::StatusOr<std::string> MasterKeyRing::WrapLocked(std::string_view purpose,
                                                      std::span<const uint8_t> secret,
                                                      Random& random) const {
  const Version& kek = keys_.at(current_version_);
  uint8_t nonce[kAesGcmNonceSize];
  random.Fill(nonce);
  std::string out;
  out.reserve(kWrapOverhead + secret.size());
  out.push_back(static_cast<char>(kWrapFormatVersion));
  PutU32(out, current_version_);
  out.append(AsStringView(nonce));
  RETURN_IF_ERROR(
      kek.aead->SealAppend(nonce, AsBytes(WrapAad(purpose, current_version_)), secret, &out));
  return out;
}

absl::StatusOr<uint32_t> MasterKeyRing::WrappedVersion(std::string_view wrapped) {
  if (wrapped.size() < kWrapOverhead || static_cast<uint8_t>(wrapped[0]) != kWrapFormatVersion) {
    return absl::DataLossError(
        absl::StrFormat("wrapped key is malformed (%d bytes, format byte not %d)", wrapped.size(),
                        kWrapFormatVersion));
  }
  return GetU32(wrapped.substr(1, 4));
}

absl::StatusOr<SecretBytes> MasterKeyRing::Unwrap(std::string_view purpose,
                                                  std::string_view wrapped) const {
  absl::ReaderMutexLock lock(&mu_);
  return UnwrapLocked(purpose, wrapped);
}

absl::StatusOr<SecretBytes> MasterKeyRing::UnwrapLocked(std::string_view purpose,
                                                        std::string_view wrapped) const {
  if (wrapped.size() < kWrapOverhead || static_cast<uint8_t>(wrapped[0]) != kWrapFormatVersion) {
    return DoesNotOpen(purpose);
  }
  const uint32_t version = GetU32(wrapped.substr(1, 4));
  auto it = keys_.find(version);
  if (it == keys_.end()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "wrapped key for %s needs master key version %d, which the master key ring lacks "
        "(it holds up to version %d)",
        purpose, version, current_version_));
  }
  std::span<const uint8_t> nonce = AsBytes(wrapped.substr(5, kAesGcmNonceSize));
  std::span<const uint8_t> sealed = AsBytes(wrapped.substr(5 + kAesGcmNonceSize));
  SecretBytes secret(sealed.size() - kAesGcmTagSize);
  absl::Status s = it->second.aead->OpenTo(nonce, AsBytes(WrapAad(purpose, version)), sealed,
                                           secret.mutable_span());
  if (!s.ok()) return DoesNotOpen(purpose);
  return secret;
}

absl::StatusOr<std::string> MasterKeyRing::Rewrap(std::string_view purpose,
                                                  std::string_view wrapped, Random& random) const {
  // One lock for both halves: a rotation in between cannot make the
  // result's version differ from what the caller read as current.
  absl::ReaderMutexLock lock(&mu_);
  ASSIGN_OR_RETURN(SecretBytes secret, UnwrapLocked(purpose, wrapped));
  return WrapLocked(purpose, secret.span(), random);
}

absl::StatusOr<SecretBytes> MasterKeyRing::DeriveKey(std::string_view purpose, uint32_t version,
                                                     size_t length) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = keys_.find(version);
  if (it == keys_.end()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "key derivation for %s needs master key version %d, which the master key ring lacks",
        purpose, version));
  }
  return Hkdf(AsBytes(kDeriveSalt), it->second.key.span(), AsBytes(purpose), length);
}

}  // namespace fieldsync::crypto
