#include "aggregates/periods.h"

#include "absl/strings/str_format.h"

namespace fieldsync::aggregates {
namespace {

int WeekdayIndex(absl::CivilDay day) {  // Monday 0 .. Sunday 6
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::monday:
      return 0;
    case absl::Weekday::tuesday:
      return 1;
    case absl::Weekday::wednesday:
      return 2;
    case absl::Weekday::thursday:
      return 3;
    case absl::Weekday::friday:
      return 4;
    case absl::Weekday::saturday:
      return 5;
    case absl::Weekday::sunday:
      return 6;
  }
  return 0;
}

// The Monday of ISO week `week` of ISO year `year`.
absl::CivilDay WeekStart(int64_t year, int week) {
  // January 4th is always in week 1.
  absl::CivilDay jan4(year, 1, 4);
  absl::CivilDay monday1 = jan4 - WeekdayIndex(jan4);
  return monday1 + 7 * (week - 1);
}

}  // namespace

uint32_t WeekNumber(absl::CivilDay day) {
  // The week belongs to the year of its Thursday.
  absl::CivilDay thursday = day + (3 - WeekdayIndex(day));
  int64_t year = thursday.year();
  int64_t week = (thursday - absl::CivilDay(year, 1, 1)) / 7 + 1;
  return static_cast<uint32_t>(year * 100 + week);
}

uint32_t WeekNumber(absl::Time t) { return WeekNumber(absl::ToCivilDay(t, absl::UTCTimeZone())); }

uint32_t MonthNumber(absl::CivilDay day) {
  return static_cast<uint32_t>(day.year() * 100 + day.month());
}

uint32_t MonthNumber(absl::Time t) { return MonthNumber(absl::ToCivilDay(t, absl::UTCTimeZone())); }

Period PeriodOf(v1::Granularity granularity, absl::CivilDay day) {
  Period p;
  switch (granularity) {
    case v1::GRANULARITY_WEEK: {
      uint32_t w = WeekNumber(day);
      p.label = absl::StrFormat("%dW%d", w / 100, w % 100);
      p.stored_granularity = kWeekGranularity;
      p.first_stored = p.last_stored = w;
      return p;
    }
    case v1::GRANULARITY_QUARTER: {
      int q = (day.month() - 1) / 3;
      p.label = absl::StrFormat("%dQ%d", day.year(), q + 1);
      p.stored_granularity = kMonthGranularity;
      p.first_stored = static_cast<uint32_t>(day.year() * 100 + q * 3 + 1);
      p.last_stored = p.first_stored + 2;
      return p;
    }
    case v1::GRANULARITY_YEAR:
      p.label = absl::StrFormat("%d", day.year());
      p.stored_granularity = kMonthGranularity;
      p.first_stored = static_cast<uint32_t>(day.year() * 100 + 1);
      p.last_stored = p.first_stored + 11;
      return p;
    case v1::GRANULARITY_MONTH:
    default:
      p.label = absl::StrFormat("%d%02d", day.year(), day.month());
      p.stored_granularity = kMonthGranularity;
      p.first_stored = p.last_stored = MonthNumber(day);
      return p;
  }
}

absl::StatusOr<std::vector<Period>> PeriodsBetween(v1::Granularity granularity, absl::CivilDay from,
                                                   absl::CivilDay to) {
  if (granularity != v1::GRANULARITY_WEEK && granularity != v1::GRANULARITY_MONTH &&
      granularity != v1::GRANULARITY_QUARTER && granularity != v1::GRANULARITY_YEAR) {
    return absl::InvalidArgumentError("granularity must be week, month, quarter or year");
  }
  if (from > to) {
    return absl::InvalidArgumentError("the period range starts after it ends");
  }
  std::vector<Period> out;
  absl::CivilDay day = from;
  while (true) {
    Period p = PeriodOf(granularity, day);
    out.push_back(p);
    if (out.size() > kMaxPeriods) {
      return absl::InvalidArgumentError(
          absl::StrFormat("the range spans more than %d periods; shorten it or use a coarser "
                          "granularity",
                          kMaxPeriods));
    }
    // The first day of the next period.
    absl::CivilDay next;
    switch (granularity) {
      case v1::GRANULARITY_WEEK: {
        uint32_t w = WeekNumber(day);
        next = WeekStart(w / 100, static_cast<int>(w % 100)) + 7;
        break;
      }
      case v1::GRANULARITY_MONTH:
        next = absl::CivilDay(absl::CivilMonth(day) + 1);
        break;
      case v1::GRANULARITY_QUARTER: {
        absl::CivilMonth m(day.year(), ((day.month() - 1) / 3) * 3 + 1);
        next = absl::CivilDay(m + 3);
        break;
      }
      default:
        next = absl::CivilDay(absl::CivilYear(day) + 1);
        break;
    }
    if (next > to) break;
    day = next;
  }
  return out;
}

}  // namespace fieldsync::aggregates
