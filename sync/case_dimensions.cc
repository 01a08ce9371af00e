#include "sync/case_dimensions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/key_codec.h"
#include "sync/reconcile.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

// --- Record state layout --------------------------------------------------
// Everything from here to the end of ReadRecordDimensions knows how records
// are stored (Cf::kRecords: a RecordHeader per record, a FieldState per
// written field, storage/key_codec.h); nothing else the counters use does.

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The fields of `type` to read: asked for and DIMENSION in the schema.
std::vector<std::string> FieldsToRead(const Schema& schema, const DimensionNeeds& needs,
                                      std::string_view type) {
  std::vector<std::string> out;
  auto asked = needs.find(AbslView(type));
  if (asked == needs.end()) return out;
  for (const std::string& field : schema.DimensionFields(type)) {
    if (asked->second.contains(field)) out.push_back(field);
  }
  return out;
}

// A record's view from its header, without values; nullopt when its type
// is not asked for.
std::optional<RecordDimensions> FromHeader(const DimensionNeeds& needs,
                                           const storage::RecordsKey& key,
                                           const v1::RecordHeader& header) {
  if (!needs.contains(AbslView(header.record_type()))) return std::nullopt;
  RecordDimensions r;
  r.record_id = FormatUuid(key.record_id);
  r.record_type = header.record_type();
  r.exists = !header.deleted();
  return r;
}

// Sets (*values)[field] from a field's state: its DimensionString, or
// nothing for a cleared value. An encrypted value (a field the schema made
// DIMENSION after it was written encrypted) is not a dimension value.
void AddValue(const std::string& field, const v1::FieldState& state,
              std::map<std::string, std::string>* values) {
  if (state.value().cleared() || state.value().encrypted()) return;
  (*values)[field] = DimensionString(state.value());
}

absl::Status Corrupt(std::string_view what, const Uuid& case_id) {
  return absl::DataLossError(
      absl::StrFormat("records of case %s: %s", FormatUuid(case_id), AbslView(what)));
}

}  // namespace

absl::StatusOr<CaseDimensions> ReadCaseDimensions(StateView* view, const Schema& schema,
                                                  const DimensionNeeds& needs,
                                                  const Uuid& case_id) {
  CaseDimensions out;
  out.case_id = FormatUuid(case_id);
  ASSIGN_OR_RETURN(auto entries, view->Scan(Cf::kRecords, storage::CaseRecordsPrefix(case_id)));
  // A record's header sorts before its field states, so each field state
  // belongs to the header read last.
  std::optional<Uuid> header_of;
  std::vector<std::string> fields;  // to read, of the current record
  for (const auto& [key, value] : entries) {
    ASSIGN_OR_RETURN(storage::RecordsKey k, storage::DecodeRecordsKey(key));
    if (k.is_header) {
      v1::RecordHeader header;
      if (!header.ParseFromString(value)) return Corrupt("a record header does not parse", case_id);
      header_of = k.record_id;
      fields.clear();
      std::optional<RecordDimensions> r = FromHeader(needs, k, header);
      if (!r.has_value()) continue;
      fields = FieldsToRead(schema, needs, r->record_type);
      out.records.push_back(*std::move(r));
      continue;
    }
    if (header_of != k.record_id) return Corrupt("a field state has no record header", case_id);
    if (std::find(fields.begin(), fields.end(), k.field) == fields.end()) continue;
    v1::FieldState state;
    if (!state.ParseFromString(value)) return Corrupt("a field state does not parse", case_id);
    AddValue(k.field, state, &out.records.back().values);
  }
  return out;
}

absl::StatusOr<std::optional<RecordDimensions>> ReadRecordDimensions(StateView* view,
                                                                     const Schema& schema,
                                                                     const DimensionNeeds& needs,
                                                                     const Uuid& case_id,
                                                                     const Uuid& record_id) {
  storage::RecordsKey key;
  key.case_id = case_id;
  key.record_id = record_id;
  v1::RecordHeader header;
  ASSIGN_OR_RETURN(
      bool found,
      view->GetProto(Cf::kRecords, storage::EncodeRecordHeaderKey(case_id, record_id), &header));
  if (!found) return std::nullopt;
  std::optional<RecordDimensions> r = FromHeader(needs, key, header);
  if (!r.has_value()) return r;
  const std::vector<std::string> fields = FieldsToRead(schema, needs, r->record_type);
  std::vector<std::string> keys;
  keys.reserve(fields.size());
  for (const std::string& field : fields) {
    keys.push_back(storage::EncodeFieldStateKey(case_id, record_id, field));
  }
  // One store read for the fields the overlay lacks.
  RETURN_IF_ERROR(view->Prefetch(Cf::kRecords, keys));
  for (size_t i = 0; i < fields.size(); ++i) {
    v1::FieldState state;
    ASSIGN_OR_RETURN(bool has, view->GetProto(Cf::kRecords, keys[i], &state));
    if (has) AddValue(fields[i], state, &r->values);
  }
  return r;
}

// --- Above the layout ------------------------------------------------------

namespace {

template <typename Records>
auto LowerBound(Records& records, std::string_view record_id) {
  return std::lower_bound(
      records.begin(), records.end(), record_id,
      [](const RecordDimensions& r, std::string_view want) { return r.record_id < want; });
}

}  // namespace

const RecordDimensions* CaseDimensions::Find(std::string_view record_id) const {
  auto at = LowerBound(records, record_id);
  return at != records.end() && at->record_id == record_id ? &*at : nullptr;
}

void CaseDimensions::Set(std::string_view record_id, std::optional<RecordDimensions> record) {
  auto at = LowerBound(records, record_id);
  const bool listed = at != records.end() && at->record_id == record_id;
  if (!record.has_value()) {
    if (listed) records.erase(at);
  } else if (listed) {
    *at = *std::move(record);
  } else {
    records.insert(at, *std::move(record));
  }
}

bool CaseDimensionsTracker::Tracks(std::string_view record_type) const {
  return needs_.contains(AbslView(record_type));
}

absl::StatusOr<std::optional<RecordDimensions>> CaseDimensionsTracker::ReadRecord(
    StateView* view, const Uuid& case_id, const Uuid& record_id) const {
  return ReadRecordDimensions(view, *schema_, needs_, case_id, record_id);
}

absl::StatusOr<bool> CaseDimensionsTracker::Views(StateView* view, const Uuid& case_id,
                                                  const Uuid& record_id,
                                                  const std::optional<RecordDimensions>& was,
                                                  CaseDimensions* before, CaseDimensions* after) {
  ASSIGN_OR_RETURN(std::optional<RecordDimensions> is, ReadRecord(view, case_id, record_id));
  if (is == was) return false;
  const std::string id = FormatUuid(record_id);
  const std::string key(case_id.begin(), case_id.end());
  auto kept = kept_.find(key);
  if (kept == kept_.end() && case_id == record_id) {
    // Read after the entry: the state holds the record as it is now.
    ASSIGN_OR_RETURN(CaseDimensions read, ReadCaseDimensions(view, *schema_, needs_, case_id));
    kept = kept_.emplace(key, std::move(read)).first;
  }
  if (kept != kept_.end()) kept->second.Set(id, is);
  if (case_id == record_id) {
    *after = kept->second;
  } else {
    // A child record moves only itself, on its case's registration.
    after->case_id = FormatUuid(case_id);
    after->records.clear();
    std::optional<RecordDimensions> registration;
    if (kept != kept_.end()) {
      if (const RecordDimensions* r = kept->second.Registration()) registration = *r;
    } else {
      ASSIGN_OR_RETURN(registration, ReadRecord(view, case_id, case_id));
    }
    after->Set(after->case_id, std::move(registration));
    after->Set(id, std::move(is));
  }
  *before = *after;
  before->Set(id, was);
  return true;
}

}  // namespace fieldsync::sync
