#include "sync/rebuild.h"

#include <limits>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"
#include "sync/log_codec.h"
#include "sync/reconcile.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

absl::StatusOr<uint64_t> RebuildStateFromLog(const Schema& schema, storage::Store* source,
                                             storage::Store* target, size_t entries_per_commit) {
  RebuildOptions options;
  options.entries_per_commit = entries_per_commit;
  return RebuildStateFromLog(schema, source, target, options);
}

absl::StatusOr<uint64_t> RebuildStateFromLog(const Schema& schema, storage::Store* source,
                                             storage::Store* target,
                                             const RebuildOptions& rebuild) {
  Reconciler reconciler(&schema);
  std::unique_ptr<storage::Snapshot> own;
  if (rebuild.snapshot == nullptr) own = source->GetSnapshot();
  const storage::Snapshot* snap = rebuild.snapshot != nullptr ? rebuild.snapshot : own.get();
  std::unique_ptr<storage::Iterator> it = source->NewIterator(storage::Cf::kCaseLog, "", "", snap);
  storage::WriteBatch batch;
  // The state names fields, types and writers with the log's ids.
  RETURN_IF_ERROR(target->names().Adopt(source->names(), &batch));
  StateView view(target, &batch);
  // Kept while the overlay is: a commit below starts both afresh.
  CaseDimensionsTracker dimensions(&schema,
                                   rebuild.observer ? rebuild.dimension_needs : DimensionNeeds());
  CaseDimensions before, after;  // the observer's, reused
  uint64_t expected = 1;
  size_t pending = 0;
  for (; it->Valid(); it->Next(), ++expected) {
    ASSIGN_OR_RETURN(uint64_t position, storage::DecodeCaseLogKey(it->key()));
    if (position != expected) {
      return absl::DataLossError(
          absl::StrFormat("case log position %d is missing (found %d)", expected, position));
    }
    v1::CaseLogEntry recorded;
    if (absl::Status s = DecodeLogEntry(it->value(), position, source->names(), &recorded);
        !s.ok()) {
      return absl::DataLossError(absl::StrFormat("case log entry %d: %s", position, s.message()));
    }
    v1::CaseLogEntry replay = recorded;
    replay.clear_outcome();
    for (v1::EntryField& f : *replay.mutable_fields()) f.clear_outcome();
    replay.clear_revived();
    for (v1::EntryField& f : *replay.mutable_fields()) f.clear_version();
    ApplyOptions options;
    options.replay = true;
    options.read_entry = [&](uint64_t at, v1::CaseLogEntry* out) -> absl::StatusOr<bool> {
      return ReadLogEntry(source, at, out, snap);
    };
    // What the entry can move of its record's DIMENSION view, read before
    // it is applied, when the observer asks for its record type.
    ASSIGN_OR_RETURN(const CaseDimensionsTracker::Pending dims,
                     dimensions.Before(&view, options.read_entry, replay));
    RecordState written;
    ASSIGN_OR_RETURN(v1::ChangeResult result, reconciler.Apply(&replay, options, &view, &written));
    if (result.outcome() == v1::CHANGE_OUTCOME_REJECTED ||
        (position >= rebuild.compare_from &&
         replay.SerializeAsString() != recorded.SerializeAsString())) {
      return absl::DataLossError(absl::StrFormat(
          "case log entry %d does not replay to its recorded outcome (%s)", position,
          result.outcome() == v1::CHANGE_OUTCOME_REJECTED ? "rejected" : "differs"));
    }
    if (rebuild.observer) {
      ASSIGN_OR_RETURN(const bool changed, dimensions.After(&view, options.read_entry, replay,
                                                            &written, dims, &before, &after));
      RETURN_IF_ERROR(
          rebuild.observer(replay, changed ? &before : nullptr, changed ? &after : nullptr));
    }
    if (++pending >= rebuild.entries_per_commit) {
      view.FlushSums();
      RETURN_IF_ERROR(target->Commit(&batch));
      batch.Clear();
      view.ResetOverlay();
      dimensions.Reset();
      pending = 0;
    }
  }
  RETURN_IF_ERROR(it->status());
  view.FlushSums();
  RETURN_IF_ERROR(target->Commit(&batch));
  return expected - 1;
}

absl::StatusOr<StateUpgrade> BringStateToCurrentRules(const Schema& schema, storage::Store* store) {
  StateUpgrade upgrade;
  const std::string rules_key = storage::EncodeMetadataKey(kMergeRulesName);
  const std::string current = std::to_string(kMergeRules);
  absl::StatusOr<std::string> stored = store->Get(storage::Cf::kMetadata, rules_key);
  if (stored.ok() && *stored == current) return upgrade;
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  std::unique_ptr<storage::Iterator> first =
      store->NewIterator(storage::Cf::kCaseLog, "", "", nullptr);
  RETURN_IF_ERROR(first->status());
  const bool has_log = first->Valid();
  first.reset();
  if (has_log) {
    // Every state key sorts below 64 0xff bytes (ids are 16 bytes).
    const std::string end(64, '\xff');
    storage::WriteBatch clear;
    clear.Delete(storage::Cf::kMetadata, rules_key);
    for (storage::Cf cf :
         {storage::Cf::kRecords, storage::Cf::kCaseIndex, storage::Cf::kConflicts}) {
      clear.DeleteRange(cf, "", end);
    }
    RETURN_IF_ERROR(store->Commit(&clear));
    RebuildOptions options;
    options.compare_from = std::numeric_limits<uint64_t>::max();
    ASSIGN_OR_RETURN(upgrade.entries, RebuildStateFromLog(schema, store, store, options));
    upgrade.rebuilt = true;
  }
  uint32_t stored_rules = 0;
  if (stored.ok() && !absl::SimpleAtoi(*stored, &stored_rules)) stored_rules = 0;
  storage::WriteBatch mark;
  if (stored_rules < kMergeRulesDecisions) {
    mark.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(kMergeRulesFromName),
             std::to_string(upgrade.entries + 1));
  }
  mark.Put(storage::Cf::kMetadata, rules_key, current);
  RETURN_IF_ERROR(store->Commit(&mark));
  return upgrade;
}

}  // namespace fieldsync::sync
