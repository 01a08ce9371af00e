#include "crypto/hkdf.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/crypto/crypto_test_util.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::crypto::testing::Hex;
using ::fieldsync::crypto::testing::Unhex;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

std::vector<uint8_t> Range(int from, int to) {
  std::vector<uint8_t> out;
  for (int i = from; i < to; ++i) out.push_back(static_cast<uint8_t>(i));
  return out;
}

struct Rfc5869Case {
  const char* name;
  std::vector<uint8_t> ikm, salt, info;
  size_t length;
  const char* prk;
  const char* okm;
};

// RFC 5869 Appendix A.1-A.3 (the SHA-256 cases).
TEST(HkdfTest, Rfc5869A1ToA3) {
  const Rfc5869Case cases[] = {
      {"A.1", std::vector<uint8_t>(22, 0x0b), Range(0x00, 0x0d), Range(0xf0, 0xfa), 42,
       "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
       "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
      {"A.2", Range(0x00, 0x50), Range(0x60, 0xb0), Range(0xb0, 0x100), 82,
       "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
       "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e5"
       "90e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
      {"A.3", std::vector<uint8_t>(22, 0x0b), {}, {}, 42,
       "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
       "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
  };
  for (const Rfc5869Case& c : cases) {
    SCOPED_TRACE(c.name);
    SecretBytes prk = HkdfExtract(c.salt, c.ikm);
    EXPECT_EQ(Hex(prk.span()), c.prk);
    absl::StatusOr<SecretBytes> okm = HkdfExpand(prk.span(), c.info, c.length);
    ASSERT_THAT(okm, IsOk());
    EXPECT_EQ(Hex(okm->span()), c.okm);
    absl::StatusOr<SecretBytes> both = Hkdf(c.salt, c.ikm, c.info, c.length);
    ASSERT_THAT(both, IsOk());
    EXPECT_EQ(Hex(both->span()), c.okm);
  }
  testing::ReportChecked(3, "RFC 5869 HKDF-SHA256");
}

TEST(HkdfTest, OutputLimits) {
  std::vector<uint8_t> prk(32, 1);
  absl::StatusOr<SecretBytes> max = HkdfExpand(prk, {}, kHkdfSha256MaxOutput);
  ASSERT_THAT(max, IsOk());
  EXPECT_EQ(max->size(), 8160u);
  EXPECT_THAT(HkdfExpand(prk, {}, kHkdfSha256MaxOutput + 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<SecretBytes> empty = HkdfExpand(prk, {}, 0);
  ASSERT_THAT(empty, IsOk());
  EXPECT_TRUE(empty->empty());
}

TEST(HkdfTest, ShortPrkIsRefused) {
  EXPECT_THAT(HkdfExpand(std::vector<uint8_t>(31, 1), {}, 32),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(HkdfTest, WycheproofHkdfSha256) {
  FS_LOAD_VECTORS_OR_SKIP(j, "wycheproof/hkdf_sha256_test.json");
  size_t checked = 0;
  for (const auto& group : j["testGroups"]) {
    for (const auto& t : group["tests"]) {
      SCOPED_TRACE(t["tcId"].get<int>());
      absl::StatusOr<SecretBytes> okm =
          Hkdf(Unhex(t["salt"]), Unhex(t["ikm"]), Unhex(t["info"]), t["size"].get<size_t>());
      if (t["result"] == "valid") {
        ASSERT_THAT(okm, IsOk());
        EXPECT_EQ(Hex(okm->span()), t["okm"].get<std::string>());
      } else {
        EXPECT_THAT(okm, StatusIs(absl::StatusCode::kInvalidArgument));
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 86u);
  testing::ReportChecked(checked, "Wycheproof HKDF-SHA256");
}

}  // namespace
}  // namespace fieldsync::crypto
