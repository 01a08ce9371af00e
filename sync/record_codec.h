// One record's materialized state (Cf::kRecords, one value per record;
// layout 2, docs/ARCHITECTURE.md "Storage layout"): its header (type,
// versions, tombstone, marks, record-level conflict) and every field's
// state (version, greatest write, other writes, open conflict). Values are
// not stored here: a field's value is the value its greatest write's log
// entry wrote (every write of a value wrote an equal one), read from the
// case log when a reader needs it (sync/record_state.h).
//
// Every byte, in order (varints unsigned LEB128, "signed" a zigzag varint;
// a "distance" is a signed difference modulo 2^64):
//   U8 3 (format) | varint record type name id | varint created_position |
//   signed record_version distance from created_position |
//   varint flags (1 deleted) | varint conflict_position |
//   varint write count | per write, by (position, writer id, HLC): its
//     position (the first as a signed distance from created_position, the
//     others as varint deltas from the previous write's) | varint writer
//     name id | signed hlc wall_micros (the first as it is, the others as
//     distances from the previous write's) | varint hlc logical |
//   varint mark count | per mark (RecordHeader.marks, in order): varint
//     write index | varint mark flags (1 is_delete) | [varint delete_base,
//     when is_delete] |
//   varint field count | per field, by name: varint field name id |
//   varint listed count | per listed field, in name order: varint its
//     ordinal's distance past the previous listed one's (the first from
//     0) | varint greatest write index << 3 | field flags (1 other writes,
//     2 open conflict, 4 version is not the greatest write's position;
//     never 0) | [varint version] | [varint count, then per other write
//     its varint write index] | [varint conflict_position]
//   A field not listed has write 0 (the record's first) as its greatest
//   write and none of the flags: a record made by one change lists none,
//   and an edit of one of its fields lists that one.
// A write is stored once however many fields and marks name it.
//
// Format 2 (the first layout-2 release) stored record_version, the first
// write's position and every wall time as they are, and each field's
// index and flags right after its name: as two varints, or as one packed
// varint when flags had 4, or not at all when flags had 2 (every field
// write 0, no flags). It still decodes.
#ifndef FIELDSYNC_SYNC_RECORD_CODEC_H_
#define FIELDSYNC_SYNC_RECORD_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/name_dictionary.h"
#include "storage/store.h"

namespace fieldsync::sync {

inline constexpr uint8_t kRecordStateFormat = 3;
inline constexpr uint8_t kRecordStateFormat2 = 2;

// A record's header and field states. In memory each FieldState carries
// its value (filled from the log when read); the stored form does not.
struct RecordState {
  v1::RecordHeader header;
  // By field name, in name order.
  std::vector<std::pair<std::string, v1::FieldState>> fields;

  // The field's state, null when the record has none.
  const v1::FieldState* Find(std::string_view field) const;
  v1::FieldState* FindMutable(std::string_view field);
  // The field's state, added (empty) in name order when absent.
  v1::FieldState& Upsert(std::string_view field);
};

// The log position of the write whose entry holds the field's value.
inline uint64_t ValuePosition(const v1::FieldState& s) {
  return s.position() != 0 ? s.position() : s.version();
}

// The stored bytes of `state` (values left out). Names the dictionary lacks
// get ids, their keys going into `batch`.
std::string EncodeRecordState(const RecordState& state, storage::NameDictionary& names,
                              storage::WriteBatch* batch);

// Decodes stored bytes into *state, values unset. kDataLoss saying what is
// wrong for truncated, malformed or unknown-name input.
absl::Status DecodeRecordState(std::string_view bytes, const storage::NameDictionary& names,
                               RecordState* state);

// The created_position of stored record-state bytes, without decoding the
// rest. kDataLoss for an unknown format or truncated header.
absl::StatusOr<uint64_t> DecodeRecordCreatedPosition(std::string_view bytes);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_RECORD_CODEC_H_
