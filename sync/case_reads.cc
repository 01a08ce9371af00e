// ChangeFeed's reads of one case at a time, for supervisors: case lists
// from the region and officer indexes, a case's records and fields from
// its state, its history from the per-case entry index, and single
// conflicts. Each call reads one storage snapshot.
#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "storage/key_codec.h"
#include "sync/case_entries.h"
#include "sync/change_feed.h"
#include "sync/log_codec.h"
#include "sync/reconcile.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

size_t PageLimit(uint32_t page_size) {
  return page_size == 0 ? 100 : std::min<uint32_t>(page_size, 1000);
}

// The key after which a listing resumes, from its page token; "" for none.
absl::StatusOr<std::string> ResumeAfter(std::string_view page_token, std::string_view prefix) {
  if (page_token.empty()) return std::string();
  std::string after;
  if (!absl::WebSafeBase64Unescape(absl::string_view(page_token.data(), page_token.size()),
                                   &after) ||
      after.compare(0, prefix.size(), prefix) != 0) {
    return absl::InvalidArgumentError("page_token is not from this listing");
  }
  return after;
}

absl::StatusOr<Uuid> CaseUuid(std::string_view case_id) {
  absl::StatusOr<Uuid> id = ParseUuid(case_id);
  if (!id.ok()) return absl::InvalidArgumentError("case_id is not a UUID");
  return *id;
}

absl::Status NoSuchCase(const Uuid& case_id) {
  return absl::NotFoundError(absl::StrFormat("case %s does not exist", FormatUuid(case_id)));
}

// A case's state as stored: its record headers and field states, by record
// id, read with one iterator over the case's prefix.
struct CaseState {
  struct Record {
    v1::RecordHeader header;
    std::vector<std::pair<std::string, v1::FieldState>> fields;  // key order
  };
  std::map<std::array<uint8_t, 16>, Record> records;
};

absl::StatusOr<CaseState> ReadCaseState(storage::Store* store, const Uuid& case_id,
                                        const storage::Snapshot* snap) {
  const std::string prefix = storage::CaseRecordsPrefix(case_id);
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kRecords, prefix, storage::PrefixUpperBound(prefix), snap);
  CaseState out;
  const EntryReader read = [&](uint64_t at, v1::CaseLogEntry* e) {
    return ReadLogEntry(store, at, e, snap);
  };
  for (; it->Valid(); it->Next()) {
    ASSIGN_OR_RETURN(storage::RecordsKey key, storage::DecodeRecordsKey(it->key()));
    if (!key.is_state) continue;
    RecordState state;
    RETURN_IF_ERROR(DecodeRecordState(it->value(), store->names(), &state));
    RETURN_IF_ERROR(FillValues(&state, read));
    CaseState::Record& record = out.records[key.record_id];
    record.header = std::move(state.header);
    record.fields = std::move(state.fields);
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

const v1::FieldState* FindState(const CaseState::Record& record, std::string_view field) {
  for (const auto& [name, state] : record.fields) {
    if (name == field) return &state;
  }
  return nullptr;
}

std::string TextOf(const CaseState::Record& record, std::string_view field) {
  if (field.empty()) return "";
  const v1::FieldState* state = FindState(record, field);
  return state == nullptr ? "" : DimensionString(state->value());
}

// The summary of a case from its state (and its latest log entry and
// conflicts, read at `snap`); kNotFound when it has no registration.
absl::StatusOr<v1::CaseSummary> SummaryOf(storage::Store* store, const Schema& schema,
                                          const CaseState& state, const Uuid& case_id,
                                          const storage::Snapshot* snap) {
  auto reg = state.records.find(case_id);
  if (reg == state.records.end() || reg->second.header.record_type().empty()) {
    return NoSuchCase(case_id);
  }
  v1::CaseSummary out;
  out.set_case_id(FormatUuid(case_id));
  out.set_region(TextOf(reg->second, schema.region_field()));
  out.set_district(TextOf(reg->second, schema.district_field()));
  out.set_officer_id(TextOf(reg->second, schema.officer_field()));
  out.set_status(TextOf(reg->second, schema.status_field()));
  out.set_closure_reason(TextOf(reg->second, schema.closure_reason_field()));
  out.set_created_position(reg->second.header.created_position());
  uint64_t last = 0;
  for (const auto& [id, record] : state.records) {
    last = std::max(last, record.header.record_version());
  }
  out.set_last_position(last);
  if (last != 0) {
    v1::CaseLogEntry entry;
    ASSIGN_OR_RETURN(bool found, ReadLogEntry(store, last, &entry, snap));
    if (!found) return absl::DataLossError(absl::StrFormat("case log entry %d is missing", last));
    *out.mutable_last_hlc() = entry.hlc();
  }
  const std::string prefix = storage::CaseConflictsPrefix(case_id);
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kConflicts, prefix, storage::PrefixUpperBound(prefix), snap);
  uint32_t open = 0;
  for (; it->Valid(); it->Next()) {
    v1::ConflictRecord record;
    const std::string_view raw = it->value();
    if (!record.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
      return absl::DataLossError("conflict does not parse");
    }
    open += record.status() == v1::CONFLICT_STATUS_OPEN ? 1 : 0;
  }
  RETURN_IF_ERROR(it->status());
  out.set_open_conflicts(open);
  return out;
}

}  // namespace

absl::StatusOr<v1::CaseSummary> ChangeFeed::Summarize(const Uuid& case_id,
                                                      const storage::Snapshot* snap) const {
  ASSIGN_OR_RETURN(CaseState state, ReadCaseState(store_, case_id, snap));
  return SummaryOf(store_, *schema_, state, case_id, snap);
}

absl::StatusOr<v1::CaseSummary> ChangeFeed::SummarizeCase(std::string_view case_id) const {
  ASSIGN_OR_RETURN(Uuid id, CaseUuid(case_id));
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  return Summarize(id, snap.get());
}

absl::StatusOr<v1::ListCasesResponse> ChangeFeed::ListCases(const CaseFilter& filter,
                                                            uint32_t page_size,
                                                            std::string_view page_token) const {
  const size_t limit = PageLimit(page_size);
  // One index prefix per region (or the officer's under each region),
  // scanned in key order, which is region order.
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  absl::flat_hash_set<std::string> regions;
  if (filter.officer_id.empty()) regions.insert(filter.regions.begin(), filter.regions.end());
  ASSIGN_OR_RETURN(std::vector<std::string> prefixes,
                   CaseIndexPrefixes(store_, snap.get(), filter.officer_id, regions));
  std::string after;
  if (!page_token.empty()) {
    bool matched = false;
    for (const std::string& prefix : prefixes) {
      absl::StatusOr<std::string> a = ResumeAfter(page_token, prefix);
      if (a.ok()) {
        after = *std::move(a);
        matched = true;
        break;
      }
    }
    if (!matched) return absl::InvalidArgumentError("page_token is not from this listing");
  }
  v1::ListCasesResponse out;
  std::string last_key;
  bool more = false;
  for (const std::string& prefix : prefixes) {
    if (!after.empty() && after >= storage::PrefixUpperBound(prefix)) continue;
    RETURN_IF_ERROR(ForEachListedCase(
        store_, snap.get(), prefix, after,
        [&](const Uuid& case_id, std::string_view position) -> absl::StatusOr<bool> {
          if (static_cast<size_t>(out.cases_size()) >= limit) {
            more = true;
            return false;
          }
          absl::StatusOr<v1::CaseSummary> summary = Summarize(case_id, snap.get());
          if (absl::IsNotFound(summary.status())) return true;  // listed without state
          if (!summary.ok()) return summary.status();
          last_key = std::string(position);
          if (std::find(filter.regions.begin(), filter.regions.end(), summary->region()) ==
                  filter.regions.end() ||
              (!filter.status.empty() && summary->status() != filter.status) ||
              (filter.has_conflicts && summary->open_conflicts() == 0)) {
            return true;
          }
          *out.add_cases() = *std::move(summary);
          return true;
        }));
    if (more) break;
  }
  if (more && !last_key.empty()) out.set_next_page_token(absl::WebSafeBase64Escape(last_key));
  return out;
}

absl::StatusOr<v1::GetCaseResponse> ChangeFeed::GetCase(
    std::string_view case_id, const absl::flat_hash_set<v1::Sensitivity>& readable) const {
  ASSIGN_OR_RETURN(Uuid id, CaseUuid(case_id));
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  v1::GetCaseResponse out;
  ASSIGN_OR_RETURN(CaseState state, ReadCaseState(store_, id, snap.get()));
  ASSIGN_OR_RETURN(*out.mutable_summary(), SummaryOf(store_, *schema_, state, id, snap.get()));
  const std::string case_text = FormatUuid(id);
  std::vector<const CaseState::Record*> order;
  std::vector<std::string> ids;
  for (const auto& [record_id, record] : state.records) {
    if (record.header.record_type().empty()) continue;  // fields without a header: none
    order.push_back(&record);
    ids.push_back(FormatUuid(record_id));
  }
  // The registration first, then by type and id.
  std::vector<size_t> index(order.size());
  for (size_t i = 0; i < index.size(); ++i) index[i] = i;
  std::sort(index.begin(), index.end(), [&](size_t a, size_t b) {
    const bool ra = ids[a] == case_text, rb = ids[b] == case_text;
    if (ra != rb) return ra;
    if (order[a]->header.record_type() != order[b]->header.record_type()) {
      return order[a]->header.record_type() < order[b]->header.record_type();
    }
    return ids[a] < ids[b];
  });
  for (size_t i : index) {
    const CaseState::Record& record = *order[i];
    v1::CaseRecordView* view = out.add_records();
    view->set_record_id(ids[i]);
    view->set_record_type(record.header.record_type());
    view->set_deleted(record.header.deleted());
    view->set_created_position(record.header.created_position());
    view->set_record_version(record.header.record_version());
    view->set_conflict_position(record.header.conflict_position());
    const v1::RecordType* type = schema_->FindRecordType(record.header.record_type());
    // Schema order; a stored field the schema no longer has comes last.
    std::vector<const std::pair<std::string, v1::FieldState>*> fields;
    if (type != nullptr) {
      for (const v1::FieldDef& def : type->fields()) {
        for (const auto& f : record.fields) {
          if (f.first == def.name()) fields.push_back(&f);
        }
      }
    }
    for (const auto& f : record.fields) {
      if (type == nullptr || schema_->FindField(type->name(), f.first) == nullptr) {
        fields.push_back(&f);
      }
    }
    for (const auto* f : fields) {
      const auto& [name, fs] = *f;
      v1::CaseFieldView* field = view->add_fields();
      field->set_field(name);
      field->set_version(fs.version());
      field->set_writer(fs.writer());
      *field->mutable_hlc() = fs.hlc();
      field->set_conflict_position(fs.conflict_position());
      const v1::FieldDef* def = type == nullptr ? nullptr : schema_->FindField(type->name(), name);
      if (def == nullptr || !readable.contains(def->sensitivity())) {
        field->set_value_withheld(!fs.value().cleared());
        continue;
      }
      if (fs.value().cleared()) continue;
      absl::StatusOr<v1::FieldValue> plain = Plaintext(fs.value(), case_text, ids[i], name);
      if (absl::IsNotFound(plain.status())) {
        // The case's key was erased: its protected values are gone.
        out.mutable_summary()->set_erased(true);
        field->set_value_withheld(true);
        continue;
      }
      if (!plain.ok()) return plain.status();
      *field->mutable_value() = *std::move(plain);
    }
  }
  return out;
}

absl::StatusOr<v1::GetCaseHistoryResponse> ChangeFeed::CaseHistory(
    std::string_view case_id, uint32_t page_size, std::string_view page_token) const {
  ASSIGN_OR_RETURN(Uuid id, CaseUuid(case_id));
  const size_t limit = PageLimit(page_size);
  // A page token is the case-entry key of the page's last entry.
  ASSIGN_OR_RETURN(std::string after_key, ResumeAfter(page_token, storage::CaseEntriesPrefix(id)));
  uint64_t after = 0;
  if (!after_key.empty()) {
    absl::StatusOr<storage::CaseEntryKey> key = storage::DecodeCaseEntryKey(after_key);
    if (!key.ok()) return absl::InvalidArgumentError("page_token is not from this listing");
    after = key->position;
  }
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  if (after_key.empty()) {
    // A case exists when its registration has a header.
    absl::StatusOr<std::string> header =
        store_->Get(Cf::kRecords, storage::EncodeRecordStateKey(id, id), snap.get());
    if (absl::IsNotFound(header.status())) return NoSuchCase(id);
    if (!header.ok()) return header.status();
  }
  CaseEntryReader reader(store_, snap.get());
  std::vector<uint64_t> positions;
  bool more = false;
  RETURN_IF_ERROR(reader.Read(id, after, 0, limit, &positions, &more));
  v1::GetCaseHistoryResponse out;
  if (more && !positions.empty()) {
    out.set_next_page_token(
        absl::WebSafeBase64Escape(storage::EncodeCaseEntryKey(id, positions.back())));
  }
  for (const uint64_t position : positions) {
    v1::CaseLogEntry entry;
    ASSIGN_OR_RETURN(bool found, ReadLogEntry(store_, position, &entry, snap.get()));
    if (!found) {
      return absl::DataLossError(absl::StrFormat("case log entry %d is missing", position));
    }
    v1::CaseHistoryEntry* h = out.add_entries();
    h->set_position(entry.position());
    h->set_change_id(entry.change_id());
    h->set_record_id(entry.record_id());
    h->set_record_type(entry.record_type());
    h->set_kind(entry.kind());
    *h->mutable_hlc() = entry.hlc();
    h->set_clock_clamped(entry.clock_clamped());
    h->set_writer(entry.writer());
    h->set_outcome(entry.outcome());
    if (entry.has_resolves()) *h->mutable_resolves() = entry.resolves();
    h->set_revived(entry.revived());
    for (const v1::EntryField& f : entry.fields()) {
      v1::CaseHistoryEntry::Field* hf = h->add_fields();
      hf->set_field(f.field());
      hf->set_outcome(f.outcome());
      hf->set_server_set(f.server_set());
      hf->set_cleared(f.value().cleared());
    }
  }
  return out;
}

absl::StatusOr<v1::Conflict> ChangeFeed::GetConflict(
    const v1::ConflictId& id, const absl::flat_hash_set<v1::Sensitivity>& readable) const {
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  // The conflict's case is the case of the entry that made it.
  auto none = [&] {
    return absl::NotFoundError(
        absl::StrFormat("no conflict %d/%s", id.position(), absl::CHexEscape(id.field())));
  };
  v1::CaseLogEntry entry;
  ASSIGN_OR_RETURN(bool found, ReadLogEntry(store_, id.position(), &entry, snap.get()));
  if (!found) return none();
  ASSIGN_OR_RETURN(Uuid case_id, ParseUuid(entry.case_id()));
  absl::StatusOr<std::string> stored = store_->Get(
      Cf::kConflicts, storage::EncodeConflictKey(case_id, id.position(), id.field()), snap.get());
  if (absl::IsNotFound(stored.status())) return none();
  if (!stored.ok()) return stored.status();
  v1::ConflictRecord record;
  if (!record.ParseFromString(*stored)) return absl::DataLossError("conflict does not parse");
  ASSIGN_OR_RETURN(v1::CaseSummary summary, Summarize(case_id, snap.get()));
  v1::Conflict out;
  RETURN_IF_ERROR(DescribeConflict(record, case_id, summary.region(), readable, snap.get(), &out));
  return out;
}

absl::StatusOr<v1::ListConflictsResponse> ChangeFeed::ListCaseConflicts(
    std::string_view case_id, const absl::flat_hash_set<v1::Sensitivity>& readable) const {
  ASSIGN_OR_RETURN(Uuid id, CaseUuid(case_id));
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();
  ASSIGN_OR_RETURN(v1::CaseSummary summary, Summarize(id, snap.get()));
  const std::string prefix = storage::CaseConflictsPrefix(id);
  std::unique_ptr<storage::Iterator> it =
      store_->NewIterator(Cf::kConflicts, prefix, storage::PrefixUpperBound(prefix), snap.get());
  v1::ListConflictsResponse out;
  for (; it->Valid(); it->Next()) {
    v1::ConflictRecord record;
    const std::string_view raw = it->value();
    if (!record.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
      return absl::DataLossError("conflict does not parse");
    }
    if (record.status() != v1::CONFLICT_STATUS_OPEN) continue;
    RETURN_IF_ERROR(
        DescribeConflict(record, id, summary.region(), readable, snap.get(), out.add_conflicts()));
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

}  // namespace fieldsync::sync
