// The clear header of a sealed batch and its canonical encoding: the HPKE
// associated data of the batch and the first part of what a device signs
// (docs/PROTOCOL.md §5).
#ifndef FIELDSYNC_PROTOCOL_BATCH_HEADER_H_
#define FIELDSYNC_PROTOCOL_BATCH_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/uuid.h"

namespace fieldsync::protocol {

// The clear header of a sealed batch (DESIGN §5; proto BatchHeader with its
// UUID texts parsed to bytes).
struct BatchHeader {
  fieldsync::Uuid device_id;
  fieldsync::Uuid batch_id;
  uint64_t sequence = 0;        // the device's batch sequence number
  uint32_t sealing_key_id = 0;  // the server HPKE key the payload is sealed to
};

inline constexpr std::string_view kBatchHeaderDomain = "fieldsync/batch-header/v1";
inline constexpr size_t kBatchHeaderEncodingSize = 26 + 16 + 16 + 8 + 4;

// The canonical encoding (crypto/canonical.h rules) of a batch header: the HPKE associated data of
// the batch and the first part of what the device signs. Persisted; 70 bytes:
//
//   offset  size  field
//        0    25  "fieldsync/batch-header/v1" (ASCII)
//       25     1  0x00
//       26    16  device_id, raw UUID bytes
//       42    16  batch_id, raw UUID bytes
//       58     8  sequence, u64 big-endian
//       66     4  sealing_key_id, u32 big-endian
std::string EncodeBatchHeader(const BatchHeader& header);

}  // namespace fieldsync::protocol

#endif  // FIELDSYNC_PROTOCOL_BATCH_HEADER_H_
