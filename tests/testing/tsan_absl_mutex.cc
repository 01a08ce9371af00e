// ThreadSanitizer builds only (FIELDSYNC_TSAN): makes absl::Mutex visible to
// TSan.
//
// Debian's Abseil is a shared library built without TSan, and absl::Mutex
// locks with atomics and futex calls of its own (not pthread, which TSan
// intercepts in any library). TSan therefore sees no lock or unlock, no
// happens-before edge between two critical sections, and reports every
// access to data a Mutex guards as a race. (Abseil annotates its Mutex for
// TSan, but only when Abseil itself is compiled with -fsanitize=thread.)
//
// This file is linked into every test executable of a TSan build. It
// defines absl::Mutex's and absl::CondVar's out-of-line entry points in the
// executable, which the dynamic linker then binds in place of the shared
// library's (symbol interposition: calls from our code, from Abseil's own
// Notification and from gRPC all reach these). Each one tells TSan what it
// does (__tsan_mutex_pre_lock / post_lock / pre_unlock / post_unlock, the
// annotations Abseil's own TSan build makes) and calls the library's
// function, found with dlsym(RTLD_NEXT). Between a pre_ and its post_
// annotation TSan ignores memory accesses, as it does inside an annotated
// Abseil, so a Condition that Abseil evaluates while it hands the lock over
// is not reported.
//
// Covered: Lock, Unlock, TryLock, ReaderLock, ReaderUnlock, ReaderTryLock,
// the LockWhen / ReaderLockWhen / Await families, and CondVar::Wait*. Every
// other member is inline in the header over these (WriterLock, MutexLock,
// ReaderMutexLock, ...) or takes no lock.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIELDSYNC_TSAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FIELDSYNC_TSAN_BUILD 1
#endif

#ifdef FIELDSYNC_TSAN_BUILD

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

// The shared library's definition of `mangled`; aborts if it has none (an
// Abseil whose ABI namespace is not the one this file was compiled with).
template <typename Fn>
Fn Real(const char* mangled) {
  void* sym = dlsym(RTLD_NEXT, mangled);
  if (sym == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in Abseil: %s\n", mangled, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

// The inline ABI namespace of Debian 12's Abseil (ABSL_NAMESPACE_BEGIN is
// "inline namespace debian3 {"). With another Abseil the definitions below
// get other names and the lookups fail with a message on first use.
#define FIELDSYNC_ABSL_NS "debian3"
#define MUTEX_SYM(name) "_ZN4absl" "7" FIELDSYNC_ABSL_NS "5Mutex" name
#define CONDVAR_SYM(name) "_ZN4absl" "7" FIELDSYNC_ABSL_NS "7CondVar" name

// Abseil's entry points call each other through the same interposable
// symbols (LockWhenWithTimeout calls LockWhenWithDeadline, Notification
// calls Lock): only the outermost call on a thread tells TSan.
thread_local int nesting = 0;
struct Nest {
  Nest() : outer(nesting++ == 0) {}
  ~Nest() { --nesting; }
  const bool outer;
};

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

}  // namespace

// These definitions are what the header's lock annotations describe, but
// the analysis cannot see the lock taken through a function pointer.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wthread-safety-analysis"
#endif

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>(MUTEX_SYM("4LockEv"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  real(this);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>(MUTEX_SYM("10ReaderLockEv"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, kRead);
  real(this);
  if (n.outer) __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>(MUTEX_SYM("7TryLockEv"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, kTry);
  const bool locked = real(this);
  if (n.outer) __tsan_mutex_post_lock(this, kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>(MUTEX_SYM("13ReaderTryLockEv"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, kRead | kTry);
  const bool locked = real(this);
  if (n.outer) __tsan_mutex_post_lock(this, kRead | kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>(MUTEX_SYM("6UnlockEv"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(this, 0);
  real(this);
  if (n.outer) __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>(MUTEX_SYM("12ReaderUnlockEv"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(this, kRead);
  real(this);
  if (n.outer) __tsan_mutex_post_unlock(this, kRead);
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(MUTEX_SYM("8LockWhenERKNS0_9ConditionE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real =
      Real<void (*)(Mutex*, const Condition&)>(MUTEX_SYM("14ReaderLockWhenERKNS0_9ConditionE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, kRead);
  real(this, cond);
  if (n.outer) __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      MUTEX_SYM("19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, timeout);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);  // held whether or not the condition is true
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      MUTEX_SYM("20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, deadline);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      MUTEX_SYM("25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, kRead);
  const bool met = real(this, cond, timeout);
  if (n.outer) __tsan_mutex_post_lock(this, kRead, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      MUTEX_SYM("26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_lock(this, kRead);
  const bool met = real(this, cond, deadline);
  if (n.outer) __tsan_mutex_post_lock(this, kRead, 0);
  return met;
}

// Await releases the lock while it waits and takes it again: an unlock and
// a lock for TSan. (Held in write mode: Abseil's Await in reader mode
// re-acquires in reader mode, which TSan models the same way here since
// the flags only matter for its read/write lock checks.)
void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(MUTEX_SYM("5AwaitERKNS0_9ConditionE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(this, 0);
  if (n.outer) __tsan_mutex_post_unlock(this, 0);
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      MUTEX_SYM("16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(this, 0);
  if (n.outer) __tsan_mutex_post_unlock(this, 0);
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, timeout);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      MUTEX_SYM("17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(this, 0);
  if (n.outer) __tsan_mutex_post_unlock(this, 0);
  if (n.outer) __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, deadline);
  if (n.outer) __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>(CONDVAR_SYM("4WaitEPNS0_5MutexE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(mu, 0);
  if (n.outer) __tsan_mutex_post_unlock(mu, 0);
  if (n.outer) __tsan_mutex_pre_lock(mu, 0);
  real(this, mu);
  if (n.outer) __tsan_mutex_post_lock(mu, 0, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      CONDVAR_SYM("15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(mu, 0);
  if (n.outer) __tsan_mutex_post_unlock(mu, 0);
  if (n.outer) __tsan_mutex_pre_lock(mu, 0);
  const bool timed_out = real(this, mu, timeout);
  if (n.outer) __tsan_mutex_post_lock(mu, 0, 0);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Time)>(
      CONDVAR_SYM("16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE"));
  const Nest n;
  if (n.outer) __tsan_mutex_pre_unlock(mu, 0);
  if (n.outer) __tsan_mutex_post_unlock(mu, 0);
  if (n.outer) __tsan_mutex_pre_lock(mu, 0);
  const bool timed_out = real(this, mu, deadline);
  if (n.outer) __tsan_mutex_post_lock(mu, 0, 0);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl

#endif  // FIELDSYNC_TSAN_BUILD
