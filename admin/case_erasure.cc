#include "admin/case_erasure.h"

#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "protocol/events.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "sync/errors.h"

namespace fieldsync::admin {

absl::StatusOr<ErasedCase> CaseErasure::Erase(std::string_view case_id,
                                              std::string_view confirm_case_id,
                                              const std::string& actor) {
  absl::StatusOr<Uuid> id = ParseUuid(case_id);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        "case_id must be a case UUID, e.g. "
        "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b");
  }
  absl::StatusOr<Uuid> confirm = ParseUuid(confirm_case_id);
  if (!confirm.ok() || *confirm != *id) {
    return absl::InvalidArgumentError(
        "confirm_case_id must repeat case_id exactly: erasure cannot be undone, check the id");
  }
  const std::string text = FormatUuid(*id);

  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> registration =
      store_->Get(storage::Cf::kRecords, storage::EncodeRecordStateKey(*id, *id));
  if (absl::IsNotFound(registration.status())) {
    v1::SyncErrorDetail detail;
    detail.set_case_id(text);
    return sync::SyncError(
        absl::StatusCode::kNotFound, v1::SYNC_ERROR_REASON_NOT_FOUND,
        absl::StrFormat("no case %s on this server: check the id (nothing was erased)", text),
        std::move(detail));
  }
  RETURN_IF_ERROR(registration.status());
  ASSIGN_OR_RETURN(keys::DekState state, keys_->State(*id));
  if (state == keys::DekState::kErased) {
    // Finishes an earlier erasure whose compaction failed; a no-op otherwise.
    const std::string key = storage::EncodeCaseDekKey(*id);
    RETURN_IF_ERROR(store_->CompactRange(storage::Cf::kKeys, key, key));
    return absl::FailedPreconditionError(
        absl::StrFormat("case %s is already erased: nothing to do", text));
  }

  storage::WriteBatch batch;
  audit::AuditSession session(audit_, &batch);
  protocol::CaseErased event;
  event.actor = actor;
  event.case_id = *id;
  ASSIGN_OR_RETURN(uint64_t leaf, session.Append(protocol::Event{clock_->Now(), std::move(event)}));
  if (absl::Status s = keys_->CommitErasure(*id, &batch); !s.ok()) {
    log::Error("case.erase_failed",
               {{"case_id", text}, {"committed", "no"}, {"reason", s.message()}});
    return s;
  }
  // The handle ends before the compaction: other commits (pushes, other
  // audit appends) wait for an open session, never for the compaction.
  session.Committed();
  if (absl::Status s = keys_->CompactErased(*id); !s.ok()) {
    log::Error("case.erase_failed",
               {{"case_id", text}, {"committed", "yes"}, {"reason", s.message()}});
    return s;
  }
  ErasedCase out;
  out.case_id = text;
  out.audit_leaf_index = leaf;
  out.audit_tree_size = audit_->size();
  log::Info("case.erased", {{"case_id", text}, {"actor", actor}, {"audit_leaf", leaf}});
  return out;
}

}  // namespace fieldsync::admin
