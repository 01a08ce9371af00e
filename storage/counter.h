// The value layout of counters in Cf::kAggregates, which the column family's
// merge operator adds. Persisted: never change.
//
//   value = 8 bytes, the counter as a two's complement int64, little-endian
//           (the layout of RocksDB's own "uint64add" operator).
//
// A Merge operand has the same layout and holds the signed delta; the merge
// adds with two's complement wrap-around (no saturation).
#ifndef FIELDSYNC_STORAGE_COUNTER_H_
#define FIELDSYNC_STORAGE_COUNTER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fieldsync::storage {

inline constexpr size_t kInt64CounterSize = 8;

// The 8-byte value (or merge operand) for `v`.
std::string EncodeInt64Counter(int64_t v);

// The counter in `value`; kDataLoss unless it is exactly 8 bytes.
absl::StatusOr<int64_t> DecodeInt64Counter(std::string_view value);

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_COUNTER_H_
