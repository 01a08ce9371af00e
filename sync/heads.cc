#include "sync/heads.h"

#include <algorithm>

#include "sync/hlc.h"

namespace fieldsync::sync {

int CompareHeadWrites(const v1::HeadWrite& a, const v1::HeadWrite& b) {
  return CompareWrite(a.hlc(), a.writer(), b.hlc(), b.writer());
}

const v1::HeadWrite& GreatestWrite(const v1::FieldHead& head) {
  return *std::max_element(
      head.writes().begin(), head.writes().end(),
      [](const v1::HeadWrite& a, const v1::HeadWrite& b) { return CompareHeadWrites(a, b) < 0; });
}

void SortHeads(std::vector<v1::FieldHead>* heads) {
  for (v1::FieldHead& h : *heads) {
    std::sort(
        h.mutable_writes()->begin(), h.mutable_writes()->end(),
        [](const v1::HeadWrite& a, const v1::HeadWrite& b) { return CompareHeadWrites(a, b) < 0; });
  }
  std::sort(heads->begin(), heads->end(), [](const v1::FieldHead& a, const v1::FieldHead& b) {
    return CompareHeadWrites(GreatestWrite(a), GreatestWrite(b)) > 0;
  });
}

v1::FieldHead CurrentHead(const v1::FieldState& state) {
  v1::FieldHead head;
  *head.mutable_value() = state.value();
  *head.mutable_writes() = state.other_writes();
  v1::HeadWrite* greatest = head.add_writes();
  greatest->set_writer(state.writer());
  *greatest->mutable_hlc() = state.hlc();
  greatest->set_position(state.position() != 0 ? state.position() : state.version());
  return head;
}

void SetCurrentHead(const v1::FieldHead& head, v1::FieldState* state) {
  *state->mutable_value() = head.value();
  uint64_t version = 0;
  for (const v1::HeadWrite& w : head.writes()) version = std::max(version, w.position());
  state->set_version(version);
  state->clear_other_writes();
  // Writes are ordered by (HLC, writer): the greatest is the last.
  const int last = head.writes_size() - 1;
  for (int i = 0; i < last; ++i) *state->add_other_writes() = head.writes(i);
  const v1::HeadWrite& greatest = head.writes(last);
  *state->mutable_hlc() = greatest.hlc();
  state->set_writer(greatest.writer());
  state->set_position(greatest.position() != version ? greatest.position() : 0);
}

uint64_t LatestWritePosition(const std::vector<v1::FieldHead>& heads) {
  uint64_t latest = 0;
  for (const v1::FieldHead& h : heads) {
    for (const v1::HeadWrite& w : h.writes()) latest = std::max(latest, w.position());
  }
  return latest;
}

uint64_t ConflictVersion(const v1::ConflictRecord& conflict, const v1::FieldState& current,
                         const v1::RecordHeader& header) {
  if (conflict.field().empty()) return header.record_version();
  std::vector<v1::FieldHead> heads(conflict.losing().begin(), conflict.losing().end());
  heads.push_back(CurrentHead(current));
  return LatestWritePosition(heads);
}

}  // namespace fieldsync::sync
