#include "common/thread_priority.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

namespace fieldsync {

absl::Status SetThreadNiceness(int nice) {
  if (nice < 0 || nice > 19) {
    return absl::InvalidArgumentError(absl::StrFormat("thread niceness %d is outside 0..19", nice));
  }
  // On Linux PRIO_PROCESS with a thread id sets that one thread.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) != 0) {
    const int error = errno;
    return absl::PermissionDeniedError(
        absl::StrFormat("cannot set this thread's niceness to %d: %s", nice, strerror(error)));
  }
  return absl::OkStatus();
}

int ThreadNiceness() { return getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())); }

void NameThread(std::string_view name) {
  const std::string cut(name.substr(0, 15));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace fieldsync
