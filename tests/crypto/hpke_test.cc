#include "crypto/hpke.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "crypto/bytes.h"
#include "gtest/gtest.h"
#include "tests/crypto/crypto_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::crypto::testing::Hex;
using ::fieldsync::crypto::testing::Unhex;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kVectorsFile[] = "hpke/hpke_rfc9180_x25519_sha256_aes256gcm_base.json";

// Our suite's entry of the RFC 9180 vector set: the file holds one suite,
// checked here to be ours.
const nlohmann::json& OurSuite(const nlohmann::json& file) {
  const nlohmann::json& v = file.is_array() ? file.at(0) : file;
  EXPECT_EQ(v["mode"], 0);
  EXPECT_EQ(v["kem_id"], kHpkeKemX25519Sha256);
  EXPECT_EQ(v["kdf_id"], kHpkeKdfHkdfSha256);
  EXPECT_EQ(v["aead_id"], kHpkeAeadAes256Gcm);
  return v;
}

// RFC 9180 Appendix A has no DHKEM(X25519)/HKDF-SHA256/AES-256-GCM suite
// (A.1 is AES-128-GCM, A.2 ChaCha20-Poly1305, A.6 AES-256-GCM over P-521).
// Our KEM is A.1's, though, and the KEM's derivations use only the KEM
// suite id: A.1.1's DeriveKeyPair and Decap values check it on their own.
TEST(HpkeTest, Rfc9180AppendixA1_1KemValues) {
  X25519KeyPair e =
      HpkeDeriveKeyPair(Unhex("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234"));
  EXPECT_EQ(Hex(e.private_key.span()),
            "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736");
  EXPECT_EQ(Hex(e.public_key), "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431");
  X25519KeyPair r =
      HpkeDeriveKeyPair(Unhex("6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037"));
  EXPECT_EQ(Hex(r.private_key.span()),
            "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8");
  EXPECT_EQ(Hex(r.public_key), "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d");
  absl::StatusOr<X25519PrivateKey> skr = X25519PrivateKey::Create(r.private_key.span());
  ASSERT_THAT(skr, IsOk());
  absl::StatusOr<SecretBytes> shared = HpkeKemDecap(e.public_key, *skr);
  ASSERT_THAT(shared, IsOk());
  EXPECT_EQ(Hex(shared->span()),
            "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc");
  testing::ReportChecked(5, "RFC 9180 A.1.1 DHKEM(X25519, HKDF-SHA256)");
}

TEST(HpkeTest, Rfc9180VectorsKeyPairsAndKem) {
  FS_LOAD_VECTORS_OR_SKIP(file, kVectorsFile);
  const nlohmann::json& v = OurSuite(file);
  X25519KeyPair e = HpkeDeriveKeyPair(Unhex(v["ikmE"]));
  X25519KeyPair r = HpkeDeriveKeyPair(Unhex(v["ikmR"]));
  EXPECT_EQ(Hex(e.private_key.span()), v["skEm"]);
  EXPECT_EQ(Hex(e.public_key), v["pkEm"]);
  EXPECT_EQ(Hex(r.private_key.span()), v["skRm"]);
  EXPECT_EQ(Hex(r.public_key), v["pkRm"]);
  absl::StatusOr<X25519PrivateKey> skr = X25519PrivateKey::Create(Unhex(v["skRm"]));
  ASSERT_THAT(skr, IsOk());
  absl::StatusOr<SecretBytes> shared = HpkeKemDecap(Unhex(v["enc"]), *skr);
  ASSERT_THAT(shared, IsOk());
  EXPECT_EQ(Hex(shared->span()), v["shared_secret"]);
  testing::ReportChecked(5, "RFC 9180 (X25519, SHA256, AES-256-GCM) key pair and KEM");
}

TEST(HpkeTest, Rfc9180VectorsRecipientOpensAll257AndExports) {
  FS_LOAD_VECTORS_OR_SKIP(file, kVectorsFile);
  const nlohmann::json& v = OurSuite(file);
  absl::StatusOr<std::unique_ptr<HpkeContext>> r =
      HpkeSetupBaseR(Unhex(v["enc"]), SecretBytes(Unhex(v["skRm"])), Unhex(v["info"]));
  ASSERT_THAT(r, IsOk());
  size_t opened = 0;
  for (const auto& e : v["encryptions"]) {
    SCOPED_TRACE(opened);
    ASSERT_EQ((*r)->sequence(), opened);
    ASSERT_THAT((*r)->Open(Unhex(e["aad"]), Unhex(e["ct"])),
                IsOkAndHolds(ToString(Unhex(e["pt"]))));
    ++opened;
  }
  EXPECT_EQ(opened, 257u);
  size_t exports = 0;
  for (const auto& x : v["exports"]) {
    absl::StatusOr<SecretBytes> value =
        (*r)->Export(Unhex(x["exporter_context"]), x["L"].get<size_t>());
    ASSERT_THAT(value, IsOk());
    EXPECT_EQ(Hex(value->span()), x["exported_value"]);
    ++exports;
  }
  EXPECT_EQ(exports, 3u);
  testing::ReportChecked(opened, "RFC 9180 recipient-side open");
  testing::ReportChecked(exports, "RFC 9180 recipient-side export");
}

TEST(HpkeTest, Rfc9180VectorsSenderIsByteExactWithInjectedEphemeralKey) {
  FS_LOAD_VECTORS_OR_SKIP(file, kVectorsFile);
  const nlohmann::json& v = OurSuite(file);
  absl::StatusOr<HpkeSenderSetup> s = HpkeSetupBaseSWithEphemeralKeyForTesting(
      Unhex(v["pkRm"]), Unhex(v["info"]), SecretBytes(Unhex(v["skEm"])));
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(Hex(s->enc), v["enc"]);
  size_t sealed = 0;
  for (const auto& e : v["encryptions"]) {
    SCOPED_TRACE(sealed);
    uint64_t seq = 0;
    absl::StatusOr<std::string> ct = s->context->Seal(Unhex(e["aad"]), Unhex(e["pt"]), &seq);
    ASSERT_THAT(ct, IsOk());
    EXPECT_EQ(seq, sealed);
    EXPECT_EQ(Hex(*ct), e["ct"]);
    ++sealed;
  }
  size_t exports = 0;
  for (const auto& x : v["exports"]) {
    absl::StatusOr<SecretBytes> value =
        s->context->Export(Unhex(x["exporter_context"]), x["L"].get<size_t>());
    ASSERT_THAT(value, IsOk());
    EXPECT_EQ(Hex(value->span()), x["exported_value"]);
    ++exports;
  }
  testing::ReportChecked(sealed, "RFC 9180 sender-side byte-exact seal");
  testing::ReportChecked(exports, "RFC 9180 sender-side export");
}

class HpkeRoundTripTest : public ::testing::Test {
 protected:
  fieldsync::testing::SeededRandom random_;
  X25519KeyPair recipient_ = GenerateX25519(random_);
  const std::string info_ = "fieldsync batch v1";

  HpkeSenderSetup Sender() {
    absl::StatusOr<HpkeSenderSetup> s = HpkeSetupBaseS(recipient_.public_key, AsBytes(info_), random_);
    EXPECT_THAT(s, IsOk());
    return std::move(s).value();
  }
  std::unique_ptr<HpkeContext> Recipient(std::string_view enc) {
    absl::StatusOr<std::unique_ptr<HpkeContext>> r =
        HpkeSetupBaseR(AsBytes(enc), recipient_.private_key, AsBytes(info_));
    EXPECT_THAT(r, IsOk());
    return std::move(r).value();
  }
};

TEST_F(HpkeRoundTripTest, SealOpenAndExportAgree) {
  HpkeSenderSetup s = Sender();
  std::unique_ptr<HpkeContext> r = Recipient(s.enc);
  for (int i = 0; i < 3; ++i) {
    std::string pt = "batch " + std::to_string(i);
    absl::StatusOr<std::string> ct = s.context->Seal(AsBytes("hdr"), AsBytes(pt));
    ASSERT_THAT(ct, IsOk());
    EXPECT_THAT(r->Open(AsBytes("hdr"), AsBytes(*ct)), IsOkAndHolds(pt));
  }
  absl::StatusOr<SecretBytes> a = s.context->Export(AsBytes("ctx"), 48);
  absl::StatusOr<SecretBytes> b = r->Export(AsBytes("ctx"), 48);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(*a, *b);
  EXPECT_THAT(r->Export({}, 8161), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(HpkeRoundTripTest, RolesAreEnforced) {
  HpkeSenderSetup s = Sender();
  std::unique_ptr<HpkeContext> r = Recipient(s.enc);
  EXPECT_THAT(s.context->Open({}, std::vector<uint8_t>(20, 0)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r->Seal({}, {}), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(HpkeRoundTripTest, OutOfOrderOpenFailsWithoutAdvancing) {
  HpkeSenderSetup s = Sender();
  std::unique_ptr<HpkeContext> r = Recipient(s.enc);
  absl::StatusOr<std::string> first = s.context->Seal({}, AsBytes("one"));
  absl::StatusOr<std::string> second = s.context->Seal({}, AsBytes("two"));
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_THAT(r->Open({}, AsBytes(*second)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(r->sequence(), 0u);
  EXPECT_THAT(r->Open({}, AsBytes(*first)), IsOkAndHolds("one"));
  EXPECT_THAT(r->Open({}, AsBytes(*second)), IsOkAndHolds("two"));
}

TEST_F(HpkeRoundTripTest, EightThreadsSealingNeverReuseASequenceNumber) {
  HpkeSenderSetup s = Sender();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::mutex mu;
  std::map<uint64_t, std::pair<std::string, std::string>> by_sequence;  // seq -> (pt, ct)
  int failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string pt = "t" + std::to_string(t) + "-" + std::to_string(i);
        uint64_t seq = 0;
        absl::StatusOr<std::string> ct = s.context->Seal(AsBytes("aad"), AsBytes(pt), &seq);
        std::lock_guard<std::mutex> lock(mu);
        if (!ct.ok() || !by_sequence.emplace(seq, std::make_pair(pt, *ct)).second) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures, 0);
  ASSERT_EQ(by_sequence.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(by_sequence.rbegin()->first, static_cast<uint64_t>(kThreads * kPerThread - 1));
  // The recipient opens every ciphertext, in sequence order.
  std::unique_ptr<HpkeContext> r = Recipient(s.enc);
  for (const auto& [seq, entry] : by_sequence) {
    ASSERT_THAT(r->Open(AsBytes("aad"), AsBytes(entry.second)), IsOkAndHolds(entry.first))
        << "sequence " << seq;
  }
}

TEST_F(HpkeRoundTripTest, SealRefusesAtTheSequenceLimit) {
  HpkeSenderSetup s = Sender();
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  s.context->SetSequenceForTesting(kMax - 1);
  uint64_t seq = 0;
  EXPECT_THAT(s.context->Seal({}, AsBytes("last"), &seq), IsOk());
  EXPECT_EQ(seq, kMax - 1);
  EXPECT_THAT(s.context->Seal({}, AsBytes("one too many")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("sequence number limit")));
  EXPECT_EQ(s.context->sequence(), kMax);
}

TEST_F(HpkeRoundTripTest, OpenRefusesAtTheSequenceLimit) {
  HpkeSenderSetup s = Sender();
  std::unique_ptr<HpkeContext> r = Recipient(s.enc);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  s.context->SetSequenceForTesting(kMax - 1);
  r->SetSequenceForTesting(kMax - 1);
  absl::StatusOr<std::string> ct = s.context->Seal({}, AsBytes("last"));
  ASSERT_THAT(ct, IsOk());
  EXPECT_THAT(r->Open({}, AsBytes(*ct)), IsOkAndHolds("last"));
  EXPECT_THAT(r->Open({}, AsBytes(*ct)), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(HpkeRoundTripTest, EveryBitFlipOfCiphertextEncOrAadFails) {
  const std::string aad = "device 7 batch 12";
  absl::StatusOr<HpkeCiphertext> sealed =
      HpkeSeal(recipient_.public_key, AsBytes(info_), AsBytes(aad), AsBytes("payload"), random_);
  ASSERT_THAT(sealed, IsOk());
  auto open = [&](std::string_view enc, std::string_view a, std::string_view ct) {
    return HpkeOpen(recipient_.private_key, AsBytes(enc), AsBytes(info_), AsBytes(a), AsBytes(ct));
  };
  ASSERT_THAT(open(sealed->enc, aad, sealed->ciphertext), IsOkAndHolds("payload"));
  auto flip = [](std::string s, size_t bit) {
    s[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    return s;
  };
  for (size_t bit = 0; bit < sealed->ciphertext.size() * 8; ++bit) {
    EXPECT_FALSE(open(sealed->enc, aad, flip(sealed->ciphertext, bit)).ok()) << "ct bit " << bit;
  }
  for (size_t bit = 0; bit < sealed->enc.size() * 8; ++bit) {
    // Bit 255 of an X25519 public key is ignored by RFC 7748 decoding, but
    // enc also enters kem_context byte for byte, so that flip fails too.
    EXPECT_FALSE(open(flip(sealed->enc, bit), aad, sealed->ciphertext).ok()) << "enc bit " << bit;
  }
  for (size_t bit = 0; bit < aad.size() * 8; ++bit) {
    EXPECT_FALSE(open(sealed->enc, flip(aad, bit), sealed->ciphertext).ok()) << "aad bit " << bit;
  }
  for (size_t bit = 0; bit < info_.size() * 8; ++bit) {
    std::string info = flip(info_, bit);
    EXPECT_FALSE(HpkeOpen(recipient_.private_key, AsBytes(sealed->enc), AsBytes(info),
                          AsBytes(aad), AsBytes(sealed->ciphertext))
                     .ok());
  }
}

TEST_F(HpkeRoundTripTest, WrongRecipientKeyFails) {
  absl::StatusOr<HpkeCiphertext> sealed =
      HpkeSeal(recipient_.public_key, AsBytes(info_), {}, AsBytes("payload"), random_);
  ASSERT_THAT(sealed, IsOk());
  X25519KeyPair other = GenerateX25519(random_);
  EXPECT_THAT(HpkeOpen(other.private_key, AsBytes(sealed->enc), AsBytes(info_), {},
                       AsBytes(sealed->ciphertext)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("decryption failed")));
}

TEST_F(HpkeRoundTripTest, TruncatedAndEmptyInputsGiveClearErrors) {
  absl::StatusOr<HpkeCiphertext> sealed =
      HpkeSeal(recipient_.public_key, AsBytes(info_), {}, AsBytes("payload"), random_);
  ASSERT_THAT(sealed, IsOk());
  for (size_t n = 0; n < sealed->ciphertext.size(); ++n) {
    EXPECT_THAT(HpkeOpen(recipient_.private_key, AsBytes(sealed->enc), AsBytes(info_), {},
                         AsBytes(std::string_view(sealed->ciphertext).substr(0, n))),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  for (size_t n : {0, 1, 31}) {
    EXPECT_THAT(HpkeOpen(recipient_.private_key, AsBytes(sealed->enc.substr(0, n)), AsBytes(info_),
                         {}, AsBytes(sealed->ciphertext)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("encapsulated key")));
  }
  EXPECT_THAT(HpkeOpen(SecretBytes(31), AsBytes(sealed->enc), AsBytes(info_), {},
                       AsBytes(sealed->ciphertext)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HpkeSetupBaseS(std::vector<uint8_t>(33, 1), {}, random_),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(HpkeRoundTripTest, LowOrderKeysAreRefused) {
  // The all-zero point and u = 1 are low-order: DH gives all zeros.
  std::vector<uint8_t> zero(32, 0), one(32, 0);
  one[0] = 1;
  for (const auto& point : {zero, one}) {
    EXPECT_THAT(HpkeSetupBaseS(point, {}, random_),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("all zero")));
    EXPECT_THAT(HpkeSetupBaseR(point, recipient_.private_key, {}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("all zero")));
  }
}

TEST_F(HpkeRoundTripTest, PreparedRecipientKeyMatches) {
  absl::StatusOr<X25519PrivateKey> key = X25519PrivateKey::Create(recipient_.private_key.span());
  ASSERT_THAT(key, IsOk());
  absl::StatusOr<HpkeCiphertext> sealed =
      HpkeSeal(recipient_.public_key, AsBytes(info_), AsBytes("a"), AsBytes("payload"), random_);
  ASSERT_THAT(sealed, IsOk());
  EXPECT_THAT(HpkeOpen(*key, AsBytes(sealed->enc), AsBytes(info_), AsBytes("a"),
                       AsBytes(sealed->ciphertext)),
              IsOkAndHolds("payload"));
}

}  // namespace
}  // namespace fieldsync::crypto
