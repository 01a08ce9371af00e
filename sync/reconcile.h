// Field-level reconciliation (DESIGN §6, docs/MERGE.md): applies one
// canonical case log entry to the materialized state (records, case_index,
// conflicts). The same code runs in the ingest committer (deciding
// outcomes) and in RebuildStateFromLog (replaying them), which is what
// makes the state a pure function of the log.
//
// The rules, in short (MERGE.md states them in full with the reason each
// keeps the merge independent of arrival order):
//  - A field holds *heads*: values whose writes did not see each other. A
//    write removes the head its base_version names (the value it saw) and
//    its own writer's earlier write; it then joins the head with its value
//    (CONVERGED) or forms a new one. The greatest head by its greatest
//    (HLC, writer) is the field's value; the others are the field's one
//    open conflict. A resolution removes every head.
//  - A record is deleted when it has DELETEs and every write to it was seen
//    by one (its position is at most a DELETE's base_version, or its writer
//    deleted the record after it). A write no DELETE saw keeps the record,
//    or brings it back; the DELETEs are then its record-level conflict.
// Equality of encrypted values compares their keyed digests (StoredValue
// .digest, computed at prepare time), so the commit step never decrypts.
#ifndef FIELDSYNC_SYNC_RECONCILE_H_
#define FIELDSYNC_SYNC_RECONCILE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "fieldsync/v1/records.pb.h"
#include "sync/record_codec.h"
#include "sync/schema.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

struct ApplyOptions {
  // Device changes: refuse (CASE_NOT_IN_SCOPE) a change to an existing case
  // not assigned to `officer_id`. Off for server-side changes and replays.
  bool check_scope = false;
  // The officer a case created by this change is assigned to (the device's
  // officer). Server-set fields are added to the entry only when it has none
  // yet, so a replayed entry keeps its own.
  std::string officer_id;
  // Device changes: the region the device was enrolled for. A case it
  // creates must be in this region (REGION_NOT_DEVICE_REGION) and gets it
  // when the change does not write the region; it may never move a case to
  // another region (FIELD_NOT_WRITABLE). Empty: no region rule.
  std::string region;
  // Replaying the log: the entry was accepted once, so the checks that may
  // refuse a change (bases, RECORD_DELETED, a district outside the case's
  // region) are not made again; an entry accepted under earlier rules (or
  // an earlier schema) replays under the current ones.
  bool replay = false;
  // Reads the log entry at a position into *entry (false when absent);
  // unset reads the case log through the StateView. A rebuild into another
  // store reads its source's log.
  std::function<absl::StatusOr<bool>(uint64_t position, v1::CaseLogEntry* entry)> read_entry;
};

// Applies entries to a StateView. Thread-compatible; the schema is not
// owned and must outlive it.
class Reconciler {
 public:
  explicit Reconciler(const Schema* schema) : schema_(schema) {}

  // Reconciles `entry` (its position, ids, kind, HLC, writer and fields set;
  // ids canonical UUID text; outcomes unset) against `view`. On acceptance
  // fills the outcomes in `entry`, writes the state and conflict changes to
  // `view` (not the log entry itself) and returns a ChangeResult with
  // log_position set. On rejection returns a REJECTED ChangeResult and
  // writes nothing. Unless replaying, a change to the registration record
  // that would leave the case's district outside its region (the schema's
  // district_regions; the region and district the change writes, else the
  // current ones) is REJECTED with DISTRICT_OUTSIDE_REGION, server-side
  // changes included. Errors: kDataLoss for corrupt state, kUnavailable from
  // storage, kInternal for an entry kind it cannot apply. Of the record
  // state, an accepted entry writes its own record's header and the states
  // of the fields it writes or resolves, nothing else (besides the case
  // index and conflicts): sync/case_dimensions.h relies on it. When
  // `written` is not null and the entry is accepted, *written receives the
  // record's state as stored.
  absl::StatusOr<v1::ChangeResult> Apply(v1::CaseLogEntry* entry, const ApplyOptions& options,
                                         StateView* view, RecordState* written = nullptr) const;

 private:
  const Schema* schema_;
};

// A clear value as text for dimensions and indexes: enum and string values
// as is, bools "true"/"false", ints in decimal, dates YYYY-MM-DD, other
// types their decimal or "" when cleared. REQUIRES: !value.encrypted().
std::string DimensionString(const v1::StoredValue& value);

// The StoredValue of a clear (DIMENSION or OPERATIONAL) value.
v1::StoredValue ClearStoredValue(const v1::FieldValue& value);

// True when the two stored values hold the same value (see file comment).
bool SameValue(const v1::StoredValue& a, const v1::StoredValue& b);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_RECONCILE_H_
