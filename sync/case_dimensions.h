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
#include "fieldsync/v1/records.pb.h"
#include "sync/log_codec.h"
#include "sync/record_codec.h"
#include "sync/schema.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

// What a reader asks for.
struct DimensionNeeds {
  // The record types and, of each, the DIMENSION fields whose values it
  // reads (other fields of the type are never decoded).
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> fields;
  // The fields of the case registration whose values the reader takes for
  // other records too (the aggregate counters: a case-level dimension of a
  // metric over another record type). A change of the registration moves
  // the case's other records only when it changes one of them.
  absl::flat_hash_set<std::string> shared_case_fields;

  bool empty() const { return fields.empty(); }
  // Adds what `other` asks for.
  void Add(const DimensionNeeds& other);
};

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
// DIMENSION), their values read from the case log with `read` (which must
// see the entries `view` wrote). kDataLoss when a record state or key does
// not decode, or the log lacks a value; kUnavailable from the store.
absl::StatusOr<CaseDimensions> ReadCaseDimensions(StateView* view, const EntryReader& read,
                                                  const Schema& schema, const DimensionNeeds& needs,
                                                  const Uuid& case_id);

// Record `record_id` of case `case_id` as ReadCaseDimensions reads it;
// nullopt when the state has no such record or its type is not in
// `needs`. With `only`, reads just those of the asked-for fields (the
// others are absent from the answer). Point reads, all left in the view's
// overlay. Errors as ReadCaseDimensions.
absl::StatusOr<std::optional<RecordDimensions>> ReadRecordDimensions(
    StateView* view, const EntryReader& read, const Schema& schema, const DimensionNeeds& needs,
    const Uuid& case_id, const Uuid& record_id, const std::vector<std::string>* only = nullptr);

// The case views around each of a sequence of log entries, read with as
// little as the entries allow. An entry changes the state of its own
// record only (its header and the fields it writes or resolves), so:
//  - what it can change of its record's view (whether the record exists,
//    the asked-for fields it names) is read just before it is applied,
//    with the reads the reconciler makes anyway; a change that leaves that
//    as it was moves no counter and gets no views, nothing else read;
//  - a change of a child record can move only that record (on its
//    registration's values): its views hold just those two;
//  - a change of the registration that changes none of the shared case
//    fields (DimensionNeeds::shared_case_fields) moves only the
//    registration: its views hold just that;
//  - a change of the registration that changes one moves every record of
//    the case: its views hold the whole case, read once (not at all for a
//    new registration: a case has no record before it), then kept, the
//    view after one entry being the view before the next.
// Forget the kept views (Reset) whenever the state changes other than
// through the tracked entries, and when the StateView's writes are
// dropped. Not thread-safe.
//
//   ASSIGN_OR_RETURN(CaseDimensionsTracker::Pending p, tracker.Before(view, read, entry));
//   ... apply the entry to `view`, log it where `read` finds it ...
//   ASSIGN_OR_RETURN(bool moved, tracker.After(view, read, entry, &written, p, &before, &after));
class CaseDimensionsTracker {
 public:
  // `schema` is not owned and must outlive the tracker.
  CaseDimensionsTracker(const Schema* schema, DimensionNeeds needs)
      : schema_(schema), needs_(std::move(needs)) {}

  // What Before read of an entry's record.
  struct Pending {
    // No reader asks for the record type, or an id does not parse (the
    // reconciler refuses the entry): After gives no views.
    bool tracked = false;
    Uuid case_id{};
    Uuid record_id{};
    // The asked-for fields the entry names, and the record as it was with
    // only those.
    std::vector<std::string> fields;
    std::optional<RecordDimensions> was;
  };

  // Whether entries of `record_type` get views (some reader asks for it).
  bool Tracks(std::string_view record_type) const;

  // Before `entry` (ids, record type and fields set) is applied to `view`.
  // Errors as ReadCaseDimensions.
  absl::StatusOr<Pending> Before(StateView* view, const EntryReader& read,
                                 const v1::CaseLogEntry& entry) const;
  // After the entry was applied (accepted): false when it left its
  // record's view as it was. Otherwise true, with the views just after the
  // entry in *after and just before it in *before (the same with the
  // record as it was), holding what the change can move (see the class
  // comment). Errors as ReadCaseDimensions.
  // `applied` is the entry as applied (position set): values it wrote are
  // taken from it rather than read back from the log. `written` (may be
  // null) is its record's state as the reconciler stored it
  // (Reconciler::Apply's `written`), used rather than decoding it again.
  absl::StatusOr<bool> After(StateView* view, const EntryReader& read,
                             const v1::CaseLogEntry& applied, const RecordState* written,
                             const Pending& pending, CaseDimensions* before, CaseDimensions* after);
  // Forgets every kept view.
  void Reset() { kept_.clear(); }

 private:
  // Whether the registration's change from `was` to `is` (read with the
  // same fields) moves its case's other records.
  bool SharesAChange(const RecordDimensions& was, const RecordDimensions& is) const;

  const Schema* schema_;
  DimensionNeeds needs_;
  // By case id (16 bytes): the case's view after its last tracked entry.
  absl::flat_hash_map<std::string, CaseDimensions> kept_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_CASE_DIMENSIONS_H_
