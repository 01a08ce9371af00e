#include "crypto/ed25519.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/crypto/crypto_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::crypto::testing::Hex;
using ::fieldsync::crypto::testing::Unhex;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

struct Rfc8032Case {
  const char* name;
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 §7.1, TEST 1, 2, 3 and TEST SHA(abc) (whose message is
// SHA-512("abc")).
const Rfc8032Case kRfc8032Cases[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
     "6bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d"
     "8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6"
     "594a7c15e9716ed28dc027beceea1ec40a"},
    {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3fee"
     "bbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0"
     "303dca179c138ac17ad9bef1177331a704"},
};

TEST(Ed25519Test, Rfc8032Section7_1) {
  for (const Rfc8032Case& c : kRfc8032Cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<Ed25519KeyPair> pair = Ed25519FromSeed(Unhex(c.secret));
    ASSERT_THAT(pair, IsOk());
    EXPECT_EQ(Hex(pair->public_key), c.public_key);
    absl::StatusOr<Ed25519Signature> signature = Ed25519Sign(pair->seed, Unhex(c.message));
    ASSERT_THAT(signature, IsOk());
    EXPECT_EQ(Hex(*signature), c.signature);
    EXPECT_THAT(Ed25519Verify(Unhex(c.public_key), Unhex(c.message), Unhex(c.signature)), IsOk());
  }
  testing::ReportChecked(std::size(kRfc8032Cases), "RFC 8032 Ed25519");
}

TEST(Ed25519Test, WycheproofStrictVerification) {
  FS_LOAD_VECTORS_OR_SKIP(j, "wycheproof/ed25519_test.json");
  size_t checked = 0, invalid = 0;
  for (const auto& group : j["testGroups"]) {
    std::vector<uint8_t> pk = Unhex(group["publicKey"]["pk"]);
    for (const auto& t : group["tests"]) {
      SCOPED_TRACE(t["tcId"].get<int>());
      absl::Status s = Ed25519Verify(pk, Unhex(t["msg"]), Unhex(t["sig"]));
      if (t["result"] == "valid") {
        EXPECT_THAT(s, IsOk());
      } else {
        EXPECT_FALSE(s.ok()) << t["comment"];
        ++invalid;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 151u);
  EXPECT_EQ(invalid, 63u);
  std::cout << "(" << invalid << " invalid signatures refused)\n";
  testing::ReportChecked(checked, "Wycheproof Ed25519");
}

// Adds L to S: the same point equation holds, so a lax verifier accepts it.
TEST(Ed25519Test, MalleableSignatureWithSPlusLIsRefused) {
  const Rfc8032Case& c = kRfc8032Cases[0];
  std::vector<uint8_t> sig = Unhex(c.signature);
  const uint8_t kL[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                          0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                          0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
  unsigned carry = 0;
  for (int i = 0; i < 32; ++i) {
    unsigned sum = sig[32 + i] + kL[i] + carry;
    sig[32 + i] = static_cast<uint8_t>(sum);
    carry = sum >> 8;
  }
  ASSERT_EQ(carry, 0u);
  EXPECT_THAT(Ed25519Verify(Unhex(c.public_key), Unhex(c.message), sig),
              StatusIs(absl::StatusCode::kUnauthenticated, "signature does not verify"));
}

TEST(Ed25519Test, EveryBitFlipOfSignatureOrMessageFails) {
  fieldsync::testing::SeededRandom random;
  Ed25519KeyPair pair = GenerateEd25519(random);
  std::vector<uint8_t> message = {'t', 'r', 'e', 'e', ' ', 'h', 'e', 'a', 'd'};
  absl::StatusOr<Ed25519Signature> sig = Ed25519Sign(pair.seed, message);
  ASSERT_THAT(sig, IsOk());
  ASSERT_THAT(Ed25519Verify(pair.public_key, message, *sig), IsOk());
  for (size_t bit = 0; bit < sig->size() * 8; ++bit) {
    Ed25519Signature bad = *sig;
    bad[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    EXPECT_THAT(Ed25519Verify(pair.public_key, message, bad),
                StatusIs(absl::StatusCode::kUnauthenticated))
        << bit;
  }
  for (size_t bit = 0; bit < message.size() * 8; ++bit) {
    std::vector<uint8_t> bad = message;
    bad[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    EXPECT_THAT(Ed25519Verify(pair.public_key, bad, *sig),
                StatusIs(absl::StatusCode::kUnauthenticated));
  }
}

TEST(Ed25519Test, WrongLengthsAreInvalidArgument) {
  std::vector<uint8_t> pk = Unhex(kRfc8032Cases[0].public_key);
  std::vector<uint8_t> sig = Unhex(kRfc8032Cases[0].signature);
  std::vector<uint8_t> short_sig(sig.begin(), sig.end() - 1);
  std::vector<uint8_t> long_sig = sig;
  long_sig.push_back(0);
  EXPECT_THAT(Ed25519Verify(pk, {}, short_sig), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ed25519Verify(pk, {}, long_sig), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ed25519Verify({}, {}, sig), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ed25519Verify(std::span(pk).first(31), {}, sig),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ed25519FromSeed(std::vector<uint8_t>(31, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ed25519Sign(SecretBytes(33), {}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Ed25519Test, WrongKeyFails) {
  const Rfc8032Case& c = kRfc8032Cases[1];
  EXPECT_THAT(Ed25519Verify(Unhex(kRfc8032Cases[2].public_key), Unhex(c.message),
                            Unhex(c.signature)),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(Ed25519SignerTest, SignsLikeTheFreeFunctionFromManyThreads) {
  const Rfc8032Case& c = kRfc8032Cases[2];
  absl::StatusOr<Ed25519Signer> signer = Ed25519Signer::Create(Unhex(c.secret));
  ASSERT_THAT(signer, IsOk());
  EXPECT_EQ(Hex(signer->public_key()), c.public_key);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) results[t] = Hex(signer->Sign(Unhex(c.message)));
    });
  }
  for (auto& th : threads) th.join();
  for (const std::string& r : results) EXPECT_EQ(r, c.signature);
}

}  // namespace
}  // namespace fieldsync::crypto
