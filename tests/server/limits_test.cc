// The limits of one caller (server/limits.h) and of enrolment attempts
// (admin/enrolment.h EnrolmentAttempts), on a simulated clock.
#include "server/limits.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "admin/enrolment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/rpc.h"
#include "sync/errors.h"
#include "tests/testing/simulated_clock.h"

namespace fieldsync::server {
namespace {

using Verdict = admin::EnrolmentAdmission::Verdict;

// The reason and retry-after of a refusal.
std::pair<v1::SyncErrorReason, uint32_t> ReasonOf(const absl::Status& s) {
  std::optional<v1::SyncErrorDetail> d = sync::GetSyncErrorDetail(s);
  if (!d.has_value()) return {v1::SYNC_ERROR_REASON_UNSPECIFIED, 0};
  return {d->reason(), d->retry_after_millis()};
}

TEST(TokenBucketsTest, BurstThenOnePerRefillAndKeysApart) {
  testing::SimulatedClock clock;
  TokenBuckets buckets(/*per_minute=*/6, /*burst=*/3, &clock);  // one per 10 s
  for (int i = 0; i < 3; ++i) EXPECT_EQ(buckets.Take("a"), std::nullopt) << i;
  std::optional<absl::Duration> wait = buckets.Take("a");
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, absl::Seconds(10));
  // Another principal has its own bucket.
  EXPECT_EQ(buckets.Take("b"), std::nullopt);
  clock.Advance(absl::Seconds(4));
  wait = buckets.Take("a");
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, absl::Seconds(6));
  clock.Advance(absl::Seconds(6));
  EXPECT_EQ(buckets.Take("a"), std::nullopt);
  EXPECT_TRUE(buckets.Take("a").has_value());
  // A long pause refills to the burst, never beyond.
  clock.Advance(absl::Hours(1));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(buckets.Take("a"), std::nullopt) << i;
  EXPECT_TRUE(buckets.Take("a").has_value());
}

TEST(ConcurrencyLimitTest, LeasesCountPerKeyAndReturnTheirSlot) {
  ConcurrencyLimit limit(2);
  std::optional<ConcurrencyLimit::Lease> a1 = limit.TryAcquire("a");
  std::optional<ConcurrencyLimit::Lease> a2 = limit.TryAcquire("a");
  ASSERT_TRUE(a1.has_value() && a2.has_value());
  EXPECT_EQ(limit.InProgress("a"), 2u);
  EXPECT_FALSE(limit.TryAcquire("a").has_value());
  EXPECT_TRUE(limit.TryAcquire("b").has_value());  // destroyed at once
  EXPECT_EQ(limit.InProgress("b"), 0u);
  ConcurrencyLimit::Lease moved = std::move(*a1);
  a1.reset();  // a moved-from lease holds nothing
  EXPECT_EQ(limit.InProgress("a"), 2u);
  moved.Release();
  moved.Release();  // idempotent
  EXPECT_EQ(limit.InProgress("a"), 1u);
  EXPECT_TRUE(limit.TryAcquire("a").has_value());
}

TEST(AdmitTest, RefusalsCarryTheirReasonAndRetryAfter) {
  testing::SimulatedClock clock;
  ConcurrencyLimit unauthenticated(1);
  ConcurrencyLimit per_principal(1);
  TokenBuckets pulls(60, 1, &clock);
  CallLimits limits{&unauthenticated, &per_principal, &pulls};

  absl::StatusOr<ConcurrencyLimit::Lease> anon = AdmitCall(&limits, "");
  ASSERT_TRUE(anon.ok());
  absl::StatusOr<ConcurrencyLimit::Lease> anon2 = AdmitCall(&limits, "");
  EXPECT_EQ(anon2.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(anon2.status()),
            std::make_pair(v1::SYNC_ERROR_REASON_SERVER_BUSY, uint32_t{1000}));

  const std::string dev = "fieldsync://device/0b6c2f0e-0000-4000-8000-000000000001";
  absl::StatusOr<ConcurrencyLimit::Lease> d1 = AdmitCall(&limits, dev);
  ASSERT_TRUE(d1.ok());
  absl::StatusOr<ConcurrencyLimit::Lease> d2 = AdmitCall(&limits, dev);
  EXPECT_EQ(ReasonOf(d2.status()).first, v1::SYNC_ERROR_REASON_RATE_LIMITED);
  EXPECT_THAT(std::string(d2.status().message()), ::testing::HasSubstr(dev));
  d1->Release();
  EXPECT_TRUE(AdmitCall(&limits, dev).ok());

  EXPECT_TRUE(AdmitPull(&limits, dev).ok());
  absl::Status second = AdmitPull(&limits, dev);
  EXPECT_EQ(second.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(second), std::make_pair(v1::SYNC_ERROR_REASON_RATE_LIMITED, uint32_t{1000}));
  clock.Advance(absl::Milliseconds(400));
  EXPECT_EQ(ReasonOf(AdmitPull(&limits, dev)).second, 600u);
  clock.Advance(absl::Milliseconds(600));
  EXPECT_TRUE(AdmitPull(&limits, dev).ok());

  // Without limits, everything is admitted.
  EXPECT_TRUE(AdmitCall(nullptr, "").ok());
  EXPECT_TRUE(AdmitPull(nullptr, dev).ok());
}

admin::EnrolmentLimits TestLimits() {
  admin::EnrolmentLimits l;
  l.free_failures = 3;
  l.first_delay = absl::Seconds(1);
  l.max_delay = absl::Seconds(60);
  l.lockout_failures = 6;
  l.lockout = absl::Minutes(15);
  l.attempts_per_minute = 1000;
  return l;
}

// Guessing from one address: free attempts, then delays that double, then
// a lockout; another address is not held back, and a success forgives.
TEST(EnrolmentAttemptsTest, FailuresSlowDownThenLockOutOneAddressOnly) {
  testing::SimulatedClock clock;
  admin::EnrolmentAttempts attempts(TestLimits(), &clock);
  const std::string guesser = "10.0.0.9";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(attempts.Admit(guesser).verdict, Verdict::kAllowed) << i;
    attempts.Failed(guesser);
  }
  // 3 failures: the next attempt waits 1 s, then 2 s, then 4 s.
  std::vector<absl::Duration> delays;
  for (int i = 0; i < 3; ++i) {
    admin::EnrolmentAdmission a = attempts.Admit(guesser);
    EXPECT_EQ(a.verdict, Verdict::kAddressWaiting) << i;
    delays.push_back(a.retry_after);
    clock.Advance(a.retry_after);
    EXPECT_EQ(attempts.Admit(guesser).verdict, Verdict::kAllowed) << i;
    attempts.Failed(guesser);
  }
  EXPECT_EQ(delays,
            (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2), absl::Seconds(4)}));
  // The 6th failure locked the address out for 15 minutes.
  admin::EnrolmentAdmission locked = attempts.Admit(guesser);
  EXPECT_EQ(locked.verdict, Verdict::kAddressLockedOut);
  EXPECT_EQ(locked.retry_after, absl::Minutes(15));
  clock.Advance(absl::Minutes(10));
  EXPECT_EQ(attempts.Admit(guesser).verdict, Verdict::kAddressLockedOut);
  // Another address enrols meanwhile.
  EXPECT_EQ(attempts.Admit("10.0.0.10").verdict, Verdict::kAllowed);
  attempts.Succeeded("10.0.0.10");

  admin::EnrolmentAttemptCounts counts = attempts.Counts();
  EXPECT_EQ(counts.failed, 6u);
  EXPECT_EQ(counts.refused, 5u);  // 3 waits, 2 lockout refusals
  EXPECT_EQ(counts.lockouts, 1u);
  EXPECT_EQ(counts.locked_out_now, 1u);

  // After the lockout the address starts afresh.
  clock.Advance(absl::Minutes(5));
  EXPECT_EQ(attempts.Admit(guesser).verdict, Verdict::kAllowed);
  EXPECT_EQ(attempts.Counts().locked_out_now, 0u);
  // A success forgives an address's failures.
  attempts.Failed(guesser);
  attempts.Failed(guesser);
  attempts.Failed(guesser);
  attempts.Succeeded(guesser);
  EXPECT_EQ(attempts.Admit(guesser).verdict, Verdict::kAllowed);
}

TEST(EnrolmentAttemptsTest, TheGlobalRateHoldsBackEveryAddress) {
  testing::SimulatedClock clock;
  admin::EnrolmentLimits l = TestLimits();
  l.attempts_per_minute = 60;
  admin::EnrolmentAttempts attempts(l, &clock);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) {
    if (attempts.Admit(absl::StrCat("10.1.0.", i)).verdict == Verdict::kAllowed) ++allowed;
  }
  EXPECT_EQ(allowed, 60);
  admin::EnrolmentAdmission busy = attempts.Admit("10.2.0.1");
  EXPECT_EQ(busy.verdict, Verdict::kServerBusy);
  EXPECT_EQ(busy.retry_after, absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(attempts.Admit("10.2.0.1").verdict, Verdict::kAllowed);
}

TEST(EnrolmentAttemptsTest, WindowsCountFailuresAddressesAndLockoutsThenStartAfresh) {
  testing::SimulatedClock clock;
  admin::EnrolmentAttempts attempts(TestLimits(), &clock);
  const absl::Time start = clock.Now();
  for (int i = 0; i < 6; ++i) attempts.Failed("10.0.0.1");
  attempts.Failed("10.0.0.2");
  attempts.Admit("10.0.0.1");  // refused: locked out
  clock.Advance(absl::Seconds(60));
  admin::EnrolmentFailureWindow w = attempts.TakeWindow();
  EXPECT_EQ(w.start, start);
  EXPECT_EQ(w.end, start + absl::Seconds(60));
  EXPECT_EQ(w.failed, 7u);
  EXPECT_EQ(w.distinct_addresses, 2u);
  EXPECT_EQ(w.lockouts, 1u);
  EXPECT_EQ(w.refused, 1u);
  admin::EnrolmentFailureWindow next = attempts.TakeWindow();
  EXPECT_EQ(next.start, w.end);
  EXPECT_EQ(next.failed, 0u);
  EXPECT_EQ(next.distinct_addresses, 0u);
}

// Enrolment attempts are counted per IP, whatever the client's port.
TEST(PeerAddressTest, TheIpWithoutThePort) {
  EXPECT_EQ(PeerAddress("ipv4:10.0.0.5:41234"), "10.0.0.5");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:41234"), "::1");
  EXPECT_EQ(PeerAddress("ipv6:%5B2001:db8::7%5D:443"), "2001:db8::7");
  EXPECT_EQ(PeerAddress("unix:/run/x.sock"), "unix:/run/x.sock");
  EXPECT_EQ(PeerAddress("ipv6:%5Bbroken"), "ipv6:%5Bbroken");
}

}  // namespace
}  // namespace fieldsync::server
