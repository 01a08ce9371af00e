// Field-level reconciliation (DESIGN §6): applies one canonical case log
// entry to the materialized state (records, case_index, conflicts). The
// same code runs in the ingest committer (deciding outcomes) and in
// RebuildStateFromLog (replaying them), which is what makes the state a
// pure function of the log.
//
// Rules, per field write, with `current` the field's state:
//   base == current version (0 when absent)  -> APPLIED, version := position
//   base <  current version, same value      -> CONVERGED: value and version
//       stay; the field's (HLC, writer) becomes the larger of the two (so
//       that the winner of later concurrent writes does not depend on which
//       of two equal writes arrived first)
//   base <  current version, other value     -> the higher (HLC, writer)
//       wins; incoming wins: CONFLICT (old value kept as a conflict record),
//       current wins: SUPERSEDED (incoming kept as a conflict record)
//   base >  current version                  -> the change is REJECTED
// Ties of (HLC, writer) (one writer reusing an HLC) go to the larger value
// bytes (digest for encrypted values), so every arrival order agrees.
// Equality of encrypted values compares their keyed digests (StoredValue
// .digest, computed at prepare time), so the commit step never decrypts.
// A DELETE is reconciled as one write against the record's latest write
// (RecordHeader.latest_*); an update to a deleted record, whose bases are
// older than the tombstone, against the tombstone.
#ifndef FIELDSYNC_SYNC_RECONCILE_H_
#define FIELDSYNC_SYNC_RECONCILE_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "fieldsync/v1/records.pb.h"
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
};

// What applied log entries did to one record's DIMENSION values: whether
// the record exists (not deleted) after them, and each DIMENSION field whose
// winning value they wrote, with its DimensionString, or nullopt when they
// cleared it. Fields they did not write keep their earlier values.
struct DimensionDelta {
  bool exists = false;
  std::map<std::string, std::optional<std::string>> values;
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
  // writes nothing. Errors: kDataLoss for corrupt state, kUnavailable from
  // storage, kInternal for an entry kind it cannot apply.
  // When `delta` is not null and the entry is accepted, adds to it what
  // the entry did to its record's DIMENSION values (a rejection leaves it
  // as it was).
  absl::StatusOr<v1::ChangeResult> Apply(v1::CaseLogEntry* entry, const ApplyOptions& options,
                                         StateView* view, DimensionDelta* delta = nullptr) const;

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
