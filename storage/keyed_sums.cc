#include "storage/keyed_sums.h"

#include "absl/strings/str_format.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"

namespace fieldsync::storage {
namespace {

absl::Status Malformed(std::string_view what, size_t offset) {
  return absl::DataLossError(absl::StrFormat("malformed keyed sums: %s at byte %d", what, offset));
}

int64_t WrappingAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

}  // namespace

std::string EncodeKeyedSums(const KeyedSums& sums) {
  std::string out;
  ByteWriter w(&out);
  for (const auto& [member, sum] : sums) {
    if (sum == 0) continue;
    w.Bytes(member);
    w.Signed(sum);
  }
  return out;
}

absl::Status ForEachKeyedSum(
    std::string_view value,
    absl::FunctionRef<absl::Status(std::string_view member, int64_t sum)> fn) {
  ByteReader r(value);
  std::string_view previous;
  bool first = true;
  while (!r.AtEnd()) {
    const size_t at = r.position();
    std::string_view member;
    int64_t sum = 0;
    if (!r.Bytes(&member)) return Malformed("truncated or malformed member", at);
    if (!r.Signed(&sum)) return Malformed("truncated or malformed sum", at);
    if (!first && member <= previous) return Malformed("member out of order", at);
    if (sum == 0) return Malformed("zero sum", at);
    RETURN_IF_ERROR(fn(member, sum));
    previous = member;
    first = false;
  }
  return absl::OkStatus();
}

absl::Status AddKeyedSums(std::string_view value, KeyedSums* into) {
  return ForEachKeyedSum(value, [into](std::string_view member, int64_t sum) {
    AddToSum(into, member, sum);
    return absl::OkStatus();
  });
}

void AddToSum(KeyedSums* sums, std::string_view member, int64_t delta) {
  if (delta == 0) return;
  auto it = sums->find(member);
  if (it == sums->end()) {
    sums->emplace(std::string(member), delta);
    return;
  }
  it->second = WrappingAdd(it->second, delta);
  if (it->second == 0) sums->erase(it);
}

}  // namespace fieldsync::storage
