#include "server/work_pool.h"

#include <algorithm>
#include <utility>

#include "common/logging.h"
#include "common/thread_priority.h"

namespace fieldsync::server {

WorkPool::WorkPool(int threads, size_t max_queued, int niceness_increment)
    : max_queued_(max_queued), niceness_increment_(niceness_increment) {
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkPool::~WorkPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

bool WorkPool::TryRun(std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      if (tasks_.size() >= max_queued_) return false;
      tasks_.push_back(std::move(task));
      return true;
    }
  }
  task();
  return true;
}

void WorkPool::Run(std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      return;
    }
  }
  task();
}

size_t WorkPool::queued() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

void WorkPool::Loop() {
  NameThread("fsd-handler");
  // A new thread starts at its maker's niceness.
  const int makers = ThreadNiceness();
  const int niceness = std::min(19, makers + niceness_increment_);
  if (niceness > makers) {
    absl::Status s = SetThreadNiceness(niceness);
    if (!s.ok()) log::Warn("work_pool.niceness", {{"reason", s.message()}});
  }
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // stopping, and everything ran
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace fieldsync::server
