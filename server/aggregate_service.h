// AggregateService over gRPC's callback API: the deployment's metrics and
// disclosure-controlled counts (DESIGN §9) for analysts and supervisors,
// each scoped to the regions of their registry entry, and the counters'
// verification for administrators. A thin adapter over aggregates/query.h
// and aggregates/counters.h.
#ifndef FIELDSYNC_SERVER_AGGREGATE_SERVICE_H_
#define FIELDSYNC_SERVER_AGGREGATE_SERVICE_H_

#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "aggregates/metrics.h"
#include "common/clock.h"
#include "fieldsync/v1/aggregates.grpc.pb.h"
#include "server/auth.h"
#include "server/query_audit.h"
#include "server/work_pool.h"
#include "storage/store.h"
#include "sync/schema.h"

namespace fieldsync::server {

// Thread-safe. Pointers are not owned and must outlive the service;
// `metrics` is null when the deployment has no metrics file (every call is
// then FAILED_PRECONDITION, naming the file to add).
class AggregateServiceImpl final : public v1::AggregateService::CallbackService {
 public:
  // Not owned; all must outlive the service. `metrics` may be null (no
  // metrics file); `pool` runs VerifyCounters; `recount_dir` is where a
  // recount keeps its scratch state; `trail` (may be null) records every
  // answered query in the audit log.
  AggregateServiceImpl(Authenticator* auth, storage::Store* store,
                       const aggregates::Metrics* metrics, const sync::Schema* schema,
                       const Clock* clock, WorkPool* pool, std::string recount_dir,
                       QueryAuditTrail* trail)
      : auth_(auth),
        store_(store),
        metrics_(metrics),
        schema_(schema),
        clock_(clock),
        pool_(pool),
        recount_dir_(std::move(recount_dir)),
        trail_(trail) {}

  grpc::ServerUnaryReactor* ListMetrics(grpc::CallbackServerContext* context,
                                        const v1::ListMetricsRequest* request,
                                        v1::ListMetricsResponse* response) override;
  grpc::ServerUnaryReactor* Query(grpc::CallbackServerContext* context,
                                  const v1::QueryRequest* request,
                                  v1::QueryResponse* response) override;
  grpc::ServerUnaryReactor* VerifyCounters(grpc::CallbackServerContext* context,
                                           const v1::VerifyCountersRequest* request,
                                           v1::VerifyCountersResponse* response) override;

 private:
  Authenticator* auth_;
  storage::Store* store_;
  const aggregates::Metrics* metrics_;
  const sync::Schema* schema_;
  const Clock* clock_;
  WorkPool* pool_;
  const std::string recount_dir_;
  QueryAuditTrail* trail_;
  // One recount at a time: each takes a scratch store in recount_dir_.
  absl::Mutex verify_mu_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_AGGREGATE_SERVICE_H_
