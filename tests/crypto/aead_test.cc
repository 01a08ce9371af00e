#include "crypto/aead.h"

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "crypto/bytes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/crypto/crypto_test_util.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::crypto::testing::Hex;
using ::fieldsync::crypto::testing::Unhex;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

// "The Galois/Counter Mode of Operation (GCM)", McGrew and Viega (2005),
// Appendix B, test cases 13-18 (AES-256). Cases 17 and 18 use 64-bit and
// 480-bit IVs, which this API refuses (96-bit nonces only).
struct GcmCase {
  int number;
  const char* key;
  const char* iv;
  const char* plaintext;
  const char* aad;
  const char* ciphertext;
  const char* tag;
};

constexpr char kKey15[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr char kPlain15[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
    "b525b16aedf5aa0de657ba637b391aafd255";
constexpr char kPlain16[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
    "b525b16aedf5aa0de657ba637b39";
constexpr char kAad16[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

const GcmCase kGcmCases[] = {
    {13, "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {14, "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {15, kKey15, "cafebabefacedbaddecaf888", kPlain15, "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056"
     "828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {16, kKey15, "cafebabefacedbaddecaf888", kPlain16, kAad16,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056"
     "828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

AesGcm MakeAead(std::span<const uint8_t> key) {
  absl::StatusOr<AesGcm> aead = AesGcm::Create(key);
  EXPECT_THAT(aead, IsOk());
  return std::move(aead).value();
}

TEST(AesGcmTest, McGrewViegaTestCases13To16) {
  for (const GcmCase& c : kGcmCases) {
    SCOPED_TRACE(c.number);
    AesGcm aead = MakeAead(Unhex(c.key));
    std::vector<uint8_t> iv = Unhex(c.iv), pt = Unhex(c.plaintext), aad = Unhex(c.aad);
    absl::StatusOr<std::string> sealed = aead.Seal(iv, aad, pt);
    ASSERT_THAT(sealed, IsOk());
    EXPECT_EQ(Hex(*sealed), std::string(c.ciphertext) + c.tag);
    EXPECT_THAT(aead.Open(iv, aad, AsBytes(*sealed)), IsOkAndHolds(ToString(pt)));
  }
  testing::ReportChecked(std::size(kGcmCases), "McGrew-Viega AES-256-GCM");
}

TEST(AesGcmTest, McGrewViegaCases17And18HaveNonStandardIvsAndAreRefused) {
  AesGcm aead = MakeAead(Unhex(kKey15));
  // Case 17: 64-bit IV; case 18: 480-bit IV.
  EXPECT_THAT(aead.Seal(Unhex("cafebabefacedbad"), Unhex(kAad16), Unhex(kPlain16)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nonce must be 12 bytes")));
  std::vector<uint8_t> iv18(60, 0x93);
  EXPECT_THAT(aead.Seal(iv18, Unhex(kAad16), Unhex(kPlain16)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AesGcmTest, WycheproofAes256Iv96) {
  FS_LOAD_VECTORS_OR_SKIP(j, "wycheproof/aes_gcm_test.json");
  size_t checked = 0, valid = 0;
  for (const auto& group : j["testGroups"]) {
    if (group["keySize"] != 256 || group["ivSize"] != 96) continue;
    ASSERT_EQ(group["tagSize"], 128);
    for (const auto& t : group["tests"]) {
      SCOPED_TRACE(t["tcId"].get<int>());
      AesGcm aead = MakeAead(Unhex(t["key"]));
      std::vector<uint8_t> iv = Unhex(t["iv"]), aad = Unhex(t["aad"]), msg = Unhex(t["msg"]);
      std::string sealed = ToString(Unhex(t["ct"])) + ToString(Unhex(t["tag"]));
      absl::StatusOr<std::string> opened = aead.Open(iv, aad, AsBytes(sealed));
      if (t["result"] == "valid") {
        EXPECT_THAT(aead.Seal(iv, aad, msg), IsOkAndHolds(sealed));
        EXPECT_THAT(opened, IsOkAndHolds(ToString(msg)));
        ++valid;
      } else {
        EXPECT_THAT(opened, StatusIs(absl::StatusCode::kInvalidArgument));
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 66u);
  EXPECT_EQ(valid, 39u);
  testing::ReportChecked(checked, "Wycheproof AES-256-GCM (96-bit IV)");
}

class AesGcmTamperTest : public ::testing::Test {
 protected:
  const std::vector<uint8_t> key_ = std::vector<uint8_t>(32, 0x42);
  const std::vector<uint8_t> nonce_ = std::vector<uint8_t>(12, 0x07);
  const std::string aad_ = "case 17 / record 3 / field name";
  const std::string plaintext_ = "Amina, born 2015-03-04";
  AesGcm aead_ = MakeAead(key_);
};

TEST_F(AesGcmTamperTest, EveryBitFlipOfCiphertextOrTagFails) {
  absl::StatusOr<std::string> sealed = aead_.Seal(nonce_, AsBytes(aad_), AsBytes(plaintext_));
  ASSERT_THAT(sealed, IsOk());
  for (size_t bit = 0; bit < sealed->size() * 8; ++bit) {
    std::string bad = *sealed;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_THAT(aead_.Open(nonce_, AsBytes(aad_), AsBytes(bad)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("decryption failed")))
        << "bit " << bit;
  }
}

TEST_F(AesGcmTamperTest, EveryBitFlipOfAadOrNonceFails) {
  absl::StatusOr<std::string> sealed = aead_.Seal(nonce_, AsBytes(aad_), AsBytes(plaintext_));
  ASSERT_THAT(sealed, IsOk());
  for (size_t bit = 0; bit < aad_.size() * 8; ++bit) {
    std::string bad = aad_;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_THAT(aead_.Open(nonce_, AsBytes(bad), AsBytes(*sealed)),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  for (size_t bit = 0; bit < nonce_.size() * 8; ++bit) {
    std::vector<uint8_t> bad = nonce_;
    bad[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    EXPECT_THAT(aead_.Open(bad, AsBytes(aad_), AsBytes(*sealed)),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST_F(AesGcmTamperTest, WrongKeyFails) {
  absl::StatusOr<std::string> sealed = aead_.Seal(nonce_, AsBytes(aad_), AsBytes(plaintext_));
  ASSERT_THAT(sealed, IsOk());
  AesGcm other = MakeAead(std::vector<uint8_t>(32, 0x43));
  EXPECT_THAT(other.Open(nonce_, AsBytes(aad_), AsBytes(*sealed)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "decryption failed: wrong key, tampered data or wrong associated data"));
}

TEST_F(AesGcmTamperTest, EveryTruncationFails) {
  absl::StatusOr<std::string> sealed = aead_.Seal(nonce_, AsBytes(aad_), AsBytes(plaintext_));
  ASSERT_THAT(sealed, IsOk());
  for (size_t n = 0; n < sealed->size(); ++n) {
    EXPECT_THAT(aead_.Open(nonce_, AsBytes(aad_), AsBytes(std::string_view(*sealed).substr(0, n))),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << n;
  }
  EXPECT_THAT(aead_.Open(nonce_, AsBytes(aad_), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too short")));
}

TEST_F(AesGcmTamperTest, FailedOpenToWipesTheOutput) {
  absl::StatusOr<std::string> sealed = aead_.Seal(nonce_, AsBytes(aad_), AsBytes(plaintext_));
  ASSERT_THAT(sealed, IsOk());
  std::string bad = *sealed;
  bad.back() ^= 1;  // Tag only: the ciphertext itself decrypts to the plaintext.
  std::vector<uint8_t> out(plaintext_.size(), 0xAA);
  EXPECT_THAT(aead_.OpenTo(nonce_, AsBytes(aad_), AsBytes(bad), out),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(out, std::vector<uint8_t>(plaintext_.size(), 0));
}

TEST(AesGcmTest, KeyOfWrongLengthIsRefused) {
  for (size_t n : {0, 16, 24, 31, 33}) {
    EXPECT_THAT(AesGcm::Create(std::vector<uint8_t>(n, 1)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be 32 bytes")))
        << n;
  }
}

TEST(AesGcmTest, NonceOfWrongLengthIsRefusedOnOpen) {
  AesGcm aead = MakeAead(std::vector<uint8_t>(32, 1));
  std::vector<uint8_t> sealed(32, 0);
  EXPECT_THAT(aead.Open(std::vector<uint8_t>(16, 0), {}, sealed),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nonce must be 12 bytes")));
  EXPECT_THAT(aead.Open({}, {}, sealed), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AesGcmTest, EmptyPlaintextAndAadRoundTrip) {
  AesGcm aead = MakeAead(std::vector<uint8_t>(32, 1));
  std::vector<uint8_t> nonce(12, 2);
  absl::StatusOr<std::string> sealed = aead.Seal(nonce, {}, {});
  ASSERT_THAT(sealed, IsOk());
  EXPECT_EQ(sealed->size(), kAesGcmTagSize);
  EXPECT_THAT(aead.Open(nonce, {}, AsBytes(*sealed)), IsOkAndHolds(""));
}

TEST(AesGcmTest, SealAppendKeepsThePrefix) {
  AesGcm aead = MakeAead(std::vector<uint8_t>(32, 1));
  std::vector<uint8_t> nonce(12, 2);
  std::string out = "header";
  ASSERT_THAT(aead.SealAppend(nonce, {}, AsBytes("value"), &out), IsOk());
  EXPECT_EQ(out.substr(0, 6), "header");
  EXPECT_THAT(aead.Open(nonce, {}, AsBytes(std::string_view(out).substr(6))),
              IsOkAndHolds("value"));
  std::string unchanged = "header";
  EXPECT_THAT(aead.SealAppend({}, {}, AsBytes("value"), &unchanged),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(unchanged, "header");
}

TEST(AesGcmTest, OneShotFunctionsMatchTheClass) {
  std::vector<uint8_t> key(32, 9), nonce(12, 8);
  absl::StatusOr<std::string> sealed = AesGcmSeal(key, nonce, AsBytes("ad"), AsBytes("pt"));
  ASSERT_THAT(sealed, IsOk());
  EXPECT_THAT(MakeAead(key).Seal(nonce, AsBytes("ad"), AsBytes("pt")), IsOkAndHolds(*sealed));
  EXPECT_THAT(AesGcmOpen(key, nonce, AsBytes("ad"), AsBytes(*sealed)), IsOkAndHolds("pt"));
  EXPECT_THAT(AesGcmOpen(std::vector<uint8_t>(31, 9), nonce, {}, AsBytes(*sealed)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AesGcmTest, ConcurrentSealAndOpenOnOneObject) {
  AesGcm aead = MakeAead(std::vector<uint8_t>(32, 5));
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&aead, &failures, t] {
      for (int i = 0; i < 500; ++i) {
        std::vector<uint8_t> nonce(12, 0);
        nonce[0] = static_cast<uint8_t>(t);
        nonce[1] = static_cast<uint8_t>(i);
        nonce[2] = static_cast<uint8_t>(i >> 8);
        std::string pt = "thread " + std::to_string(t) + " message " + std::to_string(i);
        absl::StatusOr<std::string> sealed = aead.Seal(nonce, {}, AsBytes(pt));
        absl::StatusOr<std::string> opened =
            sealed.ok() ? aead.Open(nonce, {}, AsBytes(*sealed)) : sealed.status();
        if (!opened.ok() || *opened != pt) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(kThreads, 0));
}

}  // namespace
}  // namespace fieldsync::crypto
