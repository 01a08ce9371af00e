// A fixed pool of threads for RPC handlers that block: a push waits for its
// commit group's synced write, an enrolment signs a certificate and commits.
// gRPC's callback API runs handlers on its own few polling threads; a
// handler that blocks there stalls every other call those threads would
// serve (and, with one or two of them, serializes pushes so that they never
// share a commit group). Such handlers hand their work to this pool and
// finish the call from it (server/rpc.h RunUnaryBlocking).
#ifndef FIELDSYNC_SERVER_WORK_POOL_H_
#define FIELDSYNC_SERVER_WORK_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace fieldsync::server {

// Thread-safe. Tasks run in submission order on the first free thread.
class WorkPool {
 public:
  // REQUIRES: threads >= 1.
  explicit WorkPool(int threads);
  // Runs every task already submitted, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task`. After the destructor has begun, runs it on the caller's
  // thread instead (nothing submitted is ever dropped).
  void Run(std::function<void()> task);

  // Tasks queued and not yet started (for tests and metrics).
  size_t queued() const;

 private:
  void Loop();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_WORK_POOL_H_
