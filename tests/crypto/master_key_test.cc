#include "crypto/master_key.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crypto/bytes.h"
#include "gtest/gtest.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::ScopedTempDir;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::vector<uint8_t> kDek(32, 0x5a);
constexpr char kPurpose[] = "case-dek/00112233445566778899aabbccddeeff";

// Two versions, in the text format (keys are 32 bytes of 0x01 and 0x02).
constexpr char kTwoVersions[] =
    "fieldsync-master-key v1\n"
    "1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
    "2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n";

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

class MasterKeyRingTest : public ::testing::Test {
 protected:
  fieldsync::testing::SeededRandom random_;
  MasterKeyRing ring_ = MasterKeyRing::Generate(random_);
};

TEST_F(MasterKeyRingTest, WrapUnwrapRoundTrip) {
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  EXPECT_EQ(wrapped->size(), MasterKeyRing::kWrapOverhead + kDek.size());
  EXPECT_EQ((*wrapped)[0], 1);
  absl::StatusOr<SecretBytes> secret = ring_.Unwrap(kPurpose, *wrapped);
  ASSERT_THAT(secret, IsOk());
  EXPECT_EQ(*secret, SecretBytes(kDek));
}

TEST_F(MasterKeyRingTest, WrongPurposeDoesNotOpen) {
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  EXPECT_THAT(ring_.Unwrap("case-dek/ffffffffffffffffffffffffffffffff", *wrapped),
              StatusIs(absl::StatusCode::kDataLoss,
                       "wrapped key for case-dek/ffffffffffffffffffffffffffffffff does not open: "
                       "wrong master key or corrupted"));
  EXPECT_THAT(ring_.Unwrap("server/ca", *wrapped), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(MasterKeyRingTest, EveryFlippedByteIsRefusedCleanly) {
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  for (size_t i = 0; i < wrapped->size(); ++i) {
    std::string bad = *wrapped;
    bad[i] ^= 0x01;
    absl::StatusOr<SecretBytes> s = ring_.Unwrap(kPurpose, bad);
    // Bytes 1-4 name the KEK version: a flip there names a version the ring
    // lacks; every other flip fails authentication.
    if (i >= 1 && i <= 4) {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version"))) << i;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss)) << i;
    }
  }
}

TEST_F(MasterKeyRingTest, TruncatedAndEmptyWrappedKeysAreDataLoss) {
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  for (size_t n = 0; n < wrapped->size(); ++n) {
    EXPECT_THAT(ring_.Unwrap(kPurpose, wrapped->substr(0, n)),
                StatusIs(absl::StatusCode::kDataLoss))
        << n;
  }
}

TEST_F(MasterKeyRingTest, AnotherRingCannotUnwrap) {
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  MasterKeyRing other = MasterKeyRing::Generate(random_);
  EXPECT_THAT(other.Unwrap(kPurpose, *wrapped), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(MasterKeyRingTest, RotationRewrapsToTheNewVersion) {
  absl::StatusOr<std::string> old_wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(old_wrapped, IsOk());
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  EXPECT_EQ(ring_.current_version(), 2u);
  EXPECT_THAT(MasterKeyRing::WrappedVersion(*old_wrapped), ::fieldsync::testing::IsOkAndHolds(1u));

  absl::StatusOr<std::string> rewrapped = ring_.Rewrap(kPurpose, *old_wrapped, random_);
  ASSERT_THAT(rewrapped, IsOk());
  EXPECT_THAT(MasterKeyRing::WrappedVersion(*rewrapped), ::fieldsync::testing::IsOkAndHolds(2u));
  absl::StatusOr<SecretBytes> secret = ring_.Unwrap(kPurpose, *rewrapped);
  ASSERT_THAT(secret, IsOk());
  EXPECT_EQ(*secret, SecretBytes(kDek));
  // The old wrapping still opens while version 1 is in the ring.
  EXPECT_THAT(ring_.Unwrap(kPurpose, *old_wrapped), IsOk());
}

TEST_F(MasterKeyRingTest, UnknownVersionIsFailedPreconditionNamingIt) {
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  MasterKeyRing only_v1 = MasterKeyRing::Generate(random_);
  EXPECT_THAT(only_v1.Unwrap(kPurpose, *wrapped),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("master key version 2")));
}

TEST_F(MasterKeyRingTest, SerializeParsesBackToTheSameKeys) {
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  absl::StatusOr<std::string> wrapped = ring_.Wrap(kPurpose, kDek, random_);
  ASSERT_THAT(wrapped, IsOk());
  std::string text = ring_.Serialize();
  EXPECT_EQ(text.rfind("fieldsync-master-key v1\n1 ", 0), 0u);
  absl::StatusOr<MasterKeyRing> parsed = MasterKeyRing::Parse(text);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->current_version(), 2u);
  EXPECT_EQ(parsed->Serialize(), text);
  EXPECT_THAT(parsed->Unwrap(kPurpose, *wrapped), IsOk());
}

TEST_F(MasterKeyRingTest, DeriveKeyIsStablePerPurposeAndVersion) {
  absl::StatusOr<SecretBytes> a = ring_.DeriveKey("blind-index", 1, 32);
  absl::StatusOr<SecretBytes> b = ring_.DeriveKey("blind-index", 1, 32);
  absl::StatusOr<SecretBytes> c = ring_.DeriveKey("other", 1, 32);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(*a == *c);
  EXPECT_THAT(ring_.DeriveKey("blind-index", 7, 32),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(MasterKeyParseTest, AcceptsCommentsBlankLinesAndAnyOrder) {
  absl::StatusOr<MasterKeyRing> ring = MasterKeyRing::Parse(
      "# rotated 2026-01\n\nfieldsync-master-key v1\n"
      "2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\r\n"
      "1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n");
  ASSERT_THAT(ring, IsOk());
  EXPECT_EQ(ring->current_version(), 2u);
  EXPECT_TRUE(ring->has_version(1));
}

TEST(MasterKeyParseTest, MalformedTextIsInvalidArgumentWithoutKeyBytes) {
  const std::string key1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
  const std::vector<std::string> bad = {
      "",
      "fieldsync-master-key v2\n1 " + key1 + "\n",
      "fieldsync-master-key v1\n",
      "fieldsync-master-key v1\n0 " + key1 + "\n",
      "fieldsync-master-key v1\nx " + key1 + "\n",
      "fieldsync-master-key v1\n1\n",
      "fieldsync-master-key v1\n1 " + key1 + " extra\n",
      "fieldsync-master-key v1\n1 " + key1.substr(0, 43) + "\n",
      "fieldsync-master-key v1\n1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=\n",  // non-canonical
      "fieldsync-master-key v1\n1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==\n",  // 31 bytes
      "fieldsync-master-key v1\n1 " + key1 + "\n1 " + key1 + "\n",
      "fieldsync-master-key v1\n1 !QEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
  };
  for (const std::string& text : bad) {
    absl::StatusOr<MasterKeyRing> ring = MasterKeyRing::Parse(text);
    EXPECT_THAT(ring, StatusIs(absl::StatusCode::kInvalidArgument)) << text;
    EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr("AQEB"))) << text;
  }
}

TEST(MasterKeyLoadTest, LoadsAPrivateFile) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, kTwoVersions, 0600);
  absl::StatusOr<MasterKeyRing> ring = MasterKeyRing::LoadFile(path);
  ASSERT_THAT(ring, IsOk());
  EXPECT_EQ(ring->current_version(), 2u);
  EXPECT_EQ(ring->Serialize(), kTwoVersions);
}

TEST(MasterKeyLoadTest, RefusesAFileOthersCanRead) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, kTwoVersions, 0644);
  EXPECT_THAT(MasterKeyRing::LoadFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("master key file ", path,
                                    " is readable by other users; run: chmod 600 ", path)));
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_THAT(MasterKeyRing::LoadFile(path), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_EQ(::chmod(path.c_str(), 0602), 0);
  EXPECT_THAT(MasterKeyRing::LoadFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("chmod 600")));
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_THAT(MasterKeyRing::LoadFile(path), IsOk());
}

TEST(MasterKeyLoadTest, MissingFileIsNotFoundNamingIt) {
  ScopedTempDir dir;
  std::string path = dir.Sub("absent.key");
  EXPECT_THAT(MasterKeyRing::LoadFile(path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(MasterKeyLoadTest, MalformedFileIsInvalidArgumentNamingTheLine) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, "fieldsync-master-key v1\n1 AQEB\n", 0600);
  EXPECT_THAT(MasterKeyRing::LoadFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST(MasterKeyLoadTest, DirectoryIsRefused) {
  ScopedTempDir dir;
  EXPECT_THAT(MasterKeyRing::LoadFile(dir.path()), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(MasterKeyCommandTest, ReadsTheCommandsOutput) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, kTwoVersions, 0600);
  absl::StatusOr<MasterKeyRing> ring = MasterKeyRing::LoadFromCommand("cat '" + path + "'");
  ASSERT_THAT(ring, IsOk());
  EXPECT_EQ(ring->Serialize(), kTwoVersions);
}

TEST(MasterKeyCommandTest, NonZeroExitIsFailedPrecondition) {
  EXPECT_THAT(MasterKeyRing::LoadFromCommand("echo fieldsync-master-key v1; exit 3"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("status 3")));
  EXPECT_THAT(MasterKeyRing::LoadFromCommand("/nonexistent/key-helper 2>/dev/null"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("127")));
}

// Runs LoadFromCommand with `timeout` and returns how long it took.
absl::Duration Timed(const std::string& command, const MasterKeyRing::CommandOptions& options,
                     absl::Status* status) {
  const auto start = std::chrono::steady_clock::now();
  *status = MasterKeyRing::LoadFromCommand(command, options).status();
  return absl::FromChrono(std::chrono::steady_clock::now() - start);
}

MasterKeyRing::CommandOptions WithTimeout(absl::Duration timeout) {
  MasterKeyRing::CommandOptions options;
  options.timeout = timeout;
  return options;
}

// True once process `pid` is gone or a zombie (killed, not yet reaped by
// whoever adopted it); waits up to 5 s.
bool IsGone(pid_t pid) {
  for (int i = 0; i < 100; ++i) {
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t paren = content.rfind(')');
    if (!stat || paren == std::string::npos || content.substr(paren + 2, 1) == "Z") return true;
    ::usleep(50000);
  }
  return false;
}

TEST(MasterKeyCommandTest, ACommandPastItsTimeoutIsKilledWithinBound) {
  ScopedTempDir dir;
  const std::string pid_file = dir.Sub("child.pid");
  absl::Status s;
  // The shell starts a sleep of its own: the whole process group must go.
  absl::Duration took = Timed(absl::StrCat("sleep 30 & echo $! > '", pid_file, "'; wait"),
                              WithTimeout(absl::Seconds(1)), &s);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded,
                          AllOf(HasSubstr("within 1 seconds"),
                                HasSubstr("master_key_command_timeout_seconds"))));
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(4));
  std::ifstream in(pid_file);
  pid_t grandchild = 0;
  ASSERT_TRUE(in >> grandchild);
  EXPECT_TRUE(IsGone(grandchild));
}

TEST(MasterKeyCommandTest, AKeyPrintedButNoExitTimesOut) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, kTwoVersions, 0600);
  absl::Status s;
  absl::Duration took = Timed("cat '" + path + "'; sleep 30", WithTimeout(absl::Seconds(1)), &s);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(took, absl::Seconds(4));
}

TEST(MasterKeyCommandTest, AValidKeyWithinTheTimeoutLoads) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, kTwoVersions, 0600);
  absl::StatusOr<MasterKeyRing> ring = MasterKeyRing::LoadFromCommand(
      "sleep 0.2; cat '" + path + "'", WithTimeout(absl::Seconds(5)));
  ASSERT_THAT(ring, IsOk());
  EXPECT_EQ(ring->current_version(), 2u);
}

TEST(MasterKeyCommandTest, NonZeroExitNamesTheStatusNeverTheOutput) {
  ScopedTempDir dir;
  std::string path = dir.Sub("master.key");
  WriteFile(path, kTwoVersions, 0600);
  absl::StatusOr<MasterKeyRing> ring =
      MasterKeyRing::LoadFromCommand("cat '" + path + "'; exit 7", WithTimeout(absl::Seconds(5)));
  EXPECT_THAT(ring, StatusIs(absl::StatusCode::kFailedPrecondition,
                             AllOf(HasSubstr("status 7"), Not(HasSubstr("AQEBAQ")),
                                   Not(HasSubstr("fieldsync-master-key")), Not(HasSubstr(path)))));
}

TEST(MasterKeyCommandTest, KilledBySignalIsNamed) {
  EXPECT_THAT(MasterKeyRing::LoadFromCommand("kill -9 $$", WithTimeout(absl::Seconds(5))),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("signal 9")));
}

TEST(MasterKeyCommandTest, EndlessOutputIsRefusedWithoutWaitingForTheTimeout) {
  absl::Status s;
  absl::Duration took = Timed("yes fieldsync", WithTimeout(absl::Seconds(20)), &s);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over 1048576 bytes")));
  EXPECT_LT(took, absl::Seconds(10));
}

TEST(MasterKeyCommandTest, ACommandReadingItsInputGetsEndOfFileNotAHang) {
  absl::Status s;
  absl::Duration took = Timed("cat", WithTimeout(absl::Seconds(20)), &s);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_LT(took, absl::Seconds(10));
}

TEST(MasterKeyCommandTest, APendingStopSignalEndsTheWait) {
  // As in fieldsyncd: SIGTERM blocked, so it stays pending when it comes.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  MasterKeyRing::CommandOptions options = WithTimeout(absl::Seconds(30));
  options.stop_signals = {SIGINT, SIGTERM};
  absl::Status s;
  absl::Duration took = Timed("sleep 30", options, &s);
  // Consume the signal before unblocking it.
  timespec zero{};
  int taken = ::sigtimedwait(&term, nullptr, &zero);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(taken, SIGTERM);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kCancelled, HasSubstr("SIGTERM")));
  EXPECT_LT(took, absl::Seconds(3));
}

TEST(MasterKeyCommandTest, MalformedOutputIsInvalidArgument) {
  EXPECT_THAT(MasterKeyRing::LoadFromCommand("echo not a key"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("command output")));
}

}  // namespace
}  // namespace fieldsync::crypto
