#include "common/thread_priority.h"

#include <pthread.h>

#include <algorithm>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace fieldsync {
namespace {

// A thread's niceness is its own: raising it in one thread leaves the
// others (and the thread that made it) where they were.
TEST(ThreadPriorityTest, RaisingNicenessChangesOnlyTheCallingThread) {
  const int base = ThreadNiceness();
  if (base >= 19) GTEST_SKIP() << "this test already runs at the lowest priority";
  const int lower = std::min(19, base + 3);
  int seen_inside = -1;
  absl::Status set;
  std::thread t([&] {
    set = SetThreadNiceness(lower);
    seen_inside = ThreadNiceness();
  });
  t.join();
  ASSERT_TRUE(set.ok()) << set;
  EXPECT_EQ(seen_inside, lower);
  EXPECT_EQ(ThreadNiceness(), base);
}

TEST(ThreadPriorityTest, NicenessOutsideTheRangeIsRefused) {
  for (int nice : {-1, 20, -20, 100}) {
    absl::Status s = SetThreadNiceness(nice);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << nice;
    EXPECT_NE(s.message().find("0..19"), std::string::npos) << s;
  }
}

TEST(ThreadPriorityTest, NamesTheThreadWithItsFirstFifteenBytes) {
  std::string name;
  std::thread t([&] {
    NameThread("fieldsync-commit-and-more");
    char buf[32] = {};
    pthread_getname_np(pthread_self(), buf, sizeof(buf));
    name = buf;
  });
  t.join();
  EXPECT_EQ(name, "fieldsync-commi");
}

}  // namespace
}  // namespace fieldsync
