#include "tools/seen_conflicts.h"

#include <sys/stat.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::tools {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::ScopedTempDir;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;

TEST(ConflictIdTest, FieldConflictRoundTrips) {
  absl::StatusOr<v1::ConflictId> id = ParseConflictId("412/family_name");

  ASSERT_THAT(id.status(), IsOk());
  EXPECT_EQ(id->position(), 412u);
  EXPECT_EQ(id->field(), "family_name");
  EXPECT_EQ(FormatConflictId(*id), "412/family_name");
}

TEST(ConflictIdTest, RecordLevelConflictIsThePositionAlone) {
  absl::StatusOr<v1::ConflictId> id = ParseConflictId("77");

  ASSERT_THAT(id.status(), IsOk());
  EXPECT_EQ(id->position(), 77u);
  EXPECT_EQ(id->field(), "");
  EXPECT_EQ(FormatConflictId(*id), "77");
}

TEST(ConflictIdTest, MalformedIdsAreRefused) {
  for (const char* text : {"", "/", "0", "0/name", "-1", "12a", "412/", "412/Name", "412/1x",
                           "412/a b", "/name", "412//name", "18446744073709551616", " 412"}) {
    EXPECT_THAT(ParseConflictId(text).status(), StatusIs(absl::StatusCode::kInvalidArgument))
        << text;
  }
}

TEST(SeenConflictsTest, FormatThenParseGivesTheEntries) {
  std::vector<SeenConflict> entries = {{"127.0.0.1:7443", "412/family_name", 415},
                                       {"[::1]:7443", "77", 80}};

  EXPECT_EQ(ParseSeenConflicts(FormatSeenConflicts(entries)), entries);
}

TEST(SeenConflictsTest, MalformedLinesAreDropped) {
  std::string text =
      "# comment\n"
      "host:1 412/priority 415\n"
      "host:1 412/priority\n"            // truncated
      "host:1 412/priority 0\n"          // no version 0
      "host:1 412/priority 41x\n"        // not a number
      "host:1 bad 415\n"                 // not a conflict id
      " 412/priority 415\n"              // no server
      "host:1 412/priority 415 extra\n"  // too many fields
      "host:2 9 10";                     // last line without newline

  EXPECT_THAT(ParseSeenConflicts(text), ElementsAre(SeenConflict{"host:1", "412/priority", 415},
                                                    SeenConflict{"host:2", "9", 10}));
}

TEST(SeenConflictsTest, EveryTruncationParsesWithoutCrashing) {
  const std::string text = FormatSeenConflicts({{"host:1", "412/priority", 415}});
  for (size_t n = 0; n <= text.size(); ++n) {
    std::vector<SeenConflict> parsed = ParseSeenConflicts(text.substr(0, n));
    EXPECT_LE(parsed.size(), 1u);
  }
}

TEST(SeenConflictsFileTest, RemembersPerServerAndId) {
  ScopedTempDir dir;
  SeenConflictsFile file(dir.Sub("state/fieldsync/seen-conflicts"));

  ASSERT_THAT(file.Remember({{"a:1", "412/priority", 415}, {"b:1", "412/priority", 500}}), IsOk());
  ASSERT_THAT(file.Remember({{"a:1", "412/priority", 420}}), IsOk());

  EXPECT_THAT(file.Find("a:1", "412/priority"), Optional(420u));
  EXPECT_THAT(file.Find("b:1", "412/priority"), Optional(500u));
  EXPECT_EQ(file.Find("a:1", "413/priority"), std::nullopt);
}

TEST(SeenConflictsFileTest, FileIsTheUsersAlone) {
  ScopedTempDir dir;
  SeenConflictsFile file(dir.Sub("state/fieldsync/seen-conflicts"));

  ASSERT_THAT(file.Remember({{"a:1", "412/priority", 415}}), IsOk());

  struct stat st;
  ASSERT_EQ(::stat(file.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.Sub("state/fieldsync").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(SeenConflictsFileTest, ForgetDropsOneEntry) {
  ScopedTempDir dir;
  SeenConflictsFile file(dir.Sub("seen-conflicts"));
  ASSERT_THAT(file.Remember({{"a:1", "1/x", 2}, {"a:1", "3/y", 4}}), IsOk());

  ASSERT_THAT(file.Forget("a:1", "1/x"), IsOk());

  EXPECT_EQ(file.Find("a:1", "1/x"), std::nullopt);
  EXPECT_THAT(file.Find("a:1", "3/y"), Optional(4u));
}

TEST(SeenConflictsFileTest, KeepsTheNewestEntriesOnly) {
  ScopedTempDir dir;
  SeenConflictsFile file(dir.Sub("seen-conflicts"));
  std::vector<SeenConflict> many;
  for (size_t i = 1; i <= SeenConflictsFile::kMaxEntries + 10; ++i) {
    many.push_back({"a:1", std::to_string(i), i});
  }

  ASSERT_THAT(file.Remember(many), IsOk());

  EXPECT_EQ(file.Find("a:1", "1"), std::nullopt);
  EXPECT_THAT(file.Find("a:1", std::to_string(SeenConflictsFile::kMaxEntries + 10)),
              Optional(SeenConflictsFile::kMaxEntries + 10));
}

TEST(SeenConflictsFileTest, AMissingFileRemembersNothing) {
  ScopedTempDir dir;
  SeenConflictsFile file(dir.Sub("absent/seen-conflicts"));

  EXPECT_EQ(file.Find("a:1", "1/x"), std::nullopt);
  EXPECT_THAT(file.Forget("a:1", "1/x"), IsOk());
  EXPECT_THAT(ParseSeenConflicts(""), IsEmpty());
}

}  // namespace
}  // namespace fieldsync::tools
