#include "crypto/system_random.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fieldsync::crypto {
namespace {

// Bumped in the child after fork(): a thread-local buffer filled under an
// older generation was copied from the parent and must not be used.
std::atomic<uint64_t> fork_generation{0};

void OnForkChild() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

void RandBytesOrDie(uint8_t* out, size_t n) {
  while (n > 0) {
    // RAND_bytes takes an int length.
    int chunk = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
    if (RAND_bytes(out, chunk) != 1) {
      std::fprintf(stderr, "fieldsync crypto: fatal: RAND_bytes failed; refusing to continue\n");
      std::abort();
    }
    out += chunk;
    n -= static_cast<size_t>(chunk);
  }
}

struct ThreadBuffer {
  uint8_t bytes[SystemRandom::kBufferSize];
  size_t pos = SystemRandom::kBufferSize;  // Empty: the first use refills.
  uint64_t generation = 0;

  ~ThreadBuffer() { OPENSSL_cleanse(bytes, sizeof(bytes)); }

  void Refill(uint64_t current_generation) {
    OPENSSL_cleanse(bytes, sizeof(bytes));
    RandBytesOrDie(bytes, sizeof(bytes));
    pos = 0;
    generation = current_generation;
  }
};

thread_local ThreadBuffer buffer;

}  // namespace

SystemRandom* SystemRandom::Get() {
  static SystemRandom* const instance = new SystemRandom();
  return instance;
}

void SystemRandom::Fill(std::span<uint8_t> out) {
  if (out.empty()) return;
  if (out.size() >= kBufferSize / 4) {
    RandBytesOrDie(out.data(), out.size());
    return;
  }
  // Registered once per process; a function-local static costs one load
  // per call after that (std::call_once costs a few dozen instructions).
  static const bool atfork_registered = [] {
    pthread_atfork(nullptr, nullptr, OnForkChild);
    return true;
  }();
  (void)atfork_registered;
  ThreadBuffer& b = buffer;
  uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (b.generation != generation) b.pos = kBufferSize;
  if (kBufferSize - b.pos < out.size()) b.Refill(generation);
  std::memcpy(out.data(), b.bytes + b.pos, out.size());
  OPENSSL_cleanse(b.bytes + b.pos, out.size());
  b.pos += out.size();
}

}  // namespace fieldsync::crypto
