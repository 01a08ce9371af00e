#include "crypto/blind_index.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "crypto/master_key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

SecretBytes TestKey(uint8_t b) {
  std::vector<uint8_t> k(32, b);
  return SecretBytes(k);
}

TEST(NormalizeForBlindIndexTest, FoldsCaseAccentsWidthAndSpace) {
  EXPECT_THAT(NormalizeForBlindIndex("José Ñúñez"), IsOkAndHolds("jose nunez"));
  EXPECT_THAT(NormalizeForBlindIndex("  JOSÉ\t\n  ÑÚÑEZ  "), IsOkAndHolds("jose nunez"));
  EXPECT_THAT(NormalizeForBlindIndex("Straße"), IsOkAndHolds("strasse"));
  // Fullwidth letters and an ideographic space (NFKC), a no-break space.
  EXPECT_THAT(NormalizeForBlindIndex("ＪＯＳＥ\u3000nunez"), IsOkAndHolds("jose nunez"));
  EXPECT_THAT(NormalizeForBlindIndex("jose\u00a0nunez"), IsOkAndHolds("jose nunez"));
  // A soft hyphen is default-ignorable: removed.
  EXPECT_THAT(NormalizeForBlindIndex("Jo\u00adsé"), IsOkAndHolds("jose"));
  // Letters without a decomposition stay.
  EXPECT_THAT(NormalizeForBlindIndex("Øberg Łukasz"), IsOkAndHolds("øberg łukasz"));
}

TEST(NormalizeForBlindIndexTest, InvalidUtf8IsInvalidArgument) {
  for (std::string bad : {std::string("\xff"), std::string("ab\xc3"), std::string("\xc0\xaf"),
                          std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
    EXPECT_THAT(NormalizeForBlindIndex(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
  }
}

TEST(NormalizeForBlindIndexTest, NothingLeftToIndexIsInvalidArgument) {
  for (std::string_view empty : {"", "   ", "\t\n", "\u0301"}) {
    EXPECT_THAT(NormalizeForBlindIndex(empty),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  }
}

TEST(BlindIndexTest, SameChildsNameMatchesAcrossSpellings) {
  absl::StatusOr<BlindIndex> index = BlindIndex::FromKey(TestKey(1), 32);
  ASSERT_THAT(index, IsOk());
  absl::StatusOr<uint32_t> want = index->Tag("jose nunez");
  ASSERT_THAT(want, IsOk());
  // NFC, NFD (combining marks), upper case, extra spacing, fullwidth.
  for (std::string_view v : {"José Ñúñez", "Jose\u0301 N\u0303u\u0301n\u0303ez", "JOSÉ ÑÚÑEZ",
                             "  josé   ñúñez ", "ＪＯＳＥ ＮＵＮＥＺ", "Jose\u0301\tNun\u0303ez"}) {
    EXPECT_THAT(index->Tag(v), IsOkAndHolds(*want)) << v;
  }
  EXPECT_THAT(index->Tag("jose nunes"), ::testing::Not(IsOkAndHolds(*want)));
}

TEST(BlindIndexTest, TagFitsItsBitsAndIsThePrefixOfTheWiderTag) {
  absl::StatusOr<BlindIndex> wide = BlindIndex::FromKey(TestKey(2), 32);
  ASSERT_THAT(wide, IsOk());
  for (int bits : {8, 12, 16, 24, 31}) {
    absl::StatusOr<BlindIndex> narrow = BlindIndex::FromKey(TestKey(2), bits);
    ASSERT_THAT(narrow, IsOk());
    for (std::string_view v : {"ana", "maria lopez", "Zoë"}) {
      absl::StatusOr<uint32_t> t = narrow->Tag(v);
      ASSERT_THAT(t, IsOk());
      EXPECT_LT(*t, uint64_t{1} << bits);
      EXPECT_EQ(*t, *wide->Tag(v) >> (32 - bits));
    }
  }
}

TEST(BlindIndexTest, BitsOutsideTheRangeAreRefused) {
  EXPECT_THAT(BlindIndex::FromKey(TestKey(1), 7), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BlindIndex::FromKey(TestKey(1), 33), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BlindIndex::FromKey(SecretBytes(16), 16),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BlindIndexTest, KeyComesFromTheRingPerFieldAndVersion) {
  SeededRandom random;
  MasterKeyRing ring = MasterKeyRing::Generate(random);
  absl::StatusOr<BlindIndex> child = BlindIndex::Create(ring, 1, "child-name", 32);
  absl::StatusOr<BlindIndex> child_again = BlindIndex::Create(ring, 1, "child-name", 32);
  absl::StatusOr<BlindIndex> mother = BlindIndex::Create(ring, 1, "mother-name", 32);
  ASSERT_THAT(child, IsOk());
  ASSERT_THAT(child_again, IsOk());
  ASSERT_THAT(mother, IsOk());
  EXPECT_EQ(*child->Tag("ana lopez"), *child_again->Tag("ana lopez"));
  EXPECT_NE(*child->Tag("ana lopez"), *mother->Tag("ana lopez"));
  EXPECT_THAT(BlindIndex::Create(ring, 2, "child-name"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(BlindIndex::Create(ring, 1, ""), StatusIs(absl::StatusCode::kInvalidArgument));
  // A rotation does not move an index built on version 1.
  ASSERT_THAT(ring.AddVersion(random), IsOk());
  absl::StatusOr<BlindIndex> after = BlindIndex::Create(ring, 1, "child-name", 32);
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(*after->Tag("ana lopez"), *child->Tag("ana lopez"));
}

// A seeded population of synthetic full names, distinct after
// normalization, from syllable lists (some accented, some upper case).
std::vector<std::string> Population(size_t n, uint64_t seed) {
  static const char* const kSyllables[] = {
      "a",  "ba", "be", "bi", "bo", "ca", "ce", "ci", "da", "de", "do", "e",  "fa", "fe",
      "ga", "go", "i",  "ja", "jo", "ka", "ki", "la", "le", "li", "lo", "lu", "ma", "me",
      "mi", "mo", "mu", "na", "ne", "ni", "no", "nu", "o",  "pa", "pe", "ra", "re", "ri",
      "ro", "ru", "sa", "se", "si", "so", "ta", "te", "ti", "to", "u",  "va", "ve", "ya",
      "za", "zo", "ñu", "lé", "rí", "có", "nú", "rt", "ng", "sh"};
  SeededRandom rng(seed);
  auto word = [&](size_t min, size_t max) {
    std::string w;
    const size_t k = min + rng.Uniform(max - min + 1);
    for (size_t i = 0; i < k; ++i) w += kSyllables[rng.Uniform(std::size(kSyllables))];
    return w;
  };
  std::unordered_set<std::string> seen;
  std::vector<std::string> names;
  while (names.size() < n) {
    std::string name = word(2, 3) + " " + word(2, 4);
    absl::StatusOr<std::string> norm = NormalizeForBlindIndex(name);
    if (!norm.ok() || !seen.insert(*norm).second) continue;
    names.push_back(std::move(name));
  }
  return names;
}

// Measures, for a population of 100,000 distinct names, the fraction of
// pairs of different names whose tags collide, and checks it against the
// 2^-bits of an ideal random function.
TEST(BlindIndexTest, DifferentNamesCollideAtTheTheoreticalRate) {
  constexpr size_t kNames = 100000;
  const std::vector<std::string> names = Population(kNames, /*seed=*/20240611);
  absl::StatusOr<BlindIndex> index = BlindIndex::FromKey(TestKey(3), 32);
  ASSERT_THAT(index, IsOk());
  std::vector<uint32_t> tags;
  tags.reserve(names.size());
  for (const std::string& name : names) {
    absl::StatusOr<uint32_t> t = index->Tag(name);
    ASSERT_THAT(t, IsOk());
    tags.push_back(*t);
  }
  const double pairs = kNames * (kNames - 1.0) / 2;
  for (int bits : {16, 20, 24}) {
    std::unordered_map<uint32_t, uint64_t> buckets;
    for (uint32_t t : tags) ++buckets[t >> (32 - bits)];
    double colliding = 0;
    size_t largest = 0;
    for (const auto& [tag, count] : buckets) {
      colliding += count * (count - 1.0) / 2;
      largest = std::max<size_t>(largest, count);
    }
    const double rate = colliding / pairs;
    const double expected = std::ldexp(1.0, -bits);
    // Other names sharing a name's tag, on average: (N - 1) * 2^-bits.
    std::printf(
        "blind index, %zu distinct names, %d bits: pair collision rate %.3g (ideal %.3g, "
        "ratio %.3f); %zu distinct tags; mean other names per tag %.2f; largest bucket %zu\n",
        kNames, bits, rate, expected, rate / expected, buckets.size(), (kNames - 1.0) * rate,
        largest);
    // Expected colliding pairs: 76,000 (16 bits), 4,800 (20), 300 (24);
    // the bounds are about 5 standard deviations wide.
    const double tolerance = bits == 16 ? 0.03 : bits == 20 ? 0.08 : 0.3;
    EXPECT_NEAR(rate / expected, 1.0, tolerance) << bits << " bits";
  }
}

}  // namespace
}  // namespace fieldsync::crypto
