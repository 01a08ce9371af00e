#include "server/work_pool.h"

#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
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

TEST(WorkPoolTest, TasksOfOneThreadRunInSubmissionOrder) {
  std::vector<int> order;
  {
    WorkPool pool(1);
    for (int i = 0; i < 20; ++i) pool.Run([&order, i] { order.push_back(i); });
  }
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
}

}  // namespace
}  // namespace fieldsync::server
