#include "crypto/x25519.h"

#include <string>
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
using ::testing::HasSubstr;

std::string SharedHex(std::span<const uint8_t> k, std::span<const uint8_t> u) {
  absl::StatusOr<SecretBytes> shared = X25519(k, u);
  EXPECT_THAT(shared, IsOk());
  return shared.ok() ? Hex(shared->span()) : "";
}

// RFC 7748 §5.2: the two single scalar multiplications.
TEST(X25519Test, Rfc7748Section5_2Vectors) {
  EXPECT_EQ(SharedHex(Unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                      Unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")),
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  EXPECT_EQ(SharedHex(Unhex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                      Unhex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")),
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
  testing::ReportChecked(2, "RFC 7748 section 5.2 X25519");
}

// RFC 7748 §5.2: k = u = 9, then k, u = X25519(k, u), k; after 1 and 1000
// iterations.
TEST(X25519Test, Rfc7748Section5_2Iterated) {
  std::vector<uint8_t> k(32, 0), u(32, 0);
  k[0] = 9;
  u[0] = 9;
  for (int i = 1; i <= 1000; ++i) {
    absl::StatusOr<SecretBytes> next = X25519(k, u);
    ASSERT_THAT(next, IsOk());
    u = k;
    k.assign(next->span().begin(), next->span().end());
    if (i == 1) {
      EXPECT_EQ(Hex(k), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
    }
  }
  EXPECT_EQ(Hex(k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
  testing::ReportChecked(2, "RFC 7748 section 5.2 iterated X25519");
}

// RFC 7748 §6.1: Alice and Bob.
TEST(X25519Test, Rfc7748Section6_1DiffieHellman) {
  std::vector<uint8_t> a = Unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  std::vector<uint8_t> b = Unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  absl::StatusOr<X25519PublicKey> pa = X25519PublicFromPrivate(a);
  absl::StatusOr<X25519PublicKey> pb = X25519PublicFromPrivate(b);
  ASSERT_THAT(pa, IsOk());
  ASSERT_THAT(pb, IsOk());
  EXPECT_EQ(Hex(*pa), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(Hex(*pb), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const char kShared[] = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  EXPECT_EQ(SharedHex(a, *pb), kShared);
  EXPECT_EQ(SharedHex(b, *pa), kShared);
  testing::ReportChecked(4, "RFC 7748 section 6.1 X25519");
}

TEST(X25519Test, WycheproofAllZeroSharedSecretsAreRejected) {
  FS_LOAD_VECTORS_OR_SKIP(j, "wycheproof/x25519_test.json");
  size_t checked = 0, zero_rejected = 0;
  const std::string zero(64, '0');
  for (const auto& group : j["testGroups"]) {
    for (const auto& t : group["tests"]) {
      SCOPED_TRACE(t["tcId"].get<int>());
      absl::StatusOr<SecretBytes> shared = X25519(Unhex(t["private"]), Unhex(t["public"]));
      ASSERT_NE(t["result"], "invalid");  // This file has only valid/acceptable.
      if (t["shared"] == zero) {
        EXPECT_THAT(shared, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("all zero")));
        ++zero_rejected;
      } else {
        ASSERT_THAT(shared, IsOk());
        EXPECT_EQ(Hex(shared->span()), t["shared"].get<std::string>());
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 518u);
  EXPECT_EQ(zero_rejected, 31u);
  std::cout << "(" << zero_rejected << " all-zero shared secrets rejected)\n";
  testing::ReportChecked(checked, "Wycheproof X25519");
}

TEST(X25519Test, WrongLengthsAreRefused) {
  std::vector<uint8_t> key(32, 1);
  for (size_t n : {0, 31, 33, 56}) {
    EXPECT_THAT(X25519(std::vector<uint8_t>(n, 1), key),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("private key")));
    EXPECT_THAT(X25519(key, std::vector<uint8_t>(n, 1)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("public key")));
    EXPECT_THAT(X25519PublicFromPrivate(std::vector<uint8_t>(n, 1)),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(X25519Test, GeneratedPairsAgree) {
  fieldsync::testing::SeededRandom random;
  X25519KeyPair a = GenerateX25519(random);
  X25519KeyPair b = GenerateX25519(random);
  absl::StatusOr<SecretBytes> ab = X25519(a.private_key.span(), b.public_key);
  absl::StatusOr<SecretBytes> ba = X25519(b.private_key.span(), a.public_key);
  ASSERT_THAT(ab, IsOk());
  ASSERT_THAT(ba, IsOk());
  EXPECT_EQ(*ab, *ba);
}

TEST(X25519PrivateKeyTest, DeriveMatchesTheFreeFunction) {
  std::vector<uint8_t> a = Unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  std::vector<uint8_t> pb = Unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  absl::StatusOr<X25519PrivateKey> key = X25519PrivateKey::Create(a);
  ASSERT_THAT(key, IsOk());
  EXPECT_EQ(Hex(key->public_key()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  absl::StatusOr<SecretBytes> shared = key->Derive(pb);
  ASSERT_THAT(shared, IsOk());
  EXPECT_EQ(Hex(shared->span()), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_THAT(key->Derive(std::vector<uint8_t>(32, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("all zero")));
}

}  // namespace
}  // namespace fieldsync::crypto
