// The reused OpenSSL contexts behind AesGcm (a lock-free primary and a
// locked spare per direction, set up on first use), X25519PrivateKey
// (a reused derivation context) and HPKE's cached info hash: reuse must
// never change a result, under concurrency and after failures.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "crypto/aead.h"
#include "crypto/bytes.h"
#include "crypto/hpke.h"
#include "crypto/x25519.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;

TEST(PreparedAesGcmTest, ConcurrentSealAndOpenGiveTheOneShotResults) {
  SeededRandom random;
  std::vector<uint8_t> key(32);
  random.Fill(key);
  absl::StatusOr<AesGcm> aead = AesGcm::Create(key);
  ASSERT_THAT(aead, IsOk());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        std::vector<uint8_t> nonce(12, 0);
        nonce[0] = static_cast<uint8_t>(t);
        nonce[1] = static_cast<uint8_t>(i);
        nonce[2] = static_cast<uint8_t>(i >> 8);
        const std::string pt = "t" + std::to_string(t) + "/" + std::to_string(i);
        absl::StatusOr<std::string> c = aead->Seal(nonce, AsBytes("aad"), AsBytes(pt));
        absl::StatusOr<std::string> want = AesGcmSeal(key, nonce, AsBytes("aad"), AsBytes(pt));
        if (!c.ok() || !want.ok() || *c != *want) failures.fetch_add(1);
        absl::StatusOr<std::string> p = aead->Open(nonce, AsBytes("aad"), AsBytes(*c));
        if (!p.ok() || *p != pt) failures.fetch_add(1);
        // A failing open in between must not disturb the next one.
        std::string bad = *c;
        bad[0] ^= 1;
        if (aead->Open(nonce, AsBytes("aad"), AsBytes(bad)).ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(PreparedAesGcmTest, OpenOnlyInstanceWorksWithoutEverSealing) {
  std::vector<uint8_t> key(32, 7), nonce(12, 1);
  absl::StatusOr<std::string> c = AesGcmSeal(key, nonce, {}, AsBytes("x"));
  ASSERT_THAT(c, IsOk());
  absl::StatusOr<AesGcm> aead = AesGcm::Create(key);
  ASSERT_THAT(aead, IsOk());
  EXPECT_THAT(aead->Open(nonce, {}, AsBytes(*c)), IsOkAndHolds("x"));
}

TEST(PreparedX25519Test, ReusedKeyMatchesOneShotAcrossPeersAndFailures) {
  SeededRandom random;
  X25519KeyPair mine = GenerateX25519(random);
  absl::StatusOr<X25519PrivateKey> key = X25519PrivateKey::Create(mine.private_key.span());
  ASSERT_THAT(key, IsOk());
  const std::vector<uint8_t> low_order(32, 0);  // the all-zero point
  for (int i = 0; i < 20; ++i) {
    X25519KeyPair peer = GenerateX25519(random);
    absl::StatusOr<SecretBytes> want = X25519(mine.private_key.span(), peer.public_key);
    ASSERT_THAT(want, IsOk());
    absl::StatusOr<SecretBytes> got = key->Derive(peer.public_key);
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(*got, *want);
    EXPECT_THAT(key->Derive(low_order), StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(PreparedX25519Test, ConcurrentDerivesAgree) {
  SeededRandom random;
  X25519KeyPair mine = GenerateX25519(random);
  X25519KeyPair peer = GenerateX25519(random);
  absl::StatusOr<X25519PrivateKey> key = X25519PrivateKey::Create(mine.private_key.span());
  ASSERT_THAT(key, IsOk());
  absl::StatusOr<SecretBytes> want = X25519(mine.private_key.span(), peer.public_key);
  ASSERT_THAT(want, IsOk());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<SecretBytes> got = key->Derive(peer.public_key);
        if (!got.ok() || !(*got == *want)) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(HpkeInfoHashCacheTest, AlternatingInfosStillBindTheirOwnInfo) {
  SeededRandom random;
  X25519KeyPair r = GenerateX25519(random);
  for (int i = 0; i < 6; ++i) {
    const std::string info = i % 2 == 0 ? "info-a" : "info-b";
    const std::string other = i % 2 == 0 ? "info-b" : "info-a";
    absl::StatusOr<HpkeCiphertext> c =
        HpkeSeal(r.public_key, AsBytes(info), AsBytes("aad"), AsBytes("pt"), random);
    ASSERT_THAT(c, IsOk());
    EXPECT_THAT(HpkeOpen(r.private_key, AsBytes(c->enc), AsBytes(info), AsBytes("aad"),
                         AsBytes(c->ciphertext)),
                IsOkAndHolds("pt"));
    EXPECT_THAT(HpkeOpen(r.private_key, AsBytes(c->enc), AsBytes(other), AsBytes("aad"),
                         AsBytes(c->ciphertext)),
                StatusIs(absl::StatusCode::kInvalidArgument));
    // A prefix of the cached info is a different info.
    EXPECT_THAT(HpkeOpen(r.private_key, AsBytes(c->enc), AsBytes(info.substr(0, 5)), AsBytes("aad"),
                         AsBytes(c->ciphertext)),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

}  // namespace
}  // namespace fieldsync::crypto
