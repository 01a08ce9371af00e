#include "crypto/secret.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fieldsync::crypto {
namespace {

const std::vector<uint8_t> kBytes = {1, 2, 3, 4, 5};

TEST(SecretBytesTest, SizedConstructorIsZeroFilled) {
  SecretBytes s(4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_THAT(std::vector<uint8_t>(s.span().begin(), s.span().end()),
              ::testing::ElementsAre(0, 0, 0, 0));
}

TEST(SecretBytesTest, CopiesFromSpan) {
  SecretBytes s(kBytes);
  EXPECT_EQ(std::vector<uint8_t>(s.span().begin(), s.span().end()), kBytes);
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  SecretBytes a(kBytes);
  SecretBytes b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract.
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.size(), kBytes.size());
}

TEST(SecretBytesTest, MoveAssignmentReplacesAndEmptiesSource) {
  SecretBytes a(kBytes);
  SecretBytes b(2);
  b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b, SecretBytes(kBytes));
}

TEST(SecretBytesTest, DebugStringShowsOnlyTheLength) {
  SecretBytes s(kBytes);
  EXPECT_EQ(s.DebugString(), "<secret 5 bytes>");
}

TEST(SecretBytesTest, EqualityComparesContentsAndLength) {
  EXPECT_EQ(SecretBytes(kBytes), SecretBytes(kBytes));
  std::vector<uint8_t> other = kBytes;
  other.back() ^= 1;
  EXPECT_FALSE(SecretBytes(kBytes) == SecretBytes(other));
  EXPECT_FALSE(SecretBytes(kBytes) == SecretBytes(std::span(kBytes).first(4)));
  EXPECT_EQ(SecretBytes(), SecretBytes(0));
}

TEST(SecretBytesTest, CloneIsAnIndependentCopy) {
  SecretBytes a(kBytes);
  SecretBytes b = a.Clone();
  b.data()[0] = 9;
  EXPECT_EQ(a.data()[0], 1);
}

TEST(ConstantTimeEqualsTest, ComparesLengthAndContents) {
  std::vector<uint8_t> a = {1, 2, 3};
  std::vector<uint8_t> b = {1, 2, 3};
  std::vector<uint8_t> c = {1, 2, 4};
  EXPECT_TRUE(ConstantTimeEquals(a, b));
  EXPECT_FALSE(ConstantTimeEquals(a, c));
  EXPECT_FALSE(ConstantTimeEquals(a, std::span(b).first(2)));
  EXPECT_TRUE(ConstantTimeEquals({}, {}));
}

TEST(CleanseTest, ZeroesTheBytes) {
  std::vector<uint8_t> v = {1, 2, 3};
  Cleanse(std::span<uint8_t>(v));
  EXPECT_THAT(v, ::testing::ElementsAre(0, 0, 0));
}

}  // namespace
}  // namespace fieldsync::crypto
