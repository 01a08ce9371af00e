#include "sync/record_state.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

namespace fieldsync::sync {

absl::Status FillValues(RecordState* state, const EntryReader& read,
                        std::span<const std::string_view> only) {
  absl::flat_hash_map<uint64_t, v1::CaseLogEntry> entries;
  for (auto& [name, field] : state->fields) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    const uint64_t at = ValuePosition(field);
    auto it = entries.find(at);
    if (it == entries.end()) {
      v1::CaseLogEntry entry;
      ASSIGN_OR_RETURN(bool found, read(at, &entry));
      if (!found) {
        return absl::DataLossError(absl::StrFormat(
            "the case log lacks entry %d, which holds the value of field %s", at, name));
      }
      it = entries.emplace(at, std::move(entry)).first;
    }
    const v1::EntryField* written = nullptr;
    for (const v1::EntryField& f : it->second.fields()) {
      if (f.field() == name) {
        written = &f;
        break;
      }
    }
    if (written == nullptr) {
      return absl::DataLossError(absl::StrFormat(
          "case log entry %d does not write field %s, whose value it should hold", at, name));
    }
    *field.mutable_value() = written->value();
  }
  return absl::OkStatus();
}

EntryReader ViewEntryReader(StateView* view) {
  return [view](uint64_t position, v1::CaseLogEntry* entry) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(std::optional<std::string> raw,
                     view->Get(storage::Cf::kCaseLog, storage::EncodeCaseLogKey(position)));
    if (!raw.has_value()) return false;
    if (absl::Status s = DecodeLogEntry(*raw, position, view->store()->names(), entry); !s.ok()) {
      return absl::DataLossError(absl::StrFormat("case log entry %d: %s", position, s.message()));
    }
    return true;
  };
}

absl::StatusOr<std::optional<RecordState>> LoadRecord(StateView* view, const Uuid& case_id,
                                                      const Uuid& record_id) {
  ASSIGN_OR_RETURN(
      std::optional<std::string> raw,
      view->Get(storage::Cf::kRecords, storage::EncodeRecordStateKey(case_id, record_id)));
  if (!raw.has_value()) return std::optional<RecordState>();
  RecordState state;
  RETURN_IF_ERROR(DecodeRecordState(*raw, view->store()->names(), &state));
  return std::optional<RecordState>(std::move(state));
}

void StoreRecord(StateView* view, const Uuid& case_id, const Uuid& record_id,
                 const RecordState& state) {
  view->Put(storage::Cf::kRecords, storage::EncodeRecordStateKey(case_id, record_id),
            EncodeRecordState(state, view->store()->names(), view->batch()));
}

absl::StatusOr<std::optional<RecordState>> ReadRecord(storage::Store* store,
                                                      const storage::Snapshot* snap,
                                                      const Uuid& case_id, const Uuid& record_id,
                                                      std::span<const std::string_view> only) {
  absl::StatusOr<std::string> raw =
      store->Get(storage::Cf::kRecords, storage::EncodeRecordStateKey(case_id, record_id), snap);
  if (absl::IsNotFound(raw.status())) return std::optional<RecordState>();
  if (!raw.ok()) return raw.status();
  RecordState state;
  RETURN_IF_ERROR(DecodeRecordState(*raw, store->names(), &state));
  RETURN_IF_ERROR(FillValues(
      &state, [&](uint64_t at, v1::CaseLogEntry* e) { return ReadLogEntry(store, at, e, snap); },
      only));
  return std::optional<RecordState>(std::move(state));
}

absl::StatusOr<std::optional<v1::StoredValue>> ReadFieldValue(storage::Store* store,
                                                              const storage::Snapshot* snap,
                                                              const Uuid& case_id,
                                                              const Uuid& record_id,
                                                              std::string_view field) {
  const std::string_view only[] = {field};
  ASSIGN_OR_RETURN(std::optional<RecordState> state,
                   ReadRecord(store, snap, case_id, record_id, only));
  if (!state.has_value()) return std::optional<v1::StoredValue>();
  const v1::FieldState* s = state->Find(field);
  if (s == nullptr) return std::optional<v1::StoredValue>();
  return std::optional<v1::StoredValue>(s->value());
}

}  // namespace fieldsync::sync
