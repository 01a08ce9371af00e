// A fixed pool of threads for RPC handlers that block: a push waits for its
// commit group's synced write, an enrolment signs a certificate and commits.
// gRPC's callback API runs handlers on its own few polling threads; a
// handler that blocks there stalls every other call those threads would
// serve (and, with one or two of them, serializes pushes so that they never
// share a commit group). Such handlers hand their work to this pool and
// finish the call from it (server/rpc.h RunUnaryBlocking).
//
// The threads may run at a lower CPU priority than the thread that makes
// the pool (`niceness_increment`): the server's pool does, below the commit
// thread that every push waits for (sync/ingest.h), so that batches being
// prepared take the CPU the committer leaves instead of an even share of it.
//
// The queue is bounded: a caller's task submitted while `max_queued` tasks
// wait is refused (TryRun is false; the call is answered RESOURCE_EXHAUSTED
// SERVER_BUSY), so that a burst of calls cannot grow it without end.
#ifndef FIELDSYNC_SERVER_WORK_POOL_H_
#define FIELDSYNC_SERVER_WORK_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/limits.h"

namespace fieldsync::server {

// Thread-safe. Tasks run in submission order on the first free thread.
class WorkPool {
 public:
  // REQUIRES: threads >= 1, max_queued >= 1, niceness_increment >= 0 (the
  // threads' niceness is the maker's plus it, at most 19).
  explicit WorkPool(int threads, size_t max_queued = SIZE_MAX, int niceness_increment = 0);
  // Runs every task already submitted, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task` unless `max_queued` tasks are waiting already: then
  // returns false and destroys `task` without running it. After the
  // destructor has begun, runs it on the caller's thread instead (true).
  bool TryRun(std::function<void()> task);

  // Queues `task` whatever the queue's length: for the server's own work
  // that must run, never for a caller's request (use TryRun). After the
  // destructor has begun, runs it on the caller's thread instead (nothing
  // submitted is ever dropped).
  void Run(std::function<void()> task);

  // Tasks queued and not yet started (for tests and metrics).
  size_t queued() const;
  size_t max_queued() const { return max_queued_; }

  // The concurrency limits of the calls that run here (RunUnaryBlocking
  // admits each call's principal before its handler). Not owned; null: no
  // limits. REQUIRES: set before calls are served.
  void set_call_limits(const CallLimits* limits) { call_limits_ = limits; }
  const CallLimits* call_limits() const { return call_limits_; }

 private:
  void Loop();

  const size_t max_queued_;
  const int niceness_increment_;
  const CallLimits* call_limits_ = nullptr;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_WORK_POOL_H_
