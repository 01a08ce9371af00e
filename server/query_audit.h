// The audit trail of aggregate queries (DESIGN §8-9): every answered query
// becomes an AdminAction "aggregates.query" (actor, metric, grouping,
// filters, periods; no count) in the audit log, so that differencing
// between answers can be detected after the fact. Events are appended in
// batches, one synced write per interval rather than one per query.
#ifndef FIELDSYNC_SERVER_QUERY_AUDIT_H_
#define FIELDSYNC_SERVER_QUERY_AUDIT_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "audit/log.h"
#include "common/clock.h"
#include "fieldsync/v1/aggregates.pb.h"
#include "storage/store.h"

namespace fieldsync::server {

// The event recorded for an answered query by `actor` (a principal URI).
protocol::AdminAction QueryAction(std::string_view actor, const v1::QueryRequest& request);

// Thread-safe. Not owned: log, store and clock must outlive it. A
// background thread appends what was recorded every `interval`; the
// destructor appends the rest and joins it. A query's event may be lost
// only if the process dies within `interval` of the answer; a failed
// append keeps the events for the next attempt, up to `max_pending`
// (beyond that the oldest are dropped, and the drop is logged with its
// count).
class QueryAuditTrail {
 public:
  QueryAuditTrail(audit::AuditLog* log, storage::Store* store, const Clock* clock,
                  absl::Duration interval = absl::Seconds(2), size_t max_pending = 100000);
  ~QueryAuditTrail();
  QueryAuditTrail(const QueryAuditTrail&) = delete;
  QueryAuditTrail& operator=(const QueryAuditTrail&) = delete;

  // Queues the event; never waits for the disk.
  void Record(protocol::AdminAction action);
  // Appends everything queued in one synced write. kUnavailable from the
  // store or the log (the events stay queued).
  absl::Status Flush();

 private:
  void Run();

  audit::AuditLog* log_;
  storage::Store* store_;
  const Clock* clock_;
  const absl::Duration interval_;
  const size_t max_pending_;
  absl::Mutex flush_mu_;  // one append at a time
  absl::Mutex mu_;
  std::vector<protocol::Event> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_QUERY_AUDIT_H_
