// Incremental aggregate counters (DESIGN §9): a sync::CommitObserver that
// moves the counters of every metric inside the same atomic commit as the
// changes, with Cf::kAggregates' merge operator (signed 64-bit add).
//
// Per case it keeps, next to the counters, the DIMENSION values some
// metric reads of each of the case's records of a type some metric reads,
// as last counted (v1::AggregateCaseState). A committed
// unit updates them from the unit's record changes, evaluates every metric
// on the records before and after, and merges the differences:
//   stock  -1 on the cell the record counted in before, +1 on the cell it
//          counts in after (nothing when they are the same cell);
//   flow   +1 in the week and the month of the change when the record did
//          not match before and matches after (never decremented).
// A record counts when it exists, its case's registration exists, and its
// dimension values (a child record takes its case's values for case-level
// dimensions) pass the metric's filter. Only the reconciled (winning) value
// of a field reaches the state, so conflicts count once; resolutions,
// transfers, closures and deletions are changes like any other. Erasure
// destroys a case's key, not its DIMENSION values: counts stay.
#ifndef FIELDSYNC_AGGREGATES_COUNTERS_H_
#define FIELDSYNC_AGGREGATES_COUNTERS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "aggregates/metrics.h"
#include "fieldsync/v1/aggregates.pb.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/ingest.h"

namespace fieldsync::aggregates {

// Counter deltas by encoded counter key.
using CounterDeltas = std::map<std::string, int64_t>;

// The cell (the values of the metric's dimensions, in order) that record
// `record_id` of `state` counts in, or false when it does not count.
bool Evaluate(const Metric& metric, const v1::AggregateCaseState& state, const std::string& case_id,
              const v1::AggregateCaseState::Record& record, std::vector<std::string>* cell);

class CounterObserver : public sync::CommitObserver {
 public:
  // Neither is owned; both must outlive the observer.
  CounterObserver(storage::Store* store, const Metrics* metrics)
      : store_(store), metrics_(metrics) {}

  // Moves the counters of the unit's record changes, summed with the rest
  // of the group's. kDataLoss when a stored case state does not parse;
  // kUnavailable from storage.
  absl::Status OnCommit(const sync::CommittedUnit& unit, storage::WriteBatch* batch) override;
  bool NeedsRecordDimensions() const override { return !metrics_->metrics().empty(); }
  // Adds the group's counter merges (one operand per counter moved) and
  // changed case states to `batch`.
  absl::Status BeforeCommit(storage::WriteBatch* batch) override;
  // Forgets the group's case states and deltas: the store holds them when
  // the commit succeeded, and nothing of them when it failed.
  void AfterCommit(const storage::WriteBatch* batch, const absl::Status& commit_status) override;

 private:
  // The case's state in pending_ (loaded from the store on first use in the
  // group).
  absl::StatusOr<v1::AggregateCaseState*> LoadCase(const std::string& case_id);

  storage::Store* store_;
  const Metrics* metrics_;

  // The group's case states by case id (text), whether each changed (and
  // what BeforeCommit wrote for it), and the group's counter deltas. Only
  // the committer thread touches them.
  struct PendingCase {
    v1::AggregateCaseState state;
    bool changed = false;
    std::string serialized;
  };
  absl::flat_hash_map<std::string, PendingCase> pending_;
  CounterDeltas deltas_;
  // Committed case states, serialized (one allocation each: parsed objects
  // kept this long fragment the heap and slow every allocation), at most
  // kCachedCases of them (cleared whole when full).
  static constexpr size_t kCachedCases = 16384;
  absl::flat_hash_map<std::string, std::string> committed_;
};

// Name of the kMetadata entry holding the fingerprint of the metrics the
// counters were built with.
inline constexpr char kCountersFingerprintName[] = "aggregates.metrics_fingerprint";

// What PrepareCounters did.
struct PrepareOutcome {
  bool rebuilt = false;
  uint64_t cases = 0;
  uint64_t records = 0;
};

// Makes the counters match `metrics` before the server serves: when they
// were built from the same metrics (same fingerprint), nothing; otherwise
// (a new deployment, metrics added or changed, counters from an older
// version) rebuilds them from the materialized state in one atomic write
// and stores the fingerprint. A rebuild counts stocks exactly; a flow
// counts once each record that matches now, in the period of the latest
// change of a field its filter reads (of its creation when it has no
// filter): earlier transitions are not in the state. REQUIRES: no commit
// runs concurrently (call before serving). kUnavailable / kDataLoss from
// storage.
absl::StatusOr<PrepareOutcome> PrepareCounters(storage::Store* store, const Metrics& metrics);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_COUNTERS_H_
