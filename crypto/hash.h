// SHA-256, one-shot and streaming.
#ifndef FIELDSYNC_CRYPTO_HASH_H_
#define FIELDSYNC_CRYPTO_HASH_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "crypto/openssl_fwd.h"

namespace fieldsync::crypto {

inline constexpr size_t kSha256Size = 32;
using Sha256Digest = std::array<uint8_t, kSha256Size>;

// SHA-256 of `data`. Reuses a per-thread digest context and the algorithm
// fetched once, so hashing a small input costs no allocation. Thread-safe.
Sha256Digest Sha256(std::span<const uint8_t> data);
Sha256Digest Sha256(std::string_view data);

// Incremental SHA-256: Update() any number of times, then Finish() once.
// After Finish() the hasher is reset and may be reused.
// Thread-compatible (one hasher per thread).
class Sha256Hasher {
 public:
  Sha256Hasher();
  Sha256Hasher(Sha256Hasher&&) = default;
  Sha256Hasher& operator=(Sha256Hasher&&) = default;

  void Update(std::span<const uint8_t> data);
  void Update(std::string_view data);
  Sha256Digest Finish();

 private:
  internal::MdCtxPtr ctx_;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_HASH_H_
