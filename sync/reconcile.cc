#include "sync/reconcile.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"
#include "sync/hlc.h"

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

// The bytes that break a (HLC, writer) tie: digest for encrypted values.
const std::string& TieKey(const v1::StoredValue& v) {
  return v.encrypted() ? v.digest() : v.data();
}

// >0 when the incoming write beats the current one.
int CompareIncoming(const v1::CaseLogEntry& entry, const v1::StoredValue& value,
                    const v1::FieldState& current) {
  int c = CompareWrite(entry.hlc(), entry.writer(), current.hlc(), current.writer());
  if (c != 0) return c;
  int t = TieKey(value).compare(TieKey(current.value()));
  return t < 0 ? -1 : (t > 0 ? 1 : 0);
}

// The state a change touches, loaded before anything is written so that a
// rejection leaves `view` untouched.
struct Loaded {
  Uuid case_id{};
  Uuid record_id{};
  bool is_registration = false;
  std::optional<v1::RecordHeader> header;
  std::vector<std::optional<v1::FieldState>> fields;  // one per entry field
};

// The case's region and officer, from its registration record's fields.
struct CaseScope {
  std::optional<std::string> region;
  std::optional<std::string> officer;
};

absl::StatusOr<CaseScope> ReadCaseScope(const Schema& schema, const Uuid& case_id,
                                        StateView* view) {
  CaseScope scope;
  for (auto [field, out] : {std::pair{&schema.region_field(), &scope.region},
                            std::pair{&schema.officer_field(), &scope.officer}}) {
    v1::FieldState state;
    ASSIGN_OR_RETURN(
        bool has, view->GetProto(Cf::kRecords,
                                 storage::EncodeFieldStateKey(case_id, case_id, *field), &state));
    if (has && !state.value().cleared()) *out = DimensionString(state.value());
  }
  return scope;
}

// Keeps the case indexes and the open-conflict index in step with the
// change, writes its new conflict records (indexed under the case's region
// after the change) and closes the conflict a resolution resolves.
absl::Status FinishCase(const Schema& schema, const Uuid& case_id, bool is_registration,
                        const CaseScope& before, const v1::CaseLogEntry& entry,
                        const std::vector<v1::ConflictRecord>& conflicts, StateView* view) {
  if (!is_registration && conflicts.empty() && !entry.has_resolves()) return absl::OkStatus();
  CaseScope after;
  ASSIGN_OR_RETURN(after, ReadCaseScope(schema, case_id, view));
  if (is_registration && before.region != after.region) {
    if (before.region) {
      view->Delete(Cf::kCaseIndex,
                   storage::EncodeCaseIndexKey(storage::kCaseByRegionTag, *before.region, case_id));
    }
    if (after.region) {
      view->Put(Cf::kCaseIndex,
                storage::EncodeCaseIndexKey(storage::kCaseByRegionTag, *after.region, case_id), "");
    }
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
  if (is_registration && before.officer != after.officer) {
    if (before.officer) {
      view->Delete(Cf::kCaseIndex, storage::EncodeCaseIndexKey(storage::kCaseByOfficerTag,
                                                               *before.officer, case_id));
    }
    if (after.officer) {
      view->Put(Cf::kCaseIndex,
                storage::EncodeCaseIndexKey(storage::kCaseByOfficerTag, *after.officer, case_id),
                "");
    }
  }
  const std::string region = after.region.value_or("");
  for (const v1::ConflictRecord& c : conflicts) {
    view->PutProto(Cf::kConflicts,
                   storage::EncodeConflictKey(case_id, c.id().position(), c.id().field()), c);
    view->Put(Cf::kConflicts,
              storage::EncodeOpenConflictKey(region, case_id, c.id().position(), c.id().field()),
              "");
  }
  if (entry.has_resolves()) {
    const std::string key =
        storage::EncodeConflictKey(case_id, entry.resolves().position(), entry.resolves().field());
    v1::ConflictRecord c;
    ASSIGN_OR_RETURN(bool found, view->GetProto(Cf::kConflicts, key, &c));
    if (found && c.status() == v1::CONFLICT_STATUS_OPEN) {
      c.set_status(v1::CONFLICT_STATUS_RESOLVED);
      c.set_resolved_position(entry.position());
      view->PutProto(Cf::kConflicts, key, c);
      view->Delete(Cf::kConflicts, storage::EncodeOpenConflictKey(
                                       region, case_id, c.id().position(), c.id().field()));
    }
  }
  return absl::OkStatus();
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
  return a.encrypted() ? a.digest() == b.digest() : a.data() == b.data();
}

absl::StatusOr<v1::ChangeResult> Reconciler::Apply(v1::CaseLogEntry* entry,
                                                   const ApplyOptions& options, StateView* view,
                                                   DimensionDelta* delta) const {
  const uint64_t pos = entry->position();
  Loaded ld;
  {
    absl::StatusOr<Uuid> c = ParseUuid(entry->case_id());
    absl::StatusOr<Uuid> r = ParseUuid(entry->record_id());
    if (!c.ok() || !r.ok())
      return Reject(*entry, v1::REJECT_REASON_INVALID_ID, "bad case or record id");
    ld.case_id = *c;
    ld.record_id = *r;
  }
  const v1::RecordType* type = schema_->FindRecordType(entry->record_type());
  if (type == nullptr) {
    return Reject(*entry, v1::REJECT_REASON_UNKNOWN_RECORD_TYPE,
                  absl::StrFormat("change %s: unknown record type %s", entry->change_id(),
                                  entry->record_type()));
  }
  ld.is_registration = type->kind() == v1::RECORD_KIND_CASE_REGISTRATION;
  const std::string header_key = storage::EncodeRecordHeaderKey(ld.case_id, ld.record_id);
  {
    v1::RecordHeader h;
    ASSIGN_OR_RETURN(bool found, view->GetProto(Cf::kRecords, header_key, &h));
    if (found) ld.header = std::move(h);
  }
  // The case must exist unless this change creates it.
  const bool creates_case =
      ld.is_registration && entry->kind() == v1::CHANGE_KIND_UPSERT && !ld.header.has_value();
  if (!creates_case) {
    std::optional<std::string> case_header;
    ASSIGN_OR_RETURN(case_header, view->Get(Cf::kRecords, storage::EncodeRecordHeaderKey(
                                                              ld.case_id, ld.case_id)));
    if (!case_header.has_value()) {
      return Reject(*entry, v1::REJECT_REASON_CASE_NOT_FOUND,
                    absl::StrFormat("change %s: case %s does not exist", entry->change_id(),
                                    entry->case_id()));
    }
    if (options.check_scope) {
      v1::FieldState officer;
      ASSIGN_OR_RETURN(bool has,
                       view->GetProto(Cf::kRecords,
                                      storage::EncodeFieldStateKey(ld.case_id, ld.case_id,
                                                                   schema_->officer_field()),
                                      &officer));
      if (!has || DimensionString(officer.value()) != options.officer_id) {
        return Reject(*entry, v1::REJECT_REASON_CASE_NOT_IN_SCOPE,
                      absl::StrFormat("change %s: case %s is not assigned to officer %s",
                                      entry->change_id(), entry->case_id(), options.officer_id));
      }
    }
  }
  if (ld.header.has_value() && ld.header->record_type() != entry->record_type()) {
    return Reject(*entry, v1::REJECT_REASON_RECORD_TYPE_MISMATCH,
                  absl::StrFormat("change %s: record %s has type %s", entry->change_id(),
                                  entry->record_id(), ld.header->record_type()));
  }
  std::vector<v1::ConflictRecord> new_conflicts;
  auto conflict = [&](std::string_view field) {
    v1::ConflictRecord c;
    c.mutable_id()->set_position(pos);
    c.mutable_id()->set_field(std::string(field));
    c.set_case_id(entry->case_id());
    c.set_record_id(entry->record_id());
    c.set_record_type(entry->record_type());
    c.set_field(std::string(field));
    c.set_status(v1::CONFLICT_STATUS_OPEN);
    return c;
  };
  v1::ChangeResult result;
  result.set_change_id(entry->change_id());
  result.set_clock_clamped(entry->clock_clamped());
  result.set_log_position(pos);
  v1::ChangeOutcome outcome = v1::CHANGE_OUTCOME_APPLIED;
  bool header_dirty = false;
  v1::RecordHeader header = ld.header.value_or(v1::RecordHeader());
  CaseScope before;
  if (ld.is_registration) {
    ASSIGN_OR_RETURN(before, ReadCaseScope(*schema_, ld.case_id, view));
  }

  if (entry->kind() == v1::CHANGE_KIND_DELETE) {
    if (!ld.header.has_value()) {
      return Reject(*entry, v1::REJECT_REASON_MALFORMED_CHANGE,
                    absl::StrFormat("change %s: record %s does not exist", entry->change_id(),
                                    entry->record_id()));
    }
    if (header.deleted()) {
      outcome = v1::CHANGE_OUTCOME_CONVERGED;
    } else if (entry->base_version() > header.record_version()) {
      return Reject(
          *entry, v1::REJECT_REASON_BASE_VERSION_AHEAD,
          absl::StrFormat("change %s: record %s base_version %d is ahead of %d", entry->change_id(),
                          entry->record_id(), entry->base_version(), header.record_version()));
    } else {
      bool wins = true;
      if (entry->base_version() < header.record_version()) {
        wins = CompareWrite(entry->hlc(), entry->writer(), header.latest_hlc(),
                            header.latest_writer()) >= 0;
        v1::ConflictRecord c = conflict("");
        c.set_losing_was_delete(!wins);
        c.mutable_losing_hlc()->CopyFrom(wins ? header.latest_hlc() : entry->hlc());
        c.set_losing_writer(wins ? header.latest_writer() : entry->writer());
        c.set_losing_position(wins ? header.record_version() : pos);
        c.set_winning_version(wins ? pos : header.record_version());
        new_conflicts.push_back(std::move(c));
        outcome = wins ? v1::CHANGE_OUTCOME_CONFLICT : v1::CHANGE_OUTCOME_SUPERSEDED;
      }
      if (wins) {
        header.set_deleted(true);
        header.set_tombstone_version(pos);
        *header.mutable_tombstone_hlc() = entry->hlc();
        header.set_tombstone_writer(entry->writer());
        header.set_record_version(pos);
        *header.mutable_latest_hlc() = entry->hlc();
        header.set_latest_writer(entry->writer());
        header_dirty = true;
      }
    }
  } else {
    const bool creating = !ld.header.has_value();
    if (creating && entry->kind() != v1::CHANGE_KIND_UPSERT) {
      return Reject(*entry, v1::REJECT_REASON_CASE_NOT_FOUND,
                    absl::StrFormat("change %s: record %s does not exist", entry->change_id(),
                                    entry->record_id()));
    }
    if (creating) {
      for (const v1::FieldDef& def : type->fields()) {
        if (!def.required() || schema_->IsServerManaged(type->name(), def.name())) continue;
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
      bool has_server_set = false;
      for (const v1::EntryField& f : entry->fields()) has_server_set |= f.server_set();
      if (ld.is_registration && !has_server_set) {
        v1::FieldValue open, officer;
        open.set_enum_value("open");
        officer.set_string_value(options.officer_id);
        for (auto& [name, value] : {std::pair{schema_->status_field(), open},
                                    std::pair{schema_->officer_field(), officer}}) {
          v1::EntryField* f = entry->add_fields();
          f->set_field(name);
          *f->mutable_value() = ClearStoredValue(value);
          f->set_server_set(true);
        }
      }
    }
    ld.fields.resize(entry->fields_size());
    for (int i = 0; i < entry->fields_size(); ++i) {
      const v1::EntryField& w = entry->fields(i);
      v1::FieldState state;
      // A field's state is only ever written with its record's header, so a
      // record without one has no field states to read.
      bool has = false;
      if (!creating) {
        ASSIGN_OR_RETURN(
            has, view->GetProto(Cf::kRecords,
                                storage::EncodeFieldStateKey(ld.case_id, ld.record_id, w.field()),
                                &state));
      }
      if (has) ld.fields[i] = std::move(state);
      const uint64_t current = has ? ld.fields[i]->version() : 0;
      if (w.base_version() > current) {
        return Reject(*entry, v1::REJECT_REASON_BASE_VERSION_AHEAD,
                      absl::StrFormat("change %s: field %s base_version %d is ahead of %d",
                                      entry->change_id(), w.field(), w.base_version(), current));
      }
    }
    bool superseded_by_tombstone = false;
    // A change without field writes (a resolution keeping the current
    // value) never touches a tombstone.
    if (header.deleted() && entry->fields_size() > 0) {
      bool concurrent = false;
      for (const v1::EntryField& w : entry->fields()) {
        concurrent |= w.base_version() < header.tombstone_version();
      }
      if (!concurrent) {
        return Reject(*entry, v1::REJECT_REASON_RECORD_DELETED,
                      absl::StrFormat("change %s: record %s is deleted", entry->change_id(),
                                      entry->record_id()));
      }
      const bool wins = CompareWrite(entry->hlc(), entry->writer(), header.tombstone_hlc(),
                                     header.tombstone_writer()) > 0;
      v1::ConflictRecord c = conflict("");
      c.set_losing_was_delete(wins);
      c.mutable_losing_hlc()->CopyFrom(wins ? header.tombstone_hlc() : entry->hlc());
      c.set_losing_writer(wins ? header.tombstone_writer() : entry->writer());
      c.set_losing_position(wins ? header.tombstone_version() : pos);
      c.set_winning_version(wins ? pos : header.tombstone_version());
      new_conflicts.push_back(std::move(c));
      if (wins) {
        header.set_deleted(false);
        header_dirty = true;
        outcome = v1::CHANGE_OUTCOME_CONFLICT;
      } else {
        superseded_by_tombstone = true;
        outcome = v1::CHANGE_OUTCOME_SUPERSEDED;
      }
    }
    bool record_written = false;
    for (int i = 0; i < entry->fields_size(); ++i) {
      v1::EntryField* w = entry->mutable_fields(i);
      const std::optional<v1::FieldState>& cur = ld.fields[i];
      const uint64_t current = cur.has_value() ? cur->version() : 0;
      v1::ChangeOutcome fo;
      if (superseded_by_tombstone) {
        fo = v1::CHANGE_OUTCOME_SUPERSEDED;
      } else if (w->base_version() == current) {
        fo = v1::CHANGE_OUTCOME_APPLIED;
      } else if (SameValue(w->value(), cur->value())) {
        fo = v1::CHANGE_OUTCOME_CONVERGED;
        // The value and version stay; the field's (HLC, writer) becomes the
        // larger of the two, so that a later concurrent write meets the same
        // winner whichever of the equal writes arrived first.
        if (CompareWrite(entry->hlc(), entry->writer(), cur->hlc(), cur->writer()) > 0) {
          v1::FieldState lifted = *cur;
          *lifted.mutable_hlc() = entry->hlc();
          lifted.set_writer(entry->writer());
          view->PutProto(Cf::kRecords,
                         storage::EncodeFieldStateKey(ld.case_id, ld.record_id, w->field()),
                         lifted);
        }
      } else {
        const bool wins = CompareIncoming(*entry, w->value(), *cur) > 0;
        v1::ConflictRecord c = conflict(w->field());
        const v1::StoredValue& loser = wins ? cur->value() : w->value();
        *c.mutable_losing_value() = loser;
        c.mutable_losing_hlc()->CopyFrom(wins ? cur->hlc() : entry->hlc());
        c.set_losing_writer(wins ? cur->writer() : entry->writer());
        c.set_losing_position(wins ? cur->version() : pos);
        c.set_winning_version(wins ? pos : cur->version());
        new_conflicts.push_back(std::move(c));
        fo = wins ? v1::CHANGE_OUTCOME_CONFLICT : v1::CHANGE_OUTCOME_SUPERSEDED;
      }
      w->set_outcome(fo);
      outcome = std::max(outcome, fo);
      uint64_t version = current;
      if (fo == v1::CHANGE_OUTCOME_APPLIED || fo == v1::CHANGE_OUTCOME_CONFLICT) {
        v1::FieldState next;
        *next.mutable_value() = w->value();
        *next.mutable_hlc() = entry->hlc();
        next.set_writer(entry->writer());
        next.set_version(pos);
        view->PutProto(Cf::kRecords,
                       storage::EncodeFieldStateKey(ld.case_id, ld.record_id, w->field()), next);
        version = pos;
        record_written = true;
      }
      v1::FieldResult* fr = result.add_fields();
      fr->set_field(w->field());
      fr->set_outcome(fo);
      fr->set_version(version);
      fr->set_server_set(w->server_set());
    }
    if (creating) {
      header.set_record_type(entry->record_type());
      header.set_created_position(pos);
      header_dirty = true;
    }
    if (record_written) {
      header.set_record_version(pos);
      *header.mutable_latest_hlc() = entry->hlc();
      header.set_latest_writer(entry->writer());
      header_dirty = true;
    }
  }
  if (header_dirty) view->PutProto(Cf::kRecords, header_key, header);
  RETURN_IF_ERROR(
      FinishCase(*schema_, ld.case_id, ld.is_registration, before, *entry, new_conflicts, view));
  if (delta != nullptr) {
    // The fields written above: those with an APPLIED or CONFLICT outcome.
    delta->exists = !header.deleted();
    const std::vector<std::string>& dims = schema_->DimensionFields(entry->record_type());
    for (const v1::EntryField& f : entry->fields()) {
      if (f.outcome() != v1::CHANGE_OUTCOME_APPLIED && f.outcome() != v1::CHANGE_OUTCOME_CONFLICT) {
        continue;
      }
      if (std::find(dims.begin(), dims.end(), f.field()) == dims.end()) continue;
      std::optional<std::string>& v = delta->values[f.field()];
      if (f.value().cleared()) {
        v.reset();
      } else {
        v = DimensionString(f.value());
      }
    }
  }
  entry->set_outcome(outcome);
  result.set_outcome(outcome);
  result.set_record_version(header.record_version());
  return result;
}

}  // namespace fieldsync::sync
