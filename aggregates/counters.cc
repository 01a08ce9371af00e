#include "aggregates/counters.h"

#include <filesystem>
#include <limits>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "aggregates/periods.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/counter.h"
#include "sync/rebuild.h"

namespace fieldsync::aggregates {
namespace {

using storage::Cf;
using sync::CaseDimensions;
using sync::RecordDimensions;

const std::string& ValueOf(const Dimension& d, const RecordDimensions& record,
                           const RecordDimensions& registration) {
  static const std::string* const kUnset = new std::string();
  const auto& values = d.from_case ? registration.values : record.values;
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

// Adds to *deltas what one logged change of record `record_id` moves (see
// counters.h), from its case's views before and after it. Live commits and
// recounts from the log both count through here.
void CountChange(const Metrics& metrics, std::string_view record_id, absl::Time changed_at,
                 const CaseDimensions& before, const CaseDimensions& after, CounterDeltas* deltas) {
  const RecordDimensions* was = before.Find(record_id);
  const RecordDimensions* is = after.Find(record_id);
  if ((was == nullptr) == (is == nullptr) && (was == nullptr || *was == *is)) {
    return;  // the same values count the same
  }
  // The records the change can move: the changed one and, when it is the
  // registration, every record of the case (its values are theirs).
  std::vector<std::string_view> moved;
  if (record_id == after.case_id) {
    for (const RecordDimensions& r : after.records) moved.push_back(r.record_id);
    for (const RecordDimensions& r : before.records) {
      if (after.Find(r.record_id) == nullptr) moved.push_back(r.record_id);
    }
  } else {
    moved.push_back(record_id);
  }
  std::vector<std::string> was_cell, is_cell;
  for (const Metric& m : metrics.metrics()) {
    for (std::string_view id : moved) {
      const RecordDimensions* b = before.Find(id);
      const RecordDimensions* a = after.Find(id);
      const bool counted = b != nullptr && Evaluate(m, before, *b, &was_cell);
      const bool counts = a != nullptr && Evaluate(m, after, *a, &is_cell);
      if (m.is_flow()) {
        if (counts && !counted) AddFlow(m, changed_at, is_cell, deltas);
        continue;
      }
      if (counted && counts && was_cell == is_cell) continue;
      if (counted) (*deltas)[CellKey(m, kStockGranularity, 0, was_cell)] -= 1;
      if (counts) (*deltas)[CellKey(m, kStockGranularity, 0, is_cell)] += 1;
    }
  }
}

// Adds one merge operand per non-zero delta to `batch`.
void MergeDeltas(const CounterDeltas& deltas, storage::WriteBatch* batch) {
  for (const auto& [key, delta] : deltas) {
    if (delta != 0) batch->Merge(Cf::kAggregates, key, storage::EncodeInt64Counter(delta));
  }
}

}  // namespace

bool Evaluate(const Metric& metric, const CaseDimensions& dims, const RecordDimensions& record,
              std::vector<std::string>* cell) {
  if (record.record_type != metric.def.record_type() || !record.exists) return false;
  const RecordDimensions* registration = dims.Registration();
  if (registration == nullptr || !registration->exists) return false;
  for (const Condition& c : metric.where) {
    if (!c.values.contains(ValueOf(c.dimension, record, *registration))) return false;
  }
  cell->clear();
  for (const Dimension& d : metric.dimensions) cell->push_back(ValueOf(d, record, *registration));
  return true;
}

absl::Status CounterObserver::OnCommit(const sync::CommittedUnit& unit,
                                       storage::WriteBatch* /*batch*/) {
  // One step per logged change, in log order: the counters move as if each
  // change had been committed alone, whatever the batching. Summed over
  // the group (BeforeCommit writes them), so that a counter moved by
  // several changes gets one operand.
  for (const sync::RecordDimensionChange& rec : unit.records) {
    // Nothing to count: a record type no metric reads, or a change that
    // left the record's counted values as they were.
    if (!rec.dimensions_changed) continue;
    CountChange(*metrics_, rec.record_id, rec.changed_at, rec.before, rec.after, &deltas_);
  }
  return absl::OkStatus();
}

sync::DimensionNeeds CounterObserver::RecordDimensionNeeds() const {
  if (metrics_->metrics().empty()) return {};
  return metrics_->reads();
}

absl::Status CounterObserver::BeforeCommit(storage::WriteBatch* batch) {
  MergeDeltas(deltas_, batch);
  return absl::OkStatus();
}

void CounterObserver::AfterCommit(const storage::WriteBatch*, const absl::Status&) {
  deltas_.clear();
}

namespace {

// The counter key range of Cf::kAggregates, and the range of the retired
// per-case copies of counted values.
const std::string kCountersBegin(1, static_cast<char>(storage::kCounterTag));
const std::string kCountersEnd(1, static_cast<char>(storage::kCounterTag + 1));
const std::string kRetiredCaseStatesBegin(1, static_cast<char>(storage::kRetiredAggregateCaseTag));
const std::string kRetiredCaseStatesEnd(1,
                                        static_cast<char>(storage::kRetiredAggregateCaseTag + 1));

// Every non-zero counter of `store` (at `snap`, when given), by key.
absl::StatusOr<std::map<std::string, int64_t>> ReadAllCounters(storage::Store* store,
                                                               const storage::Snapshot* snap) {
  std::map<std::string, int64_t> out;
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kAggregates, kCountersBegin, kCountersEnd, snap);
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
  CounterDeltas deltas;
  size_t pending = 0;
  auto flush = [&]() -> absl::Status {
    storage::WriteBatch wb;
    MergeDeltas(deltas, &wb);
    deltas.clear();
    pending = 0;
    return scratch->Commit(&wb);
  };
  sync::RebuildOptions options;
  options.compare_from = std::numeric_limits<uint64_t>::max();
  options.snapshot = snap;
  if (!metrics.metrics().empty()) options.dimension_needs = metrics.reads();
  options.observer = [&](const v1::CaseLogEntry& entry, const CaseDimensions* before,
                         const CaseDimensions* after) -> absl::Status {
    // The same step as a live commit of this one change.
    if (before != nullptr && after != nullptr) {
      CountChange(metrics, entry.record_id(), absl::FromUnixMicros(entry.hlc().wall_micros()),
                  *before, *after, &deltas);
    }
    return ++pending >= 1000 ? flush() : absl::OkStatus();
  };
  ASSIGN_OR_RETURN(outcome.entries, sync::RebuildStateFromLog(schema, source, scratch, options));
  RETURN_IF_ERROR(flush());
  std::unique_ptr<storage::Iterator> it =
      scratch->NewIterator(Cf::kAggregates, kCountersBegin, kCountersEnd);
  for (; it->Valid(); it->Next()) ++outcome.counters;
  RETURN_IF_ERROR(it->status());
  return outcome;
}

// Deletes the retired per-case copies of counted values, when `store`
// holds any; true when it did.
absl::StatusOr<bool> RemoveRetiredCaseStates(storage::Store* store) {
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kAggregates, kRetiredCaseStatesBegin, kRetiredCaseStatesEnd);
  RETURN_IF_ERROR(it->status());
  if (!it->Valid()) return false;
  it.reset();
  storage::WriteBatch wb;
  wb.DeleteRange(Cf::kAggregates, kRetiredCaseStatesBegin, kRetiredCaseStatesEnd);
  RETURN_IF_ERROR(store->Commit(&wb));
  log::Info("aggregates.case_states_removed", {});
  return true;
}

}  // namespace

absl::StatusOr<PrepareOutcome> RecountFromLog(const sync::Schema& schema, const Metrics& metrics,
                                              storage::Store* source, storage::Store* scratch) {
  return Recount(schema, metrics, source, nullptr, scratch);
}

absl::StatusOr<PrepareOutcome> PrepareCounters(storage::Store* store, const Metrics& metrics,
                                               const sync::Schema& schema,
                                               const std::string& scratch_dir) {
  // Counts do not depend on them: the counters are kept as they are.
  ASSIGN_OR_RETURN(const bool removed, RemoveRetiredCaseStates(store));
  const std::string fp_key = storage::EncodeMetadataKey(kCountersFingerprintName);
  absl::StatusOr<std::string> stored = store->Get(Cf::kMetadata, fp_key);
  if (stored.ok() && *stored == metrics.fingerprint()) {
    PrepareOutcome unchanged;
    unchanged.removed_case_states = removed;
    return unchanged;
  }
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> scratch, OpenScratch(scratch_dir));
  absl::StatusOr<PrepareOutcome> outcome = Recount(schema, metrics, store, nullptr, scratch.get());
  absl::Status copied = outcome.status();
  if (copied.ok()) {
    // The old counters go first; the fingerprint is written last, so an
    // interrupted rebuild runs again at the next start.
    storage::WriteBatch wb;
    wb.Delete(Cf::kMetadata, fp_key);
    wb.DeleteRange(Cf::kAggregates, kCountersBegin, kCountersEnd);
    std::unique_ptr<storage::Iterator> it =
        scratch->NewIterator(Cf::kAggregates, kCountersBegin, kCountersEnd);
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
  outcome->removed_case_states = removed;
  log::Info("aggregates.counters_rebuilt",
            {{"entries", outcome->entries}, {"counters", outcome->counters}});
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
