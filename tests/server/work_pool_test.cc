#include "server/work_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/thread_priority.h"
#include "gtest/gtest.h"

namespace fieldsync::server {
namespace {

// Eight tasks that each wait until all eight have started can only finish
// when eight threads run them at once: blocked handlers never hold up one
// another (the reason for the pool).
TEST(WorkPoolTest, BlockedTasksRunSideBySide) {
  constexpr int kTasks = 8;
  WorkPool pool(kTasks);
  absl::BlockingCounter started(kTasks);
  absl::BlockingCounter finished(kTasks);
  absl::Notification all_started;
  std::atomic<int> saw_all{0};
  for (int i = 0; i < kTasks; ++i) {
    pool.Run([&] {
      started.DecrementCount();
      if (all_started.WaitForNotificationWithTimeout(absl::Seconds(30))) ++saw_all;
      finished.DecrementCount();
    });
  }
  started.Wait();
  all_started.Notify();
  finished.Wait();
  EXPECT_EQ(saw_all.load(), kTasks);
}

// Destruction runs what is queued first; nothing submitted is dropped.
TEST(WorkPoolTest, DestructionRunsEveryQueuedTask) {
  std::atomic<int> ran{0};
  absl::Notification release;
  {
    WorkPool pool(1);
    pool.Run([&] {
      release.WaitForNotification();
      ++ran;
    });
    for (int i = 0; i < 50; ++i) pool.Run([&] { ++ran; });
    EXPECT_GE(pool.queued(), 1u);
    release.Notify();
  }
  EXPECT_EQ(ran.load(), 51);
}

// The pool's threads run `niceness_increment` below the priority of the
// thread that made the pool; the maker keeps its own.
TEST(WorkPoolTest, ThreadsRunAtTheMakersNicenessPlusTheIncrement) {
  const int base = ThreadNiceness();
  if (base >= 19) GTEST_SKIP() << "this test already runs at the lowest priority";
  std::vector<int> seen(3, -1);
  {
    WorkPool pool(3, SIZE_MAX, 4);
    absl::BlockingCounter ran(3);
    for (int i = 0; i < 3; ++i) {
      pool.Run([&, i] {
        seen[i] = ThreadNiceness();
        ran.DecrementCount();
      });
    }
    ran.Wait();
  }
  for (int n : seen) EXPECT_EQ(n, std::min(19, base + 4));
  EXPECT_EQ(ThreadNiceness(), base);
  int without_increment = -1;
  {
    WorkPool pool(1);
    pool.Run([&] { without_increment = ThreadNiceness(); });
  }  // the destructor runs the task first
  EXPECT_EQ(without_increment, base);
}

TEST(WorkPoolTest, TasksOfOneThreadRunInSubmissionOrder) {
  std::vector<int> order;
  {
    WorkPool pool(1);
    for (int i = 0; i < 20; ++i) pool.Run([&order, i] { order.push_back(i); });
  }
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
}

// A bounded queue refuses what does not fit instead of growing: with its
// one thread held and 3 tasks waiting, a 4th is refused and never runs;
// once the thread is free the queue drains and takes tasks again.
TEST(WorkPoolTest, TryRunRefusesBeyondTheBoundAndAcceptsAgainOnceDrained) {
  absl::Notification release;
  absl::Notification holding;
  std::atomic<int> ran{0};
  {
    WorkPool pool(1, 3);
    EXPECT_EQ(pool.max_queued(), 3u);
    ASSERT_TRUE(pool.TryRun([&] {
      holding.Notify();
      release.WaitForNotification();
    }));
    holding.WaitForNotification();
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(pool.TryRun([&] { ++ran; })) << i;
    EXPECT_EQ(pool.queued(), 3u);
    bool refused_ran = false;
    EXPECT_FALSE(pool.TryRun([&] { refused_ran = true; }));
    EXPECT_EQ(pool.queued(), 3u);
    // Run (the server's own work) is never refused.
    pool.Run([&] { ++ran; });
    EXPECT_EQ(pool.queued(), 4u);
    release.Notify();
    for (int i = 0; i < 200 && pool.queued() > 0; ++i) absl::SleepFor(absl::Milliseconds(10));
    EXPECT_TRUE(pool.TryRun([&] { ++ran; }));
    EXPECT_FALSE(refused_ran);
  }
  EXPECT_EQ(ran.load(), 5);
}

}  // namespace
}  // namespace fieldsync::server
