// The source of randomness for keys, nonces, ids and tokens. The real one,
// crypto::SystemRandom, draws from OpenSSL's CSPRNG; tests inject
// SeededRandom (tests/testing/) to make runs reproducible.
#ifndef FIELDSYNC_COMMON_RANDOM_H_
#define FIELDSYNC_COMMON_RANDOM_H_

#include <cstdint>
#include <span>

namespace fieldsync {

// Implementations must be thread-safe.
class Random {
 public:
  virtual ~Random() = default;
  // Fills `out` with random bytes. Never fails: a CSPRNG that cannot be
  // seeded aborts the process rather than hand out predictable bytes.
  virtual void Fill(std::span<uint8_t> out) = 0;
};

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_RANDOM_H_
