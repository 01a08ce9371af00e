// AggregateService over gRPC's callback API: the deployment's metrics and
// disclosure-controlled counts (DESIGN §9) for analysts and supervisors,
// each scoped to the regions of their registry entry. A thin adapter over
// aggregates/query.h.
#ifndef FIELDSYNC_SERVER_AGGREGATE_SERVICE_H_
#define FIELDSYNC_SERVER_AGGREGATE_SERVICE_H_

#include "aggregates/metrics.h"
#include "common/clock.h"
#include "fieldsync/v1/aggregates.grpc.pb.h"
#include "server/auth.h"
#include "storage/store.h"

namespace fieldsync::server {

// Thread-safe. Pointers are not owned and must outlive the service;
// `metrics` is null when the deployment has no metrics file (every call is
// then FAILED_PRECONDITION, naming the file to add).
class AggregateServiceImpl final : public v1::AggregateService::CallbackService {
 public:
  AggregateServiceImpl(Authenticator* auth, storage::Store* store,
                       const aggregates::Metrics* metrics, const Clock* clock)
      : auth_(auth), store_(store), metrics_(metrics), clock_(clock) {}

  grpc::ServerUnaryReactor* ListMetrics(grpc::CallbackServerContext* context,
                                        const v1::ListMetricsRequest* request,
                                        v1::ListMetricsResponse* response) override;
  grpc::ServerUnaryReactor* Query(grpc::CallbackServerContext* context,
                                  const v1::QueryRequest* request,
                                  v1::QueryResponse* response) override;

 private:
  Authenticator* auth_;
  storage::Store* store_;
  const aggregates::Metrics* metrics_;
  const Clock* clock_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_AGGREGATE_SERVICE_H_
