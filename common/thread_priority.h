// The CPU priority and name of the calling thread (Linux).
//
// The server's commit step is one thread that every push waits for; the
// handlers that prepare batches run beside it on the same few cores. Run at
// a lower priority (a higher niceness), they take the CPU the committer
// leaves rather than sharing it evenly with it. Raising a thread's niceness
// needs no privilege; lowering it again does, so a thread lowered stays so.
#ifndef FIELDSYNC_COMMON_THREAD_PRIORITY_H_
#define FIELDSYNC_COMMON_THREAD_PRIORITY_H_

#include <string_view>

#include "absl/status/status.h"

namespace fieldsync {

// Sets the calling thread's niceness to `nice` (0 to 19; the scheduler
// gives a thread at niceness n about 1.25^-n of the CPU share of one at 0).
// Fails (kInvalidArgument) outside 0..19, or as the system refuses: a thread
// already at a higher niceness cannot come back without privilege.
absl::Status SetThreadNiceness(int nice);

// The calling thread's niceness.
int ThreadNiceness();

// Names the calling thread for top, perf and crash dumps (the first 15
// bytes of `name`). Best effort.
void NameThread(std::string_view name);

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_THREAD_PRIORITY_H_
