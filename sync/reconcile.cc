#include "sync/reconcile.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"
#include "sync/field_sealer.h"
#include "sync/heads.h"
#include "sync/hlc.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

v1::ChangeResult Reject(const v1::CaseLogEntry& entry, v1::RejectReason reason,
                        const std::string& detail) {
  v1::ChangeResult r;
  r.set_change_id(entry.change_id());
  r.set_outcome(v1::CHANGE_OUTCOME_REJECTED);
  r.set_reject_reason(reason);
  r.set_detail(detail);
  r.set_clock_clamped(entry.clock_clamped());
  return r;
}

// The case's region and officer, from its registration record's fields.
struct CaseScope {
  std::optional<std::string> region;
  std::optional<std::string> officer;
};

// The current value of a clear field of a registration record's state
// (its value read with `read` unless it is filled already); nullopt when it
// was never written or is cleared.
absl::StatusOr<std::optional<std::string>> FieldOf(RecordState& registration,
                                                   std::string_view field,
                                                   const EntryReader& read) {
  v1::FieldState* state = registration.FindMutable(field);
  if (state == nullptr) return std::optional<std::string>();
  if (!state->has_value()) {
    const std::string_view only[] = {field};
    RETURN_IF_ERROR(FillValues(&registration, read, only));
  }
  if (state->value().cleared()) return std::optional<std::string>();
  return std::optional<std::string>(DimensionString(state->value()));
}

// The current value of a clear field of the case's registration record;
// nullopt when it was never written or is cleared.
absl::StatusOr<std::optional<std::string>> ReadCaseField(const Uuid& case_id,
                                                         std::string_view field, StateView* view,
                                                         const EntryReader& read) {
  ASSIGN_OR_RETURN(std::optional<RecordState> registration, LoadRecord(view, case_id, case_id));
  if (!registration.has_value()) return std::optional<std::string>();
  return FieldOf(*registration, field, read);
}

absl::StatusOr<CaseScope> ScopeOf(const Schema& schema, RecordState& registration,
                                  const EntryReader& read) {
  CaseScope scope;
  ASSIGN_OR_RETURN(scope.region, FieldOf(registration, schema.region_field(), read));
  ASSIGN_OR_RETURN(scope.officer, FieldOf(registration, schema.officer_field(), read));
  return scope;
}

absl::StatusOr<CaseScope> ReadCaseScope(const Schema& schema, const Uuid& case_id, StateView* view,
                                        const EntryReader& read) {
  ASSIGN_OR_RETURN(std::optional<RecordState> registration, LoadRecord(view, case_id, case_id));
  if (!registration.has_value()) return CaseScope();
  return ScopeOf(schema, *registration, read);
}

// Conflict records an entry opened, changed or closed; written (with the
// open-conflict index under the case's region after the entry) by
// FinishCase.
struct ConflictWrites {
  std::vector<v1::ConflictRecord> opened;
  std::vector<v1::ConflictRecord> updated;
  std::vector<v1::ConflictRecord> closed;
};

// Keeps a field's or record's one conflict in step with its losing heads:
// opens it (at `position`) when there are some and none is open, rewrites
// it when they changed, closes it when none are left. `*conflict_position`
// is the stored pointer to the open conflict (FieldState or RecordHeader).
absl::Status UpdateConflict(const v1::CaseLogEntry& entry, const Uuid& case_id,
                            std::string_view field, std::vector<v1::FieldHead> losing,
                            uint64_t* conflict_position, StateView* view, ConflictWrites* out) {
  if (*conflict_position == 0 && losing.empty()) return absl::OkStatus();
  v1::ConflictRecord record;
  if (*conflict_position != 0) {
    const std::string key = storage::EncodeConflictKey(case_id, *conflict_position, field);
    ASSIGN_OR_RETURN(bool found, view->GetProto(Cf::kConflicts, key, &record));
    if (!found) {
      return absl::DataLossError(absl::StrFormat("conflict %d/%s of case %s is missing",
                                                 *conflict_position, field, entry.case_id()));
    }
  }
  if (losing.empty()) {
    record.set_status(v1::CONFLICT_STATUS_RESOLVED);
    record.set_resolved_position(entry.position());
    out->closed.push_back(std::move(record));
    *conflict_position = 0;
    return absl::OkStatus();
  }
  const bool opening = *conflict_position == 0;
  if (opening) {
    record.mutable_id()->set_position(entry.position());
    record.mutable_id()->set_field(std::string(field));
    record.set_case_id(entry.case_id());
    record.set_record_id(entry.record_id());
    record.set_record_type(entry.record_type());
    record.set_field(std::string(field));
    record.set_losing_was_delete(field.empty());
    record.set_status(v1::CONFLICT_STATUS_OPEN);
    *conflict_position = entry.position();
  }
  bool same = !opening && record.losing_size() == static_cast<int>(losing.size());
  for (size_t i = 0; same && i < losing.size(); ++i) {
    same = record.losing(static_cast<int>(i)).SerializeAsString() == losing[i].SerializeAsString();
  }
  if (same) return absl::OkStatus();
  record.clear_losing();
  for (v1::FieldHead& h : losing) *record.add_losing() = std::move(h);
  (opening ? out->opened : out->updated).push_back(std::move(record));
  return absl::OkStatus();
}

// Keeps the case's scope list and the open-conflict index in step with the
// entry and writes the conflict records it opened, changed or closed.
absl::Status FinishCase(const Schema& schema, const Uuid& case_id, bool is_registration,
                        bool creating, const CaseScope& before, RecordState* registration,
                        const EntryReader& read, ConflictWrites& conflicts, StateView* view) {
  if (!is_registration && conflicts.opened.empty() && conflicts.updated.empty() &&
      conflicts.closed.empty()) {
    return absl::OkStatus();
  }
  CaseScope after;
  if (is_registration) {
    ASSIGN_OR_RETURN(after, ScopeOf(schema, *registration, read));
  } else {
    ASSIGN_OR_RETURN(after, ReadCaseScope(schema, case_id, view, read));
  }
  if (is_registration && (before.region != after.region || before.officer != after.officer)) {
    // The case moves to the scope list of its region and officer ("" unset).
    const std::string_view member(reinterpret_cast<const char*>(case_id.data()), case_id.size());
    if (before.region || before.officer) {
      view->AddToSum(
          Cf::kCaseIndex,
          storage::EncodeCaseScopeListKey(before.region.value_or(""), before.officer.value_or("")),
          member, -1);
    }
    if (after.region || after.officer) {
      view->AddToSum(
          Cf::kCaseIndex,
          storage::EncodeCaseScopeListKey(after.region.value_or(""), after.officer.value_or("")),
          member, 1);
    }
  }
  // A new case has no conflicts yet (no record of a case comes before its
  // registration).
  if (is_registration && !creating && before.region != after.region) {
    // Open conflicts move to the new region's index (those this entry
    // opens or closes are handled below, under the new region).
    std::vector<std::pair<std::string, std::string>> existing;
    ASSIGN_OR_RETURN(existing, view->Scan(Cf::kConflicts, storage::CaseConflictsPrefix(case_id)));
    for (const auto& [key, value] : existing) {
      v1::ConflictRecord c;
      if (!c.ParseFromString(value)) return absl::DataLossError("conflict record does not parse");
      if (c.status() != v1::CONFLICT_STATUS_OPEN) continue;
      view->Delete(Cf::kConflicts,
                   storage::EncodeOpenConflictKey(before.region.value_or(""), case_id,
                                                  c.id().position(), c.id().field()));
      view->Put(Cf::kConflicts,
                storage::EncodeOpenConflictKey(after.region.value_or(""), case_id,
                                               c.id().position(), c.id().field()),
                "");
    }
  }
  const std::string region = after.region.value_or("");
  for (const v1::ConflictRecord& c : conflicts.opened) {
    view->PutProto(Cf::kConflicts,
                   storage::EncodeConflictKey(case_id, c.id().position(), c.id().field()), c);
    view->Put(Cf::kConflicts,
              storage::EncodeOpenConflictKey(region, case_id, c.id().position(), c.id().field()),
              "");
  }
  for (const v1::ConflictRecord& c : conflicts.updated) {
    view->PutProto(Cf::kConflicts,
                   storage::EncodeConflictKey(case_id, c.id().position(), c.id().field()), c);
  }
  for (const v1::ConflictRecord& c : conflicts.closed) {
    view->PutProto(Cf::kConflicts,
                   storage::EncodeConflictKey(case_id, c.id().position(), c.id().field()), c);
    view->Delete(Cf::kConflicts, storage::EncodeOpenConflictKey(region, case_id, c.id().position(),
                                                                c.id().field()));
  }
  return absl::OkStatus();
}

// A field's heads, current value first, as stored.
absl::StatusOr<std::vector<v1::FieldHead>> LoadHeads(const Uuid& case_id,
                                                     const std::optional<v1::FieldState>& state,
                                                     std::string_view field, StateView* view) {
  std::vector<v1::FieldHead> heads;
  if (!state.has_value()) return heads;
  heads.push_back(CurrentHead(*state));
  if (state->conflict_position() != 0) {
    v1::ConflictRecord c;
    ASSIGN_OR_RETURN(
        bool found,
        view->GetProto(Cf::kConflicts,
                       storage::EncodeConflictKey(case_id, state->conflict_position(), field), &c));
    if (!found) return absl::DataLossError("a field's open conflict is missing");
    for (v1::FieldHead& h : *c.mutable_losing()) heads.push_back(std::move(h));
  }
  return heads;
}

// How a write is merged into a field's heads.
struct FieldWriteInput {
  const v1::StoredValue* value = nullptr;  // null: no write (keep current)
  uint64_t base = 0;
  // The value of the write at position `base` (what the writer saw), when
  // that write wrote this field.
  std::optional<v1::StoredValue> seen;
  bool sees_all = false;  // a resolution: every head is seen
};

// The value the write at `base` gave field `name`: from the heads when
// that write still holds a value, otherwise from its log entry. nullopt
// when that entry did not write the field.
absl::StatusOr<std::optional<v1::StoredValue>> SeenValue(const std::vector<v1::FieldHead>& heads,
                                                         uint64_t base, std::string_view name,
                                                         const EntryReader& read) {
  for (const v1::FieldHead& h : heads) {
    for (const v1::HeadWrite& w : h.writes()) {
      if (w.position() == base) return std::optional<v1::StoredValue>(h.value());
    }
  }
  v1::CaseLogEntry entry;
  ASSIGN_OR_RETURN(bool found, read(base, &entry));
  if (found) {
    for (const v1::EntryField& f : entry.fields()) {
      if (f.field() == name) return std::optional<v1::StoredValue>(f.value());
    }
  }
  return std::optional<v1::StoredValue>();
}

// Merges one write (or a keep-current resolution) into `heads` (current
// value first) and returns its outcome; `heads` is left ordered, current
// value first.
v1::ChangeOutcome MergeField(const v1::HeadWrite& write, const FieldWriteInput& in,
                             std::vector<v1::FieldHead>* heads) {
  if (in.value == nullptr) {  // keep the current value, drop the rest
    if (heads->size() > 1) heads->resize(1);
    return v1::CHANGE_OUTCOME_APPLIED;
  }
  // The writes of the value that stood; a head holding any of them after
  // the merge holds that value (one head per value).
  std::vector<uint64_t> previous;
  if (!heads->empty()) {
    for (const v1::HeadWrite& w : heads->front().writes()) previous.push_back(w.position());
  }
  if (in.sees_all) heads->clear();
  for (v1::FieldHead& h : *heads) {
    // What the writer saw: the value at its base, as it stood then (its
    // writes up to the base); and its own earlier write, always.
    const bool saw_value = in.seen.has_value() && SameValue(h.value(), *in.seen);
    auto* writes = h.mutable_writes();
    writes->erase(std::remove_if(writes->begin(), writes->end(),
                                 [&](const v1::HeadWrite& w) {
                                   return w.writer() == write.writer() ||
                                          (saw_value && w.position() <= in.base);
                                 }),
                  writes->end());
  }
  heads->erase(std::remove_if(heads->begin(), heads->end(),
                              [](const v1::FieldHead& h) { return h.writes().empty(); }),
               heads->end());
  bool joined = false;
  for (v1::FieldHead& h : *heads) {
    if (SameValue(h.value(), *in.value)) {
      *h.add_writes() = write;
      joined = true;
      break;
    }
  }
  if (!joined) {
    v1::FieldHead& h = heads->emplace_back();
    *h.mutable_value() = *in.value;
    *h.add_writes() = write;
  }
  SortHeads(heads);
  auto holds = [&](const v1::FieldHead& h) {
    return std::any_of(h.writes().begin(), h.writes().end(),
                       [&](const v1::HeadWrite& w) { return w.position() == write.position(); });
  };
  if (!holds(heads->front())) return v1::CHANGE_OUTCOME_SUPERSEDED;
  const bool stood = std::any_of(
      heads->front().writes().begin(), heads->front().writes().end(), [&](const v1::HeadWrite& w) {
        return std::find(previous.begin(), previous.end(), w.position()) != previous.end();
      });
  if (joined && stood) return v1::CHANGE_OUTCOME_CONVERGED;  // joined the value that stood
  return heads->size() > 1 ? v1::CHANGE_OUTCOME_CONFLICT : v1::CHANGE_OUTCOME_APPLIED;
}

// Record level (child records): each writer's latest change is a mark; the
// record is deleted when it has DELETE marks and every write mark is at or
// below the greatest DELETE base_version (seen by that DELETE).
bool IsDeleted(const v1::RecordHeader& h) {
  uint64_t max_base = 0;
  bool any_delete = false;
  for (const v1::HeadWrite& m : h.marks()) {
    if (!m.is_delete()) continue;
    any_delete = true;
    max_base = std::max(max_base, m.delete_base());
  }
  if (!any_delete) return false;
  return std::none_of(h.marks().begin(), h.marks().end(), [&](const v1::HeadWrite& m) {
    return !m.is_delete() && m.position() > max_base;
  });
}

const v1::HeadWrite* FindMark(const v1::RecordHeader& h, std::string_view writer) {
  for (const v1::HeadWrite& m : h.marks()) {
    if (m.writer() == writer) return &m;
  }
  return nullptr;
}

void SetMark(v1::HeadWrite mark, v1::RecordHeader* h) {
  auto* marks = h->mutable_marks();
  auto it = std::lower_bound(
      marks->begin(), marks->end(), mark.writer(),
      [](const v1::HeadWrite& m, const std::string& writer) { return m.writer() < writer; });
  if (it != marks->end() && it->writer() == mark.writer()) {
    *it = std::move(mark);
    return;
  }
  const auto index = it - marks->begin();
  *marks->Add() = std::move(mark);
  std::rotate(marks->begin() + index, marks->end() - 1, marks->end());
}

// The record-level losing head: the DELETEs of a record that stands.
std::vector<v1::FieldHead> LosingDeletes(const v1::RecordHeader& h) {
  std::vector<v1::FieldHead> out;
  if (h.deleted()) return out;
  v1::FieldHead head;
  for (const v1::HeadWrite& m : h.marks()) {
    if (!m.is_delete()) continue;
    v1::HeadWrite* w = head.add_writes();
    w->set_writer(m.writer());
    *w->mutable_hlc() = m.hlc();
    w->set_position(m.position());
  }
  if (head.writes().empty()) return out;
  out.push_back(std::move(head));
  SortHeads(&out);
  return out;
}

// The checks before a change touches anything: ids, record type, the case
// existing and being in the device's scope.
std::optional<v1::ChangeResult> CheckChange(const Schema& schema, const v1::CaseLogEntry& entry,
                                            const ApplyOptions& options, const Uuid& case_id,
                                            const std::optional<v1::RecordHeader>& header,
                                            bool is_registration, StateView* view,
                                            const EntryReader& read, absl::Status* status) {
  const bool creates_case =
      is_registration && entry.kind() == v1::CHANGE_KIND_UPSERT && !header.has_value();
  if (!creates_case) {
    absl::StatusOr<std::optional<RecordState>> registration = LoadRecord(view, case_id, case_id);
    if (!registration.ok()) {
      *status = registration.status();
      return std::nullopt;
    }
    if (!registration->has_value()) {
      return Reject(
          entry, v1::REJECT_REASON_CASE_NOT_FOUND,
          absl::StrFormat("change %s: case %s does not exist", entry.change_id(), entry.case_id()));
    }
    if (options.check_scope) {
      absl::StatusOr<std::optional<std::string>> officer =
          FieldOf(**registration, schema.officer_field(), read);
      if (!officer.ok()) {
        *status = officer.status();
        return std::nullopt;
      }
      if (!officer->has_value() || **officer != options.officer_id) {
        return Reject(entry, v1::REJECT_REASON_CASE_NOT_IN_SCOPE,
                      absl::StrFormat("change %s: case %s is not assigned to officer %s",
                                      entry.change_id(), entry.case_id(), options.officer_id));
      }
    }
  }
  if (header.has_value() && header->record_type() != entry.record_type()) {
    return Reject(entry, v1::REJECT_REASON_RECORD_TYPE_MISMATCH,
                  absl::StrFormat("change %s: record %s has type %s", entry.change_id(),
                                  entry.record_id(), header->record_type()));
  }
  if (options.replay) return std::nullopt;
  // A base names a position the writer saw: it must be in the log already.
  bool ahead = entry.base_version() >= entry.position();
  for (const v1::EntryField& f : entry.fields()) ahead |= f.base_version() >= entry.position();
  if (ahead) {
    return Reject(entry, v1::REJECT_REASON_BASE_VERSION_AHEAD,
                  absl::StrFormat("change %s: a base_version is not a position of the log yet "
                                  "(the log is at %d)",
                                  entry.change_id(), entry.position() - 1));
  }
  if (header.has_value() && entry.kind() != v1::CHANGE_KIND_DELETE) {
    // A write to a record its own writer deleted, without having seen the
    // record since: the device thinks the record is gone.
    const v1::HeadWrite* mark = FindMark(*header, entry.writer());
    if (mark != nullptr && mark->is_delete() && entry.base_version() <= mark->position()) {
      return Reject(entry, v1::REJECT_REASON_RECORD_DELETED,
                    absl::StrFormat("change %s: record %s was deleted by this device at %d",
                                    entry.change_id(), entry.record_id(), mark->position()));
    }
  }
  return std::nullopt;
}

// The value `entry` writes to `field`: nullopt when it does not write it,
// "" when it clears it.
std::optional<std::string> WrittenValue(const v1::CaseLogEntry& entry, std::string_view field) {
  for (const v1::EntryField& f : entry.fields()) {
    if (f.field() == field) return DimensionString(f.value());
  }
  return std::nullopt;
}

// A change to the registration record may not leave the case's district
// outside its region (schema case_fields.district_regions). The district
// is the one the change writes, else the case's current one; the region
// likewise. Only a change that writes a district or a region is checked:
// clearing the district is always allowed, and other edits of a case left
// inconsistent before the rule existed still apply. A stored district the
// schema no longer lists is not checked (its region is unknown).
absl::StatusOr<std::optional<v1::ChangeResult>> CheckDistrict(const Schema& schema,
                                                              const v1::CaseLogEntry& entry,
                                                              const Uuid& case_id, bool creating,
                                                              StateView* view,
                                                              const EntryReader& read) {
  const std::optional<std::string> written_district = WrittenValue(entry, schema.district_field());
  const std::optional<std::string> written_region = WrittenValue(entry, schema.region_field());
  if (!written_district.has_value() && !written_region.has_value()) return std::nullopt;
  std::optional<std::string> district;
  if (written_district.has_value()) {
    if (!written_district->empty()) district = *written_district;
  } else if (!creating) {
    ASSIGN_OR_RETURN(district, ReadCaseField(case_id, schema.district_field(), view, read));
  }
  if (!district.has_value()) return std::nullopt;
  const std::string* home = schema.RegionOfDistrict(*district);
  if (home == nullptr) return std::nullopt;
  std::optional<std::string> region;
  if (written_region.has_value()) {
    if (!written_region->empty()) region = *written_region;
  } else if (!creating) {
    ASSIGN_OR_RETURN(region, ReadCaseField(case_id, schema.region_field(), view, read));
  }
  if (region.has_value() && *region == *home) return std::nullopt;
  std::string detail;
  if (!region.has_value()) {
    detail = absl::StrFormat(
        "change %s: district %s lies in region %s, and case %s has no region: write the "
        "region with the district, or clear the district",
        entry.change_id(), *district, *home, entry.case_id());
  } else {
    const std::vector<std::string>& allowed = schema.DistrictsOfRegion(*region);
    const std::string choices =
        allowed.empty()
            ? absl::StrFormat("region %s has no districts: clear the district", *region)
            : absl::StrFormat("send one of region %s's districts (%s), or clear the district",
                              *region, absl::StrJoin(allowed, ", "));
    if (written_district.has_value()) {
      detail = absl::StrFormat(
          "change %s: district %s lies in region %s, not in %s %s: %s", entry.change_id(),
          *district, *home,
          written_region.has_value() ? "the region this change writes," : "the case's region,",
          *region, choices);
    } else {
      detail = absl::StrFormat(
          "change %s: the case's district %s lies in region %s, not in the region this change "
          "writes, %s: with the region, %s",
          entry.change_id(), *district, *home, *region, choices);
    }
  }
  return std::optional<v1::ChangeResult>(
      Reject(entry, v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION, detail));
}

// A device writes a case's region only when it creates the case, and only
// its own region; after that the region is server-managed (only a
// transfer moves a case). Writing the case's current region again is
// allowed: a tablet may resend the registration as it has it.
absl::StatusOr<std::optional<v1::ChangeResult>> CheckDeviceRegion(
    const Schema& schema, const v1::CaseLogEntry& entry, const ApplyOptions& options,
    const Uuid& case_id, bool creating, StateView* view, const EntryReader& read) {
  const std::optional<std::string> written = WrittenValue(entry, schema.region_field());
  if (!written.has_value()) return std::nullopt;
  if (creating) {
    if (*written == options.region) return std::nullopt;
    return std::optional<v1::ChangeResult>(Reject(
        entry, v1::REJECT_REASON_REGION_NOT_DEVICE_REGION,
        absl::StrFormat("change %s: a new case's region must be the device's own region %s, not "
                        "'%s': a device creates cases only in the region it was enrolled for",
                        entry.change_id(), options.region, *written)));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> current,
                   ReadCaseField(case_id, schema.region_field(), view, read));
  if (current.has_value() && *current == *written) return std::nullopt;
  return std::optional<v1::ChangeResult>(
      Reject(entry, v1::REJECT_REASON_FIELD_NOT_WRITABLE,
             absl::StrFormat("change %s: the region of case %s is set by the server; a supervisor "
                             "moves a case with a transfer (fieldsync case transfer)",
                             entry.change_id(), entry.case_id())));
}

// Adds the server-set fields of a new case (status open, the device's
// officer, and its region when the change does not write one) unless the
// entry has them already (a replay).
void AddServerSetFields(const Schema& schema, const ApplyOptions& options,
                        v1::CaseLogEntry* entry) {
  bool writes_region = false;
  for (const v1::EntryField& f : entry->fields()) {
    if (f.server_set()) return;
    writes_region |= f.field() == schema.region_field();
  }
  v1::FieldValue open, officer, region;
  open.set_enum_value("open");
  officer.set_string_value(options.officer_id);
  region.set_enum_value(options.region);
  std::vector<std::pair<std::string, v1::FieldValue>> set = {{schema.status_field(), open},
                                                             {schema.officer_field(), officer}};
  if (!writes_region && !options.region.empty()) set.emplace_back(schema.region_field(), region);
  for (auto& [name, value] : set) {
    v1::EntryField* f = entry->add_fields();
    f->set_field(name);
    *f->mutable_value() = ClearStoredValue(value);
    f->set_server_set(true);
  }
}

}  // namespace

std::string DimensionString(const v1::StoredValue& value) {
  if (value.cleared()) return "";
  v1::FieldValue v;
  if (!v.ParseFromString(value.data())) return "";
  switch (v.kind_case()) {
    case v1::FieldValue::kStringValue:
      return v.string_value();
    case v1::FieldValue::kEnumValue:
      return v.enum_value();
    case v1::FieldValue::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case v1::FieldValue::kIntValue:
      return std::to_string(v.int_value());
    case v1::FieldValue::kDecimalValue:
      return v.decimal_value();
    case v1::FieldValue::kDatetimeUnixMicros:
      return std::to_string(v.datetime_unix_micros());
    case v1::FieldValue::kDateValue:
      return absl::StrFormat("%04d-%02d-%02d", v.date_value().year(), v.date_value().month(),
                             v.date_value().day());
    default:
      return "";
  }
}

v1::StoredValue ClearStoredValue(const v1::FieldValue& value) {
  v1::StoredValue s;
  if (value.kind_case() == v1::FieldValue::KIND_NOT_SET) {
    s.set_cleared(true);
  } else {
    s.set_data(value.SerializeAsString());
  }
  return s;
}

bool SameValue(const v1::StoredValue& a, const v1::StoredValue& b) {
  if (a.cleared() || b.cleared()) return a.cleared() == b.cleared();
  if (a.encrypted() != b.encrypted()) return false;
  if (!a.encrypted()) return a.data() == b.data();
  // Digests are compared on their first kValueDigestBytes: entries written
  // before layout 2 hold the whole 32-byte HMAC.
  return std::string_view(a.digest()).substr(0, kValueDigestBytes) ==
         std::string_view(b.digest()).substr(0, kValueDigestBytes);
}

namespace {

// What Apply knows of an entry it admitted, before it changes anything.
struct Admitted {
  Uuid case_id{};
  Uuid record_id{};
  bool is_registration = false;
  bool creating = false;  // the record does not exist yet
  std::optional<RecordState> stored;
};

// Checks `entry` against the schema, its scope and the stored state: a
// REJECTED result when it is refused, nullopt when it is admitted (and
// then *out is filled, and a new registration has its server-set fields).
absl::StatusOr<std::optional<v1::ChangeResult>> Admit(const Schema& schema, v1::CaseLogEntry* entry,
                                                      const ApplyOptions& options, StateView* view,
                                                      const EntryReader& read, Admitted* out) {
  {
    absl::StatusOr<Uuid> c = ParseUuid(entry->case_id());
    absl::StatusOr<Uuid> r = ParseUuid(entry->record_id());
    if (!c.ok() || !r.ok())
      return Reject(*entry, v1::REJECT_REASON_INVALID_ID, "bad case or record id");
    out->case_id = *c;
    out->record_id = *r;
  }
  const Uuid& case_id = out->case_id;
  const v1::RecordType* type = schema.FindRecordType(entry->record_type());
  if (type == nullptr) {
    return Reject(*entry, v1::REJECT_REASON_UNKNOWN_RECORD_TYPE,
                  absl::StrFormat("change %s: unknown record type %s", entry->change_id(),
                                  entry->record_type()));
  }
  const bool is_registration = type->kind() == v1::RECORD_KIND_CASE_REGISTRATION;
  out->is_registration = is_registration;
  ASSIGN_OR_RETURN(out->stored, LoadRecord(view, case_id, out->record_id));
  std::optional<v1::RecordHeader> stored_header;
  if (out->stored.has_value()) stored_header = out->stored->header;
  {
    absl::Status status;
    std::optional<v1::ChangeResult> refused = CheckChange(
        schema, *entry, options, case_id, stored_header, is_registration, view, read, &status);
    RETURN_IF_ERROR(status);
    if (refused.has_value()) return refused;
  }
  const bool creating = !stored_header.has_value();
  out->creating = creating;
  if (creating && entry->kind() != v1::CHANGE_KIND_UPSERT) {
    return Reject(*entry,
                  entry->kind() == v1::CHANGE_KIND_DELETE ? v1::REJECT_REASON_MALFORMED_CHANGE
                                                          : v1::REJECT_REASON_CASE_NOT_FOUND,
                  absl::StrFormat("change %s: record %s does not exist", entry->change_id(),
                                  entry->record_id()));
  }
  if (creating) {
    for (const v1::FieldDef& def : type->fields()) {
      if (!def.required() || schema.IsServerManaged(type->name(), def.name())) continue;
      bool present = false;
      for (const v1::EntryField& f : entry->fields()) {
        present |= f.field() == def.name() && !f.value().cleared();
      }
      if (!present) {
        return Reject(*entry, v1::REJECT_REASON_REQUIRED_FIELD_MISSING,
                      absl::StrFormat("change %s: new record %s lacks required field %s",
                                      entry->change_id(), entry->record_id(), def.name()));
      }
    }
  }
  if (is_registration && options.check_scope && !options.region.empty()) {
    ASSIGN_OR_RETURN(std::optional<v1::ChangeResult> refused,
                     CheckDeviceRegion(schema, *entry, options, case_id, creating, view, read));
    if (refused.has_value()) return refused;
  }
  if (is_registration && schema.has_districts() && !options.replay) {
    ASSIGN_OR_RETURN(std::optional<v1::ChangeResult> refused,
                     CheckDistrict(schema, *entry, case_id, creating, view, read));
    if (refused.has_value()) return refused;
  }
  if (creating && is_registration) AddServerSetFields(schema, options, entry);
  return std::optional<v1::ChangeResult>();
}

// Field level: merges `write` into each field the entry writes, and into
// the field a keep-current resolution names; fills the fields' outcomes
// and versions in `entry` and `result` and returns the greatest outcome
// (APPLIED when none is greater).
absl::StatusOr<v1::ChangeOutcome> MergeFields(const v1::HeadWrite& write, const Admitted& a,
                                              bool keeps_current, v1::CaseLogEntry* entry,
                                              const EntryReader& read, StateView* view,
                                              RecordState* record, v1::ChangeResult* result,
                                              ConflictWrites* conflicts) {
  const uint64_t pos = write.position();
  const bool creating = a.creating;
  v1::ChangeOutcome outcome = v1::CHANGE_OUTCOME_APPLIED;
  std::vector<std::string_view> names;
  for (const v1::EntryField& f : entry->fields()) names.push_back(f.field());
  if (keeps_current && !entry->resolves().field().empty()) {
    names.push_back(entry->resolves().field());
  }
  // The current values of the fields this entry merges into.
  if (!creating) RETURN_IF_ERROR(FillValues(record, read, names));
  // A new record's fields are appended and put in name order once, below.
  if (creating) record->fields.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string_view name = names[i];
    v1::EntryField* f = keeps_current ? nullptr : entry->mutable_fields(static_cast<int>(i));
    v1::FieldState* existing = creating ? nullptr : record->FindMutable(name);
    v1::FieldState next;
    v1::ChangeOutcome fo = v1::CHANGE_OUTCOME_APPLIED;
    if (existing == nullptr && f != nullptr) {
      // A field's first write: what merging it into no heads gives (its
      // value alone, APPLIED, no conflict), without building the heads.
      *next.mutable_value() = f->value();
      next.set_version(pos);
      *next.mutable_hlc() = write.hlc();
      next.set_writer(write.writer());
    } else {
      // Taken out of the record (each value is held once) and put back below.
      std::optional<v1::FieldState> state;
      if (existing != nullptr) state = std::move(*existing);
      ASSIGN_OR_RETURN(std::vector<v1::FieldHead> heads, LoadHeads(a.case_id, state, name, view));
      FieldWriteInput in;
      if (f != nullptr) {
        in.value = &f->value();
        in.base = f->base_version();
        if (in.base != 0 && !entry->has_resolves()) {
          ASSIGN_OR_RETURN(in.seen, SeenValue(heads, in.base, name, read));
        }
      }
      in.sees_all = entry->has_resolves();
      if (f == nullptr && heads.empty()) {
        return absl::DataLossError(absl::StrFormat(
            "change %s resolves field %s, which has no value", entry->change_id(), name));
      }
      fo = MergeField(write, in, &heads);
      if (state.has_value()) next = *std::move(state);
      SetCurrentHead(heads.front(), &next);
      uint64_t conflict_position = next.conflict_position();
      RETURN_IF_ERROR(UpdateConflict(*entry, a.case_id, name,
                                     std::vector<v1::FieldHead>(heads.begin() + 1, heads.end()),
                                     &conflict_position, view, conflicts));
      next.set_conflict_position(conflict_position);
    }
    const uint64_t version = next.version();
    if (creating) {
      record->fields.emplace_back(name, std::move(next));  // put in order below
    } else {
      record->Upsert(name) = std::move(next);
    }
    if (f == nullptr) continue;
    f->set_outcome(fo);
    f->set_version(version != pos ? version : 0);
    outcome = std::max(outcome, fo);
    v1::FieldResult* fr = result->add_fields();
    fr->set_field(f->field());
    fr->set_outcome(fo);
    fr->set_version(version);
    fr->set_server_set(f->server_set());
  }
  if (creating) {
    std::sort(record->fields.begin(), record->fields.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (size_t i = 1; i < record->fields.size(); ++i) {
      if (record->fields[i - 1].first == record->fields[i].first) {
        return absl::InternalError(absl::StrFormat("change %s writes field %s twice",
                                                   entry->change_id(), record->fields[i].first));
      }
    }
  }
  return outcome;
}

// Record level (child records): each writer's latest change is a mark;
// DELETEs, revivals and their record-level conflict. Returns the entry's
// outcome given `outcome`, its fields' greatest.
absl::StatusOr<v1::ChangeOutcome> MergeRecordMarks(const v1::HeadWrite& write, const Admitted& a,
                                                   bool keeps_current, v1::ChangeOutcome outcome,
                                                   v1::CaseLogEntry* entry, StateView* view,
                                                   v1::RecordHeader* header,
                                                   v1::ChangeResult* result,
                                                   ConflictWrites* conflicts) {
  const bool was_deleted = header->deleted();
  v1::HeadWrite mark = write;
  if (entry->kind() == v1::CHANGE_KIND_DELETE) {
    mark.set_is_delete(true);
    mark.set_delete_base(entry->base_version());
  }
  const bool keeps_record = keeps_current && entry->resolves().field().empty();
  if (keeps_record) {
    // A record-level resolution keeps the record: the DELETEs are dropped.
    auto* marks = header->mutable_marks();
    marks->erase(std::remove_if(marks->begin(), marks->end(),
                                [](const v1::HeadWrite& m) { return m.is_delete(); }),
                 marks->end());
  } else if (!keeps_current) {
    SetMark(std::move(mark), header);
  }
  header->set_deleted(IsDeleted(*header));
  if (entry->kind() == v1::CHANGE_KIND_DELETE) {
    outcome = was_deleted         ? v1::CHANGE_OUTCOME_CONVERGED
              : header->deleted() ? v1::CHANGE_OUTCOME_APPLIED
                                  : v1::CHANGE_OUTCOME_SUPERSEDED;
  } else if (was_deleted && !header->deleted()) {
    entry->set_revived(true);
    result->set_revived(true);
    outcome = std::max(outcome, v1::CHANGE_OUTCOME_CONFLICT);
  }
  uint64_t conflict_position = header->conflict_position();
  RETURN_IF_ERROR(UpdateConflict(*entry, a.case_id, "", LosingDeletes(*header), &conflict_position,
                                 view, conflicts));
  header->set_conflict_position(conflict_position);
  return outcome;
}

}  // namespace

absl::StatusOr<v1::ChangeResult> Reconciler::Apply(v1::CaseLogEntry* entry,
                                                   const ApplyOptions& options, StateView* view,
                                                   RecordState* written) const {
  const uint64_t pos = entry->position();
  // Log entries are read from the view (this group's entries first), or
  // from the source of a rebuild.
  const EntryReader read =
      options.read_entry ? EntryReader(options.read_entry) : ViewEntryReader(view);
  Admitted a;
  ASSIGN_OR_RETURN(std::optional<v1::ChangeResult> refused,
                   Admit(*schema_, entry, options, view, read, &a));
  if (refused.has_value()) return *std::move(refused);

  CaseScope before;
  if (a.is_registration && a.stored.has_value()) {
    ASSIGN_OR_RETURN(before, ScopeOf(*schema_, *a.stored, read));
  }
  RecordState record = a.stored.has_value() ? *std::move(a.stored) : RecordState();
  a.stored.reset();
  v1::RecordHeader& header = record.header;
  if (a.creating) {
    header.set_record_type(entry->record_type());
    header.set_created_position(pos);
  }
  ConflictWrites conflicts;
  v1::ChangeResult result;
  result.set_change_id(entry->change_id());
  result.set_clock_clamped(entry->clock_clamped());
  result.set_log_position(pos);
  v1::HeadWrite write;
  write.set_writer(entry->writer());
  *write.mutable_hlc() = entry->hlc();
  write.set_position(pos);
  const bool keeps_current = entry->has_resolves() && entry->fields().empty();
  ASSIGN_OR_RETURN(v1::ChangeOutcome outcome, MergeFields(write, a, keeps_current, entry, read,
                                                          view, &record, &result, &conflicts));
  if (!a.is_registration) {
    ASSIGN_OR_RETURN(outcome, MergeRecordMarks(write, a, keeps_current, outcome, entry, view,
                                               &header, &result, &conflicts));
  }
  header.set_record_version(pos);
  StoreRecord(view, a.case_id, a.record_id, record);
  // The entry that creates a record is found by the record's
  // created_position; every later one by its entry key.
  if (!a.creating) view->Put(Cf::kCaseIndex, storage::EncodeCaseEntryKey(a.case_id, pos), "");
  // The registration's scope after the entry: its values are this entry's
  // (in memory, not in the view yet) or earlier entries'.
  const EntryReader with_entry = [&](uint64_t at, v1::CaseLogEntry* e) -> absl::StatusOr<bool> {
    if (at == pos) {
      *e = *entry;
      return true;
    }
    return read(at, e);
  };
  RETURN_IF_ERROR(FinishCase(*schema_, a.case_id, a.is_registration, a.creating, before, &record,
                             with_entry, conflicts, view));
  entry->set_outcome(outcome);
  result.set_outcome(outcome);
  result.set_record_version(pos);
  if (written != nullptr) *written = std::move(record);
  return result;
}

}  // namespace fieldsync::sync
