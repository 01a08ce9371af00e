#include "aggregates/query.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "aggregates/periods.h"
#include "aggregates/suppression.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"

namespace fieldsync::aggregates {
namespace {

template <typename... Args>
absl::Status Invalid(const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrFormat(fmt, args...));
}

absl::StatusOr<absl::CivilDay> ToDay(const v1::Date& d, std::string_view what) {
  absl::CivilDay day(d.year(), d.month(), d.day());
  if (d.year() < 1 || d.year() > 9999 || day.year() != d.year() || day.month() != d.month() ||
      day.day() != d.day()) {
    return Invalid("%s is not a valid date (%d-%02d-%02d)", std::string(what), d.year(), d.month(),
                   d.day());
  }
  return day;
}

// The first day of the period `n` periods before the one holding `day`.
absl::CivilDay PeriodsBefore(v1::Granularity g, absl::CivilDay day, int n) {
  switch (g) {
    case v1::GRANULARITY_WEEK:
      return day - 7 * n;
    case v1::GRANULARITY_QUARTER:
      return absl::CivilDay(absl::CivilMonth(day) - 3 * n);
    case v1::GRANULARITY_YEAR:
      return absl::CivilDay(absl::CivilYear(day) - n);
    default:
      return absl::CivilDay(absl::CivilMonth(day) - n);
  }
}

}  // namespace

absl::StatusOr<v1::Date> ParseDate(std::string_view text, std::string_view what) {
  std::vector<std::string> parts = absl::StrSplit(absl::string_view(text.data(), text.size()), '-');
  int y = 0, m = 0, d = 0;
  if (parts.size() != 3 || parts[0].size() != 4 || parts[1].size() != 2 || parts[2].size() != 2 ||
      !absl::SimpleAtoi(parts[0], &y) || !absl::SimpleAtoi(parts[1], &m) ||
      !absl::SimpleAtoi(parts[2], &d)) {
    return Invalid("%s must be a date YYYY-MM-DD", std::string(what));
  }
  v1::Date date;
  date.set_year(y);
  date.set_month(m);
  date.set_day(d);
  RETURN_IF_ERROR(ToDay(date, what).status());
  return date;
}

absl::StatusOr<v1::QueryResponse> RunQuery(storage::Store* store, const Metrics& metrics,
                                           const v1::QueryRequest& request, const Scope& scope,
                                           absl::CivilDay today) {
  const Metric* metric = metrics.Find(request.metric());
  if (metric == nullptr) {
    return Invalid("unknown metric \"%s\"; ListMetrics gives the deployment's metrics",
                   request.metric());
  }
  const size_t ndims = metric->dimensions.size();
  // Group-by dimensions.
  if (request.group_by_size() > kMaxGroupBy) {
    return Invalid("at most %d group-by dimensions (got %d)", kMaxGroupBy, request.group_by_size());
  }
  std::vector<size_t> group;
  for (const std::string& name : request.group_by()) {
    int i = metric->IndexOf(name);
    if (i < 0) {
      return Invalid("metric %s has no dimension \"%s\" to group by", metric->def.name(), name);
    }
    if (std::find(group.begin(), group.end(), static_cast<size_t>(i)) != group.end()) {
      return Invalid("dimension %s is grouped by twice", name);
    }
    group.push_back(static_cast<size_t>(i));
  }
  // Filters, then the scope on the region dimension.
  std::vector<std::optional<absl::flat_hash_set<std::string>>> allowed(ndims);
  for (const v1::DimensionFilter& f : request.filters()) {
    int i = metric->IndexOf(f.dimension());
    if (i < 0) {
      return Invalid("metric %s has no dimension \"%s\" to filter on", metric->def.name(),
                     f.dimension());
    }
    if (allowed[i].has_value()) return Invalid("dimension %s is filtered twice", f.dimension());
    if (f.values().empty()) return Invalid("the filter on %s lists no values", f.dimension());
    allowed[i].emplace(f.values().begin(), f.values().end());
    // A region is a name a person types: one the schema does not know is
    // an error (other dimensions may hold values of an earlier schema).
    const Dimension& d = metric->dimensions[static_cast<size_t>(i)];
    if (static_cast<size_t>(i) == metric->region_index && !d.domain.empty()) {
      for (const std::string& v : f.values()) {
        if (std::find(d.domain.begin(), d.domain.end(), v) == d.domain.end()) {
          return Invalid("unknown region \"%s\"; the deployment's regions are: %s",
                         absl::CHexEscape(v), absl::StrJoin(d.domain, ", "));
        }
      }
    }
  }
  const size_t ri = metric->region_index;
  if (!scope.all_regions) {
    if (scope.regions.empty()) {
      return absl::PermissionDeniedError(
          "you have no regions; an administrator must give your account regions");
    }
    if (allowed[ri].has_value()) {
      for (const std::string& r : *allowed[ri]) {
        if (!scope.regions.contains(r)) {
          return absl::PermissionDeniedError(
              absl::StrFormat("region \"%s\" is outside your regions", r));
        }
      }
    } else {
      allowed[ri].emplace(scope.regions.begin(), scope.regions.end());
    }
  }

  v1::QueryResponse response;
  response.set_metric(metric->def.name());
  response.set_kind(metric->def.kind());
  *response.mutable_group_by() = request.group_by();
  response.set_min_cell_count(metrics.min_cell_count());
  if (allowed[ri].has_value()) {
    std::set<std::string> regions(allowed[ri]->begin(), allowed[ri]->end());
    for (const std::string& r : regions) response.add_regions(r);
  }

  // Periods and the stored ranges to read.
  std::vector<Period> periods;
  if (metric->is_flow()) {
    v1::Granularity g = request.granularity() == v1::GRANULARITY_UNSPECIFIED
                            ? v1::GRANULARITY_MONTH
                            : request.granularity();
    absl::CivilDay to = today;
    if (request.has_to()) {
      ASSIGN_OR_RETURN(to, ToDay(request.to(), "to"));
    }
    absl::CivilDay from = PeriodsBefore(g, to, 11);
    if (request.has_from()) {
      ASSIGN_OR_RETURN(from, ToDay(request.from(), "from"));
    }
    ASSIGN_OR_RETURN(periods, PeriodsBetween(g, from, to));
    response.set_granularity(g);
    for (const Period& p : periods) response.add_periods(p.label);
  } else {
    Period stock;
    stock.stored_granularity = kStockGranularity;
    periods.push_back(stock);
  }

  // Sum the counters into (period, group values) cells.
  absl::flat_hash_map<uint32_t, size_t> period_of;
  for (size_t p = 0; p < periods.size(); ++p) {
    for (uint32_t s = periods[p].first_stored; s <= periods[p].last_stored; ++s) {
      period_of[s] = p;
    }
  }
  // The metric's pages of the granularity, one per period: each page
  // holds the counters of its period by cell. A cell (a dimension tuple)
  // repeats in every period: each distinct cell is decoded and filtered
  // once, and mapped to its group-by tuple.
  struct CellFate {
    bool keep = false;
    size_t group = 0;
  };
  absl::flat_hash_map<std::string, CellFate> fates;
  std::map<std::vector<std::string>, size_t> group_index;
  std::vector<const std::vector<std::string>*> groups;  // by index
  // sums[period][group index]
  std::vector<std::vector<int64_t>> sums(periods.size());
  std::vector<std::set<std::string>> seen(group.size());
  {
    const uint8_t g = periods.front().stored_granularity;
    const std::string lower =
        storage::EncodeCounterPageKey(metric->def.name(), g, periods.front().first_stored);
    const std::string upper =
        storage::EncodeCounterPageKey(metric->def.name(), g, periods.back().last_stored + 1);
    std::unique_ptr<storage::Iterator> it =
        store->NewIterator(storage::Cf::kAggregates, lower, upper);
    std::vector<std::string> key_values(group.size());
    auto fate_of = [&](std::string_view cell) -> absl::StatusOr<CellFate> {
      auto f = fates.find(absl::string_view(cell.data(), cell.size()));
      if (f != fates.end()) return f->second;
      ASSIGN_OR_RETURN(std::vector<std::string> values, storage::DecodeCounterCell(cell));
      CellFate fate;
      // A tuple of another length was written for another definition.
      fate.keep = values.size() == ndims;
      for (size_t i = 0; i < ndims && fate.keep; ++i) {
        fate.keep = !allowed[i].has_value() || allowed[i]->contains(values[i]);
      }
      if (fate.keep) {
        for (size_t j = 0; j < group.size(); ++j) key_values[j] = values[group[j]];
        auto [gi, added] = group_index.emplace(key_values, groups.size());
        if (added) groups.push_back(&gi->first);
        fate.group = gi->second;
      }
      fates.emplace(std::string(cell), fate);
      return fate;
    };
    for (; it->Valid(); it->Next()) {
      ASSIGN_OR_RETURN(storage::CounterKey page, storage::DecodeCounterPageKey(it->key()));
      auto p = period_of.find(page.period);
      if (p == period_of.end()) continue;
      std::vector<int64_t>& row = sums[p->second];
      RETURN_IF_ERROR(storage::ForEachKeyedSum(
          it->value(), [&](std::string_view cell, int64_t count) -> absl::Status {
            ASSIGN_OR_RETURN(const CellFate fate, fate_of(cell));
            if (!fate.keep) return absl::OkStatus();
            if (row.size() <= fate.group) row.resize(groups.size(), 0);
            row[fate.group] += count;
            return absl::OkStatus();
          }));
    }
    RETURN_IF_ERROR(it->status());
  }
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    bool counted = false;
    for (const std::vector<int64_t>& row : sums)
      counted = counted || (gi < row.size() && row[gi] != 0);
    if (!counted) continue;
    for (size_t j = 0; j < group.size(); ++j) seen[j].insert((*groups[gi])[j]);
  }

  // Each group-by dimension's values: the schema's (within the filter and
  // scope), then other values met, "not set" last.
  std::vector<std::vector<std::string>> domains(group.size());
  std::vector<absl::flat_hash_map<std::string, size_t>> position(group.size());
  for (size_t j = 0; j < group.size(); ++j) {
    const Dimension& d = metric->dimensions[group[j]];
    const auto& allow = allowed[group[j]];
    for (const std::string& v : d.domain) {
      if (!allow.has_value() || allow->contains(v)) domains[j].push_back(v);
    }
    if (allow.has_value() && d.domain.empty()) {
      std::set<std::string> listed(allow->begin(), allow->end());
      for (const std::string& v : listed) {
        if (!v.empty()) domains[j].push_back(v);
      }
    }
    for (const std::string& v : seen[j]) {
      if (!v.empty() && std::find(domains[j].begin(), domains[j].end(), v) == domains[j].end()) {
        domains[j].push_back(v);
      }
    }
    if (seen[j].contains("") || (allow.has_value() && allow->contains(""))) {
      domains[j].push_back("");
    }
    for (size_t v = 0; v < domains[j].size(); ++v) position[j][domains[j][v]] = v;
  }
  std::vector<size_t> sizes;
  for (const auto& d : domains) sizes.push_back(d.size());
  TableShape shape(sizes);
  if (shape.entries() * periods.size() > kMaxCells) {
    return Invalid(
        "the answer would have %d cells (at most %d); group by fewer dimensions, "
        "filter, or shorten the period range",
        shape.entries() * periods.size(), kMaxCells);
  }

  // Each group tuple's entry in the table.
  std::vector<size_t> entry_of(groups.size());
  {
    std::vector<size_t> coords(group.size());
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      for (size_t j = 0; j < group.size(); ++j) coords[j] = position[j][(*groups[gi])[j]];
      entry_of[gi] = shape.Index(coords);
    }
  }
  std::vector<std::vector<size_t>> coords_of(shape.entries());
  for (size_t e = 0; e < shape.entries(); ++e) coords_of[e] = shape.Coords(e);
  SuppressionOptions protection;
  protection.min_cell_count = metrics.min_cell_count();
  for (size_t p = 0; p < periods.size(); ++p) {
    std::vector<int64_t> counts(shape.entries(), 0);
    for (size_t gi = 0; gi < sums[p].size(); ++gi) counts[entry_of[gi]] += sums[p][gi];
    FillTotals(shape, &counts);
    ASSIGN_OR_RETURN(std::vector<bool> suppressed, Suppress(shape, counts, protection));
    for (size_t e = 0; e < shape.entries(); ++e) {
      v1::AggregateCell* cell = response.add_cells();
      cell->set_period(periods[p].label);
      const std::vector<size_t>& c = coords_of[e];
      for (size_t j = 0; j < group.size(); ++j) {
        v1::CellCoordinate* coord = cell->add_coordinates();
        if (c[j] == sizes[j]) {
          coord->set_total(true);
        } else {
          coord->set_value(domains[j][c[j]]);
        }
      }
      if (suppressed[e]) {
        cell->set_suppressed(true);
      } else {
        cell->set_count(counts[e]);
      }
    }
  }
  return response;
}

}  // namespace fieldsync::aggregates
