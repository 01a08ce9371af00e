// The calendar of flow metrics: ISO 8601 weeks and months in UTC, their
// stored numbers (key_codec.h CounterKey) and DHIS2 period labels
// (2026W48, 202611, 2026Q4, 2026).
#ifndef FIELDSYNC_AGGREGATES_PERIODS_H_
#define FIELDSYNC_AGGREGATES_PERIODS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "fieldsync/v1/aggregates.pb.h"

namespace fieldsync::aggregates {

// Stored granularities (CounterKey.granularity).
inline constexpr uint8_t kStockGranularity = 'S';
inline constexpr uint8_t kWeekGranularity = 'W';
inline constexpr uint8_t kMonthGranularity = 'M';

// At most this many periods in one query.
inline constexpr size_t kMaxPeriods = 520;

// ISO year * 100 + ISO week (1-53) of the UTC day of `t`.
uint32_t WeekNumber(absl::Time t);
uint32_t WeekNumber(absl::CivilDay day);
// Year * 100 + month of the UTC day of `t`.
uint32_t MonthNumber(absl::Time t);
uint32_t MonthNumber(absl::CivilDay day);

// One period of a query's answer and the stored periods it adds up.
struct Period {
  std::string label;               // DHIS2 form
  uint8_t stored_granularity = 0;  // kWeekGranularity or kMonthGranularity (kStock...)
  uint32_t first_stored = 0;       // inclusive
  uint32_t last_stored = 0;        // inclusive
};

// The periods of `granularity` from the one containing `from` to the one
// containing `to`, in order. kInvalidArgument when from > to, the
// granularity is unspecified or unknown, or more than kMaxPeriods.
absl::StatusOr<std::vector<Period>> PeriodsBetween(v1::Granularity granularity, absl::CivilDay from,
                                                   absl::CivilDay to);

// The period of `granularity` containing `day` (PeriodsBetween(g, day, day)).
Period PeriodOf(v1::Granularity granularity, absl::CivilDay day);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_PERIODS_H_
