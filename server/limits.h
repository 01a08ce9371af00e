// What one caller, and all callers together, may use of the server
// (docs/PROTOCOL.md "Limits"): concurrent calls per principal and without
// a certificate, pull streams per principal (a token bucket), and the
// refusals they answer with (RESOURCE_EXHAUSTED, a SyncErrorDetail reason
// RATE_LIMITED or SERVER_BUSY, retry_after_millis). Memory is bounded by
// gRPC's ResourceQuota (server/server.cc) and queued work by the work pool
// (server/work_pool.h). gRPC-free.
#ifndef FIELDSYNC_SERVER_LIMITS_H_
#define FIELDSYNC_SERVER_LIMITS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace fieldsync::server {

// RESOURCE_EXHAUSTED with SyncErrorDetail reason RATE_LIMITED (this caller
// is over its own limit) and retry_after_millis = `retry_after` rounded up
// (at least 1 ms). `what` says which limit, for the message.
absl::Status RateLimited(std::string_view what, absl::Duration retry_after);
// The same with reason SERVER_BUSY (the server is at a limit of its own).
absl::Status ServerBusy(std::string_view what, absl::Duration retry_after);

// A token bucket per key (a principal's URI): `per_minute` tokens a
// minute, at most `burst` held; a new key starts full. Keys whose bucket
// has refilled are forgotten when many are held, so memory stays bounded
// by the keys active within a refill period. Thread-safe; `clock` is not
// owned and must outlive it.
class TokenBuckets {
 public:
  // REQUIRES: per_minute >= 1, burst >= 1.
  TokenBuckets(uint32_t per_minute, uint32_t burst, const Clock* clock);

  // Takes a token of `key`: nullopt when there was one, else how long
  // until there is (whole milliseconds, rounded up).
  std::optional<absl::Duration> Take(std::string_view key);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  // Tokens of `b` at `now`, capped at the burst.
  double Refilled(const Bucket& b, absl::Time now) const;

  const double per_second_;
  const double burst_;
  const Clock* clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// Counts calls in progress per key, at most `limit` for each. Thread-safe.
class ConcurrencyLimit {
 public:
  // A call's slot, given back when destroyed. Movable.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { Release(); }
    // Gives the slot back now (idempotent).
    void Release();

   private:
    friend class ConcurrencyLimit;
    Lease(ConcurrencyLimit* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    ConcurrencyLimit* owner_ = nullptr;
    std::string key_;
  };

  // REQUIRES: limit >= 1.
  explicit ConcurrencyLimit(uint32_t limit) : limit_(limit) {}

  // A slot for `key`, or nullopt when `key` has `limit` calls in progress.
  std::optional<Lease> TryAcquire(std::string_view key);
  // Calls of `key` in progress.
  uint32_t InProgress(std::string_view key) const;
  uint32_t limit() const { return limit_; }

 private:
  void Release(const std::string& key);

  const uint32_t limit_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint32_t> counts_ ABSL_GUARDED_BY(mu_);
};

// The limits of one server, built from LimitsConfig. Thread-safe.
struct CallLimits {
  // Key "" for every call without a client certificate.
  ConcurrencyLimit* unauthenticated = nullptr;
  // Keyed by principal URI.
  ConcurrencyLimit* per_principal = nullptr;
  // Pull streams, keyed by principal URI.
  TokenBuckets* pulls = nullptr;
};

// How long a caller refused for a full server should wait.
inline constexpr absl::Duration kBusyRetryAfter = absl::Seconds(1);

// Admits one call of `principal_uri` ("" for a call without a verified
// principal): a lease on its concurrency slot, or RESOURCE_EXHAUSTED
// (SERVER_BUSY for the shared unauthenticated slots, RATE_LIMITED for a
// principal's own). With null limits, an empty lease.
absl::StatusOr<ConcurrencyLimit::Lease> AdmitCall(const CallLimits* limits,
                                                 std::string_view principal_uri);

// Takes a pull token of `principal_uri`: OK, or RESOURCE_EXHAUSTED
// RATE_LIMITED with the wait until the next token. OK with null limits.
absl::Status AdmitPull(const CallLimits* limits, std::string_view principal_uri);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_LIMITS_H_
