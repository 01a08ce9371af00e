// ThreadSanitizer helpers; each compiles to nothing in other builds.
#ifndef FIELDSYNC_COMMON_TSAN_H_
#define FIELDSYNC_COMMON_TSAN_H_

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIELDSYNC_TSAN_ENABLED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FIELDSYNC_TSAN_ENABLED 1
#endif

#ifdef FIELDSYNC_TSAN_ENABLED
// In the TSan runtime (compiler-rt), not declared by its public headers.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace fieldsync {

// While alive, TSan does not check this thread's memory accesses (its
// synchronization still counts). For a call into a library built without
// TSan that hands our data between its threads with synchronization TSan
// cannot see: Debian's static RocksDB, whose write group leader copies the
// other writers' batches (memcpy, which TSan intercepts even there) after
// they joined the group with atomics compiled without TSan. Only the
// interceptors' accesses (memcpy, memset, ...) inside the call are skipped:
// RocksDB's own code is not instrumented anyway.
class ScopedTsanIgnoreAccesses {
 public:
#ifdef FIELDSYNC_TSAN_ENABLED
  ScopedTsanIgnoreAccesses() { __tsan_ignore_thread_begin(); }
  ~ScopedTsanIgnoreAccesses() { __tsan_ignore_thread_end(); }
#else
  // User-provided, so that a scope holding one is not an unused variable.
  ScopedTsanIgnoreAccesses() {}  // NOLINT(modernize-use-equals-default)
#endif
  ScopedTsanIgnoreAccesses(const ScopedTsanIgnoreAccesses&) = delete;
  ScopedTsanIgnoreAccesses& operator=(const ScopedTsanIgnoreAccesses&) = delete;
};

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_TSAN_H_
