#include "sync/rebuild.h"

#include <memory>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"
#include "sync/reconcile.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

absl::StatusOr<uint64_t> RebuildStateFromLog(const Schema& schema, storage::Store* source,
                                             storage::Store* target,
                                             size_t entries_per_commit) {
  Reconciler reconciler(&schema);
  std::unique_ptr<storage::Snapshot> snap = source->GetSnapshot();
  std::unique_ptr<storage::Iterator> it =
      source->NewIterator(storage::Cf::kCaseLog, "", "", snap.get());
  storage::WriteBatch batch;
  StateView view(target, &batch);
  uint64_t expected = 1;
  size_t pending = 0;
  for (; it->Valid(); it->Next(), ++expected) {
    ASSIGN_OR_RETURN(uint64_t position, storage::DecodeCaseLogKey(it->key()));
    if (position != expected) {
      return absl::DataLossError(
          absl::StrFormat("case log position %d is missing (found %d)", expected, position));
    }
    v1::CaseLogEntry recorded;
    if (!recorded.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrFormat("case log entry %d does not parse", position));
    }
    v1::CaseLogEntry replay = recorded;
    replay.clear_outcome();
    for (v1::EntryField& f : *replay.mutable_fields()) f.clear_outcome();
    ASSIGN_OR_RETURN(v1::ChangeResult result, reconciler.Apply(&replay, ApplyOptions(), &view));
    if (result.outcome() == v1::CHANGE_OUTCOME_REJECTED ||
        replay.SerializeAsString() != recorded.SerializeAsString()) {
      return absl::DataLossError(absl::StrFormat(
          "case log entry %d does not replay to its recorded outcome (%s)", position,
          result.outcome() == v1::CHANGE_OUTCOME_REJECTED ? "rejected" : "differs"));
    }
    if (++pending >= entries_per_commit) {
      RETURN_IF_ERROR(target->Commit(&batch));
      batch.Clear();
      view.ResetOverlay();
      pending = 0;
    }
  }
  RETURN_IF_ERROR(it->status());
  RETURN_IF_ERROR(target->Commit(&batch));
  return expected - 1;
}

}  // namespace fieldsync::sync
