#include "sync/case_dimensions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/key_codec.h"
#include "sync/reconcile.h"
#include "sync/record_codec.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

// --- Record state layout --------------------------------------------------
// Everything from here to the end of ReadRecordDimensions knows how records
// are stored (Cf::kRecords: one RecordState per record, sync/record_codec.h,
// its values in the case log, sync/record_state.h); nothing else the
// counters use does.

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The fields of `type` to read: asked for and DIMENSION in the schema,
// and among `only` when given.
std::vector<std::string> FieldsToRead(const Schema& schema, const DimensionNeeds& needs,
                                      std::string_view type, const std::vector<std::string>* only) {
  std::vector<std::string> out;
  auto asked = needs.fields.find(AbslView(type));
  if (asked == needs.fields.end()) return out;
  const std::vector<std::string>& dimensions = schema.DimensionFields(type);
  if (only != nullptr) {
    for (const std::string& field : *only) {
      if (asked->second.contains(field) &&
          std::find(dimensions.begin(), dimensions.end(), field) != dimensions.end()) {
        out.push_back(field);
      }
    }
    return out;
  }
  for (const std::string& field : dimensions) {
    if (asked->second.contains(field)) out.push_back(field);
  }
  return out;
}

// A record's view from its header, without values; nullopt when its type
// is not asked for.
std::optional<RecordDimensions> FromHeader(const DimensionNeeds& needs, const Uuid& record_id,
                                           const v1::RecordHeader& header) {
  if (!needs.fields.contains(AbslView(header.record_type()))) return std::nullopt;
  RecordDimensions r;
  r.record_id = FormatUuid(record_id);
  r.record_type = header.record_type();
  r.exists = !header.deleted();
  return r;
}

absl::Status Corrupt(absl::string_view what, const Uuid& case_id) {
  return absl::DataLossError(absl::StrFormat("records of case %s: %s", FormatUuid(case_id), what));
}

// Adds a field's value to the view: its DimensionString, nothing for a
// cleared value or an encrypted one (a field the schema made DIMENSION
// after it was written encrypted is not a dimension value).
void AddValue(std::string_view field, const v1::StoredValue& value, RecordDimensions* r) {
  if (value.cleared() || value.encrypted()) return;
  r->values[std::string(field)] = DimensionString(value);
}

// The view of one record from its state: the values of `fields` (those it
// has), taken from `applied` (the entry just applied, in memory; may be
// null) when it holds them, else read from the log with `read`.
absl::StatusOr<std::optional<RecordDimensions>> FromState(
    const DimensionNeeds& needs, const Schema& schema, const Uuid& record_id,
    const RecordState& state, const std::vector<std::string>* only, const EntryReader& read,
    const v1::CaseLogEntry* applied) {
  std::optional<RecordDimensions> r = FromHeader(needs, record_id, state.header);
  if (!r.has_value()) return r;
  const std::vector<std::string> fields = FieldsToRead(schema, needs, r->record_type, only);
  std::vector<std::string_view> from_log;
  for (const std::string& field : fields) {
    const v1::FieldState* s = state.Find(field);
    if (s == nullptr) continue;
    const v1::EntryField* written = nullptr;
    if (applied != nullptr && ValuePosition(*s) == applied->position()) {
      for (const v1::EntryField& f : applied->fields()) {
        if (f.field() == field) {
          written = &f;
          break;
        }
      }
    }
    if (written != nullptr) {
      AddValue(field, written->value(), &*r);
    } else {
      from_log.push_back(field);
    }
  }
  if (from_log.empty()) return r;
  // Those fields' states alone, their values filled from the log.
  RecordState read_back;
  read_back.fields.reserve(from_log.size());
  for (std::string_view field : from_log) {
    read_back.fields.emplace_back(std::string(field), *state.Find(field));
  }
  RETURN_IF_ERROR(FillValues(&read_back, read));
  for (const auto& [field, s] : read_back.fields) AddValue(field, s.value(), &*r);
  return r;
}

absl::StatusOr<CaseDimensions> ReadCase(StateView* view, const EntryReader& read,
                                        const Schema& schema, const DimensionNeeds& needs,
                                        const Uuid& case_id, const v1::CaseLogEntry* applied,
                                        const Uuid* written_id = nullptr,
                                        const RecordState* written = nullptr) {
  CaseDimensions out;
  out.case_id = FormatUuid(case_id);
  ASSIGN_OR_RETURN(auto entries, view->Scan(Cf::kRecords, storage::CaseRecordsPrefix(case_id)));
  // Keys sort by record id, as CaseDimensions::records does.
  for (const auto& [key, value] : entries) {
    ASSIGN_OR_RETURN(storage::RecordsKey k, storage::DecodeRecordsKey(key));
    if (!k.is_state) return Corrupt("a record key of storage layout 1", case_id);
    RecordState state;
    const RecordState* use = &state;
    if (written != nullptr && k.record_id == *written_id) {
      use = written;  // as the reconciler just stored it
    } else if (absl::Status s = DecodeRecordState(value, view->store()->names(), &state); !s.ok()) {
      return Corrupt(s.message(), case_id);
    }
    ASSIGN_OR_RETURN(std::optional<RecordDimensions> r,
                     FromState(needs, schema, k.record_id, *use, nullptr, read, applied));
    if (r.has_value()) out.records.push_back(*std::move(r));
  }
  return out;
}

absl::StatusOr<std::optional<RecordDimensions>> ReadRecord(
    StateView* view, const EntryReader& read, const Schema& schema, const DimensionNeeds& needs,
    const Uuid& case_id, const Uuid& record_id, const std::vector<std::string>* only,
    const v1::CaseLogEntry* applied, const RecordState* known = nullptr) {
  // The record's state as the reconciler just wrote it, not decoded again.
  if (known != nullptr) return FromState(needs, schema, record_id, *known, only, read, applied);
  absl::StatusOr<std::optional<RecordState>> state = LoadRecord(view, case_id, record_id);
  if (!state.ok()) {
    if (absl::IsDataLoss(state.status())) return Corrupt(state.status().message(), case_id);
    return state.status();
  }
  if (!state->has_value()) return std::nullopt;
  return FromState(needs, schema, record_id, **state, only, read, applied);
}

}  // namespace

absl::StatusOr<CaseDimensions> ReadCaseDimensions(StateView* view, const EntryReader& read,
                                                  const Schema& schema, const DimensionNeeds& needs,
                                                  const Uuid& case_id) {
  return ReadCase(view, read, schema, needs, case_id, nullptr);
}

absl::StatusOr<std::optional<RecordDimensions>> ReadRecordDimensions(
    StateView* view, const EntryReader& read, const Schema& schema, const DimensionNeeds& needs,
    const Uuid& case_id, const Uuid& record_id, const std::vector<std::string>* only) {
  return ReadRecord(view, read, schema, needs, case_id, record_id, only, nullptr);
}

// --- Above the layout ------------------------------------------------------

namespace {

template <typename Records>
auto LowerBound(Records& records, std::string_view record_id) {
  return std::lower_bound(records.begin(), records.end(), record_id,
                          [](const RecordDimensions& r, std::string_view want) {
                            return std::string_view(r.record_id) < want;
                          });
}

}  // namespace

const RecordDimensions* CaseDimensions::Find(std::string_view record_id) const {
  auto at = LowerBound(records, record_id);
  return at != records.end() && std::string_view(at->record_id) == record_id ? &*at : nullptr;
}

void CaseDimensions::Set(std::string_view record_id, std::optional<RecordDimensions> record) {
  auto at = LowerBound(records, record_id);
  const bool listed = at != records.end() && std::string_view(at->record_id) == record_id;
  if (!record.has_value()) {
    if (listed) records.erase(at);
  } else if (listed) {
    *at = *std::move(record);
  } else {
    records.insert(at, *std::move(record));
  }
}

void DimensionNeeds::Add(const DimensionNeeds& other) {
  for (const auto& [type, names] : other.fields) fields[type].insert(names.begin(), names.end());
  shared_case_fields.insert(other.shared_case_fields.begin(), other.shared_case_fields.end());
}

bool CaseDimensionsTracker::Tracks(std::string_view record_type) const {
  return needs_.fields.contains(AbslView(record_type));
}

absl::StatusOr<CaseDimensionsTracker::Pending> CaseDimensionsTracker::Before(
    StateView* view, const EntryReader& read, const v1::CaseLogEntry& entry) const {
  Pending p;
  auto asked = needs_.fields.find(AbslView(entry.record_type()));
  if (asked == needs_.fields.end()) return p;
  absl::StatusOr<Uuid> case_id = ParseUuid(entry.case_id());
  absl::StatusOr<Uuid> record_id = ParseUuid(entry.record_id());
  if (!case_id.ok() || !record_id.ok()) return p;
  p.tracked = true;
  p.case_id = *case_id;
  p.record_id = *record_id;
  auto name = [&](const std::string& field) {
    if (asked->second.contains(field) &&
        std::find(p.fields.begin(), p.fields.end(), field) == p.fields.end()) {
      p.fields.push_back(field);
    }
  };
  // The reconciler adds fields only to an entry that creates a record,
  // which changes the view whatever fields are read.
  for (const v1::EntryField& f : entry.fields()) name(f.field());
  if (entry.has_resolves()) name(entry.resolves().field());
  ASSIGN_OR_RETURN(
      p.was, ReadRecordDimensions(view, read, *schema_, needs_, p.case_id, p.record_id, &p.fields));
  return p;
}

namespace {

// `full` with what `named` says of the fields in `fields` and of the
// record's existence (the rest of a record an entry does not change);
// nullopt when `named` is (the record did not exist).
std::optional<RecordDimensions> WithNamed(RecordDimensions full,
                                          const std::optional<RecordDimensions>& named,
                                          const std::vector<std::string>& fields) {
  if (!named.has_value()) return std::nullopt;
  full.exists = named->exists;
  for (const std::string& field : fields) {
    auto v = named->values.find(field);
    if (v != named->values.end()) {
      full.values[field] = v->second;
    } else {
      full.values.erase(field);
    }
  }
  return full;
}

}  // namespace

bool CaseDimensionsTracker::SharesAChange(const RecordDimensions& was,
                                          const RecordDimensions& is) const {
  if (was.exists != is.exists) return true;
  for (const std::string& field : needs_.shared_case_fields) {
    auto a = was.values.find(field);
    auto b = is.values.find(field);
    const bool a_set = a != was.values.end(), b_set = b != is.values.end();
    if (a_set != b_set || (a_set && a->second != b->second)) return true;
  }
  return false;
}

absl::StatusOr<bool> CaseDimensionsTracker::After(StateView* view, const EntryReader& read,
                                                  const v1::CaseLogEntry& applied,
                                                  const RecordState* written,
                                                  const Pending& pending, CaseDimensions* before,
                                                  CaseDimensions* after) {
  if (!pending.tracked) return false;
  const Uuid& case_id = pending.case_id;
  const Uuid& record_id = pending.record_id;
  // A new record is read whole at once: it has moved.
  const bool created = !pending.was.has_value();
  ASSIGN_OR_RETURN(std::optional<RecordDimensions> is,
                   ReadRecord(view, read, *schema_, needs_, case_id, record_id,
                              created ? nullptr : &pending.fields, &applied, written));
  if (is == pending.was) return false;
  const std::string id = FormatUuid(record_id);
  const std::string key(case_id.begin(), case_id.end());
  const bool registration = case_id == record_id;
  auto kept = kept_.find(key);
  if (registration && kept == kept_.end() && pending.was.has_value() && is.has_value() &&
      !SharesAChange(*pending.was, *is)) {
    // The other records are not moved: the registration alone.
    ASSIGN_OR_RETURN(is, ReadRecord(view, read, *schema_, needs_, case_id, record_id, nullptr,
                                    &applied, written));
    if (!is.has_value()) return Corrupt("the registration has no view", case_id);
    after->case_id = FormatUuid(case_id);
    after->records = {*is};
    *before = *after;
    before->Set(id, WithNamed(*std::move(is), pending.was, pending.fields));
    return true;
  }
  // The whole record now; its other fields are as they were.
  if (registration && kept != kept_.end()) {
    const RecordDimensions* now = kept->second.Find(id);
    if (now == nullptr) return Corrupt("a kept view lost its registration", case_id);
    is = WithNamed(*now, is, pending.fields);
  } else if (registration && pending.was.has_value()) {
    // Read after the entry: the state holds the record as it is now.
    ASSIGN_OR_RETURN(CaseDimensions whole, ReadCase(view, read, *schema_, needs_, case_id, &applied,
                                                    &record_id, written));
    const RecordDimensions* now = whole.Find(id);
    if (now == nullptr) return Corrupt("the registration is not among its records", case_id);
    is = *now;
    kept = kept_.emplace(key, std::move(whole)).first;
  } else {
    // A new registration (the reconciler adds fields the entry did not
    // name) or a child record.
    if (!created) {
      ASSIGN_OR_RETURN(is, ReadRecord(view, read, *schema_, needs_, case_id, record_id, nullptr,
                                      &applied, written));
    }
    if (registration) {
      // A case has no record before its registration (the reconciler
      // refuses a record of a case that does not exist).
      CaseDimensions none;
      none.case_id = FormatUuid(case_id);
      kept = kept_.emplace(key, std::move(none)).first;
    }
  }
  std::optional<RecordDimensions> was;
  if (is.has_value() && pending.was.has_value()) was = WithNamed(*is, pending.was, pending.fields);
  if (kept != kept_.end()) kept->second.Set(id, is);
  if (registration) {
    *after = kept->second;
  } else {
    // A child record moves only itself, on its case's registration.
    after->case_id = FormatUuid(case_id);
    after->records.clear();
    std::optional<RecordDimensions> registration_now;
    if (kept != kept_.end()) {
      if (const RecordDimensions* r = kept->second.Registration()) registration_now = *r;
    } else {
      ASSIGN_OR_RETURN(registration_now, ReadRecord(view, read, *schema_, needs_, case_id, case_id,
                                                    nullptr, &applied));
    }
    after->Set(after->case_id, std::move(registration_now));
    after->Set(id, std::move(is));
  }
  if (was.has_value()) {
    *before = *after;
    before->Set(id, *std::move(was));
  } else {
    // The record did not exist: the view before is the others alone.
    before->case_id = after->case_id;
    before->records.clear();
    for (const RecordDimensions& r : after->records) {
      if (r.record_id != id) before->records.push_back(r);
    }
  }
  return true;
}

}  // namespace fieldsync::sync
