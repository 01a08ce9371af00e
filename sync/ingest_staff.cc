// Ingest's server-side changes: assignment, transfer, close/reopen and
// conflict resolution by supervisors. Each is built inside the commit step
// (so it reads the state its own group left) and logged like a device
// change, with the writer "staff:<id>" and the server's clock as its HLC.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "storage/key_codec.h"
#include "sync/errors.h"
#include "sync/heads.h"
#include "sync/ingest.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

absl::Status NotFound(std::string_view what, std::string_view case_id) {
  v1::SyncErrorDetail detail;
  detail.set_case_id(std::string(case_id));
  return SyncError(absl::StatusCode::kNotFound, v1::SYNC_ERROR_REASON_NOT_FOUND,
                   absl::StrFormat("%s not found in case %s", what, case_id), detail);
}

absl::Status InvalidValue(std::string_view message, std::string_view case_id,
                          std::string_view field) {
  v1::SyncErrorDetail detail;
  detail.set_case_id(std::string(case_id));
  detail.set_field(std::string(field));
  return SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_INVALID_VALUE, message,
                   detail);
}

// The current version of a field (0 when never written); kAborted when
// `base` is non-zero and differs from it.
absl::StatusOr<uint64_t> CheckBase(StateView* view, const Uuid& case_id, const Uuid& record_id,
                                   std::string_view field, uint64_t base,
                                   std::string_view case_text) {
  ASSIGN_OR_RETURN(std::optional<RecordState> record, LoadRecord(view, case_id, record_id));
  const v1::FieldState* state = record.has_value() ? record->Find(field) : nullptr;
  const uint64_t current = state != nullptr ? state->version() : 0;
  if (base != 0 && base != current) {
    v1::SyncErrorDetail detail;
    detail.set_case_id(std::string(case_text));
    detail.set_field(std::string(field));
    return SyncError(absl::StatusCode::kAborted, v1::SYNC_ERROR_REASON_STALE_BASE,
                     absl::StrFormat("field %s of case %s changed since version %d (now %d): "
                                     "read it again",
                                     field, case_text, base, current),
                     detail);
  }
  return current;
}

// FAILED_PRECONDITION / NO_CHANGE: the case already is as asked.
absl::Status NoChange(std::string_view message, std::string_view case_id, std::string_view field) {
  v1::SyncErrorDetail detail;
  detail.set_case_id(std::string(case_id));
  detail.set_field(std::string(field));
  return SyncError(absl::StatusCode::kFailedPrecondition, v1::SYNC_ERROR_REASON_NO_CHANGE, message,
                   detail);
}

// The current text of a registration field ("" when unset or cleared).
absl::StatusOr<std::string> CurrentText(StateView* view, const Uuid& case_id,
                                        std::string_view field) {
  ASSIGN_OR_RETURN(std::optional<RecordState> record, LoadRecord(view, case_id, case_id));
  if (!record.has_value() || record->Find(field) == nullptr) return std::string();
  const std::string_view only[] = {field};
  RETURN_IF_ERROR(FillValues(&*record, ViewEntryReader(view), only));
  return DimensionString(record->Find(field)->value());
}

// The registration entry skeleton for `case_text`, after checking that the
// case exists.
absl::StatusOr<v1::CaseLogEntry> CaseEntry(const Schema& schema, StateView* view,
                                           std::string_view case_text, Uuid* case_id) {
  absl::StatusOr<Uuid> id = ParseUuid(case_text);
  if (!id.ok()) return InvalidValue("case id is not a UUID", case_text, "");
  *case_id = *id;
  ASSIGN_OR_RETURN(std::optional<std::string> header,
                   view->Get(Cf::kRecords, storage::EncodeRecordStateKey(*id, *id)));
  if (!header.has_value()) return NotFound("registration", case_text);
  v1::CaseLogEntry entry;
  entry.set_case_id(FormatUuid(*id));
  entry.set_record_id(entry.case_id());
  entry.set_record_type(schema.registration_type().name());
  return entry;
}

absl::Status AddField(const Schema& schema, StateView* view, const Uuid& case_id,
                      v1::CaseLogEntry* entry, const std::string& field,
                      const v1::FieldValue& value, uint64_t base) {
  const v1::FieldDef* def = schema.FindField(entry->record_type(), field);
  ValueCheck check = Schema::CheckValue(*def, value, absl::StrFormat("field %s", field));
  if (!check.ok()) return InvalidValue(check.detail, entry->case_id(), field);
  ASSIGN_OR_RETURN(uint64_t current,
                   CheckBase(view, case_id, case_id, field, base, entry->case_id()));
  v1::EntryField* f = entry->add_fields();
  f->set_field(field);
  f->set_base_version(current);
  *f->mutable_value() = ClearStoredValue(value);
  return absl::OkStatus();
}

// OK when `district` may be the district of a case transferred to
// `region`: one of the region's districts, or "" when the field is not
// required. Otherwise INVALID_VALUE listing the region's districts.
absl::Status CheckTransferDistrict(const Schema& schema, std::string_view region,
                                   std::string_view district, std::string_view case_text) {
  const std::string& field = schema.district_field();
  const std::vector<std::string>& allowed = schema.DistrictsOfRegion(region);
  const std::string choices = allowed.empty()
                                  ? absl::StrFormat("region %s has no districts", region)
                                  : absl::StrFormat("the districts of region %s are: %s", region,
                                                    absl::StrJoin(allowed, ", "));
  if (district.empty()) {
    if (!schema.FindField(schema.registration_type().name(), field)->required()) {
      return absl::OkStatus();
    }
    return InvalidValue(absl::StrFormat("to_district is required (district field %s is "
                                        "required); %s",
                                        field, choices),
                        case_text, field);
  }
  const std::string* home = schema.RegionOfDistrict(district);
  if (home != nullptr && *home == region) return absl::OkStatus();
  return InvalidValue(
      absl::StrFormat("to_district %s is not a district of region %s; %s%s", district, region,
                      choices, allowed.empty() ? ": send to_district empty" : ""),
      case_text, field);
}

}  // namespace

absl::StatusOr<v1::ChangeResult> Ingest::AssignCase(const StaffActor& actor,
                                                    std::string_view case_id,
                                                    std::string_view officer_id,
                                                    uint64_t base_version) {
  const Schema& schema = *options_.schema;
  std::string case_text(case_id), officer(officer_id);
  return RunStaff(
      actor, v1::CHANGE_KIND_ASSIGN_CASE,
      [&, case_text, officer](StateView* view) -> absl::StatusOr<v1::CaseLogEntry> {
        Uuid id;
        ASSIGN_OR_RETURN(v1::CaseLogEntry entry, CaseEntry(schema, view, case_text, &id));
        if (officer.empty()) {
          return InvalidValue("officer id is empty", case_text, schema.officer_field());
        }
        ASSIGN_OR_RETURN(std::string current, CurrentText(view, id, schema.officer_field()));
        if (current == officer) {
          return NoChange(absl::StrFormat("case %s is already assigned to officer %s: nothing to "
                                          "do",
                                          case_text, officer),
                          case_text, schema.officer_field());
        }
        v1::FieldValue v;
        v.set_string_value(officer);
        RETURN_IF_ERROR(
            AddField(schema, view, id, &entry, schema.officer_field(), v, base_version));
        return entry;
      });
}

absl::StatusOr<v1::ChangeResult> Ingest::TransferCase(
    const StaffActor& actor, std::string_view case_id, std::string_view to_region,
    std::string_view to_district, std::string_view officer_id, uint64_t base_version) {
  const Schema& schema = *options_.schema;
  std::string case_text(case_id), region(to_region), district(to_district), officer(officer_id);
  return RunStaff(
      actor, v1::CHANGE_KIND_TRANSFER_CASE,
      [&, case_text, region, district,
       officer](StateView* view) -> absl::StatusOr<v1::CaseLogEntry> {
        Uuid id;
        ASSIGN_OR_RETURN(v1::CaseLogEntry entry, CaseEntry(schema, view, case_text, &id));
        const v1::FieldDef* def = schema.FindField(entry.record_type(), schema.region_field());
        v1::FieldValue r;
        if (def->type() == v1::FIELD_TYPE_ENUM) {
          r.set_enum_value(region);
        } else {
          r.set_string_value(region);
        }
        if (region.empty()) return InvalidValue("region is empty", case_text, def->name());
        if (absl::Status known = schema.CheckRegion(region); !known.ok()) {
          return InvalidValue(std::string(known.message()), case_text, def->name());
        }
        ASSIGN_OR_RETURN(std::string current, CurrentText(view, id, def->name()));
        if (current == region) {
          return NoChange(absl::StrFormat("case %s is already in region %s: to give it another "
                                          "officer, assign it",
                                          case_text, region),
                          case_text, def->name());
        }
        RETURN_IF_ERROR(AddField(schema, view, id, &entry, schema.region_field(), r, base_version));
        v1::FieldValue o;
        if (!officer.empty()) o.set_string_value(officer);
        RETURN_IF_ERROR(AddField(schema, view, id, &entry, schema.officer_field(), o, 0));
        if (!schema.has_districts()) {
          if (district.empty()) return entry;
          return InvalidValue(
              "to_district is given but the schema declares no district field "
              "(case_fields.district_field): send it empty",
              case_text, "");
        }
        // The district moves with the region, in the same entry, so that
        // no reader ever sees the case in one region and a district of
        // another.
        RETURN_IF_ERROR(CheckTransferDistrict(schema, region, district, case_text));
        v1::FieldValue d;
        if (!district.empty()) d.set_enum_value(district);
        RETURN_IF_ERROR(AddField(schema, view, id, &entry, schema.district_field(), d, 0));
        return entry;
      });
}

absl::StatusOr<v1::ChangeResult> Ingest::SetCaseStatus(const StaffActor& actor,
                                                       std::string_view case_id, bool close,
                                                       std::string_view reason,
                                                       uint64_t base_version) {
  const Schema& schema = *options_.schema;
  std::string case_text(case_id), reason_text(reason);
  return RunStaff(
      actor, close ? v1::CHANGE_KIND_CLOSE_CASE : v1::CHANGE_KIND_REOPEN_CASE,
      [&, case_text, reason_text](StateView* view) -> absl::StatusOr<v1::CaseLogEntry> {
        Uuid id;
        ASSIGN_OR_RETURN(v1::CaseLogEntry entry, CaseEntry(schema, view, case_text, &id));
        const std::string wanted = close ? "closed" : "open";
        ASSIGN_OR_RETURN(std::string current, CurrentText(view, id, schema.status_field()));
        if (current == wanted) {
          return NoChange(
              absl::StrFormat("case %s is already %s: nothing to do", case_text, wanted), case_text,
              schema.status_field());
        }
        const std::string& reason_field = schema.closure_reason_field();
        if (reason_field.empty() && !reason_text.empty()) {
          return InvalidValue(
              "this deployment's schema declares no closure reason field "
              "(case_fields.closure_reason_field): close the case without a reason",
              case_text, "");
        }
        if (!reason_field.empty() && close != !reason_text.empty()) {
          const v1::FieldDef* def = schema.FindField(entry.record_type(), reason_field);
          return InvalidValue(
              close ? absl::StrFormat("closing case %s needs a reason: one of %s", case_text,
                                      absl::StrJoin(def->enum_values(), ", "))
                    : absl::StrFormat("reopening case %s takes no reason", case_text),
              case_text, reason_field);
        }
        v1::FieldValue v;
        v.set_enum_value(wanted);
        RETURN_IF_ERROR(AddField(schema, view, id, &entry, schema.status_field(), v, base_version));
        if (!reason_field.empty()) {
          const v1::FieldDef* def = schema.FindField(entry.record_type(), reason_field);
          v1::FieldValue r;
          if (close) r.set_enum_value(reason_text);
          if (close && std::find(def->enum_values().begin(), def->enum_values().end(),
                                 reason_text) == def->enum_values().end()) {
            return InvalidValue(absl::StrFormat("unknown closure reason '%s'; the reasons are: %s",
                                                absl::CHexEscape(reason_text),
                                                absl::StrJoin(def->enum_values(), ", ")),
                                case_text, reason_field);
          }
          RETURN_IF_ERROR(AddField(schema, view, id, &entry, reason_field, r, 0));
        }
        return entry;
      });
}

absl::StatusOr<v1::ChangeResult> Ingest::ResolveConflict(
    const StaffActor& actor, const v1::ConflictId& conflict_id, std::string_view case_id,
    Resolution resolution, uint32_t losing_index, const v1::FieldValue& new_value,
    uint64_t base_version) {
  std::string case_text(case_id);
  return RunStaff(
      actor, v1::CHANGE_KIND_RESOLVE_CONFLICT,
      [&, case_text](StateView* view) -> absl::StatusOr<v1::CaseLogEntry> {
        absl::StatusOr<Uuid> id = ParseUuid(case_text);
        if (!id.ok()) return InvalidValue("case id is not a UUID", case_text, "");
        v1::ConflictRecord conflict;
        ASSIGN_OR_RETURN(bool found,
                         view->GetProto(Cf::kConflicts,
                                        storage::EncodeConflictKey(*id, conflict_id.position(),
                                                                   conflict_id.field()),
                                        &conflict));
        if (!found) return NotFound("conflict", case_text);
        v1::SyncErrorDetail detail;
        detail.set_case_id(case_text);
        detail.set_field(conflict.field());
        if (conflict.status() != v1::CONFLICT_STATUS_OPEN) {
          return SyncError(absl::StatusCode::kFailedPrecondition,
                           v1::SYNC_ERROR_REASON_ALREADY_RESOLVED,
                           absl::StrFormat("conflict %d/%s of case %s was already closed at "
                                           "position %d: nothing to resolve",
                                           conflict_id.position(), conflict_id.field(), case_text,
                                           conflict.resolved_position()),
                           detail);
        }
        if (base_version == 0) {
          return InvalidValue(
              "base_version is required: show the conflict and send the version it lists",
              case_text, conflict.field());
        }
        ASSIGN_OR_RETURN(Uuid record_id, ParseUuid(conflict.record_id()));
        ASSIGN_OR_RETURN(std::optional<RecordState> record, LoadRecord(view, *id, record_id));
        const bool has_header = record.has_value();
        v1::RecordHeader header;
        v1::FieldState current;
        bool has_current = false;
        if (has_header) {
          header = record->header;
          if (const v1::FieldState* f = record->Find(conflict.field());
              f != nullptr && !conflict.field().empty()) {
            current = *f;
            has_current = true;
          }
        }
        if (!has_header || (!conflict.field().empty() && !has_current)) {
          return absl::DataLossError(
              absl::StrFormat("conflict %d/%s of case %s names a record or field with no state",
                              conflict_id.position(), conflict_id.field(), case_text));
        }
        const uint64_t version = ConflictVersion(conflict, current, header);
        if (base_version != version) {
          detail.set_current_version(version);
          return SyncError(absl::StatusCode::kAborted, v1::SYNC_ERROR_REASON_STALE_BASE,
                           absl::StrFormat("conflict %d/%s of case %s changed since you looked "
                                           "(version %d, now %d): show it again",
                                           conflict_id.position(), conflict_id.field(), case_text,
                                           base_version, version),
                           detail);
        }
        v1::CaseLogEntry entry;
        entry.set_case_id(FormatUuid(*id));
        entry.set_record_id(conflict.record_id());
        entry.set_record_type(conflict.record_type());
        *entry.mutable_resolves() = conflict_id;
        if (resolution == Resolution::kKeepCurrent) return entry;
        if (conflict.field().empty()) {
          return InvalidValue(
              "a record-level conflict is resolved by keeping the record; to remove it, delete "
              "the record",
              case_text, "");
        }
        if (header.deleted()) {
          return SyncError(absl::StatusCode::kFailedPrecondition,
                           v1::SYNC_ERROR_REASON_INVALID_VALUE,
                           absl::StrFormat("record %s of case %s is deleted: keep the current "
                                           "value, or restore the record first",
                                           conflict.record_id(), case_text),
                           detail);
        }
        v1::EntryField* f = entry.add_fields();
        f->set_field(conflict.field());
        f->set_base_version(current.version());
        if (resolution == Resolution::kTakeLosing) {
          if (losing_index >= static_cast<uint32_t>(conflict.losing_size())) {
            return InvalidValue(absl::StrFormat("conflict has %d losing values; there is no "
                                                "number %d",
                                                conflict.losing_size(), losing_index),
                                case_text, conflict.field());
          }
          // The kept bytes are bound to this very case, record and field,
          // so they are reused as they are (never re-encrypted).
          *f->mutable_value() = conflict.losing(static_cast<int>(losing_index)).value();
          return entry;
        }
        const v1::FieldDef* def =
            options_.schema->FindField(conflict.record_type(), conflict.field());
        if (def == nullptr) return NotFound("field", case_text);
        ValueCheck check =
            Schema::CheckValue(*def, new_value, absl::StrFormat("field %s", def->name()));
        if (!check.ok()) return InvalidValue(check.detail, case_text, def->name());
        if (def->required() && new_value.kind_case() == v1::FieldValue::KIND_NOT_SET) {
          return InvalidValue("a required field cannot be cleared", case_text, def->name());
        }
        RETURN_IF_ERROR(StoreValue(*def, entry.case_id(), entry.record_id(), new_value, nullptr,
                                   staff_key_writes_, f->mutable_value()));
        return entry;
      });
}

}  // namespace fieldsync::sync
