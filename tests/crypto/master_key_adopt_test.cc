// MasterKeyRing::Clone and Adopt: how a KEK rotation installs a new
// version in a ring that other threads keep using (admin/master_key_rotation.h).
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "crypto/master_key.h"
#include "gtest/gtest.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class MasterKeyAdoptTest : public ::testing::Test {
 protected:
  fieldsync::testing::SeededRandom random_{20261128};
  MasterKeyRing ring_ = MasterKeyRing::Generate(random_);
};

TEST_F(MasterKeyAdoptTest, CloneHoldsTheSameKeys) {
  absl::StatusOr<std::string> wrapped = ring_.Wrap("p", Bytes("secret"), random_);
  ASSERT_THAT(wrapped, IsOk());

  absl::StatusOr<MasterKeyRing> clone = ring_.Clone();

  ASSERT_THAT(clone, IsOk());
  EXPECT_EQ(clone->Serialize(), ring_.Serialize());
  absl::StatusOr<SecretBytes> opened = clone->Unwrap("p", *wrapped);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(std::string(opened->span().begin(), opened->span().end()), "secret");
}

TEST_F(MasterKeyAdoptTest, AdoptInstallsTheNewVersionAndKeepsOldOnesReadable) {
  absl::StatusOr<std::string> old_wrapped = ring_.Wrap("p", Bytes("secret"), random_);
  ASSERT_THAT(old_wrapped, IsOk());
  absl::StatusOr<MasterKeyRing> next = ring_.Clone();
  ASSERT_THAT(next, IsOk());
  ASSERT_THAT(next->AddVersion(random_), IsOk());

  ASSERT_THAT(ring_.Adopt(*std::move(next)), IsOk());

  EXPECT_EQ(ring_.current_version(), 2u);
  EXPECT_THAT(ring_.Unwrap("p", *old_wrapped), IsOk());
  absl::StatusOr<std::string> new_wrapped = ring_.Wrap("p", Bytes("secret"), random_);
  ASSERT_THAT(new_wrapped, IsOk());
  EXPECT_THAT(MasterKeyRing::WrappedVersion(*new_wrapped), ::fieldsync::testing::IsOkAndHolds(2u));
}

TEST_F(MasterKeyAdoptTest, AdoptRefusesARingThatLacksAVersion) {
  MasterKeyRing foreign = MasterKeyRing::Generate(random_);  // another key for version 1

  absl::Status s = ring_.Adopt(std::move(foreign));

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(ring_.current_version(), 1u);
}

// Readers wrap and unwrap while another thread rotates twice: every wrap
// opens, under whichever version it was made. (TSan cannot judge this
// with Debian's abseil, which is not built for it: a plain absl::Mutex
// around a std::map already reports races there.)
TEST_F(MasterKeyAdoptTest, ConcurrentWrapsSurviveRotations) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      fieldsync::testing::SeededRandom random(1000 + t);
      while (!stop.load()) {
        absl::StatusOr<std::string> w = ring_.Wrap("p", Bytes("secret"), random);
        if (!w.ok() || !ring_.Unwrap("p", *w).ok() || !ring_.Rewrap("p", *w, random).ok()) {
          ++failures;
        }
      }
    });
  }
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<MasterKeyRing> next = ring_.Clone();
    ASSERT_THAT(next, IsOk());
    ASSERT_THAT(next->AddVersion(random_), IsOk());
    ASSERT_THAT(ring_.Adopt(*std::move(next)), IsOk());
  }
  stop.store(true);
  for (std::thread& r : readers) r.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ring_.current_version(), 3u);
}

}  // namespace
}  // namespace fieldsync::crypto
