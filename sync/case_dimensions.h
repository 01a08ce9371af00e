// The DIMENSION view of a case, read from the materialized record state:
// each record's type, whether it exists and its clear DIMENSION values. The
// aggregate counters evaluate their metrics on the view before and after
// each logged change (sync/ingest.h RecordDimensionChange, sync/rebuild.h
// ReplayObserver); they keep no copy of these values of their own.
//
// ReadCaseDimensions and ReadRecordDimensions are the only code through
// which the counters read record state: a change of the records layout
// changes them and nothing else here.
#ifndef FIELDSYNC_SYNC_CASE_DIMENSIONS_H_
#define FIELDSYNC_SYNC_CASE_DIMENSIONS_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "sync/schema.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

// The record types a reader asks for and, of each, the DIMENSION fields
// whose values it reads (other fields of the type are never decoded).
using DimensionNeeds = absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>;

// One record of a case as the counters see it.
struct RecordDimensions {
  std::string record_id;  // canonical UUID text
  std::string record_type;
  // RecordHeader.deleted is false.
  bool exists = false;
  // Asked-for DIMENSION field -> its value as DimensionString
  // (sync/reconcile.h); fields never written or cleared are absent.
  std::map<std::string, std::string> values;

  friend bool operator==(const RecordDimensions&, const RecordDimensions&) = default;
};

// The records of one case of the asked-for types.
struct CaseDimensions {
  std::string case_id;  // canonical UUID text
  // In record id order, one per record.
  std::vector<RecordDimensions> records;

  // The record with this id; nullptr when the view has none.
  const RecordDimensions* Find(std::string_view record_id) const;
  // The case registration (its record id is the case id); may be nullptr.
  const RecordDimensions* Registration() const { return Find(case_id); }
  // Replaces record `record_id` with `record` (adding it in record id
  // order), or removes it when `record` is nullopt.
  // REQUIRES: record->record_id == record_id when set.
  void Set(std::string_view record_id, std::optional<RecordDimensions> record);

  friend bool operator==(const CaseDimensions&, const CaseDimensions&) = default;
};

// The view of case `case_id` as `view` holds it (the store plus the commit
// group's own writes): every record of a type in `needs`, with the
// DIMENSION fields `needs` names for it (only those the schema declares
// DIMENSION). kDataLoss when a state value or key does not parse, or a
// field state has no record header; kUnavailable from the store.
absl::StatusOr<CaseDimensions> ReadCaseDimensions(StateView* view, const Schema& schema,
                                                  const DimensionNeeds& needs, const Uuid& case_id);

// Record `record_id` of case `case_id` as ReadCaseDimensions reads it;
// nullopt when the state has no such record or its type is not in
// `needs`. Point reads, all left in the view's overlay. Errors as
// ReadCaseDimensions.
absl::StatusOr<std::optional<RecordDimensions>> ReadRecordDimensions(StateView* view,
                                                                     const Schema& schema,
                                                                     const DimensionNeeds& needs,
                                                                     const Uuid& case_id,
                                                                     const Uuid& record_id);

// The case views around each of a sequence of log entries, read with as
// little as the entries allow. A change that leaves its record's view as
// it was moves no counter and gets no views. A change of a child record
// can move only that record (on its registration's values), so its views
// hold just those two. A change of the registration moves every record of
// the case, so its views hold the whole case: read once, then kept, the
// view after one entry being the view before the next (valid because an
// entry changes only its own record's state). Forget the kept views
// (Reset) whenever the state changes other than through the tracked
// entries, and when the StateView's writes are dropped. Not thread-safe.
//
// For each entry of a tracked record type:
//   ASSIGN_OR_RETURN(auto was, tracker.ReadRecord(view, case_id, record_id));
//   ... apply the entry ...
//   ASSIGN_OR_RETURN(bool moved, tracker.Views(view, case_id, record_id, was, &before, &after));
class CaseDimensionsTracker {
 public:
  // `schema` is not owned and must outlive the tracker.
  CaseDimensionsTracker(const Schema* schema, DimensionNeeds needs)
      : schema_(schema), needs_(std::move(needs)) {}

  // Whether entries of `record_type` get views (some reader asks for it).
  bool Tracks(std::string_view record_type) const;

  // The record's view as the state holds it now (ReadRecordDimensions).
  absl::StatusOr<std::optional<RecordDimensions>> ReadRecord(StateView* view, const Uuid& case_id,
                                                             const Uuid& record_id) const;
  // After an entry of `record_id` was applied, `was` being ReadRecord's
  // answer from just before: false when the record's view is as it was
  // (nothing else is read). Otherwise true, with the case's views just
  // after the entry in *after and just before it in *before (the same
  // with the record as it was): the whole case for a change of the
  // registration, the record and the registration for a child record.
  // Errors as ReadCaseDimensions.
  absl::StatusOr<bool> Views(StateView* view, const Uuid& case_id, const Uuid& record_id,
                             const std::optional<RecordDimensions>& was, CaseDimensions* before,
                             CaseDimensions* after);
  // Forgets every kept view.
  void Reset() { kept_.clear(); }

 private:
  const Schema* schema_;
  DimensionNeeds needs_;
  // By case id (16 bytes): the case's view after its last tracked entry.
  absl::flat_hash_map<std::string, CaseDimensions> kept_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_CASE_DIMENSIONS_H_
