// The primitives of fieldsync's compact stored forms (sync/log_codec.h,
// sync/record_codec.h, storage/keyed_sums.h): unsigned LEB128 varints,
// zigzag varints for signed values, length-prefixed bytes, and fixed
// 16-byte ids. Persisted through those forms: never change an encoding here.
#ifndef FIELDSYNC_COMMON_BYTE_CODEC_H_
#define FIELDSYNC_COMMON_BYTE_CODEC_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/uuid.h"

namespace fieldsync {

// Appends to a string. Not thread-safe.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void Signed(int64_t v) {
    Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void Bytes(std::string_view b) {
    Varint(b.size());
    out_->append(b);
  }
  void Id(const Uuid& id) { out_->append(reinterpret_cast<const char*>(id.data()), id.size()); }

 private:
  std::string* out_;
};

// Reads what a ByteWriter wrote. Every read returns false, and leaves the
// reader failed, on truncated or malformed input (a varint over 10 bytes or
// past 64 bits); it never reads past the end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool U8(uint8_t* v) {
    if (pos_ >= in_.size()) return Fail();
    *v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return Fail();
      const uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && b > 1) return Fail();
      result |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return Fail();
  }
  bool Varint32(uint32_t* v) {
    uint64_t w = 0;
    if (!Varint(&w) || w > UINT32_MAX) return Fail();
    *v = static_cast<uint32_t>(w);
    return true;
  }
  bool Signed(int64_t* v) {
    uint64_t u = 0;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool Bytes(std::string_view* b) {
    uint64_t n = 0;
    if (!Varint(&n) || n > in_.size() - pos_) return Fail();
    *b = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Id(Uuid* id) {
    if (in_.size() - pos_ < id->size()) return Fail();
    std::memcpy(id->data(), in_.data() + pos_, id->size());
    pos_ += id->size();
    return true;
  }

  bool AtEnd() const { return pos_ == in_.size(); }
  bool failed() const { return failed_; }
  size_t position() const { return pos_; }

 private:
  bool Fail() {
    failed_ = true;
    pos_ = in_.size();
    return false;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_BYTE_CODEC_H_
