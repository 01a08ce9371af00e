#include "aggregates/counters.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
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
#include "sync/rebuild.h"
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
  if (metrics_->metrics().empty()) return absl::OkStatus();
  // One step per logged change, in log order: the counters move as if each
  // change had been committed alone, whatever the batching.
  for (const sync::RecordDimensionChange& rec : unit.records) {
    RETURN_IF_ERROR(CountChange(rec));
  }
  return absl::OkStatus();
}

absl::Status CounterObserver::CountChange(const sync::RecordDimensionChange& rec) {
  if (!metrics_->ReadsRecordType(rec.record_type)) return absl::OkStatus();
  const std::string& case_id = rec.case_id;
  ASSIGN_OR_RETURN(v1::AggregateCaseState * state, LoadCase(case_id));
  const Record* r = FindRecord(*state, rec.record_id);
  bool same =
      r != nullptr && r->record_type() == rec.record_type && r->exists() == rec.dimensions.exists;
  for (auto v = rec.dimensions.values.begin(); same && v != rec.dimensions.values.end(); ++v) {
    if (!metrics_->ReadsField(rec.record_type, v->first)) continue;
    auto f = r->values().find(v->first);
    same = v->second.has_value() ? f != r->values().end() && f->second == *v->second
                                 : f == r->values().end();
  }
  if (same) return absl::OkStatus();  // the same values count the same
  // The records to evaluate: the changed one and, when it is the
  // registration, every record of the case (its values are theirs).
  std::vector<std::string> evaluate{rec.record_id};
  if (rec.record_id == case_id) {
    for (const Record& other : state->records()) {
      if (other.record_id() != rec.record_id) evaluate.push_back(other.record_id());
    }
  }
  // Where each (metric, record) counted before the change.
  std::vector<std::string> cell;
  const auto& metrics = metrics_->metrics();
  std::vector<std::optional<std::vector<std::string>>> before(metrics.size() * evaluate.size());
  for (size_t m = 0; m < metrics.size(); ++m) {
    for (size_t e = 0; e < evaluate.size(); ++e) {
      const Record* er = FindRecord(*state, evaluate[e]);
      if (er != nullptr && Evaluate(metrics[m], *state, case_id, *er, &cell)) {
        before[m * evaluate.size() + e] = cell;
      }
    }
  }
  Record* changed = FindOrAddRecord(state, rec.record_id);
  changed->set_record_type(rec.record_type);
  changed->set_exists(rec.dimensions.exists);
  for (const auto& [field, value] : rec.dimensions.values) {
    if (!metrics_->ReadsField(rec.record_type, field)) continue;
    if (value.has_value()) {
      (*changed->mutable_values())[field] = *value;
    } else {
      changed->mutable_values()->erase(field);
    }
  }
  // Summed over the group's changes (BeforeCommit writes them), so that a
  // counter moved by several changes gets one operand.
  for (size_t m = 0; m < metrics.size(); ++m) {
    for (size_t e = 0; e < evaluate.size(); ++e) {
      const std::optional<std::vector<std::string>>& b = before[m * evaluate.size() + e];
      const Record* er = FindRecord(*state, evaluate[e]);
      const bool matches = er != nullptr && Evaluate(metrics[m], *state, case_id, *er, &cell);
      if (metrics[m].is_flow()) {
        if (matches && !b.has_value()) AddFlow(metrics[m], rec.changed_at, cell, &deltas_);
        continue;
      }
      if (matches && b.has_value() && *b == cell) continue;
      if (b.has_value()) deltas_[CellKey(metrics[m], kStockGranularity, 0, *b)] -= 1;
      if (matches) deltas_[CellKey(metrics[m], kStockGranularity, 0, cell)] += 1;
    }
  }
  pending_[case_id].changed = true;
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

// The counter key range and the case-state range of Cf::kAggregates.
const std::string kAggregatesBegin(1, static_cast<char>(storage::kCounterTag));
const std::string kAggregatesEnd(1, static_cast<char>(storage::kAggregateCaseTag + 1));

// Every non-zero counter of `store` (at `snap`, when given), by key.
absl::StatusOr<std::map<std::string, int64_t>> ReadAllCounters(storage::Store* store,
                                                               const storage::Snapshot* snap) {
  std::map<std::string, int64_t> out;
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kAggregates, kAggregatesBegin,
                         std::string(1, static_cast<char>(storage::kCounterTag + 1)), snap);
  for (; it->Valid(); it->Next()) {
    ASSIGN_OR_RETURN(int64_t v, storage::DecodeInt64Counter(it->value()));
    if (v != 0) out.emplace(std::string(it->key()), v);
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

// An empty store for a recount's replayed state, in `dir` (removed first).
absl::StatusOr<std::unique_ptr<storage::Store>> OpenScratch(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("cannot clear the recount directory %s: %s", dir, ec.message()));
  }
  storage::StoreOptions o;
  o.path = dir;
  o.create_if_missing = true;
  o.sync_writes = false;
  return storage::Store::Open(o);
}

void RemoveScratch(std::unique_ptr<storage::Store> scratch, const std::string& dir) {
  scratch.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) log::Warn("aggregates.recount_dir_left", {{"dir", dir}, {"error", ec.message()}});
}

absl::StatusOr<PrepareOutcome> Recount(const sync::Schema& schema, const Metrics& metrics,
                                       storage::Store* source, const storage::Snapshot* snap,
                                       storage::Store* scratch) {
  PrepareOutcome outcome;
  CounterObserver observer(scratch, &metrics);
  size_t pending = 0;
  auto flush = [&]() -> absl::Status {
    storage::WriteBatch wb;
    RETURN_IF_ERROR(observer.BeforeCommit(&wb));
    absl::Status committed = scratch->Commit(&wb);
    observer.AfterCommit(&wb, committed);
    pending = 0;
    return committed;
  };
  sync::RebuildOptions options;
  options.compare_from = std::numeric_limits<uint64_t>::max();
  options.snapshot = snap;
  options.observer = [&](const v1::CaseLogEntry& entry,
                         const sync::DimensionDelta& delta) -> absl::Status {
    // The same step as a live commit of this one change.
    sync::CommittedUnit unit;
    sync::RecordDimensionChange& rec = unit.records.emplace_back();
    rec.case_id = entry.case_id();
    rec.record_id = entry.record_id();
    rec.record_type = entry.record_type();
    rec.changed_at = absl::FromUnixMicros(entry.hlc().wall_micros());
    rec.dimensions = delta;
    RETURN_IF_ERROR(observer.OnCommit(unit, nullptr));
    return ++pending >= 1000 ? flush() : absl::OkStatus();
  };
  ASSIGN_OR_RETURN(outcome.entries, sync::RebuildStateFromLog(schema, source, scratch, options));
  RETURN_IF_ERROR(flush());
  std::unique_ptr<storage::Iterator> it =
      scratch->NewIterator(Cf::kAggregates, kAggregatesBegin, kAggregatesEnd);
  for (; it->Valid(); it->Next()) {
    if (it->key()[0] == static_cast<char>(storage::kCounterTag)) {
      ++outcome.counters;
    } else {
      ++outcome.cases;
    }
  }
  RETURN_IF_ERROR(it->status());
  return outcome;
}

}  // namespace

absl::StatusOr<PrepareOutcome> RecountFromLog(const sync::Schema& schema, const Metrics& metrics,
                                              storage::Store* source, storage::Store* scratch) {
  return Recount(schema, metrics, source, nullptr, scratch);
}

absl::StatusOr<PrepareOutcome> PrepareCounters(storage::Store* store, const Metrics& metrics,
                                               const sync::Schema& schema,
                                               const std::string& scratch_dir) {
  const std::string fp_key = storage::EncodeMetadataKey(kCountersFingerprintName);
  absl::StatusOr<std::string> stored = store->Get(Cf::kMetadata, fp_key);
  if (stored.ok() && *stored == metrics.fingerprint()) return PrepareOutcome();
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> scratch, OpenScratch(scratch_dir));
  absl::StatusOr<PrepareOutcome> outcome = Recount(schema, metrics, store, nullptr, scratch.get());
  absl::Status copied = outcome.status();
  if (copied.ok()) {
    // The old counters and case states go first; the fingerprint is
    // written last, so an interrupted rebuild runs again at the next start.
    storage::WriteBatch wb;
    wb.Delete(Cf::kMetadata, fp_key);
    wb.DeleteRange(Cf::kAggregates, kAggregatesBegin, kAggregatesEnd);
    std::unique_ptr<storage::Iterator> it =
        scratch->NewIterator(Cf::kAggregates, kAggregatesBegin, kAggregatesEnd);
    for (; copied.ok() && it->Valid(); it->Next()) {
      wb.Put(Cf::kAggregates, it->key(), it->value());
      if (wb.ByteSize() > (8 << 20)) {
        copied = store->Commit(&wb);
        wb.Clear();
      }
    }
    if (copied.ok()) copied = it->status();
    if (copied.ok()) {
      wb.Put(Cf::kMetadata, fp_key, metrics.fingerprint());
      copied = store->Commit(&wb);
    }
  }
  RemoveScratch(std::move(scratch), scratch_dir);
  RETURN_IF_ERROR(copied);
  outcome->rebuilt = true;
  log::Info(
      "aggregates.counters_rebuilt",
      {{"entries", outcome->entries}, {"cases", outcome->cases}, {"counters", outcome->counters}});
  return outcome;
}

absl::StatusOr<VerifyOutcome> VerifyCounters(storage::Store* store, const Metrics& metrics,
                                             const sync::Schema& schema,
                                             const std::string& scratch_dir) {
  // The live counters and the log they must follow, read at one instant.
  std::unique_ptr<storage::Snapshot> snap = store->GetSnapshot();
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> scratch, OpenScratch(scratch_dir));
  absl::StatusOr<PrepareOutcome> recount =
      Recount(schema, metrics, store, snap.get(), scratch.get());
  absl::StatusOr<std::map<std::string, int64_t>> live = ReadAllCounters(store, snap.get());
  absl::StatusOr<std::map<std::string, int64_t>> expected =
      recount.ok() ? ReadAllCounters(scratch.get(), nullptr) : recount.status();
  RemoveScratch(std::move(scratch), scratch_dir);
  RETURN_IF_ERROR(live.status());
  RETURN_IF_ERROR(expected.status());
  VerifyOutcome out;
  out.entries = recount->entries;
  out.counters = expected->size();
  auto add = [&](const std::string& key, int64_t l, int64_t r) -> absl::Status {
    ASSIGN_OR_RETURN(storage::CounterKey k, storage::DecodeCounterKey(key));
    out.differences.push_back(
        CounterDifference{k.metric, static_cast<char>(k.granularity), k.period, k.values, l, r});
    return absl::OkStatus();
  };
  for (const auto& [key, v] : *live) {
    auto e = expected->find(key);
    const int64_t r = e == expected->end() ? 0 : e->second;
    if (r != v) RETURN_IF_ERROR(add(key, v, r));
  }
  for (const auto& [key, r] : *expected) {
    if (!live->contains(key)) RETURN_IF_ERROR(add(key, 0, r));
  }
  return out;
}

}  // namespace fieldsync::aggregates
