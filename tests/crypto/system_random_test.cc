#include "crypto/system_random.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fieldsync::crypto {
namespace {

std::string Draw(size_t n) {
  std::string s(n, '\0');
  SystemRandom::Get()->Fill(std::span<uint8_t>(reinterpret_cast<uint8_t*>(s.data()), n));
  return s;
}

TEST(SystemRandomTest, SmallDrawsAreDistinct) {
  std::set<std::string> seen;
  // More than one 4 KiB buffer's worth of 12-byte nonces: crosses refills.
  for (int i = 0; i < 1000; ++i) seen.insert(Draw(12));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(SystemRandomTest, LargeDrawsBypassTheBufferAndAreFilled) {
  std::string a = Draw(SystemRandom::kBufferSize * 3);
  std::string b = Draw(SystemRandom::kBufferSize * 3);
  EXPECT_NE(a, b);
  // 12 KiB of zeros from a CSPRNG would mean it never wrote.
  EXPECT_NE(a, std::string(a.size(), '\0'));
}

TEST(SystemRandomTest, EmptyDrawIsANoOp) {
  std::array<uint8_t, 8> buffer{};
  SystemRandom::Get()->Fill(std::span<uint8_t>(buffer.data(), 0));
  EXPECT_EQ(buffer, (std::array<uint8_t, 8>{}));
}

TEST(SystemRandomTest, BytesLookUniform) {
  // A coarse sanity check: each byte value appears in 256 KiB of output
  // within a wide band around its mean of 1024 (not a statistical test
  // suite, just "not broken").
  std::array<int, 256> counts{};
  for (int i = 0; i < 256 * 1024 / 16; ++i) {
    for (char c : Draw(16)) ++counts[static_cast<uint8_t>(c)];
  }
  for (int c : counts) {
    EXPECT_GT(c, 800);
    EXPECT_LT(c, 1250);
  }
}

TEST(SystemRandomTest, ThreadsNeverShareBytes) {
  constexpr int kThreads = 8;
  constexpr int kDraws = 2000;
  std::vector<std::vector<std::string>> out(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&out, t] {
      for (int i = 0; i < kDraws; ++i) out[t].push_back(Draw(12));
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> seen;
  for (const auto& v : out) seen.insert(v.begin(), v.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kDraws));
}

TEST(SystemRandomTest, ForkedChildDoesNotRepeatTheParentsBuffer) {
  Draw(12);  // The parent's buffer now holds unused bytes.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string child = Draw(12);
    ssize_t n = write(fds[1], child.data(), child.size());
    _exit(n == 12 ? 0 : 1);
  }
  close(fds[1]);
  std::string parent = Draw(12);
  std::string child(12, '\0');
  ASSERT_EQ(read(fds[0], child.data(), child.size()), 12);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_NE(parent, child);
}

}  // namespace
}  // namespace fieldsync::crypto
