#include "audit/ingest_observer.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fieldsync::audit {

using protocol::BatchAccepted;
using protocol::CaseChange;
using protocol::Event;
using protocol::Outcomes;

namespace {

Outcomes ToOutcomes(const sync::OutcomeCounts& c) {
  return Outcomes{c.applied, c.converged, c.superseded, c.conflict, c.rejected};
}

absl::StatusOr<std::vector<Uuid>> CaseIds(const std::vector<std::string>& ids) {
  std::vector<Uuid> out;
  for (const std::string& id : ids) {
    absl::StatusOr<Uuid> u = ParseUuid(id);
    if (!u.ok()) return absl::InternalError("a committed case id is not a UUID");
    out.push_back(*u);
  }
  return out;
}

}  // namespace

absl::StatusOr<Event> EventOfUnit(const sync::CommittedUnit& unit) {
  ASSIGN_OR_RETURN(std::vector<Uuid> case_ids, CaseIds(unit.case_ids));
  if (unit.staff_kind != v1::CHANGE_KIND_UNSPECIFIED) {
    CaseChange c;
    c.actor = unit.writer;
    c.change_kind = static_cast<uint8_t>(unit.staff_kind);
    c.first_position = unit.first_position;
    c.last_position = unit.last_position;
    c.outcomes = ToOutcomes(unit.counts);
    c.case_ids = std::move(case_ids);
    return Event{unit.committed_at, std::move(c)};
  }
  if (unit.batch == nullptr) return absl::InternalError("a committed batch lacks its header");
  const sync::BatchMeta& meta = *unit.batch;
  BatchAccepted b;
  b.device_id = unit.writer;
  ASSIGN_OR_RETURN(b.batch_id, ParseUuid(meta.batch_id));
  b.sequence = meta.sequence;
  // What the device signed besides the payload digest, so that the
  // signature can be checked offline.
  b.sealing_key_id = meta.sealing_key_id;
  b.compression = static_cast<uint8_t>(meta.compression);
  if (meta.sealed_batch_sha256.size() != 32 || meta.signature.size() != 64) {
    return absl::InternalError("a committed batch lacks its payload hash or signature");
  }
  std::copy(meta.sealed_batch_sha256.begin(), meta.sealed_batch_sha256.end(),
            b.payload_sha256.begin());
  std::copy(meta.signature.begin(), meta.signature.end(), b.signature.begin());
  b.first_position = unit.first_position;
  b.last_position = unit.last_position;
  b.outcomes = ToOutcomes(unit.counts);
  b.case_ids = std::move(case_ids);
  return Event{unit.committed_at, std::move(b)};
}

absl::Status IngestObserver::OnCommit(const sync::CommittedUnit& unit, storage::WriteBatch* batch) {
  ASSIGN_OR_RETURN(Event event, EventOfUnit(unit));
  if (session_.has_value() && !session_->holds_session()) session_.reset();
  if (!session_.has_value()) session_.emplace(log_, batch);
  return session_->Append(event).status();
}

absl::Status IngestObserver::BeforeCommit(storage::WriteBatch* /*batch*/) {
  if (!session_.has_value()) return absl::OkStatus();
  if (absl::Status s = session_->SignHead(); !s.ok()) {
    log::Error("audit.head.commit", {{"reason", s.message()}});
  }
  return absl::OkStatus();
}

void IngestObserver::AfterCommit(const storage::WriteBatch* batch,
                                 const absl::Status& commit_status) {
  if (!session_.has_value()) return;
  if (commit_status.ok()) {
    session_->Committed();
  } else {
    session_->Abort();
  }
  session_.reset();
}

}  // namespace fieldsync::audit
