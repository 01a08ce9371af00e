#include "sync/change_feed.h"

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "storage/key_codec.h"
#include "sync/heads.h"
#include "sync/reconcile.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

absl::StatusOr<std::optional<v1::FieldState>> GetFieldState(storage::Store* store,
                                                            const storage::Snapshot* snap,
                                                            const Uuid& case_id,
                                                            const Uuid& record_id,
                                                            std::string_view field) {
  absl::StatusOr<std::string> v =
      store->Get(Cf::kRecords, storage::EncodeFieldStateKey(case_id, record_id, field), snap);
  if (absl::IsNotFound(v.status())) return std::optional<v1::FieldState>();
  if (!v.ok()) return v.status();
  v1::FieldState state;
  if (!state.ParseFromString(*v)) return absl::DataLossError("field state does not parse");
  return std::optional<v1::FieldState>(std::move(state));
}

}  // namespace

absl::flat_hash_set<v1::Sensitivity> ReadScope::AllClasses() {
  return {v1::SENSITIVITY_IDENTIFYING, v1::SENSITIVITY_SENSITIVE, v1::SENSITIVITY_DIMENSION,
          v1::SENSITIVITY_OPERATIONAL};
}

absl::StatusOr<v1::FieldValue> ChangeFeed::Plaintext(const v1::StoredValue& value,
                                                     std::string_view case_id,
                                                     std::string_view record_id,
                                                     std::string_view field) const {
  v1::FieldValue out;
  if (value.cleared()) return out;
  std::string plain;
  if (value.encrypted()) {
    ASSIGN_OR_RETURN(plain, sealer_->Open(FieldAddress{case_id, record_id, field}, value.data()));
  } else {
    plain = value.data();
  }
  if (!out.ParseFromString(plain)) {
    return absl::DataLossError(
        absl::StrFormat("value of field %s in record %s does not parse", field, record_id));
  }
  return out;
}

absl::StatusOr<v1::PulledChanges> ChangeFeed::Read(const ReadScope& scope,
                                                   const FeedOptions& options) const {
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  // Case id -> in scope, decided once per chunk from the snapshot's state.
  absl::flat_hash_map<std::string, bool> in_scope;
  auto case_in_scope = [&](const std::string& case_text) -> absl::StatusOr<bool> {
    if (scope.all_cases || scope.case_ids.contains(case_text)) return true;
    auto it = in_scope.find(case_text);
    if (it != in_scope.end()) return it->second;
    ASSIGN_OR_RETURN(Uuid id, ParseUuid(case_text));
    bool ok = false;
    if (!scope.officer_id.empty()) {
      ASSIGN_OR_RETURN(auto officer,
                       GetFieldState(store_, snap.get(), id, id, schema_->officer_field()));
      ok |= officer.has_value() && DimensionString(officer->value()) == scope.officer_id;
    }
    if (!ok && !scope.regions.empty()) {
      ASSIGN_OR_RETURN(auto region,
                       GetFieldState(store_, snap.get(), id, id, schema_->region_field()));
      ok |= region.has_value() && scope.regions.contains(DimensionString(region->value()));
    }
    in_scope[case_text] = ok;
    return ok;
  };

  v1::PulledChanges out;
  out.set_next_cursor(options.cursor);
  std::unique_ptr<storage::Iterator> it = store_->NewIterator(
      Cf::kCaseLog, storage::EncodeCaseLogKey(options.cursor + 1), "", snap.get());
  size_t scanned = 0, bytes = 0;
  for (; it->Valid(); it->Next()) {
    if (out.changes_size() >= static_cast<int>(options.max_changes) ||
        scanned >= options.max_scan) {
      break;
    }
    ASSIGN_OR_RETURN(uint64_t position, storage::DecodeCaseLogKey(it->key()));
    v1::CaseLogEntry entry;
    if (!entry.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrFormat("case log entry %d does not parse", position));
    }
    ++scanned;
    ASSIGN_OR_RETURN(bool wanted, case_in_scope(entry.case_id()));
    if (wanted) {
      v1::PulledChange change;
      change.set_position(position);
      change.set_change_id(entry.change_id());
      change.set_case_id(entry.case_id());
      change.set_record_id(entry.record_id());
      change.set_record_type(entry.record_type());
      change.set_kind(entry.kind());
      *change.mutable_hlc() = entry.hlc();
      change.set_writer(entry.writer());
      change.set_outcome(entry.outcome());
      change.set_record_version(position);
      change.set_revived(entry.revived());
      for (const v1::EntryField& f : entry.fields()) {
        const v1::FieldDef* def = schema_->FindField(entry.record_type(), f.field());
        if (def == nullptr || !scope.readable.contains(def->sensitivity())) {
          change.set_withheld_fields(change.withheld_fields() + 1);
          continue;
        }
        absl::StatusOr<v1::FieldValue> value =
            Plaintext(f.value(), entry.case_id(), entry.record_id(), f.field());
        if (absl::IsNotFound(value.status())) {  // case key erased
          change.set_withheld_fields(change.withheld_fields() + 1);
          continue;
        }
        if (!value.ok()) return value.status();
        v1::PulledField* pf = change.add_fields();
        pf->set_field(f.field());
        *pf->mutable_value() = std::move(*value);
        pf->set_outcome(f.outcome());
        pf->set_server_set(f.server_set());
        pf->set_version(f.version() != 0 ? f.version() : position);
      }
      const size_t size = change.ByteSizeLong();
      if (out.changes_size() > 0 && bytes + size > options.max_bytes) break;
      bytes += size;
      *out.add_changes() = std::move(change);
    }
    out.set_next_cursor(position);
  }
  RETURN_IF_ERROR(it->status());
  out.set_caught_up(!it->Valid());
  return out;
}

absl::StatusOr<std::optional<v1::FieldValue>> ChangeFeed::ReadField(std::string_view case_id,
                                                                    std::string_view record_id,
                                                                    std::string_view field) const {
  ASSIGN_OR_RETURN(Uuid c, ParseUuid(case_id));
  ASSIGN_OR_RETURN(Uuid r, ParseUuid(record_id));
  ASSIGN_OR_RETURN(auto state, GetFieldState(store_, nullptr, c, r, field));
  if (!state.has_value() || state->value().cleared()) return std::optional<v1::FieldValue>();
  ASSIGN_OR_RETURN(v1::FieldValue v,
                   Plaintext(state->value(), FormatUuid(c), FormatUuid(r), field));
  return std::optional<v1::FieldValue>(std::move(v));
}

absl::Status ChangeFeed::DescribeConflict(const v1::ConflictRecord& record, const Uuid& case_id,
                                          std::string_view region,
                                          const absl::flat_hash_set<v1::Sensitivity>& readable,
                                          const storage::Snapshot* snap, v1::Conflict* c) const {
  *c->mutable_id() = record.id();
  c->set_case_id(record.case_id());
  c->set_record_id(record.record_id());
  c->set_record_type(record.record_type());
  c->set_field(record.field());
  c->set_losing_was_delete(record.losing_was_delete());
  c->set_region(std::string(region));
  c->set_status(record.status());
  c->set_resolved_position(record.resolved_position());
  ASSIGN_OR_RETURN(Uuid rid, ParseUuid(record.record_id()));
  v1::RecordHeader header;
  {
    absl::StatusOr<std::string> raw =
        store_->Get(Cf::kRecords, storage::EncodeRecordHeaderKey(case_id, rid), snap);
    if (!raw.ok()) return raw.status();
    if (!header.ParseFromString(*raw)) return absl::DataLossError("record header does not parse");
  }
  std::optional<v1::FieldState> current;
  if (!record.field().empty()) {
    ASSIGN_OR_RETURN(current, GetFieldState(store_, snap, case_id, rid, record.field()));
    if (!current.has_value()) return absl::DataLossError("a conflict's field has no state");
    c->set_current_version(current->version());
    c->set_current_writer(current->writer());
    *c->mutable_current_hlc() = current->hlc();
  }
  c->set_version(ConflictVersion(record, current.value_or(v1::FieldState()), header));
  const v1::FieldDef* def =
      record.field().empty() ? nullptr : schema_->FindField(record.record_type(), record.field());
  const bool can_read = def != nullptr && readable.contains(def->sensitivity());
  if (current.has_value()) {
    if (can_read) {
      ASSIGN_OR_RETURN(*c->mutable_current_value(), Plaintext(current->value(), record.case_id(),
                                                              record.record_id(), record.field()));
    } else {
      c->set_current_value_withheld(true);
    }
  }
  for (const v1::FieldHead& head : record.losing()) {
    v1::LosingValue* lv = c->add_losing_values();
    // Greatest write first, as heads are listed.
    for (auto w = head.writes().rbegin(); w != head.writes().rend(); ++w) {
      v1::ConflictWrite* cw = lv->add_writes();
      cw->set_writer(w->writer());
      *cw->mutable_hlc() = w->hlc();
      cw->set_position(w->position());
    }
    if (record.field().empty()) continue;
    if (can_read) {
      ASSIGN_OR_RETURN(*lv->mutable_value(), Plaintext(head.value(), record.case_id(),
                                                       record.record_id(), record.field()));
    } else {
      lv->set_value_withheld(true);
    }
  }
  if (c->losing_values_size() > 0 && c->losing_values(0).writes_size() > 0) {
    const v1::LosingValue& first = c->losing_values(0);
    *c->mutable_losing_value() = first.value();
    c->set_losing_writer(first.writes(0).writer());
    *c->mutable_losing_hlc() = first.writes(0).hlc();
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ListConflictsResponse> ChangeFeed::ListConflicts(
    std::string_view region, uint32_t page_size, std::string_view page_token,
    const absl::flat_hash_set<v1::Sensitivity>& readable) const {
  const size_t limit = page_size == 0 ? 100 : std::min<uint32_t>(page_size, 1000);
  const std::string prefix = storage::RegionOpenConflictsPrefix(region);
  std::string start = prefix;
  if (!page_token.empty()) {
    std::string after;
    if (!absl::WebSafeBase64Unescape(absl::string_view(page_token.data(), page_token.size()),
                                     &after) ||
        after.compare(0, prefix.size(), prefix) != 0) {
      return absl::InvalidArgumentError("page_token is not from this listing");
    }
    start = after + '\0';  // the smallest key after `after`
  }
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  std::unique_ptr<storage::Iterator> it =
      store_->NewIterator(Cf::kConflicts, start, storage::PrefixUpperBound(prefix), snap.get());
  v1::ListConflictsResponse out;
  std::string last_key;
  for (; it->Valid() && static_cast<size_t>(out.conflicts_size()) < limit; it->Next()) {
    ASSIGN_OR_RETURN(storage::OpenConflictKey key, storage::DecodeOpenConflictKey(it->key()));
    last_key = std::string(it->key());
    ASSIGN_OR_RETURN(std::string raw, store_->Get(Cf::kConflicts,
                                                  storage::EncodeConflictKey(key.conflict.case_id,
                                                                             key.conflict.position,
                                                                             key.conflict.field),
                                                  snap.get()));
    v1::ConflictRecord record;
    if (!record.ParseFromString(raw)) return absl::DataLossError("conflict does not parse");
    RETURN_IF_ERROR(DescribeConflict(record, key.conflict.case_id, region, readable, snap.get(),
                                     out.add_conflicts()));
  }
  RETURN_IF_ERROR(it->status());
  if (it->Valid() && !last_key.empty()) {
    out.set_next_page_token(absl::WebSafeBase64Escape(last_key));
  }
  return out;
}

}  // namespace fieldsync::sync
