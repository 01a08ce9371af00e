#include "aggregates/counters.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "aggregates/periods.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/counter.h"
#include "sync/reconcile.h"

namespace fieldsync::aggregates {
namespace {

using storage::Cf;
using Record = v1::AggregateCaseState::Record;

const Record* FindRecord(const v1::AggregateCaseState& state, std::string_view id) {
  for (const Record& r : state.records()) {
    if (r.record_id() == id) return &r;
  }
  return nullptr;
}

Record* FindMutableRecord(v1::AggregateCaseState* state, std::string_view id) {
  for (Record& r : *state->mutable_records()) {
    if (r.record_id() == id) return &r;
  }
  return nullptr;
}

Record* FindOrAddRecord(v1::AggregateCaseState* state, const std::string& id) {
  if (Record* r = FindMutableRecord(state, id)) return r;
  Record* r = state->add_records();
  r->set_record_id(id);
  return r;
}

const std::string& ValueOf(const Dimension& d, const Record& record, const Record& registration) {
  static const std::string* const kUnset = new std::string();
  const auto& values = d.from_case ? registration.values() : record.values();
  auto it = values.find(d.field);
  return it == values.end() ? *kUnset : it->second;
}

std::string CellKey(const Metric& m, uint8_t granularity, uint32_t period,
                    std::vector<std::string> cell) {
  storage::CounterKey key;
  key.metric = m.def.name();
  key.granularity = granularity;
  key.period = period;
  key.values = std::move(cell);
  return storage::EncodeCounterKey(key);
}

void AddFlow(const Metric& m, absl::Time when, const std::vector<std::string>& cell,
             CounterDeltas* deltas) {
  (*deltas)[CellKey(m, kWeekGranularity, WeekNumber(when), cell)] += 1;
  (*deltas)[CellKey(m, kMonthGranularity, MonthNumber(when), cell)] += 1;
}

}  // namespace

bool Evaluate(const Metric& metric, const v1::AggregateCaseState& state, const std::string& case_id,
              const Record& record, std::vector<std::string>* cell) {
  if (record.record_type() != metric.def.record_type() || !record.exists()) return false;
  const Record* registration = FindRecord(state, case_id);
  if (registration == nullptr || !registration->exists()) return false;
  for (const Condition& c : metric.where) {
    if (!c.values.contains(ValueOf(c.dimension, record, *registration))) return false;
  }
  cell->clear();
  for (const Dimension& d : metric.dimensions) cell->push_back(ValueOf(d, record, *registration));
  return true;
}

absl::StatusOr<v1::AggregateCaseState*> CounterObserver::LoadCase(const std::string& case_id) {
  auto it = pending_.find(case_id);
  if (it != pending_.end()) return &it->second.state;
  // The committed state: from the cache, else from the store.
  const std::string* committed = nullptr;
  absl::StatusOr<std::string> stored;
  if (auto cached = committed_.find(case_id); cached != committed_.end()) {
    committed = &cached->second;
  } else {
    ASSIGN_OR_RETURN(Uuid id, ParseUuid(case_id));
    stored = store_->Get(Cf::kAggregates, storage::EncodeAggregateCaseKey(id));
    if (stored.ok()) {
      committed = &*stored;
    } else if (!absl::IsNotFound(stored.status())) {
      return stored.status();
    }
  }
  v1::AggregateCaseState& state = pending_[case_id].state;
  if (committed != nullptr && !state.ParseFromString(*committed)) {
    pending_.erase(case_id);
    return absl::DataLossError("aggregates: a stored case state does not parse");
  }
  return &state;
}

absl::Status CounterObserver::OnCommit(const sync::CommittedUnit& unit,
                                       storage::WriteBatch* /*batch*/) {
  if (metrics_->metrics().empty() || unit.records.empty()) return absl::OkStatus();
  // The unit's record changes, case by case in first-touch order.
  std::vector<std::string> cases;
  for (const sync::RecordDimensionChange& rec : unit.records) {
    if (std::find(cases.begin(), cases.end(), rec.case_id) == cases.end()) {
      cases.push_back(rec.case_id);
    }
  }
  std::vector<std::string> cell;
  // Summed over the group's units (BeforeCommit writes them), so that a
  // counter moved by several cases gets one operand.
  CounterDeltas& deltas = deltas_;
  for (const std::string& case_id : cases) {
    ASSIGN_OR_RETURN(v1::AggregateCaseState * state, LoadCase(case_id));
    // Which records change, and whether the registration does.
    bool case_changed = false, state_changed = false;
    absl::Time case_time = unit.committed_at;
    std::vector<std::pair<const sync::RecordDimensionChange*, absl::Time>> changes;
    for (const sync::RecordDimensionChange& rec : unit.records) {
      if (rec.case_id != case_id || !metrics_->ReadsRecordType(rec.record_type)) continue;
      const Record* r = FindRecord(*state, rec.record_id);
      bool same = r != nullptr && r->record_type() == rec.record_type &&
                  r->exists() == rec.dimensions.exists;
      for (auto v = rec.dimensions.values.begin(); same && v != rec.dimensions.values.end(); ++v) {
        if (!metrics_->ReadsField(rec.record_type, v->first)) continue;
        auto f = r->values().find(v->first);
        same = v->second.has_value() ? f != r->values().end() && f->second == *v->second
                                     : f == r->values().end();
      }
      if (same) continue;
      state_changed = true;
      changes.emplace_back(&rec, rec.changed_at);
      if (rec.record_id == case_id) {
        case_changed = true;
        case_time = rec.changed_at;
      }
    }
    if (!state_changed) continue;  // the same values count the same
    // The records to evaluate: the changed ones and, when the registration
    // changes, every record of the case (its values are theirs).
    std::vector<std::pair<std::string, absl::Time>> evaluate;
    for (const auto& [rec, when] : changes) evaluate.emplace_back(rec->record_id, when);
    if (case_changed) {
      for (const Record& r : state->records()) {
        bool listed = std::any_of(evaluate.begin(), evaluate.end(),
                                  [&](const auto& p) { return p.first == r.record_id(); });
        if (!listed) evaluate.emplace_back(r.record_id(), case_time);
      }
    }
    // Where each (metric, record) counted before the unit.
    const auto& metrics = metrics_->metrics();
    std::vector<std::optional<std::vector<std::string>>> before(metrics.size() * evaluate.size());
    for (size_t m = 0; m < metrics.size(); ++m) {
      for (size_t e = 0; e < evaluate.size(); ++e) {
        const Record* r = FindRecord(*state, evaluate[e].first);
        if (r != nullptr && Evaluate(metrics[m], *state, case_id, *r, &cell)) {
          before[m * evaluate.size() + e] = cell;
        }
      }
    }
    for (const auto& [rec, when] : changes) {
      Record* r = FindOrAddRecord(state, rec->record_id);
      r->set_record_type(rec->record_type);
      r->set_exists(rec->dimensions.exists);
      for (const auto& [field, value] : rec->dimensions.values) {
        if (!metrics_->ReadsField(rec->record_type, field)) continue;
        if (value.has_value()) {
          (*r->mutable_values())[field] = *value;
        } else {
          r->mutable_values()->erase(field);
        }
      }
    }
    for (size_t m = 0; m < metrics.size(); ++m) {
      for (size_t e = 0; e < evaluate.size(); ++e) {
        const std::optional<std::vector<std::string>>& b = before[m * evaluate.size() + e];
        const Record* r = FindRecord(*state, evaluate[e].first);
        bool ma = r != nullptr && Evaluate(metrics[m], *state, case_id, *r, &cell);
        if (metrics[m].is_flow()) {
          if (ma && !b.has_value()) AddFlow(metrics[m], evaluate[e].second, cell, &deltas);
          continue;
        }
        if (ma && b.has_value() && *b == cell) continue;
        if (b.has_value()) deltas[CellKey(metrics[m], kStockGranularity, 0, *b)] -= 1;
        if (ma) deltas[CellKey(metrics[m], kStockGranularity, 0, cell)] += 1;
      }
    }
    pending_[case_id].changed = true;
  }
  return absl::OkStatus();
}

absl::Status CounterObserver::BeforeCommit(storage::WriteBatch* batch) {
  for (auto& [case_id, pending] : pending_) {
    if (!pending.changed) continue;
    ASSIGN_OR_RETURN(Uuid id, ParseUuid(case_id));
    pending.state.SerializeToString(&pending.serialized);
    batch->Put(Cf::kAggregates, storage::EncodeAggregateCaseKey(id), pending.serialized);
  }
  for (const auto& [key, delta] : deltas_) {
    if (delta != 0) batch->Merge(Cf::kAggregates, key, storage::EncodeInt64Counter(delta));
  }
  return absl::OkStatus();
}

void CounterObserver::AfterCommit(const storage::WriteBatch*, const absl::Status& commit_status) {
  if (commit_status.ok()) {
    if (committed_.size() + pending_.size() > kCachedCases) committed_.clear();
    for (auto& [case_id, pending] : pending_) {
      if (pending.changed) committed_.insert_or_assign(case_id, std::move(pending.serialized));
    }
  }
  pending_.clear();
  deltas_.clear();
}

namespace {

// One case as read back from the records column family by a rebuild, with
// the HLC wall time of each DIMENSION field and each record's creation
// position.
struct RebuiltCase {
  std::string case_id;
  v1::AggregateCaseState state;
  // record id -> field -> HLC wall micros of its latest write.
  std::map<std::string, std::map<std::string, int64_t>> field_micros;
  std::map<std::string, uint64_t> created_position;
};

absl::StatusOr<absl::Time> CreationTime(storage::Store* store, uint64_t position) {
  absl::StatusOr<std::string> v = store->Get(Cf::kCaseLog, storage::EncodeCaseLogKey(position));
  if (absl::IsNotFound(v.status())) return absl::UnixEpoch();
  RETURN_IF_ERROR(v.status());
  v1::CaseLogEntry entry;
  if (!entry.ParseFromString(*v))
    return absl::DataLossError("aggregates: a log entry does not parse");
  return absl::FromUnixMicros(entry.hlc().wall_micros());
}

absl::Status CountCase(storage::Store* store, const Metrics& metrics, const RebuiltCase& c,
                       CounterDeltas* totals) {
  std::vector<std::string> cell;
  for (const Metric& m : metrics.metrics()) {
    for (const Record& r : c.state.records()) {
      if (!Evaluate(m, c.state, c.case_id, r, &cell)) continue;
      if (!m.is_flow()) {
        (*totals)[CellKey(m, kStockGranularity, 0, cell)] += 1;
        continue;
      }
      int64_t latest = 0;
      for (const Condition& cond : m.where) {
        const std::string& rid = cond.dimension.from_case ? c.case_id : r.record_id();
        auto rec = c.field_micros.find(rid);
        if (rec == c.field_micros.end()) continue;
        auto f = rec->second.find(cond.dimension.field);
        if (f != rec->second.end()) latest = std::max(latest, f->second);
      }
      absl::Time when = absl::FromUnixMicros(latest);
      if (latest == 0) {
        auto p = c.created_position.find(r.record_id());
        ASSIGN_OR_RETURN(when, CreationTime(store, p == c.created_position.end() ? 0 : p->second));
      }
      AddFlow(m, when, cell, totals);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PrepareOutcome> PrepareCounters(storage::Store* store, const Metrics& metrics) {
  PrepareOutcome outcome;
  const std::string fp_key = storage::EncodeMetadataKey(kCountersFingerprintName);
  absl::StatusOr<std::string> stored = store->Get(Cf::kMetadata, fp_key);
  if (stored.ok() && *stored == metrics.fingerprint()) return outcome;
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  outcome.rebuilt = true;
  {
    // The old counters and case states go first; the fingerprint is
    // written last, so an interrupted rebuild runs again at the next start.
    storage::WriteBatch wb;
    wb.Delete(Cf::kMetadata, fp_key);
    wb.DeleteRange(Cf::kAggregates, std::string(1, static_cast<char>(storage::kCounterTag)),
                   std::string(1, static_cast<char>(storage::kAggregateCaseTag + 1)));
    RETURN_IF_ERROR(store->Commit(&wb));
  }
  CounterDeltas totals;
  storage::WriteBatch wb;
  std::optional<RebuiltCase> current;
  auto flush_case = [&]() -> absl::Status {
    if (!current.has_value()) return absl::OkStatus();
    RETURN_IF_ERROR(CountCase(store, metrics, *current, &totals));
    ASSIGN_OR_RETURN(Uuid id, ParseUuid(current->case_id));
    wb.Put(Cf::kAggregates, storage::EncodeAggregateCaseKey(id),
           current->state.SerializeAsString());
    ++outcome.cases;
    current.reset();
    if (wb.ByteSize() > (8 << 20)) {
      RETURN_IF_ERROR(store->Commit(&wb));
      wb.Clear();
    }
    return absl::OkStatus();
  };
  {
    std::unique_ptr<storage::Iterator> it = store->NewIterator(Cf::kRecords, "", "");
    for (; it->Valid(); it->Next()) {
      ASSIGN_OR_RETURN(storage::RecordsKey key, storage::DecodeRecordsKey(it->key()));
      std::string case_id = FormatUuid(key.case_id);
      std::string record_id = FormatUuid(key.record_id);
      if (!current.has_value() || current->case_id != case_id) {
        RETURN_IF_ERROR(flush_case());
        current.emplace();
        current->case_id = case_id;
      }
      if (key.is_header) {
        v1::RecordHeader header;
        if (!header.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
          return absl::DataLossError("aggregates: a record header does not parse");
        }
        if (!metrics.ReadsRecordType(header.record_type())) continue;
        Record* r = FindOrAddRecord(&current->state, record_id);
        r->set_record_type(header.record_type());
        r->set_exists(!header.deleted());
        current->created_position[record_id] = header.created_position();
        ++outcome.records;
        continue;
      }
      // The header came first; a record of a type no metric reads has none
      // in the state.
      Record* r = FindMutableRecord(&current->state, record_id);
      if (r == nullptr || !metrics.ReadsField(r->record_type(), key.field)) continue;
      v1::FieldState state;
      if (!state.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError("aggregates: a field state does not parse");
      }
      if (state.value().cleared() || state.value().encrypted()) continue;
      (*r->mutable_values())[key.field] = sync::DimensionString(state.value());
      current->field_micros[record_id][key.field] = state.hlc().wall_micros();
    }
    RETURN_IF_ERROR(it->status());
  }
  RETURN_IF_ERROR(flush_case());
  for (const auto& [key, count] : totals) {
    if (count != 0) wb.Put(Cf::kAggregates, key, storage::EncodeInt64Counter(count));
  }
  wb.Put(Cf::kMetadata, fp_key, metrics.fingerprint());
  RETURN_IF_ERROR(store->Commit(&wb));
  log::Info("aggregates.counters_rebuilt", {{"cases", outcome.cases},
                                            {"records", outcome.records},
                                            {"counters", static_cast<uint64_t>(totals.size())}});
  return outcome;
}

}  // namespace fieldsync::aggregates
