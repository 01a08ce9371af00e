// ThreadSanitizer builds only: checks tests/testing/tsan_absl_mutex.cc.
// Two threads increment a counter under an absl::Mutex (and, with an
// argument, a second counter without it). Run by ctest twice: without an
// argument TSan must report nothing (the lock is seen), with one it must
// report the unguarded counter (TSan still finds real races).
#include <cstdio>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace {
absl::Mutex mu;
int guarded ABSL_GUARDED_BY(mu) = 0;
int unguarded = 0;
}  // namespace

int main(int argc, char**) {
  const bool race = argc > 1;
  auto work = [race] {
    for (int i = 0; i < 10000; ++i) {
      {
        absl::MutexLock lock(&mu);
        ++guarded;
      }
      if (race) ++unguarded;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  absl::MutexLock lock(&mu);
  std::printf("guarded %d\n", guarded);
  return guarded == 20000 ? 0 : 1;
}
