#include "sync/change_feed.h"

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "storage/key_codec.h"
#include "sync/errors.h"
#include "sync/heads.h"
#include "sync/pull.h"
#include "sync/reconcile.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

// One field's state with its value, at `snap` (null: the latest).
absl::StatusOr<std::optional<v1::FieldState>> GetFieldState(storage::Store* store,
                                                            const storage::Snapshot* snap,
                                                            const Uuid& case_id,
                                                            const Uuid& record_id,
                                                            std::string_view field) {
  const std::string_view only[] = {field};
  ASSIGN_OR_RETURN(std::optional<RecordState> record,
                   ReadRecord(store, snap, case_id, record_id, only));
  const v1::FieldState* state = record.has_value() ? record->Find(field) : nullptr;
  if (state == nullptr) return std::optional<v1::FieldState>();
  return std::optional<v1::FieldState>(*state);
}

}  // namespace

absl::StatusOr<v1::FieldValue> ChangeFeed::Plaintext(const v1::StoredValue& value,
                                                     std::string_view case_id,
                                                     std::string_view record_id,
                                                     std::string_view field) const {
  v1::FieldValue out;
  RETURN_IF_ERROR(PlaintextInto(value, case_id, record_id, field, &out));
  return out;
}

absl::Status ChangeFeed::PlaintextInto(const v1::StoredValue& value, std::string_view case_id,
                                       std::string_view record_id, std::string_view field,
                                       v1::FieldValue* out) const {
  if (value.cleared()) return absl::OkStatus();
  bool parsed;
  if (value.encrypted()) {
    ASSIGN_OR_RETURN(std::string plain,
                     sealer_->Open(FieldAddress{case_id, record_id, field}, value.data()));
    parsed = out->ParseFromString(plain);
  } else {
    parsed = out->ParseFromString(value.data());
  }
  if (!parsed) {
    return absl::DataLossError(
        absl::StrFormat("value of field %s in record %s does not parse", field, record_id));
  }
  return absl::OkStatus();
}

absl::Status ChangeFeed::ToPulled(const v1::CaseLogEntry& entry, uint64_t position,
                                  const absl::flat_hash_set<v1::Sensitivity>& readable,
                                  v1::PulledChange* out) const {
  v1::PulledChange& change = *out;
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
  change.mutable_fields()->Reserve(entry.fields_size());
  for (const v1::EntryField& f : entry.fields()) {
    const v1::FieldDef* def = schema_->FindField(entry.record_type(), f.field());
    if (def == nullptr || !readable.contains(def->sensitivity())) {
      change.set_withheld_fields(change.withheld_fields() + 1);
      continue;
    }
    v1::PulledField* pf = change.add_fields();
    absl::Status opened = PlaintextInto(f.value(), entry.case_id(), entry.record_id(), f.field(),
                                        pf->mutable_value());
    if (absl::IsNotFound(opened)) {  // case key erased
      change.mutable_fields()->RemoveLast();
      change.set_withheld_fields(change.withheld_fields() + 1);
      continue;
    }
    RETURN_IF_ERROR(opened);
    pf->set_field(f.field());
    pf->set_outcome(f.outcome());
    pf->set_server_set(f.server_set());
    pf->set_version(f.version() != 0 ? f.version() : position);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ChangeFeed::LastPosition(const storage::Snapshot* snap,
                                                  uint64_t hint) const {
  // Positions are dense from 1, so the last one is found by seeking:
  // doubling steps from the hint, then halving (about 2 log2(distance)
  // seeks).
  std::unique_ptr<storage::Iterator> it = store_->NewIterator(Cf::kCaseLog, "", "", snap);
  auto exists = [&](uint64_t position) -> absl::StatusOr<bool> {
    it->Seek(storage::EncodeCaseLogKey(position));
    if (!it->Valid()) {
      RETURN_IF_ERROR(it->status());
      return false;
    }
    return true;
  };
  uint64_t low = hint;  // exists (or 0)
  if (low > 0) {
    ASSIGN_OR_RETURN(bool has, exists(low));
    if (!has) low = 0;
  }
  uint64_t step = 1;
  uint64_t high = 0;  // first position known not to exist (0: none yet)
  while (high == 0) {
    const uint64_t probe = low + step;
    ASSIGN_OR_RETURN(bool has, exists(probe));
    if (has) {
      low = probe;
      if (step < (uint64_t{1} << 62)) step *= 2;
    } else {
      high = probe;
    }
  }
  while (high - low > 1) {
    const uint64_t mid = low + (high - low) / 2;
    ASSIGN_OR_RETURN(bool has, exists(mid));
    (has ? low : high) = mid;
  }
  return low;
}

absl::StatusOr<v1::PulledChanges> ChangeFeed::Read(const ReadScope& scope,
                                                   const FeedOptions& options) const {
  ScopedLogReader reader(this, scope, ScopedLogReader::Options{.cursor = options.cursor});
  v1::PulledChanges out;
  RETURN_IF_ERROR(reader.Next(options.max_changes, options.max_bytes, &out));
  return out;
}

absl::StatusOr<CaseReach> ChangeFeed::Reach(const ReadScope& scope, const Uuid& case_id) const {
  return ReachOfCase(store_, *schema_, scope, case_id, nullptr);
}

absl::StatusOr<std::string> ChangeFeed::CaseOfConflict(const v1::ConflictId& id) const {
  v1::CaseLogEntry entry;
  absl::StatusOr<bool> found = ReadLogEntry(store_, id.position(), &entry);
  if ((found.ok() && !*found) || absl::IsDataLoss(found.status())) {
    return SyncError(absl::StatusCode::kNotFound, v1::SYNC_ERROR_REASON_NOT_FOUND,
                     "no such conflict");
  }
  if (!found.ok()) return found.status();
  return entry.case_id();
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
  std::optional<v1::FieldState> current;
  std::vector<std::string_view> only;
  if (!record.field().empty()) only.push_back(record.field());
  ASSIGN_OR_RETURN(std::optional<RecordState> state, ReadRecord(store_, snap, case_id, rid, only));
  if (!state.has_value()) return absl::DataLossError("a conflict's record has no state");
  const v1::RecordHeader& header = state->header;
  if (!record.field().empty()) {
    if (const v1::FieldState* s = state->Find(record.field()); s != nullptr) current = *s;
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
