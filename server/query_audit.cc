#include "server/query_audit.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fieldsync::server {

protocol::AdminAction QueryAction(std::string_view actor, const v1::QueryRequest& request) {
  // Metric, dimension and DIMENSION value names only: never a count, never
  // a case. Each subject reads "name=value".
  protocol::AdminAction a;
  a.actor = std::string(actor);
  a.action = "aggregates.query";
  a.subject_ids.push_back(absl::StrCat("metric=", request.metric()));
  a.subject_ids.push_back(absl::StrCat("group_by=", absl::StrJoin(request.group_by(), ",")));
  for (const v1::DimensionFilter& f : request.filters()) {
    a.subject_ids.push_back(
        absl::StrCat("filter=", f.dimension(), ":", absl::StrJoin(f.values(), "|")));
  }
  a.subject_ids.push_back(
      absl::StrCat("granularity=", v1::Granularity_Name(request.granularity())));
  auto date = [](const v1::Date& d) {
    return d.year() == 0 ? std::string()
                         : absl::StrFormat("%04d-%02d-%02d", d.year(), d.month(), d.day());
  };
  a.subject_ids.push_back(absl::StrCat("period=", date(request.from()), "..", date(request.to())));
  return a;
}

QueryAuditTrail::QueryAuditTrail(audit::AuditLog* log, storage::Store* store, const Clock* clock,
                                 absl::Duration interval, size_t max_pending)
    : log_(log),
      store_(store),
      clock_(clock),
      interval_(interval),
      max_pending_(max_pending),
      thread_([this] { Run(); }) {}

QueryAuditTrail::~QueryAuditTrail() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  if (absl::Status s = Flush(); !s.ok()) {
    log::Error("audit.query_events_lost", {{"reason", std::string(s.message())}});
  }
}

void QueryAuditTrail::Record(protocol::AdminAction action) {
  absl::MutexLock lock(&mu_);
  pending_.push_back(protocol::Event{clock_->Now(), std::move(action)});
  if (pending_.size() > max_pending_) {
    const size_t dropped = pending_.size() - max_pending_;
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(dropped));
    log::Error("audit.query_events_dropped", {{"count", static_cast<uint64_t>(dropped)}});
  }
}

absl::Status QueryAuditTrail::Flush() {
  absl::MutexLock flushing(&flush_mu_);
  std::vector<protocol::Event> events;
  {
    absl::MutexLock lock(&mu_);
    events.swap(pending_);
  }
  if (events.empty()) return absl::OkStatus();
  storage::WriteBatch batch;
  audit::AuditSession session(log_, &batch);
  absl::Status s = session.AppendAll(events).status();
  if (s.ok()) s = store_->Commit(&batch);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    pending_.insert(pending_.begin(), std::make_move_iterator(events.begin()),
                    std::make_move_iterator(events.end()));
    return s;
  }
  session.Committed();
  return absl::OkStatus();
}

void QueryAuditTrail::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&wake), interval_);
      if (stopping_) return;
    }
    if (absl::Status s = Flush(); !s.ok()) {
      log::Warn("audit.query_events_pending", {{"reason", std::string(s.message())}});
    }
  }
}

}  // namespace fieldsync::server
