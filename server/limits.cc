#include "server/limits.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "sync/errors.h"

namespace fieldsync::server {
namespace {

// Buckets held before full ones are forgotten.
constexpr size_t kMaxIdleBuckets = 4096;

absl::Status Refusal(v1::SyncErrorReason reason, std::string_view what,
                     absl::Duration retry_after) {
  const int64_t ms = std::max<int64_t>(
      1, absl::ToInt64Milliseconds(absl::Ceil(retry_after, absl::Milliseconds(1))));
  v1::SyncErrorDetail detail;
  detail.set_retry_after_millis(static_cast<uint32_t>(std::min<int64_t>(ms, UINT32_MAX)));
  return sync::SyncError(absl::StatusCode::kResourceExhausted, reason,
                         absl::StrFormat("%s: retry after %d ms", what, ms), std::move(detail));
}

}  // namespace

absl::Status RateLimited(std::string_view what, absl::Duration retry_after) {
  return Refusal(v1::SYNC_ERROR_REASON_RATE_LIMITED, what, retry_after);
}

absl::Status ServerBusy(std::string_view what, absl::Duration retry_after) {
  return Refusal(v1::SYNC_ERROR_REASON_SERVER_BUSY, what, retry_after);
}

TokenBuckets::TokenBuckets(uint32_t per_minute, uint32_t burst, const Clock* clock)
    : per_second_(per_minute / 60.0), burst_(burst), clock_(clock) {}

double TokenBuckets::Refilled(const Bucket& b, absl::Time now) const {
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - b.updated));
  return std::min(burst_, b.tokens + elapsed * per_second_);
}

std::optional<absl::Duration> TokenBuckets::Take(std::string_view key) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (buckets_.size() >= kMaxIdleBuckets) {
    // A full bucket is the same as a forgotten one.
    absl::erase_if(buckets_, [&](const auto& kv) { return Refilled(kv.second, now) >= burst_; });
  }
  auto [it, added] = buckets_.try_emplace(std::string(key), Bucket{burst_, now});
  Bucket& b = it->second;
  b.tokens = Refilled(b, now);
  b.updated = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  // Whole milliseconds, rounded up (less a rounding error of the doubles).
  const double ms = (1.0 - b.tokens) / per_second_ * 1000.0;
  return absl::Milliseconds(static_cast<int64_t>(std::ceil(ms - 1e-6)));
}

ConcurrencyLimit::Lease& ConcurrencyLimit::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = std::exchange(other.owner_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

void ConcurrencyLimit::Lease::Release() {
  if (owner_ != nullptr) std::exchange(owner_, nullptr)->Release(key_);
}

std::optional<ConcurrencyLimit::Lease> ConcurrencyLimit::TryAcquire(std::string_view key) {
  absl::MutexLock lock(&mu_);
  uint32_t& n = counts_[std::string(key)];
  if (n >= limit_) return std::nullopt;
  ++n;
  return Lease(this, std::string(key));
}

uint32_t ConcurrencyLimit::InProgress(std::string_view key) const {
  absl::MutexLock lock(&mu_);
  auto it = counts_.find(std::string(key));
  return it == counts_.end() ? 0 : it->second;
}

void ConcurrencyLimit::Release(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = counts_.find(key);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);
}

absl::StatusOr<ConcurrencyLimit::Lease> AdmitCall(const CallLimits* limits,
                                                  std::string_view principal_uri) {
  if (limits == nullptr) return ConcurrencyLimit::Lease();
  if (principal_uri.empty()) {
    if (limits->unauthenticated == nullptr) return ConcurrencyLimit::Lease();
    std::optional<ConcurrencyLimit::Lease> lease = limits->unauthenticated->TryAcquire("");
    if (!lease.has_value()) {
      return ServerBusy(absl::StrFormat("the server is serving %d calls without a certificate",
                                        limits->unauthenticated->limit()),
                        kBusyRetryAfter);
    }
    return *std::move(lease);
  }
  if (limits->per_principal == nullptr) return ConcurrencyLimit::Lease();
  std::optional<ConcurrencyLimit::Lease> lease = limits->per_principal->TryAcquire(principal_uri);
  if (!lease.has_value()) {
    return RateLimited(absl::StrFormat("%s has %d calls in progress, its limit",
                                       std::string(principal_uri), limits->per_principal->limit()),
                       kBusyRetryAfter);
  }
  return *std::move(lease);
}

absl::Status AdmitPull(const CallLimits* limits, std::string_view principal_uri) {
  if (limits == nullptr || limits->pulls == nullptr) return absl::OkStatus();
  std::optional<absl::Duration> wait = limits->pulls->Take(principal_uri);
  if (!wait.has_value()) return absl::OkStatus();
  return RateLimited(
      absl::StrFormat("%s started pulls faster than its limit", std::string(principal_uri)), *wait);
}

}  // namespace fieldsync::server
