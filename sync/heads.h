// The values a field holds under the merge rules (docs/MERGE.md §2): its
// *heads*, each a value with the writes that set it, none of which saw the
// others' values. The greatest head (by its greatest write's (HLC, writer))
// is the field's value; the others are its open conflict. These helpers
// move heads between their stored forms (FieldState for the current value,
// ConflictRecord.losing for the rest) and order them canonically, so that
// the same set of heads is always stored as the same bytes.
#ifndef FIELDSYNC_SYNC_HEADS_H_
#define FIELDSYNC_SYNC_HEADS_H_

#include <cstdint>
#include <vector>

#include "fieldsync/v1/records.pb.h"

namespace fieldsync::sync {

// <0, 0, >0 as write a is before, equal to, after b by (HLC, writer).
int CompareHeadWrites(const v1::HeadWrite& a, const v1::HeadWrite& b);

// The greatest write of a head. REQUIRES: head.writes() is not empty.
const v1::HeadWrite& GreatestWrite(const v1::FieldHead& head);

// Orders a head's writes by (HLC, writer), and heads greatest first.
void SortHeads(std::vector<v1::FieldHead>* heads);

// The current value's head as stored in `state`.
v1::FieldHead CurrentHead(const v1::FieldState& state);

// Stores `head` as the current value in `state` (conflict_position is left
// as it is). REQUIRES: head.writes() is not empty and ordered.
void SetCurrentHead(const v1::FieldHead& head, v1::FieldState* state);

// The position of the latest write among `heads` (0 when none): the
// version a resolution must name (Conflict.version). Every merge that
// changes the heads adds a write at a new position, so it only grows
// while the conflict is open.
uint64_t LatestWritePosition(const std::vector<v1::FieldHead>& heads);

// The version of an open conflict that a resolution must name
// (Conflict.version): for a field, the latest write among its current and
// losing values (`current` is the field's state); for a record-level
// conflict, the record's version (`header`).
uint64_t ConflictVersion(const v1::ConflictRecord& conflict, const v1::FieldState& current,
                         const v1::RecordHeader& header);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_HEADS_H_
