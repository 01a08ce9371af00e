#include "common/clock.h"

#include "absl/time/clock.h"

namespace fieldsync {

absl::Time RealClock::Now() const { return absl::Now(); }

RealClock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace fieldsync
