#include "tests/testing/seeded_random.h"

#include <cstdlib>
#include <iostream>

#include "absl/time/clock.h"

namespace fieldsync::testing {
namespace {

uint64_t ChooseSeed(uint64_t seed) {
  if (seed != 0) return seed;
  if (const char* env = std::getenv("FIELDSYNC_TEST_SEED")) {
    return std::strtoull(env, nullptr, 10);
  }
  return static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
}

}  // namespace

SeededRandom::SeededRandom(uint64_t seed) : seed_(ChooseSeed(seed)), engine_(seed_) {
  std::cerr << "SeededRandom seed=" << seed_ << " (repeat with FIELDSYNC_TEST_SEED=" << seed_
            << ")\n";
}

void SeededRandom::Fill(std::span<uint8_t> out) {
  absl::MutexLock lock(&mu_);
  for (uint8_t& b : out) b = static_cast<uint8_t>(engine_());
}

uint64_t SeededRandom::Uniform(uint64_t n) {
  absl::MutexLock lock(&mu_);
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(engine_);
}

}  // namespace fieldsync::testing
