#include "sync/batch_answer.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

// kDataLoss for a stored answer that cannot be rebuilt; `what` names
// positions and indexes only.
absl::Status Unrebuildable(const BatchIdentity& identity, std::string_view what) {
  return absl::DataLossError(absl::StrFormat(
      "the stored answer of batch %s cannot be rebuilt from the case log: %s; the store is "
      "damaged: restore the latest backup into a new directory and keep this one",
      identity.batch_id.empty() ? std::string_view("(unnamed)") : identity.batch_id, what));
}

bool IsAccepted(v1::ChangeOutcome outcome) {
  return outcome == v1::CHANGE_OUTCOME_APPLIED || outcome == v1::CHANGE_OUTCOME_CONVERGED ||
         outcome == v1::CHANGE_OUTCOME_SUPERSEDED || outcome == v1::CHANGE_OUTCOME_CONFLICT;
}

// The entry read at `position` is one of the answer's accepted changes.
absl::Status CheckEntry(const v1::CaseLogEntry& entry, uint64_t position, uint64_t index,
                        const BatchIdentity& identity) {
  if (entry.position() != position) {
    return Unrebuildable(identity, absl::StrFormat("case log entry %d holds position %d", position,
                                                   entry.position()));
  }
  if (!IsAccepted(entry.outcome()) || entry.has_resolves()) {
    return Unrebuildable(
        identity, absl::StrFormat("case log entry %d is not an accepted device change", position));
  }
  if (!identity.device_id.empty() && entry.writer() != identity.device_id) {
    return Unrebuildable(
        identity, absl::StrFormat("case log entry %d was written by another writer", position));
  }
  // Entries stored since log entry format 3 do not repeat their batch id
  // (sync/log_codec.h); older ones are checked against it.
  if (!identity.batch_id.empty() && !entry.batch_id().empty() &&
      entry.batch_id() != identity.batch_id) {
    return Unrebuildable(identity,
                         absl::StrFormat("case log entry %d belongs to another batch", position));
  }
  if (index < identity.change_ids.size() && !identity.change_ids[index].empty() &&
      entry.change_id() != identity.change_ids[index]) {
    return Unrebuildable(identity, absl::StrFormat("case log entry %d is not the change at index "
                                                   "%d of the batch",
                                                   position, index));
  }
  return absl::OkStatus();
}

}  // namespace

EntryReader CaseLogReader(StateView* view) { return ViewEntryReader(view); }

v1::ChangeResult ChangeResultFromLogEntry(const v1::CaseLogEntry& entry) {
  // Mirrors what Reconciler::Apply answers for the change it logs.
  const uint64_t position = entry.position();
  v1::ChangeResult result;
  result.set_change_id(entry.change_id());
  result.set_outcome(entry.outcome());
  result.set_clock_clamped(entry.clock_clamped());
  result.set_log_position(position);
  result.mutable_fields()->Reserve(entry.fields_size());
  for (const v1::EntryField& f : entry.fields()) {
    v1::FieldResult* fr = result.add_fields();
    fr->set_field(f.field());
    fr->set_outcome(f.outcome());
    fr->set_version(f.version() != 0 ? f.version() : position);
    fr->set_server_set(f.server_set());
  }
  result.set_record_version(position);
  result.set_revived(entry.revived());
  return result;
}

v1::BatchRecord CompactBatchRecord(std::string_view payload_hash, const v1::BatchResult& result) {
  v1::BatchRecord record;
  record.set_payload_hash(std::string(payload_hash));
  record.set_sequence(result.sequence());
  const uint64_t first = result.first_position();
  const uint64_t last = result.last_position();
  bool fits = (first == 0) == (last == 0) && first <= last;
  uint64_t next = first;
  for (int i = 0; fits && i < result.results_size(); ++i) {
    const v1::ChangeResult& r = result.results(i);
    if (r.outcome() == v1::CHANGE_OUTCOME_REJECTED) continue;
    fits = first != 0 && next <= last && r.log_position() == next;
    ++next;
  }
  fits = fits && (first == 0 || next == last + 1);
  if (!fits) {
    *record.mutable_result() = result;
    return record;
  }
  record.set_results_from_log(true);
  v1::BatchResult& kept = *record.mutable_result();
  kept.set_first_position(first);
  kept.set_last_position(last);
  for (int i = 0; i < result.results_size(); ++i) {
    if (result.results(i).outcome() != v1::CHANGE_OUTCOME_REJECTED) continue;
    *kept.add_results() = result.results(i);
    record.add_rejected_index(static_cast<uint32_t>(i));
  }
  return record;
}

absl::StatusOr<v1::BatchResult> RebuildBatchResult(const v1::BatchRecord& record,
                                                   const EntryReader& read_entry,
                                                   const BatchIdentity& identity) {
  if (!record.results_from_log()) return record.result();
  const v1::BatchResult& stored = record.result();
  const int rejected = stored.results_size();
  if (record.rejected_index_size() != rejected) {
    return Unrebuildable(identity, absl::StrFormat("it holds %d rejected results and %d indexes",
                                                   rejected, record.rejected_index_size()));
  }
  const uint64_t first = stored.first_position();
  const uint64_t last = stored.last_position();
  // A batch has far fewer than 2^32 changes; the bound also keeps the
  // count below from overflowing.
  if ((first == 0) != (last == 0) || first > last || last - first >= uint64_t{1} << 32) {
    return Unrebuildable(identity, absl::StrFormat("bad log range %d..%d", first, last));
  }
  const uint64_t accepted = first == 0 ? 0 : last - first + 1;
  const uint64_t total = accepted + static_cast<uint64_t>(rejected);
  if (identity.change_count.has_value() && *identity.change_count != total) {
    return Unrebuildable(identity, absl::StrFormat("it answers %d changes, the batch has %d", total,
                                                   *identity.change_count));
  }
  v1::BatchResult result;
  result.set_first_position(first);
  result.set_last_position(last);
  result.set_sequence(record.sequence());
  uint64_t position = first;
  int next_rejected = 0;
  for (uint64_t index = 0; index < total; ++index) {
    if (next_rejected < rejected && record.rejected_index(next_rejected) == index) {
      const v1::ChangeResult& r = stored.results(next_rejected++);
      if (r.outcome() != v1::CHANGE_OUTCOME_REJECTED) {
        return Unrebuildable(
            identity, absl::StrFormat("the stored result at index %d is not REJECTED", index));
      }
      *result.add_results() = r;
      continue;
    }
    if (first == 0 || position > last) {
      return Unrebuildable(
          identity, absl::StrFormat("its rejected indexes are not ascending and below %d", total));
    }
    v1::CaseLogEntry entry;
    ASSIGN_OR_RETURN(bool found, read_entry(position, &entry));
    if (!found) {
      return Unrebuildable(identity, absl::StrFormat("case log entry %d is missing", position));
    }
    RETURN_IF_ERROR(CheckEntry(entry, position, index, identity));
    *result.add_results() = ChangeResultFromLogEntry(entry);
    ++position;
  }
  if (next_rejected != rejected) {
    return Unrebuildable(
        identity, absl::StrFormat("its rejected indexes are not ascending and below %d", total));
  }
  return result;
}

absl::StatusOr<bool> CompactStoredBatchRecord(v1::BatchRecord* record,
                                              const EntryReader& read_entry,
                                              const BatchIdentity& identity) {
  if (record->results_from_log()) return false;
  // Whatever this release cannot read back stays where it is.
  if (!record->GetReflection()->GetUnknownFields(*record).empty()) return false;
  v1::BatchRecord compact = CompactBatchRecord(record->payload_hash(), record->result());
  if (!compact.results_from_log()) return false;
  compact.set_sequence(record->sequence());
  absl::StatusOr<v1::BatchResult> rebuilt = RebuildBatchResult(compact, read_entry, identity);
  if (absl::IsDataLoss(rebuilt.status())) return false;
  if (!rebuilt.ok()) return rebuilt.status();
  if (rebuilt->SerializeAsString() != record->result().SerializeAsString()) return false;
  *record = std::move(compact);
  return true;
}

}  // namespace fieldsync::sync
