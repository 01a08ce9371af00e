#include "protocol/batch_header.h"

#include <string>

#include "gtest/gtest.h"

namespace fieldsync::protocol {
namespace {

using namespace std::string_literals;  // NOLINT: "..."s keeps embedded 00 bytes

Uuid Seq(uint8_t first) {
  Uuid id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(first + i);
  return id;
}

TEST(BatchHeaderTest, EncodesTheDocumentedSeventyBytes) {
  BatchHeader header;
  header.device_id = Seq(0x00);
  header.batch_id = Seq(0x10);
  header.sequence = 0x0102030405060708;
  header.sealing_key_id = 0x0a0b0c0d;

  std::string got = EncodeBatchHeader(header);

  EXPECT_EQ(got,
            "fieldsync/batch-header/v1\x00"s
            "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
            "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
            "\x01\x02\x03\x04\x05\x06\x07\x08"
            "\x0a\x0b\x0c\x0d"s);
  EXPECT_EQ(got.size(), kBatchHeaderEncodingSize);
  EXPECT_EQ(got.size(), 70u);
}

TEST(BatchHeaderTest, EveryFieldChangesTheEncoding) {
  BatchHeader base;
  base.device_id = Seq(1);
  base.batch_id = Seq(2);
  base.sequence = 7;
  base.sealing_key_id = 3;
  BatchHeader a = base, b = base, c = base, d = base;
  a.device_id[15] ^= 1;
  b.batch_id[0] ^= 1;
  c.sequence = 8;
  d.sealing_key_id = 4;
  const std::string e = EncodeBatchHeader(base);
  for (const BatchHeader& h : {a, b, c, d}) EXPECT_NE(EncodeBatchHeader(h), e);
}

}  // namespace
}  // namespace fieldsync::protocol
