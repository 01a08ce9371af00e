#include "storage/counter.h"

#include "absl/strings/str_format.h"

namespace fieldsync::storage {

std::string EncodeInt64Counter(int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  std::string out(kInt64CounterSize, '\0');
  for (size_t i = 0; i < kInt64CounterSize; ++i) {
    out[i] = static_cast<char>((u >> (8 * i)) & 0xFF);
  }
  return out;
}

absl::StatusOr<int64_t> DecodeInt64Counter(std::string_view value) {
  if (value.size() != kInt64CounterSize) {
    return absl::DataLossError(absl::StrFormat(
        "malformed counter: %d bytes, expected 8 (int64 little-endian)", value.size()));
  }
  uint64_t u = 0;
  for (size_t i = 0; i < kInt64CounterSize; ++i) {
    u |= uint64_t{static_cast<uint8_t>(value[i])} << (8 * i);
  }
  return static_cast<int64_t>(u);
}

}  // namespace fieldsync::storage
