// The stored form of a canonical case log entry (Cf::kCaseLog; layout 2,
// docs/ARCHITECTURE.md "Storage layout"): a compact binary encoding of
// v1::CaseLogEntry with 16-byte ids and the store's name dictionary
// (storage/name_dictionary.h) for field names, record types and writers.
// The entry is the only stored copy of the values it writes (ciphertext for
// protected fields, with their keyed digests); record states point at it.
//
// Every byte, in order (varints are unsigned LEB128, "signed" is a zigzag
// varint, "bytes" a varint length then the bytes, "id" a form byte then:
// 0 empty; 1 a canonical lower-case UUID as 16 raw bytes; 2 any other text
// as bytes; 3 (record id only) the case id again; 4 (change id only)
// "server:<position>" with the entry's own position):
//   U8 3 (format) | id change_id | id case_id | id record_id |
//   varint record type name id | varint kind | varint flags |
//   [signed hlc wall_micros | varint hlc logical, when flags has 8] |
//   signed (committed_unix_micros - hlc wall_micros, 0 without an hlc;
//   modulo 2^64) | varint writer name id | varint outcome |
//   varint base_version | [varint resolves.position | varint resolves
//   field name id, when flags has 4] | varint field count |
//   per field: varint field name id | varint field flags | varint
//   base_version | varint version | [bytes data, when it has a value] |
//   [bytes digest, when field flags has 16]
// flags: 1 clock_clamped, 2 revived, 4 resolves set, 8 hlc set.
// field flags: 1 value set, 2 cleared, 4 encrypted, 8 server_set,
// 16 digest present, then the outcome shifted left by 5.
// Name id 0 is the empty name. The position is the entry's key, not
// repeated in the value. The batch id is not stored either: the batch that
// carried an entry is the one whose stored answer's log range holds its
// position (Cf::kBatches, sync/batch_answer.h), and an entry read back has
// an empty batch_id. Otherwise the encoding is lossless: decoding gives
// back the entry that was encoded, field for field.
//
// Format 2 (the first layout-2 release) is the same with varint position
// after the format byte and id batch_id after the writer; an entry stored
// before layout 2 is the serialized v1::CaseLogEntry (it starts with a
// protobuf tag byte, never 2 or 3). Both still decode.
#ifndef FIELDSYNC_SYNC_LOG_CODEC_H_
#define FIELDSYNC_SYNC_LOG_CODEC_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/name_dictionary.h"
#include "storage/store.h"

namespace fieldsync::sync {

inline constexpr uint8_t kLogEntryFormat = 3;
inline constexpr uint8_t kLogEntryFormat2 = 2;

// The stored bytes of `entry`. Names the dictionary lacks get ids, and
// their keys go into `batch` (the batch that writes the entry).
std::string EncodeLogEntry(const v1::CaseLogEntry& entry, storage::NameDictionary& names,
                           storage::WriteBatch* batch);

// Decodes the bytes stored at `position` (the entry's key) into *entry
// (cleared first). kDataLoss saying what is wrong for truncated, malformed
// or unknown-name input.
absl::Status DecodeLogEntry(std::string_view bytes, uint64_t position,
                            const storage::NameDictionary& names, v1::CaseLogEntry* entry);

// Reads the log entry at a position into *entry: false when there is none.
using EntryReader = std::function<absl::StatusOr<bool>(uint64_t position, v1::CaseLogEntry*)>;

// The entry at `position` of `store`'s log (at `snap` when given); false
// when absent. kDataLoss when it does not decode.
absl::StatusOr<bool> ReadLogEntry(storage::Store* store, uint64_t position, v1::CaseLogEntry* entry,
                                  const storage::Snapshot* snap = nullptr);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_LOG_CODEC_H_
