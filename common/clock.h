// The clock that fieldsync reads. main() owns the real one; tests use
// SimulatedClock (tests/testing/) and advance it instead of sleeping.
#ifndef FIELDSYNC_COMMON_CLOCK_H_
#define FIELDSYNC_COMMON_CLOCK_H_

#include "absl/time/time.h"

namespace fieldsync {

// Thread-safe: implementations must allow concurrent Now() calls.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Wall-clock time from absl::Now().
class RealClock final : public Clock {
 public:
  absl::Time Now() const override;
  // A process-wide instance; never destroyed.
  static RealClock* Get();
};

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_CLOCK_H_
