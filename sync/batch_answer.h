// The stored answer of a committed device batch (its idempotency record,
// v1.BatchRecord in Cf::kBatches): what of the answer is stored, and how a
// retried batch gets the very answer its first delivery got, rebuilt from
// the case log.
//
// Every accepted change's ChangeResult follows from its case log entry, and
// a batch's accepted changes occupy consecutive log positions in batch
// order, so the compact record keeps only what the log cannot give back:
// the payload hash, the sequence, the log range and the rejected changes'
// results with their indexes. Records in the full form (the whole answer,
// as written before storage layout v2) are still answered as stored.
#ifndef FIELDSYNC_SYNC_BATCH_ANSWER_H_
#define FIELDSYNC_SYNC_BATCH_ANSWER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fieldsync/v1/records.pb.h"
#include "sync/log_codec.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

// Reads the case log through `view` (the committer's view, so that a retry
// in the same commit group reads the group's own entries). The one reader
// of case log entries for stored answers. `view` is not owned and must
// outlive the returned function.
EntryReader CaseLogReader(StateView* view);

// What the reader of a stored answer knows of the batch it answers; every
// member that is set (non-empty) is checked against the log entries and
// the rebuilt answer.
struct BatchIdentity {
  std::string_view device_id;  // every entry's writer
  // Every entry's batch_id (canonical UUID text), where the entry holds one
  // (entries stored before log entry format 3, sync/log_codec.h).
  std::string_view batch_id;
  std::optional<size_t> change_count;  // the number of results (the payload's changes)
  // By index, the change id each of the payload's changes is logged under;
  // an empty id (or none at that index) is not checked.
  std::span<const std::string> change_ids = {};
};

// The ChangeResult the ingest gave for the change logged as `entry`:
// change_id, outcome, clock_clamped, log_position and record_version (the
// entry's position), one FieldResult per entry field in entry order
// (version: EntryField.version, or the position when that is 0), revived.
v1::ChangeResult ChangeResultFromLogEntry(const v1::CaseLogEntry& entry);

// The record to store for a batch with payload hash `payload_hash` that was
// answered `result`: the compact form (results_from_log) when the accepted
// results (every one not REJECTED) carry the log positions first_position,
// first_position + 1, ... last_position in batch order, as the ingest
// assigns them; otherwise (never for an answer the ingest made) the full
// form, so that a retry always gets `result`.
v1::BatchRecord CompactBatchRecord(std::string_view payload_hash, const v1::BatchResult& result);

// The answer a retry of the batch gets: a full-form record's `result` as
// stored; for a compact record, the rejected results at their indexes and,
// at every other index in order, the result rebuilt from the next log
// entry of first_position..last_position (read with `read_entry`).
// A compact record is checked as it is rebuilt: kDataLoss, naming the
// position or index, when it is inconsistent (rejected results and indexes
// differ in number, indexes not ascending or out of range, a stored result
// not REJECTED, a bad log range), when an entry is missing or does not
// belong to the answer (another position, no accepted outcome, a writer or
// batch id other than `identity`'s), or when its change count differs from
// identity.change_count. Other errors of `read_entry` are returned as they
// are. A full-form record is answered as stored, unchecked, as before.
absl::StatusOr<v1::BatchResult> RebuildBatchResult(const v1::BatchRecord& record,
                                                   const EntryReader& read_entry,
                                                   const BatchIdentity& identity = {});

// Upgrade of a stored record to the compact form. Rewrites a full-form
// *record into the compact form and returns true only if rebuilding the
// compact form from the log gives exactly the stored answer (the same
// serialized BatchResult, its sequence equal to the record's). Returns
// false and leaves *record as it is when it is compact already, when the
// answer cannot be rebuilt from the log (entries missing or different,
// positions not consecutive in batch order), or when the record carries
// fields this release does not know. Errors of `read_entry` other than
// kDataLoss are returned (the record unchanged).
// REQUIRES: `read_entry` reads the log as the compacted record will be read.
absl::StatusOr<bool> CompactStoredBatchRecord(v1::BatchRecord* record,
                                              const EntryReader& read_entry,
                                              const BatchIdentity& identity = {});

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_BATCH_ANSWER_H_
