#include "aggregates/periods.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::aggregates {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

TEST(PeriodsTest, IsoWeeksAtYearBoundaries) {
  // ISO 8601: 2026-01-01 is a Thursday, in 2026W1; 2021-01-03 (Sunday) is
  // in 2020W53; 2024-12-30 (Monday) is in 2025W1.
  EXPECT_EQ(WeekNumber(absl::CivilDay(2026, 1, 1)), 202601u);
  EXPECT_EQ(WeekNumber(absl::CivilDay(2021, 1, 3)), 202053u);
  EXPECT_EQ(WeekNumber(absl::CivilDay(2021, 1, 4)), 202101u);
  EXPECT_EQ(WeekNumber(absl::CivilDay(2024, 12, 30)), 202501u);
  EXPECT_EQ(WeekNumber(absl::CivilDay(2026, 11, 27)), 202648u);
  EXPECT_EQ(MonthNumber(absl::CivilDay(2026, 11, 27)), 202611u);
}

TEST(PeriodsTest, WeekNumberOfATimeUsesUtc) {
  // 2026-11-29 23:30 UTC is a Sunday (week 48); 30 minutes later, week 49.
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 29, 23, 30, 0), absl::UTCTimeZone());
  EXPECT_EQ(WeekNumber(t), 202648u);
  EXPECT_EQ(WeekNumber(t + absl::Minutes(30)), 202649u);
}

TEST(PeriodsTest, Dhis2Labels) {
  absl::CivilDay d(2026, 11, 27);
  EXPECT_EQ(PeriodOf(v1::GRANULARITY_WEEK, d).label, "2026W48");
  EXPECT_EQ(PeriodOf(v1::GRANULARITY_MONTH, d).label, "202611");
  EXPECT_EQ(PeriodOf(v1::GRANULARITY_QUARTER, d).label, "2026Q4");
  EXPECT_EQ(PeriodOf(v1::GRANULARITY_YEAR, d).label, "2026");
  EXPECT_EQ(PeriodOf(v1::GRANULARITY_WEEK, absl::CivilDay(2026, 1, 5)).label, "2026W2");
  Period q = PeriodOf(v1::GRANULARITY_QUARTER, d);
  EXPECT_EQ(q.first_stored, 202610u);
  EXPECT_EQ(q.last_stored, 202612u);
}

TEST(PeriodsTest, PeriodsBetweenCoversBothEnds) {
  absl::StatusOr<std::vector<Period>> weeks = PeriodsBetween(
      v1::GRANULARITY_WEEK, absl::CivilDay(2025, 12, 31), absl::CivilDay(2026, 12, 31));
  ASSERT_THAT(weeks, IsOk());
  EXPECT_EQ(weeks->front().label, "2026W1");  // 2025-12-31 is in 2026W1
  EXPECT_EQ(weeks->back().label, "2026W53");
  EXPECT_EQ(weeks->size(), 53u);
  absl::StatusOr<std::vector<Period>> months = PeriodsBetween(
      v1::GRANULARITY_MONTH, absl::CivilDay(2026, 1, 31), absl::CivilDay(2026, 3, 1));
  ASSERT_THAT(months, IsOk());
  ASSERT_EQ(months->size(), 3u);
  EXPECT_EQ((*months)[1].label, "202602");
  EXPECT_THAT(
      PeriodsBetween(v1::GRANULARITY_MONTH, absl::CivilDay(2026, 3, 1), absl::CivilDay(2026, 1, 1)),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      PeriodsBetween(v1::GRANULARITY_WEEK, absl::CivilDay(1990, 1, 1), absl::CivilDay(2026, 1, 1)),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PeriodsBetween(v1::GRANULARITY_UNSPECIFIED, absl::CivilDay(2026, 1, 1),
                             absl::CivilDay(2026, 1, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace fieldsync::aggregates
