#include "crypto/master_key.h"

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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
  EXPECT_THAT(MasterKeyRing::LoadFile(dir.path()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
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

TEST(MasterKeyCommandTest, MalformedOutputIsInvalidArgument) {
  EXPECT_THAT(MasterKeyRing::LoadFromCommand("echo not a key"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("command output")));
}

}  // namespace
}  // namespace fieldsync::crypto
