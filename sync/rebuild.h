// Recomputing the materialized state from the canonical case log (DESIGN
// §6): the state (column families records, case_index, conflicts) is a pure
// function of the log, so replaying the log into an empty store gives the
// same bytes. Used to verify a store, and to rebuild state after a restore.
#ifndef FIELDSYNC_SYNC_REBUILD_H_
#define FIELDSYNC_SYNC_REBUILD_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "storage/store.h"
#include "sync/case_dimensions.h"
#include "sync/reconcile.h"
#include "sync/schema.h"

namespace fieldsync::sync {

// Replays every entry of `source`'s case log, in position order, through the
// same Reconciler the ingest committer uses, writing the resulting state
// into `target`'s records, case_index and conflicts column families (which
// must be empty), committing every `entries_per_commit` entries. Encrypted
// values are copied as stored, never re-encrypted. Returns the number of
// entries replayed. Errors: kDataLoss when an entry does not parse, a
// position is missing, or a recomputed outcome differs from the recorded
// one (the log or the code changed); kUnavailable from storage.
// `source` and `target` may be the same store only if its state column
// families were emptied first.
absl::StatusOr<uint64_t> RebuildStateFromLog(const Schema& schema, storage::Store* source,
                                             storage::Store* target,
                                             size_t entries_per_commit = 1000);

// Called for each replayed entry, in log order, with the entry (outcomes
// filled) and its case's DIMENSION views just before and just after it,
// exactly as the ingest gives them (sync/ingest.h RecordDimensionChange):
// both null when RebuildOptions::dimension_needs lacks the record type or
// the entry left its record's view as it was. A non-OK status stops the
// rebuild with it.
using ReplayObserver = std::function<absl::Status(
    const v1::CaseLogEntry& entry, const CaseDimensions* before, const CaseDimensions* after)>;

struct RebuildOptions {
  size_t entries_per_commit = 1000;
  // Entries below this position are replayed without comparing outcomes
  // (they were decided under earlier merge rules; see
  // BringStateToCurrentRules).
  uint64_t compare_from = 1;
  // Sees every replayed entry (may be unset).
  ReplayObserver observer;
  // The record types and fields of the views the observer gets.
  DimensionNeeds dimension_needs;
  // Read the log at this snapshot of `source` (not owned); unset: a new one.
  const storage::Snapshot* snapshot = nullptr;
};

absl::StatusOr<uint64_t> RebuildStateFromLog(const Schema& schema, storage::Store* source,
                                             storage::Store* target, const RebuildOptions& options);

// The merge rules the state is built with (docs/MERGE.md). Persisted in
// the metadata column family as kMergeRulesName = decimal version; raise it
// whenever the rules change what the state holds. 3 decides as 2 does and
// adds the per-case entry index (storage/key_codec.h EncodeCaseEntryKey).
// 4 decides as 2 does, lists a case under one scope key (region and
// officer, EncodeCaseScopeKey) instead of two and gives no entry key to the
// entry that created a record (its state's created_position finds it).
// 5 decides as 2 does and lists cases in one scope list per region and
// officer (EncodeCaseScopeListKey) instead of one key per case.
inline constexpr uint32_t kMergeRules = 5;
// The first version whose decisions are today's: a rebuild from it or a
// later version keeps kMergeRulesFromName as it was.
inline constexpr uint32_t kMergeRulesDecisions = 2;
inline constexpr char kMergeRulesName[] = "sync.merge_rules";
// The first log position decided under the current rules (decimal).
inline constexpr char kMergeRulesFromName[] = "sync.merge_rules_from";

struct StateUpgrade {
  // The state was rebuilt from the log (it was built by earlier rules).
  bool rebuilt = false;
  uint64_t entries = 0;
};

// At start, before any commit: when the state was built under earlier
// merge rules, empties the state column families and replays the whole log
// under the current ones (the log is the truth; recorded outcomes stay as
// they were answered), then records the rules. An interrupted upgrade runs
// again at the next start. A new store just records the rules. Errors as
// RebuildStateFromLog.
absl::StatusOr<StateUpgrade> BringStateToCurrentRules(const Schema& schema, storage::Store* store);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_REBUILD_H_
