// The case DEK key kind of Cf::kKeys (storage/key_codec.h), kept in its own
// file next to key_codec_test.cc: layout, order, round trip, malformed input.
#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;

using Id = std::array<uint8_t, 16>;

Id RandomId(SeededRandom& rng) {
  Id id;
  // Few distinct bytes, so that long equal prefixes are common.
  for (uint8_t& b : id) b = static_cast<uint8_t>(rng.Uniform(3) * 0x7f);
  return id;
}

TEST(CaseDekKeyTest, LayoutIsTagThenRawId) {
  Id id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(EncodeCaseDekKey(id), std::string("\x01\x00\x01\x02\x03\x04\x05\x06\x07"
                                              "\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
                                              17));
  EXPECT_EQ(CaseDekPrefix(), std::string("\x01", 1));
}

TEST(CaseDekKeyTest, PreservesIdOrderAndRoundTrips) {
  SeededRandom rng;
  for (int i = 0; i < 2000; ++i) {
    const Id a = RandomId(rng);
    const Id b = RandomId(rng);
    const std::string ka = EncodeCaseDekKey(a);
    const std::string kb = EncodeCaseDekKey(b);
    ASSERT_EQ(ka < kb, a < b) << "seed " << rng.seed();
    ASSERT_EQ(ka == kb, a == b) << "seed " << rng.seed();
    ASSERT_THAT(DecodeCaseDekKey(ka), IsOkAndHolds(a)) << "seed " << rng.seed();
  }
}

TEST(CaseDekKeyTest, EveryKeyLiesUnderThePrefixAndNoServerKeyDoes) {
  SeededRandom rng;
  const std::string lo = CaseDekPrefix();
  const std::string hi = PrefixUpperBound(lo);
  for (int i = 0; i < 100; ++i) {
    const std::string k = EncodeCaseDekKey(RandomId(rng));
    EXPECT_TRUE(lo <= k && k < hi);
  }
  // Server keys in Cf::kKeys are String(purpose) with a printable purpose.
  const std::string server_key = KeyBuilder().String("server/ca").Finish();
  EXPECT_FALSE(lo <= server_key && server_key < hi);
}

TEST(CaseDekKeyTest, MalformedKeysAreDataLoss) {
  const std::string key = EncodeCaseDekKey(Id{});
  for (size_t n = 0; n < key.size(); ++n) {
    EXPECT_THAT(DecodeCaseDekKey(key.substr(0, n)), StatusIs(absl::StatusCode::kDataLoss))
        << "truncated to " << n;
  }
  EXPECT_THAT(DecodeCaseDekKey(key + "x"), StatusIs(absl::StatusCode::kDataLoss));
  std::string wrong_tag = key;
  wrong_tag[0] = 2;
  EXPECT_THAT(DecodeCaseDekKey(wrong_tag), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace fieldsync::storage
