// Keyed sums: one stored value holding signed 64-bit sums by member (a byte
// string), moved by Merge operands of the same layout that hold deltas.
// The store's merge operator adds them (store.cc); a group of changes that
// moves many members of one key writes one operand, not one key per member.
// Used for aggregate counter pages (aggregates/counters.h) and the case
// scope lists (sync/scope.h). Persisted: never change.
//
//   value = entry*, members in strictly increasing bytewise order
//   entry = varint member length | member bytes | zigzag varint sum
//
// No entry holds 0: a member whose sum reaches 0 is dropped, so equal sums
// have equal bytes, and an empty value is the same as no value. Sums add
// with two's complement wrap-around. Varints are common/byte_codec.h's.
#ifndef FIELDSYNC_STORAGE_KEYED_SUMS_H_
#define FIELDSYNC_STORAGE_KEYED_SUMS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace fieldsync::storage {

// Sums by member, in member order. Zero sums are allowed here and left out
// of an encoding.
using KeyedSums = std::map<std::string, int64_t, std::less<>>;

// The value (or operand) holding the non-zero sums of `sums`.
std::string EncodeKeyedSums(const KeyedSums& sums);

// Adds the sums encoded in `value` into *into and erases the members whose
// sum becomes 0. kDataLoss naming the offset when `value` is truncated,
// malformed, out of order or holds a 0; *into is unspecified then.
absl::Status AddKeyedSums(std::string_view value, KeyedSums* into);

// Calls `fn` for each member and sum of `value`, in member order; stops at
// and returns the first error `fn` returns. kDataLoss as AddKeyedSums.
absl::Status ForEachKeyedSum(
    std::string_view value,
    absl::FunctionRef<absl::Status(std::string_view member, int64_t sum)> fn);

// Adds `delta` to `member`'s sum in *sums, erasing it when it becomes 0.
void AddToSum(KeyedSums* sums, std::string_view member, int64_t delta);

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_KEYED_SUMS_H_
