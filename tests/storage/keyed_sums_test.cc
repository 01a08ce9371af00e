#include "storage/keyed_sums.h"

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

KeyedSums Decode(std::string_view value) {
  KeyedSums sums;
  EXPECT_THAT(AddKeyedSums(value, &sums), IsOk());
  return sums;
}

TEST(KeyedSumsTest, EncodesMembersInOrderWithZigzagSumsAndNoZeros) {
  KeyedSums sums{{"b", -1}, {"a", 1}, {"zero", 0}, {std::string("\0", 1), 64}};
  const std::string bytes = EncodeKeyedSums(sums);
  // member length, member, zigzag sum: 64 -> 128 = 80 01; 1 -> 2; -1 -> 1.
  EXPECT_EQ(bytes, std::string("\x01\x00\x80\x01"
                               "\x01"
                               "a\x02"
                               "\x01"
                               "b\x01",
                               10));
  EXPECT_THAT(Decode(bytes),
              ElementsAre(Pair(std::string("\0", 1), 64), Pair("a", 1), Pair("b", -1)));
  EXPECT_EQ(EncodeKeyedSums({}), "");
  EXPECT_EQ(EncodeKeyedSums({{"x", 0}}), "");
}

TEST(KeyedSumsTest, RoundTripsExtremesAndLongMembers) {
  const std::string long_member(300, 'm');
  KeyedSums sums{{"max", std::numeric_limits<int64_t>::max()},
                 {"min", std::numeric_limits<int64_t>::min()},
                 {long_member, 7},
                 {"", -2}};
  EXPECT_EQ(Decode(EncodeKeyedSums(sums)), sums);
}

TEST(KeyedSumsTest, AddingSumsPerMemberDropsZerosAndWraps) {
  KeyedSums into{{"a", 2}, {"b", 5}, {"max", std::numeric_limits<int64_t>::max()}};
  ASSERT_THAT(AddKeyedSums(EncodeKeyedSums({{"a", -2}, {"c", 1}, {"max", 1}}), &into), IsOk());
  EXPECT_THAT(into, ElementsAre(Pair("b", 5), Pair("c", 1),
                                Pair("max", std::numeric_limits<int64_t>::min())));
  AddToSum(&into, "b", -5);
  AddToSum(&into, "d", 0);
  EXPECT_THAT(into, ElementsAre(Pair("c", 1), Pair("max", std::numeric_limits<int64_t>::min())));
}

TEST(KeyedSumsTest, SumsOfRandomDeltasMatchAPlainMapWhateverTheGrouping) {
  SeededRandom rng;
  for (int round = 0; round < 50; ++round) {
    std::map<std::string, int64_t> plain;
    std::vector<std::string> operands;
    for (int op = 0; op < 8; ++op) {
      KeyedSums delta;
      for (int i = 0; i < 6; ++i) {
        const std::string member = "m" + std::to_string(rng.Uniform(10));
        const int64_t d = static_cast<int64_t>(rng.Uniform(7)) - 3;
        AddToSum(&delta, member, d);
        plain[member] += d;
      }
      operands.push_back(EncodeKeyedSums(delta));
    }
    // All operands into one map, and two halves summed apart then together.
    KeyedSums all;
    for (const std::string& o : operands) ASSERT_THAT(AddKeyedSums(o, &all), IsOk());
    KeyedSums low, high;
    const size_t cut = rng.Uniform(operands.size() + 1);
    for (size_t i = 0; i < operands.size(); ++i) {
      ASSERT_THAT(AddKeyedSums(operands[i], i < cut ? &low : &high), IsOk());
    }
    ASSERT_THAT(AddKeyedSums(EncodeKeyedSums(high), &low), IsOk());
    std::erase_if(plain, [](const auto& e) { return e.second == 0; });
    EXPECT_EQ(all, KeyedSums(plain.begin(), plain.end()));
    EXPECT_EQ(EncodeKeyedSums(low), EncodeKeyedSums(all));
  }
}

TEST(KeyedSumsTest, MalformedTruncatedAndTamperedValuesAreDataLoss) {
  const std::string good = EncodeKeyedSums({{"a", 1}, {"b", 300}});
  KeyedSums sums;
  for (size_t n = 1; n < good.size(); ++n) {
    SCOPED_TRACE(n);
    // Every proper prefix that does not end between entries is truncated.
    absl::Status s = AddKeyedSums(good.substr(0, n), &sums);
    if (n == 3) {
      EXPECT_THAT(s, IsOk());  // "a" and its sum: a whole entry
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
    }
  }
  const std::pair<std::string, std::string> bad[] = {
      {std::string("\x05"
                   "ab",
                   3),
       "malformed member"},
      {std::string("\x01"
                   "a",
                   2),
       "malformed sum"},
      {std::string("\x01"
                   "a\x80",
                   3),
       "malformed sum"},
      {std::string("\x01"
                   "b\x02\x01"
                   "a\x02",
                   6),
       "out of order"},
      {std::string("\x01"
                   "a\x02\x01"
                   "a\x02",
                   6),
       "out of order"},
      {std::string("\x01"
                   "a\x00",
                   3),
       "zero sum"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), "malformed member"},
  };
  for (const auto& [bytes, why] : bad) {
    SCOPED_TRACE(why);
    EXPECT_THAT(AddKeyedSums(bytes, &sums), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(why)));
  }
}

TEST(KeyedSumsTest, ForEachStopsAtTheCallersError) {
  int seen = 0;
  absl::Status s = ForEachKeyedSum(EncodeKeyedSums({{"a", 1}, {"b", 2}, {"c", 3}}),
                                   [&](std::string_view member, int64_t) {
                                     ++seen;
                                     if (member == "b") return absl::CancelledError("stop");
                                     return absl::OkStatus();
                                   });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(seen, 2);
}

}  // namespace
}  // namespace fieldsync::storage
