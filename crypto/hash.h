// SHA-256, one-shot and streaming, without heap allocation.
#ifndef FIELDSYNC_CRYPTO_HASH_H_
#define FIELDSYNC_CRYPTO_HASH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace fieldsync::crypto {

inline constexpr size_t kSha256Size = 32;
using Sha256Digest = std::array<uint8_t, kSha256Size>;

// SHA-256 of `data`. The state lives on the stack: no allocation, no
// shared state. Thread-safe.
Sha256Digest Sha256(std::span<const uint8_t> data);
Sha256Digest Sha256(std::string_view data);

// Incremental SHA-256: Update() any number of times, then Finish() once.
// After Finish() the hasher is reset and may be reused. The whole state is
// held inline (a stack object allocates nothing, ever); copying a hasher
// copies the state, so a common prefix can be hashed once and forked.
// Thread-compatible (one hasher per thread).
class Sha256Hasher {
 public:
  Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = default;
  Sha256Hasher& operator=(const Sha256Hasher&) = default;

  Sha256Hasher& Update(std::span<const uint8_t> data);
  Sha256Hasher& Update(std::string_view data);
  Sha256Digest Finish();

  // Bytes of the inline state; at least OpenSSL's SHA256_CTX (checked at
  // compile time in hash.cc).
  static constexpr size_t kStateSize = 128;

 private:
  alignas(8) unsigned char state_[kStateSize];
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_HASH_H_
