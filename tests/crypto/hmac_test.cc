#include "crypto/hmac.h"

#include <string>
#include <vector>

#include "crypto/bytes.h"
#include "gtest/gtest.h"
#include "tests/crypto/crypto_test_util.h"

namespace fieldsync::crypto {
namespace {

using ::fieldsync::crypto::testing::Hex;
using ::fieldsync::crypto::testing::Unhex;

struct Rfc4231Case {
  int number;
  std::vector<uint8_t> key;
  std::string data;
  const char* tag;  // Case 5 publishes only the first 128 bits.
};

std::vector<Rfc4231Case> Rfc4231Cases() {
  std::vector<uint8_t> key4;
  for (int i = 1; i <= 25; ++i) key4.push_back(static_cast<uint8_t>(i));
  const std::vector<uint8_t> big_key(131, 0xaa);
  return {
      {1, std::vector<uint8_t>(20, 0x0b), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {2,
       {'J', 'e', 'f', 'e'},
       "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {3, std::vector<uint8_t>(20, 0xaa), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {4, key4, std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {5, std::vector<uint8_t>(20, 0x0c), "Test With Truncation",
       "a3b6167473100ee06e0c796c2955552b"},
      {6, big_key, "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {7, big_key,
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
}

TEST(HmacSha256Test, Rfc4231Cases1To7) {
  for (const Rfc4231Case& c : Rfc4231Cases()) {
    SCOPED_TRACE(c.number);
    std::string expected = c.tag;
    HmacSha256Tag tag = HmacSha256(c.key, AsBytes(c.data));
    EXPECT_EQ(Hex(tag).substr(0, expected.size()), expected);
    EXPECT_TRUE(VerifyHmacSha256(c.key, AsBytes(c.data), Unhex(expected)));
  }
  testing::ReportChecked(7, "RFC 4231 HMAC-SHA256");
}

TEST(HmacSha256Test, VerifyRefusesTagsShorterThan128BitsOrLongerThan256) {
  std::vector<uint8_t> key(32, 1);
  HmacSha256Tag tag = HmacSha256(key, AsBytes("m"));
  EXPECT_TRUE(VerifyHmacSha256(key, AsBytes("m"), std::span(tag).first(16)));
  EXPECT_FALSE(VerifyHmacSha256(key, AsBytes("m"), std::span(tag).first(15)));
  EXPECT_FALSE(VerifyHmacSha256(key, AsBytes("m"), {}));
  std::vector<uint8_t> longer(tag.begin(), tag.end());
  longer.push_back(0);
  EXPECT_FALSE(VerifyHmacSha256(key, AsBytes("m"), longer));
}

TEST(HmacSha256Test, VerifyRejectsEveryBitFlip) {
  std::vector<uint8_t> key(32, 1);
  HmacSha256Tag tag = HmacSha256(key, AsBytes("m"));
  for (size_t bit = 0; bit < tag.size() * 8; ++bit) {
    HmacSha256Tag bad = tag;
    bad[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    EXPECT_FALSE(VerifyHmacSha256(key, AsBytes("m"), bad)) << bit;
  }
}

TEST(HmacSha256Test, EmptyKeyEqualsZeroKey) {
  EXPECT_EQ(HmacSha256({}, AsBytes("m")), HmacSha256(std::vector<uint8_t>(32, 0), AsBytes("m")));
}

TEST(HmacSha256Test, WycheproofIncludingTruncatedTags) {
  FS_LOAD_VECTORS_OR_SKIP(j, "wycheproof/hmac_sha256_test.json");
  size_t checked = 0, truncated = 0;
  for (const auto& group : j["testGroups"]) {
    const size_t tag_bytes = group["tagSize"].get<size_t>() / 8;
    for (const auto& t : group["tests"]) {
      SCOPED_TRACE(t["tcId"].get<int>());
      std::vector<uint8_t> key = Unhex(t["key"]), msg = Unhex(t["msg"]), tag = Unhex(t["tag"]);
      bool verified = VerifyHmacSha256(key, msg, tag);
      if (t["result"] == "valid") {
        EXPECT_EQ(Hex(std::span<const uint8_t>(HmacSha256(key, msg)).first(tag_bytes)),
                  t["tag"].get<std::string>());
        EXPECT_TRUE(verified);
      } else {
        EXPECT_FALSE(verified);
      }
      if (tag_bytes < kHmacSha256Size) ++truncated;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 174u);
  std::cout << "(" << truncated << " with 128-bit truncated tags)\n";
  testing::ReportChecked(checked, "Wycheproof HMAC-SHA256");
}

// A key set up once tags as the one-shot function does, tag after tag
// (each restarts from the key, not from the last input), for the RFC 4231
// keys (short, block-sized and longer than a block) and the empty key.
TEST(HmacSha256KeyTest, TagsEqualTheOneShotFunctionsTagAfterTag) {
  std::vector<std::vector<uint8_t>> keys = {{}};
  for (const Rfc4231Case& c : Rfc4231Cases()) keys.push_back(c.key);
  const std::vector<std::string> inputs = {"", "m", std::string(200, 'x'), "m"};
  for (const std::vector<uint8_t>& key : keys) {
    SCOPED_TRACE(Hex(key));
    HmacSha256Key keyed(key);
    for (const std::string& input : inputs) {
      EXPECT_EQ(Hex(keyed.Tag(AsBytes(input))), Hex(HmacSha256(key, AsBytes(input))));
    }
    // A moved key keeps tagging under the same key.
    HmacSha256Key moved = std::move(keyed);
    EXPECT_EQ(Hex(moved.Tag(AsBytes("after a move"))),
              Hex(HmacSha256(key, AsBytes("after a move"))));
  }
  // Two keys in turn keep their own.
  HmacSha256Key a(std::vector<uint8_t>(32, 1)), b(std::vector<uint8_t>(32, 2));
  EXPECT_NE(a.Tag(AsBytes("m")), b.Tag(AsBytes("m")));
  EXPECT_EQ(a.Tag(AsBytes("m")), HmacSha256(std::vector<uint8_t>(32, 1), AsBytes("m")));
}

TEST(HmacSha256KeyTest, WycheproofTags) {
  FS_LOAD_VECTORS_OR_SKIP(j, "wycheproof/hmac_sha256_test.json");
  size_t checked = 0;
  for (const auto& group : j["testGroups"]) {
    const size_t tag_bytes = group["tagSize"].get<size_t>() / 8;
    for (const auto& t : group["tests"]) {
      if (t["result"] != "valid") continue;
      SCOPED_TRACE(t["tcId"].get<int>());
      HmacSha256Key key(Unhex(t["key"]));
      EXPECT_EQ(Hex(std::span<const uint8_t>(key.Tag(Unhex(t["msg"]))).first(tag_bytes)),
                t["tag"].get<std::string>());
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
  testing::ReportChecked(checked, "Wycheproof HMAC-SHA256 (keyed once)");
}

}  // namespace
}  // namespace fieldsync::crypto
