// Incremental aggregate counters (DESIGN §9): a sync::CommitObserver that
// moves the counters of every metric inside the same atomic commit as the
// changes. Counters are kept in pages (storage/key_codec.h: one key per
// metric, granularity and period, holding keyed sums by cell,
// storage/keyed_sums.h); a commit group writes one Merge operand per page
// it moves, holding the deltas of the page's cells, which Cf::kAggregates'
// merge operator adds.
//
// The counters keep no copy of the values they count. For each logged
// change, in log order and one at a time whatever the batching, the ingest
// gives them its case's DIMENSION views just before and just after the
// change, read from the materialized record state (sync/case_dimensions.h;
// only the record types and fields some metric reads, and none for a
// change that moved none of them). Every metric is evaluated on the
// records the change can move, before and after, and the differences are
// merged:
//   stock  -1 on the cell the record counted in before, +1 on the cell it
//          counts in after (nothing when they are the same cell);
//   flow   +1 in the week and the month of the change (its HLC, clamped)
//          when the record did not match before and matches after (never
//          decremented).
// A record counts when it exists, its case's registration exists, and its
// dimension values (a child record takes its case's values for case-level
// dimensions) pass the metric's filter. Only the reconciled (winning) value
// of a field reaches the state, so conflicts count once; resolutions,
// transfers, closures and deletions are changes like any other. Erasure
// destroys a case's key, not its DIMENSION values: counts stay.
//
// Stores written before counter pages hold one key per counter (retired
// tag 1 of Cf::kAggregates), and stores written before layout v2 also a
// per-case copy of the counted values (retired tag 2); PrepareCounters
// deletes both, recounting the counters into pages.
#ifndef FIELDSYNC_AGGREGATES_COUNTERS_H_
#define FIELDSYNC_AGGREGATES_COUNTERS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "aggregates/metrics.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "storage/store.h"
#include "sync/case_dimensions.h"
#include "sync/ingest.h"

namespace fieldsync::aggregates {

// Counter deltas by page key (storage::EncodeCounterPageKey), each page's
// by cell (storage::EncodeCounterCell).
using CounterDeltas = std::map<std::string, storage::KeyedSums>;

// The cell (the values of the metric's dimensions, in order) that `record`
// of the case view `dims` counts in, or false when it does not count.
bool Evaluate(const Metric& metric, const sync::CaseDimensions& dims,
              const sync::RecordDimensions& record, std::vector<std::string>* cell);

// Thread-compatible: the ingest calls it from its committer only.
class CounterObserver : public sync::CommitObserver {
 public:
  // `metrics` is not owned and must outlive the observer.
  explicit CounterObserver(const Metrics* metrics) : metrics_(metrics) {}

  // Moves the counters of the unit's record changes, summed with the rest
  // of the group's. Always OK: it reads nothing from storage.
  absl::Status OnCommit(const sync::CommittedUnit& unit, storage::WriteBatch* batch) override;
  sync::DimensionNeeds RecordDimensionNeeds() const override;
  // Adds the group's counter merges to `batch`: one operand per page
  // moved, holding the deltas of its cells (none for a page whose deltas
  // all cancel).
  absl::Status BeforeCommit(storage::WriteBatch* batch) override;
  // Forgets the group's deltas: the store holds them when the commit
  // succeeded, and nothing of them when it failed.
  void AfterCommit(const storage::WriteBatch* batch, const absl::Status& commit_status) override;

 private:
  const Metrics* metrics_;
  // The group's counter deltas by page. Only the committer thread touches
  // them.
  CounterDeltas deltas_;
};

// Name of the kMetadata entry holding what the counters were built with:
// their layout and the fingerprint of the metrics (Metrics::fingerprint()),
// as "counter-pages:" followed by the fingerprint. Stores whose counters
// were one key per counter hold the bare fingerprint.
inline constexpr char kCountersFingerprintName[] = "aggregates.metrics_fingerprint";

// What a recount did.
struct PrepareOutcome {
  bool rebuilt = false;
  uint64_t entries = 0;   // case log entries replayed
  uint64_t counters = 0;  // non-zero counters written
  uint64_t pages = 0;     // pages holding them
  // The store held retired per-case copies of counted values; they are
  // deleted now.
  bool removed_case_states = false;
  // The store held counters of the retired layout, one key per counter;
  // they are deleted now (and recounted into pages).
  bool removed_counter_keys = false;
};

// Recounts every counter of `metrics` from `source`'s canonical case log,
// into counter pages in `scratch`'s aggregates column family: the log is
// replayed into `scratch` (which must be empty) through the same
// reconciliation as ingest (sync::RebuildStateFromLog), and each entry moves
// the counters as its own commit did, flow history included, with the
// observer's counting and page merges.
// kDataLoss / kUnavailable from storage.
absl::StatusOr<PrepareOutcome> RecountFromLog(const sync::Schema& schema, const Metrics& metrics,
                                              storage::Store* source, storage::Store* scratch);

// Makes the counters match `metrics` before the server serves. First it
// deletes the retired per-case copies of counted values, when the store
// holds any (one range deletion; nothing is written otherwise). Then,
// when the counters were built from the same metrics in counter pages
// (kCountersFingerprintName), nothing; otherwise (a new deployment,
// metrics added or changed, counters of an older version or layout)
// recounts them from the log (RecountFromLog, in a scratch store at
// `scratch_dir`, removed afterwards), replaces the live pages, deletes
// the counters of the retired one-key-per-counter layout when the store
// holds any (one range deletion, in the same write), and stores the
// fingerprint last, so an interrupted rebuild runs again at the next
// start. A metric added later gets its full history. REQUIRES: no commit
// runs concurrently (call before serving).
absl::StatusOr<PrepareOutcome> PrepareCounters(storage::Store* store, const Metrics& metrics,
                                               const sync::Schema& schema,
                                               const std::string& scratch_dir);

// One counter whose live value differs from a recount from the log.
struct CounterDifference {
  std::string metric;
  char granularity = 0;  // 'S' stock, 'W' week, 'M' month
  uint32_t period = 0;
  std::vector<std::string> cell;
  int64_t live = 0;
  int64_t recount = 0;
};

struct VerifyOutcome {
  uint64_t entries = 0;   // log entries replayed
  uint64_t counters = 0;  // non-zero counters in the recount
  std::vector<CounterDifference> differences;
};

// Recounts from the log (in a scratch store at `scratch_dir`, removed
// afterwards) and compares every counter with the live ones, both read at
// one snapshot; the live counters are not changed. Safe while the server
// commits. Errors as RecountFromLog; kDataLoss for a malformed page.
absl::StatusOr<VerifyOutcome> VerifyCounters(storage::Store* store, const Metrics& metrics,
                                             const sync::Schema& schema,
                                             const std::string& scratch_dir);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_COUNTERS_H_
