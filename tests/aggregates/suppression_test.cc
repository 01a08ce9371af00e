// Disclosure control: primary and complementary suppression with protection
// intervals, checked by an attacker written here independently of the
// product (tests/aggregates/attacker.h: LPs with COIN-OR CLP over each
// table's equations and non-negativity).
#include "aggregates/suppression.h"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/aggregates/attacker.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::aggregates {
namespace {

using ::fieldsync::aggregates::testing::Attacker;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

SuppressionOptions WithK(uint32_t k) {
  SuppressionOptions o;
  o.min_cell_count = k;
  return o;
}

// `interior` lists the interior cells in row-major order (last dimension
// fastest); the totals are filled in.
std::vector<int64_t> Table(const TableShape& shape, const std::vector<int64_t>& interior) {
  std::vector<int64_t> c(shape.entries(), 0);
  size_t next = 0;
  for (size_t i = 0; i < shape.entries(); ++i) {
    if (shape.IsInterior(i)) c[i] = interior.at(next++);
  }
  EXPECT_EQ(next, interior.size());
  FillTotals(shape, &c);
  return c;
}

// What an answer shows: the count of each published entry, 0 for withheld
// ones (the attacker never reads them).
std::vector<int64_t> Published(const std::vector<int64_t>& c, const std::vector<bool>& s) {
  std::vector<int64_t> out(c.size(), 0);
  for (size_t i = 0; i < c.size(); ++i) out[i] = s[i] ? 0 : c[i];
  return out;
}

// A table built to be hard to protect: whole slices of zeros (so lines
// whose total is 0), many counts from 1 to 4, some zeros, few large counts,
// hence small margins.
std::vector<int64_t> HardTable(const TableShape& shape, SeededRandom& random) {
  const std::vector<size_t>& sizes = shape.sizes();
  std::vector<std::vector<bool>> zero_slice(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) {
    for (size_t v = 0; v < sizes[d]; ++v) zero_slice[d].push_back(random.Uniform(4) == 0);
  }
  std::vector<int64_t> c(shape.entries(), 0);
  for (size_t i = 0; i < shape.entries(); ++i) {
    if (!shape.IsInterior(i)) continue;
    std::vector<size_t> at = shape.Coords(i);
    bool zero = false;
    for (size_t d = 0; d < sizes.size(); ++d) zero = zero || zero_slice[d][at[d]];
    if (zero) continue;
    const uint64_t kind = random.Uniform(10);
    if (kind < 3) continue;  // 0
    c[i] = kind < 8 ? 1 + static_cast<int64_t>(random.Uniform(4))
                    : 5 + static_cast<int64_t>(random.Uniform(30));
  }
  FillTotals(shape, &c);
  return c;
}

TEST(TableShapeTest, IndexAndCoordsRoundTripWithTotalsLast) {
  TableShape shape({3, 2});
  EXPECT_EQ(shape.entries(), 12u);
  for (size_t i = 0; i < shape.entries(); ++i) EXPECT_EQ(shape.Index(shape.Coords(i)), i);
  EXPECT_EQ(shape.Coords(11), (std::vector<size_t>{3, 2}));
  EXPECT_TRUE(shape.IsInterior(0));
  EXPECT_FALSE(shape.IsInterior(2));  // (0, total)
}

TEST(TableShapeTest, FillTotalsSumsEveryMargin) {
  TableShape shape({2, 3});
  std::vector<int64_t> c(shape.entries(), 0);
  // interior (r, k) = 10 r + k + 1
  for (size_t r = 0; r < 2; ++r) {
    for (size_t k = 0; k < 3; ++k) c[shape.Index(std::vector<size_t>{r, k})] = 10 * r + k + 1;
  }
  FillTotals(shape, &c);
  EXPECT_EQ(c[shape.Index(std::vector<size_t>{0, 3})], 1 + 2 + 3);
  EXPECT_EQ(c[shape.Index(std::vector<size_t>{1, 3})], 11 + 12 + 13);
  EXPECT_EQ(c[shape.Index(std::vector<size_t>{2, 0})], 1 + 11);
  EXPECT_EQ(c[shape.Index(std::vector<size_t>{2, 3})], 6 + 36);
}

TEST(SuppressionTest, NoGroupBySuppressesASmallGrandTotalOnly) {
  TableShape shape({});
  EXPECT_THAT(Suppress(shape, {3}, WithK(5)), IsOkAndHolds(std::vector<bool>{true}));
  EXPECT_THAT(Suppress(shape, {7}, WithK(5)), IsOkAndHolds(std::vector<bool>{false}));
  // Zero is published.
  EXPECT_THAT(Suppress(shape, {0}, WithK(5)), IsOkAndHolds(std::vector<bool>{false}));
}

TEST(SuppressionTest, OneSmallCellInARowGetsAComplement) {
  // One dimension: cells 3, 40, 50, total 93. Publishing 40, 50 and 93
  // reveals 3, so a second cell must go: the smallest, 40, which can give
  // the 2 that take the withheld cell to 5 and absorb its 3.
  TableShape shape({3});
  std::vector<int64_t> c = Table(shape, {3, 40, 50});
  absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, WithK(5));
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(*s, (std::vector<bool>{true, true, false, false}));
  Attacker attacker({3}, *s, Published(c, *s));
  Attacker::Range r = attacker.RangeOf(0);
  EXPECT_NEAR(r.low, 0, 1e-6);
  EXPECT_NEAR(r.high, 43, 1e-6);
}

TEST(SuppressionTest, BridgeBetweenTwoProtectedBlocksIsAlsoProtected) {
  // Every row and column has two withheld entries, but a combination of
  // equations can still pin one down; the ranges catch it.
  TableShape shape({4, 4});
  std::vector<int64_t> c = Table(shape, {1, 1, 90, 90, 1, 1, 90, 90, 90, 90, 1, 1, 90, 90, 1, 1});
  absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, WithK(5));
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(Attacker({4, 4}, *s, Published(c, *s)).Disclosed(c, 5), IsEmpty());
}

TEST(SuppressionTest, ZeroLinesAreNotUsedAsProtection) {
  // Columns 2 and 3 hold only zeros: their published totals of 0 tell the
  // attacker every entry in them is 0, so withholding one of them protects
  // nothing. The 2 needs a complement with a count.
  TableShape shape({3, 4});
  std::vector<int64_t> c = Table(shape, {2, 30, 0, 0, 40, 50, 0, 0, 20, 70, 0, 0});
  absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, WithK(5));
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(Attacker({3, 4}, *s, Published(c, *s)).Disclosed(c, 5), IsEmpty());
  for (size_t r = 0; r <= 3; ++r) {
    for (size_t col : {2, 3}) {
      EXPECT_FALSE((*s)[shape.Index(std::vector<size_t>{r, col})]) << r << "," << col;
    }
  }
}

// Issue "Aggregates that are right and safe to publish", part suppression:
// open_cases grouped by district, sex and age band for an analyst of the
// northern region. Districts northern_1, northern_2, not set; sexes female,
// male, other, unknown; age bands 0_4, 5_9, 10_14, 15_17, unknown.
//
// The previous method withheld kOldWithheld (entry numbers), so that no
// withheld entry was determined by the equations alone. But two published
// totals of 0, (all districts, male, 0_4) and (northern_1, male, all
// ages), force the withheld zeros (northern_1, male, 0_4), (northern_2,
// male, 0_4) and (northern_1, male, 5_9) to 0 in every non-negative
// solution, and with them the rest of the male slice leaves (not set,
// male, 5_9) = 1 and (not set, male, all ages) = 1.
TEST(SuppressionTest, IssueExampleZeroTotalsNoLongerRevealACount) {
  const std::vector<size_t> sizes = {3, 4, 5};
  TableShape shape(sizes);
  // [district][sex][age band]
  const int64_t kCounts[3][4][5] = {
      // northern_1: female, male, other, unknown
      {{17, 13, 18, 15, 17}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}},
      // northern_2
      {{9, 15, 6, 11, 15}, {0, 10, 10, 16, 5}, {0, 1, 0, 0, 0}, {0, 0, 0, 0, 0}},
      // not set
      {{0, 1, 0, 1, 0}, {0, 1, 0, 0, 0}, {2, 0, 0, 0, 0}, {0, 0, 0, 0, 0}},
  };
  std::vector<int64_t> interior(&kCounts[0][0][0], &kCounts[0][0][0] + 3 * 4 * 5);
  std::vector<int64_t> c = Table(shape, interior);
  const size_t not_set_male = shape.Index(std::vector<size_t>{2, 1, 5});
  ASSERT_EQ(c[not_set_male], 1);
  const std::vector<size_t> kOldWithheld = {
      0,  1,  2,  3,  5,  6,  7,  25, 26, 27, 29, 30, 32, 33, 35, 36, 37, 38, 39,  41,  43,  47, 54,
      56, 61, 63, 65, 67, 71, 72, 77, 84, 85, 87, 89, 90, 92, 93, 97, 98, 99, 101, 102, 103, 107};
  std::vector<bool> old(shape.entries(), false);
  for (size_t e : kOldWithheld) old[e] = true;
  Attacker::Range before = Attacker(sizes, old, Published(c, old)).RangeOf(not_set_male);
  EXPECT_NEAR(before.low, 1, 1e-6);
  EXPECT_NEAR(before.high, 1, 1e-6);

  absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, WithK(5));
  ASSERT_THAT(s, IsOk());
  Attacker attacker(sizes, *s, Published(c, *s));
  Attacker::Range now = attacker.RangeOf(not_set_male);
  EXPECT_NEAR(now.low, 0, 1e-6);
  EXPECT_GE(now.high, 5 - 1e-6);
  EXPECT_THAT(attacker.Disclosed(c, 5), IsEmpty());
}

// The property over tables built to be hard: 3 and 4 dimensions, zero
// lines, small margins, many small counts. For every withheld count from 1
// to k-1 the attacker's range must reach 0 and k.
TEST(SuppressionTest, HardThreeAndFourDimensionTablesRevealNoSmallCount) {
  SeededRandom random(20261205);
  const auto start = std::chrono::steady_clock::now();
  int tables = 0, primaries = 0, withheld = 0, entries = 0;
  std::chrono::steady_clock::duration protecting{};
  for (int t = 0; t < 300; ++t) {
    const size_t dims = t % 2 == 0 ? 3 : 4;
    std::vector<size_t> sizes;
    for (size_t d = 0; d < dims; ++d) sizes.push_back(2 + random.Uniform(dims == 3 ? 4 : 2));
    TableShape shape(sizes);
    std::vector<int64_t> c = HardTable(shape, random);
    const auto before = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, WithK(5));
    protecting += std::chrono::steady_clock::now() - before;
    ASSERT_THAT(s, IsOk()) << "table " << t;
    entries += static_cast<int>(shape.entries());
    for (size_t i = 0; i < shape.entries(); ++i) {
      primaries += c[i] >= 1 && c[i] < 5;
      withheld += (*s)[i];
    }
    std::vector<size_t> disclosed = Attacker(sizes, *s, Published(c, *s)).Disclosed(c, 5);
    EXPECT_THAT(disclosed, IsEmpty()) << "table " << t;
    ++tables;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "attacker checked " << tables << " hard tables (3 and 4 dimensions): " << primaries
            << " small counts, " << withheld << " of " << entries << " entries withheld, "
            << seconds << " s (" << std::chrono::duration<double>(protecting).count()
            << " s in Suppress)\n";
  EXPECT_GT(primaries, 5000);
}

// Random tables of 0-4 dimensions and thresholds k from 2 to 7: no count
// from 1 to k-1 is published and the attacker's range of each reaches 0
// and k.
TEST(SuppressionTest, RandomTablesNeverRevealASmallCount) {
  SeededRandom random(20261128);
  int tables = 0, suppressed_total = 0;
  for (int t = 0; t < 300; ++t) {
    std::vector<size_t> sizes;
    const size_t dims = random.Uniform(4) + (t < 20 ? 0 : 1);
    for (size_t d = 0; d < dims; ++d) sizes.push_back(1 + random.Uniform(dims >= 3 ? 3 : 5));
    TableShape shape(sizes);
    std::vector<int64_t> c(shape.entries(), 0);
    for (size_t i = 0; i < shape.entries(); ++i) {
      if (!shape.IsInterior(i)) continue;
      switch (random.Uniform(4)) {
        case 0:
          c[i] = 0;
          break;
        case 1:
          c[i] = 1 + static_cast<int64_t>(random.Uniform(4));
          break;
        default:
          c[i] = 5 + static_cast<int64_t>(random.Uniform(40));
          break;
      }
    }
    FillTotals(shape, &c);
    const uint32_t k = 2 + static_cast<uint32_t>(random.Uniform(6));
    absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, WithK(k));
    ASSERT_THAT(s, IsOk());
    for (size_t i = 0; i < shape.entries(); ++i) suppressed_total += (*s)[i] ? 1 : 0;
    EXPECT_THAT(Attacker(sizes, *s, Published(c, *s)).Disclosed(c, k), IsEmpty())
        << "table " << t << " k " << k;
    ++tables;
  }
  std::cout << "attacker checked " << tables << " random tables, " << suppressed_total
            << " suppressed entries\n";
  EXPECT_GT(suppressed_total, 300);
}

TEST(SuppressionTest, ProtectionLevelIsConfigurable) {
  SeededRandom random(99);
  SuppressionOptions wide;
  wide.protection.high_above_k = 5;  // ranges must reach up to 10
  for (int t = 0; t < 40; ++t) {
    std::vector<size_t> sizes = {2 + random.Uniform(3), 2 + random.Uniform(3), 2};
    TableShape shape(sizes);
    std::vector<int64_t> c = HardTable(shape, random);
    absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, wide);
    ASSERT_THAT(s, IsOk());
    EXPECT_THAT(Attacker(sizes, *s, Published(c, *s)).Disclosed(c, 5, 0, 5), IsEmpty())
        << "table " << t;
  }
}

TEST(SuppressionTest, SameTableGivesTheSameAnswer) {
  SeededRandom random(5);
  TableShape shape({3, 3, 4});
  std::vector<int64_t> c = HardTable(shape, random);
  absl::StatusOr<std::vector<bool>> a = Suppress(shape, c, WithK(5));
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(Suppress(shape, c, WithK(5)), IsOkAndHolds(*a));
}

TEST(SuppressionTest, TooManySmallCountsIsRefusedNotLeaked) {
  TableShape shape({40, 40});
  std::vector<int64_t> c(shape.entries(), 0);
  for (size_t i = 0; i < shape.entries(); ++i) {
    if (shape.IsInterior(i)) c[i] = 1;
  }
  FillTotals(shape, &c);
  EXPECT_THAT(Suppress(shape, c, WithK(5)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("fewer dimensions")));
}

TEST(SuppressionTest, TableNeedingTooManyLinearProgramsIsRefused) {
  SeededRandom random(11);
  TableShape shape({3, 3, 3, 3});
  std::vector<int64_t> c = HardTable(shape, random);
  SuppressionOptions few = WithK(5);
  few.max_lp_solves = 10;
  EXPECT_THAT(Suppress(shape, c, few),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("coarser")));
  // The default limit protects it.
  EXPECT_THAT(Suppress(shape, c, WithK(5)), IsOk());
}

}  // namespace
}  // namespace fieldsync::aggregates
