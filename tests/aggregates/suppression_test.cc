// Disclosure control: primary and complementary suppression, checked by an
// attacker written here independently of the product (Gaussian elimination
// over the reals on the table's additive equations).
#include "aggregates/suppression.h"

#include <cmath>
#include <cstdint>
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
using ::fieldsync::testing::StatusIs;

std::vector<int64_t> TableWithTotals(const TableShape& shape,
                                     std::vector<int64_t> interior_by_index) {
  FillTotals(shape, &interior_by_index);
  return interior_by_index;
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
  EXPECT_THAT(Suppress(shape, {3}, 5), fieldsync::testing::IsOkAndHolds(std::vector<bool>{true}));
  absl::StatusOr<std::vector<bool>> big = Suppress(shape, {7}, 5);
  ASSERT_THAT(big, IsOk());
  EXPECT_EQ(*big, std::vector<bool>{false});
  // Zero is published.
  EXPECT_EQ(*Suppress(shape, {0}, 5), std::vector<bool>{false});
}

TEST(SuppressionTest, OneSmallCellInARowGetsAComplement) {
  // One dimension: cells 3, 40, 50, total 93. Publishing 40, 50 and 93
  // reveals 3, so a second cell must go: the smallest, 40.
  TableShape shape({3});
  std::vector<int64_t> c = TableWithTotals(shape, {3, 40, 50, 0});
  absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, 5);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(*s, (std::vector<bool>{true, true, false, false}));
  EXPECT_TRUE(Attacker({3}, *s).Recoverable().empty());
}

TEST(SuppressionTest, BridgeBetweenTwoProtectedBlocksIsAlsoProtected) {
  // A pattern where every row and column has two suppressed entries but a
  // combination still pins one down can only be caught by the exact check:
  // the attacker below finds nothing after Suppress.
  TableShape shape({4, 4});
  std::vector<int64_t> interior = {1, 1, 90, 90, 1, 1, 90, 90, 90, 90, 1, 1, 90, 90, 1, 1};
  std::vector<int64_t> c(shape.entries(), 0);
  for (size_t r = 0; r < 4; ++r) {
    for (size_t k = 0; k < 4; ++k) c[shape.Index(std::vector<size_t>{r, k})] = interior[r * 4 + k];
  }
  FillTotals(shape, &c);
  absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, 5);
  ASSERT_THAT(s, IsOk());
  EXPECT_TRUE(Attacker({4, 4}, *s).Recoverable().empty());
}

TEST(SuppressionTest, DeterminedEntriesFindsARevealedCell) {
  TableShape shape({2});
  // Cell 0 suppressed alone: total - cell 1 reveals it.
  EXPECT_EQ(DeterminedEntries(shape, {true, false, false}),
            (std::vector<bool>{true, false, false}));
  EXPECT_EQ(DeterminedEntries(shape, {true, true, false}),
            (std::vector<bool>{false, false, false}));
}

// The property: over random tables of 0-4 dimensions with many small
// counts, no count from 1 to k-1 is published, nothing suppressed can be
// recovered, and every published count is the true one.
TEST(SuppressionTest, RandomTablesNeverRevealASmallCount) {
  fieldsync::testing::SeededRandom random(20261128);
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
    absl::StatusOr<std::vector<bool>> s = Suppress(shape, c, k);
    ASSERT_THAT(s, IsOk());
    for (size_t i = 0; i < shape.entries(); ++i) {
      if (c[i] >= 1 && c[i] < static_cast<int64_t>(k)) {
        EXPECT_TRUE((*s)[i]) << "table " << t << " entry " << i << " count " << c[i];
      }
      suppressed_total += (*s)[i] ? 1 : 0;
    }
    std::vector<size_t> recovered = Attacker(sizes, *s).Recoverable();
    EXPECT_TRUE(recovered.empty())
        << "table " << t << ": " << recovered.size() << " suppressed entries recoverable";
    ++tables;
  }
  std::cout << "checked " << tables << " random tables, " << suppressed_total
            << " suppressed entries\n";
  EXPECT_GT(suppressed_total, 300);
}

TEST(SuppressionTest, TooManySmallCountsIsRefusedNotLeaked) {
  TableShape shape({40, 40});
  std::vector<int64_t> c(shape.entries(), 0);
  for (size_t i = 0; i < shape.entries(); ++i) {
    if (shape.IsInterior(i)) c[i] = 1;
  }
  FillTotals(shape, &c);
  EXPECT_THAT(Suppress(shape, c, 5), StatusIs(absl::StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace fieldsync::aggregates
