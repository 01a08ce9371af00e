#include "crypto/canonical.h"

#include <string>

#include "gtest/gtest.h"

namespace fieldsync::crypto {
namespace {

using namespace std::string_literals;  // NOLINT: "..."s keeps embedded 00 bytes

Uuid Seq(uint8_t first) {
  Uuid id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(first + i);
  return id;
}

TEST(CanonicalWriterTest, WritesDomainTerminatorAndBigEndianFields) {
  std::string got =
      CanonicalWriter("d/v1").U8(0xab).U16(0x0102).U32(0x03040506).U64(0x0708090a0b0c0d0e).Finish();

  EXPECT_EQ(got,
            "d/v1\x00"s
            "\xab"
            "\x01\x02"
            "\x03\x04\x05\x06"
            "\x07\x08\x09\x0a\x0b\x0c\x0d\x0e"s);
}

TEST(CanonicalWriterTest, LengthPrefixesBytesAndWritesFixedAndUuidRaw) {
  const uint8_t hash[3] = {0xde, 0xad, 0x00};
  std::string got = CanonicalWriter("x")
                        .Bytes(std::string_view("hi"))
                        .Bytes(std::string_view())
                        .Fixed(hash)
                        .Uuid(Seq(0xf0))
                        .Finish();

  EXPECT_EQ(got,
            "x\x00"s
            "\x00\x00\x00\x02hi"
            "\x00\x00\x00\x00"
            "\xde\xad\x00"
            "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"s);
}

TEST(CanonicalWriterTest, LengthPrefixKeepsSplitsApart) {
  // Without the prefix, ("ab", "c") and ("a", "bc") would encode the same.
  EXPECT_NE(CanonicalWriter("x").Bytes(std::string_view("ab")).Bytes(std::string_view("c")).view(),
            CanonicalWriter("x").Bytes(std::string_view("a")).Bytes(std::string_view("bc")).view());
}

TEST(CanonicalWriterTest, TerminatorKeepsDomainsApart) {
  // "a/v1" followed by a field starting with "0" vs the domain "a/v10".
  EXPECT_NE(CanonicalWriter("a/v1").U8('0').view(), CanonicalWriter("a/v10").view());
}

TEST(CanonicalWriterDeathTest, RejectsADomainWithAZeroByte) {
  EXPECT_DEATH(CanonicalWriter("bad\0domain"s), "0x00");
  EXPECT_DEATH(CanonicalWriter(""), "non-empty");
}

}  // namespace
}  // namespace fieldsync::crypto
