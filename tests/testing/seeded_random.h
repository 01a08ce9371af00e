// A reproducible fieldsync::Random for tests. Not for keys in production.
// Thread-safe. The seed comes from the constructor or, when 0 is given,
// from FIELDSYNC_TEST_SEED or the time; it is printed to the test log so a
// failing run can be repeated.
#ifndef FIELDSYNC_TESTS_TESTING_SEEDED_RANDOM_H_
#define FIELDSYNC_TESTS_TESTING_SEEDED_RANDOM_H_

#include <cstdint>
#include <random>
#include <span>

#include "absl/synchronization/mutex.h"
#include "common/random.h"

namespace fieldsync::testing {

class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed = 0);
  void Fill(std::span<uint8_t> out) override;
  uint64_t seed() const { return seed_; }
  // A uniformly distributed integer in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n);

 private:
  uint64_t seed_;
  absl::Mutex mu_;
  std::mt19937_64 engine_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::testing

#endif  // FIELDSYNC_TESTS_TESTING_SEEDED_RANDOM_H_
