// UUIDs: 16 bytes, shown as lowercase 8-4-4-4-12 hex.
#ifndef FIELDSYNC_COMMON_UUID_H_
#define FIELDSYNC_COMMON_UUID_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/random.h"

namespace fieldsync {

using Uuid = std::array<uint8_t, 16>;

// A random (version 4) UUID.
Uuid NewUuid(Random& random);
// Lowercase canonical text.
std::string FormatUuid(const Uuid& uuid);
// Parses canonical text (either case); kInvalidArgument otherwise.
absl::StatusOr<Uuid> ParseUuid(std::string_view text);

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_UUID_H_
