// Answers AggregateService.Query (DESIGN §9) from the counters: filters,
// up to kMaxGroupBy group-by dimensions, periods of a granularity, the
// caller's regional scope, and disclosure control (suppression.h) applied
// to each period's table before anything leaves this function.
#ifndef FIELDSYNC_AGGREGATES_QUERY_H_
#define FIELDSYNC_AGGREGATES_QUERY_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "aggregates/metrics.h"
#include "fieldsync/v1/aggregates.pb.h"
#include "storage/store.h"

namespace fieldsync::aggregates {

// Which regions a caller may see.
struct Scope {
  // Every region (no caller role has this today; tools and tests use it).
  bool all_regions = false;
  absl::flat_hash_set<std::string> regions;
};

// At most this many cells (totals included, over all periods) in one
// answer.
inline constexpr size_t kMaxCells = 200000;

// Runs `request` against the counters in `store`. `today` (UTC) is the
// default end of a flow's period range. Errors, each naming what to fix:
//   kInvalidArgument    unknown metric or dimension, a dimension grouped or
//                       filtered twice, more than kMaxGroupBy group-bys, a
//                       filter without values, an invalid date, a range
//                       that ends before it starts or spans too many
//                       periods, more than kMaxCells cells.
//   kPermissionDenied   a region filter outside the scope, or a scope
//                       with no region.
//   kResourceExhausted  a table too sparse to protect (suppression.h).
//   kDataLoss / kUnavailable from storage.
absl::StatusOr<v1::QueryResponse> RunQuery(storage::Store* store, const Metrics& metrics,
                                           const v1::QueryRequest& request, const Scope& scope,
                                           absl::CivilDay today);

// "YYYY-MM-DD" -> Date; kInvalidArgument naming `what` otherwise.
absl::StatusOr<v1::Date> ParseDate(std::string_view text, std::string_view what);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_QUERY_H_
