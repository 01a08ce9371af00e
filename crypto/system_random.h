// The production fieldsync::Random: OpenSSL's CSPRNG behind a per-thread
// buffer, so that a 12-byte nonce does not cost a RAND_bytes call.
#ifndef FIELDSYNC_CRYPTO_SYSTEM_RANDOM_H_
#define FIELDSYNC_CRYPTO_SYSTEM_RANDOM_H_

#include <cstdint>
#include <span>

#include "common/random.h"

namespace fieldsync::crypto {

// Draws from RAND_bytes (OpenSSL's DRBG, seeded from the OS) in blocks of
// kBufferSize bytes into a thread-local buffer and hands the bytes out from
// there. Every byte handed out is wiped from the buffer at once, so the
// buffer never holds a key or nonce that was already given away. Requests of
// kBufferSize / 4 bytes or more go straight to RAND_bytes. A child process
// after fork() discards its inherited buffer (pthread_atfork), so parent and
// child never hand out the same bytes. Aborts the process if RAND_bytes
// fails: predictable bytes are worse than no service.
//
// Thread-safe; no locks (each thread has its own buffer).
class SystemRandom final : public Random {
 public:
  static constexpr size_t kBufferSize = 4096;

  SystemRandom() = default;
  // The process-wide instance. Never destroyed.
  static SystemRandom* Get();

  void Fill(std::span<uint8_t> out) override;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_SYSTEM_RANDOM_H_
