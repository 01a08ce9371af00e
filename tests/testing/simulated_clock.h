// A Clock that moves only when the test advances it. Thread-safe.
#ifndef FIELDSYNC_TESTS_TESTING_SIMULATED_CLOCK_H_
#define FIELDSYNC_TESTS_TESTING_SIMULATED_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace fieldsync::testing {

class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1795000000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::testing

#endif  // FIELDSYNC_TESTS_TESTING_SIMULATED_CLOCK_H_
