// Round-trip, ordering and malformed-input tests of sync's key kinds in
// storage/key_codec.h.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;

constexpr std::array<uint8_t, 16> kA = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr std::array<uint8_t, 16> kB = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17};

TEST(SyncKeysTest, RecordsKeysRoundTripWithHeaderFirst) {
  const std::string header = EncodeRecordHeaderKey(kA, kB);
  const std::string field = EncodeFieldStateKey(kA, kB, std::string("na\0me", 5));
  const std::string state = EncodeRecordStateKey(kA, kB);

  EXPECT_THAT(DecodeRecordsKey(header), IsOkAndHolds(RecordsKey{kA, kB, true, false, ""}));
  EXPECT_THAT(DecodeRecordsKey(field),
              IsOkAndHolds(RecordsKey{kA, kB, false, false, std::string("na\0me", 5)}));
  EXPECT_THAT(DecodeRecordsKey(state), IsOkAndHolds(RecordsKey{kA, kB, false, true, ""}));
  EXPECT_EQ(state.size(), 33u);
  EXPECT_EQ(state.substr(0, 32), RecordPrefix(kA, kB));
  EXPECT_LT(header, field);
  EXPECT_LT(field, state);
  EXPECT_EQ(field.substr(0, 32), RecordPrefix(kA, kB));
  EXPECT_EQ(field.substr(0, 16), CaseRecordsPrefix(kA));
}

TEST(SyncKeysTest, CaseIndexConflictAndBatchKeysRoundTrip) {
  EXPECT_THAT(DecodeCaseScopeListKey(EncodeCaseScopeListKey("north", "officer-1")),
              IsOkAndHolds(CaseScopeListKey{"north", "officer-1"}));
  EXPECT_THAT(DecodeCaseScopeListKey(EncodeCaseScopeListKey("", "")),
              IsOkAndHolds(CaseScopeListKey{"", ""}));
  // One region's lists share a prefix that no other region's has, even one
  // that extends the name; no officer's list key is a prefix of another's.
  const std::string key = EncodeCaseScopeListKey("north", "officer-1");
  EXPECT_TRUE(key.starts_with(CaseScopeListRegionPrefix("north")));
  EXPECT_TRUE(key.starts_with(CaseScopeListPrefix()));
  EXPECT_FALSE(EncodeCaseScopeListKey("northeast", "officer-1")
                   .starts_with(CaseScopeListRegionPrefix("north")));
  EXPECT_FALSE(EncodeCaseScopeListKey("north", "officer-10").starts_with(key));
  // Other tags, the retired per-case scope key among them, are not lists.
  EXPECT_THAT(DecodeCaseScopeListKey(EncodeCaseEntryKey(kA, 1)),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(
      DecodeCaseScopeListKey(
          KeyBuilder().U8(kRetiredCaseScopeTag).String("north").String("").Uuid(kA).Finish()),
      StatusIs(absl::StatusCode::kDataLoss));
  for (size_t n = 0; n < key.size(); ++n) {
    EXPECT_THAT(DecodeCaseScopeListKey(key.substr(0, n)), StatusIs(absl::StatusCode::kDataLoss))
        << n;
  }
  EXPECT_THAT(DecodeCaseScopeListKey(key + std::string(kA.begin(), kA.end())),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeConflictKey(EncodeConflictKey(kA, 42, "f")),
              IsOkAndHolds(ConflictKey{kA, 42, "f"}));
  EXPECT_THAT(DecodeOpenConflictKey(EncodeOpenConflictKey("north", kB, 7, "")),
              IsOkAndHolds(OpenConflictKey{"north", ConflictKey{kB, 7, ""}}));
  EXPECT_THAT(DecodeBatchKey(EncodeBatchKey("dev-1", kA)), IsOkAndHolds(BatchKey{"dev-1", kA}));
  EXPECT_THAT(DecodeDeviceSequenceKey(EncodeDeviceSequenceKey("dev-1")),
              IsOkAndHolds(std::string("dev-1")));
}

TEST(SyncKeysTest, OpenConflictsOfARegionSortByPosition) {
  EXPECT_LT(EncodeOpenConflictKey("north", kB, 7, "z"), EncodeOpenConflictKey("north", kA, 8, ""));
  EXPECT_LT(EncodeOpenConflictKey("north", kB, 255, ""),
            EncodeOpenConflictKey("north", kA, 256, ""));
  const std::string prefix = RegionOpenConflictsPrefix("north");
  EXPECT_EQ(EncodeOpenConflictKey("north", kA, 1, "").compare(0, prefix.size(), prefix), 0);
  EXPECT_NE(EncodeOpenConflictKey("northern", kA, 1, "").compare(0, prefix.size(), prefix), 0);
}

TEST(SyncKeysTest, EveryTruncationAndByteFlipDecodesCleanly) {
  const std::vector<std::string> keys = {EncodeFieldStateKey(kA, kB, "given_name"),
                                         EncodeOpenConflictKey("north", kA, 9, "f"),
                                         EncodeBatchKey("dev-1", kB)};
  for (const std::string& key : keys) {
    for (size_t n = 0; n < key.size(); ++n) {
      const std::string cut = key.substr(0, n);
      (void)DecodeRecordsKey(cut);
      (void)DecodeOpenConflictKey(cut);
      (void)DecodeBatchKey(cut);
      std::string flipped = key;
      flipped[n] = static_cast<char>(flipped[n] ^ 0xFF);
      (void)DecodeRecordsKey(flipped);
      (void)DecodeOpenConflictKey(flipped);
      (void)DecodeBatchKey(flipped);
    }
  }
  EXPECT_THAT(DecodeRecordsKey(EncodeRecordHeaderKey(kA, kB) + "x"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeRecordsKey(EncodeRecordStateKey(kA, kB) + "x"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeBatchKey(EncodeDeviceSequenceKey("d")), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace fieldsync::storage
