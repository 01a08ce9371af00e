#include "server/aggregate_service.h"

#include "absl/time/civil_time.h"
#include "aggregates/counters.h"
#include "aggregates/query.h"
#include "common/logging.h"
#include "server/rpc.h"

namespace fieldsync::server {
namespace {

absl::Status NoMetrics() {
  return absl::FailedPreconditionError(
      "this deployment has no metrics: add DATA_DIR/metrics.textproto (the shipped default is "
      "deploy/metrics/child_protection.textproto) and restart fieldsyncd");
}

aggregates::Scope ScopeOf(const Caller& caller) {
  aggregates::Scope scope;
  scope.regions.insert(caller.principal.regions().begin(), caller.principal.regions().end());
  return scope;
}

}  // namespace

grpc::ServerUnaryReactor* AggregateServiceImpl::ListMetrics(grpc::CallbackServerContext* context,
                                                            const v1::ListMetricsRequest*,
                                                            v1::ListMetricsResponse* response) {
  return RunUnary(context, "/fieldsync.v1.AggregateService/ListMetrics", auth_,
                  [&](const Caller& caller) -> absl::Status {
                    if (metrics_ == nullptr) return NoMetrics();
                    for (const aggregates::Metric& m : metrics_->metrics()) {
                      *response->add_metrics() = m.def;
                    }
                    response->set_min_cell_count(metrics_->min_cell_count());
                    response->set_region_dimension(metrics_->region_dimension());
                    *response->mutable_scope_regions() = caller.principal.regions();
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* AggregateServiceImpl::Query(grpc::CallbackServerContext* context,
                                                      const v1::QueryRequest* request,
                                                      v1::QueryResponse* response) {
  // Protecting a sparse table solves linear programs (seconds for the
  // largest): off gRPC's polling threads.
  return RunUnaryBlocking(context, "/fieldsync.v1.AggregateService/Query", auth_, pool_,
                          [this, request, response](const Caller& caller) -> absl::Status {
                            if (metrics_ == nullptr) return NoMetrics();
                            absl::CivilDay today =
                                absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone());
                            absl::StatusOr<v1::QueryResponse> answer = aggregates::RunQuery(
                                store_, *metrics_, *request, ScopeOf(caller), today);
                            if (!answer.ok()) return answer.status();
                            *response = *std::move(answer);
                            if (trail_ != nullptr)
                              trail_->Record(QueryAction(caller.uri, *request));
                            return absl::OkStatus();
                          });
}

grpc::ServerUnaryReactor* AggregateServiceImpl::VerifyCounters(
    grpc::CallbackServerContext* context, const v1::VerifyCountersRequest*,
    v1::VerifyCountersResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AggregateService/VerifyCounters", auth_, pool_,
      [this, response](const Caller&) -> absl::Status {
        if (metrics_ == nullptr) return NoMetrics();
        absl::MutexLock lock(&verify_mu_);
        absl::StatusOr<aggregates::VerifyOutcome> v =
            aggregates::VerifyCounters(store_, *metrics_, *schema_, recount_dir_);
        if (!v.ok()) return v.status();
        response->set_entries(v->entries);
        response->set_counters(v->counters);
        for (const aggregates::CounterDifference& d : v->differences) {
          v1::CounterDifference* out = response->add_differences();
          out->set_metric(d.metric);
          out->set_granularity(d.granularity == 'W'   ? "week"
                               : d.granularity == 'M' ? "month"
                                                      : "stock");
          out->set_period(d.period);
          for (const std::string& c : d.cell) out->add_cell(c);
          out->set_live(d.live);
          out->set_recount(d.recount);
        }
        log::Info("aggregates.verified",
                  {{"entries", v->entries},
                   {"counters", v->counters},
                   {"differences", static_cast<uint64_t>(v->differences.size())}});
        return absl::OkStatus();
      });
}

}  // namespace fieldsync::server
