// Connects sync's ingest to the audit log: one audit event per committed
// unit (a device batch or a supervisor's change), in the same WriteBatch.
#ifndef FIELDSYNC_AUDIT_INGEST_OBSERVER_H_
#define FIELDSYNC_AUDIT_INGEST_OBSERVER_H_

#include <optional>

#include "audit/log.h"
#include "protocol/events.h"
#include "sync/ingest.h"

namespace fieldsync::audit {

// Not thread-safe beyond what Ingest guarantees (one commit at a time).
// The Ingest calls AfterCommit(batch, status) once after each group's
// Store::Commit, with the batch OnCommit saw. The group's appends go
// through one AuditSession, opened by its first OnCommit and ended by
// AfterCommit.
class IngestObserver final : public sync::CommitObserver {
 public:
  explicit IngestObserver(AuditLog* log) : log_(log) {}
  absl::Status OnCommit(const sync::CommittedUnit& unit, storage::WriteBatch* batch) override;
  // Signs one tree head for the group, committed with it
  // (AuditSession::SignHead). Never fails the group: a head that cannot be
  // signed is logged (audit.head.commit) and receipts sign one afterwards.
  absl::Status BeforeCommit(storage::WriteBatch* batch) override;
  void AfterCommit(const storage::WriteBatch* batch, const absl::Status& commit_status) override;

 private:
  AuditLog* log_;
  std::optional<AuditSession> session_;  // the open group's handle
};

// The event that records `unit`. kInternal if an id is not a UUID.
absl::StatusOr<protocol::Event> EventOfUnit(const sync::CommittedUnit& unit);

}  // namespace fieldsync::audit

#endif  // FIELDSYNC_AUDIT_INGEST_OBSERVER_H_
