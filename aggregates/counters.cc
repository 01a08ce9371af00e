#include "aggregates/counters.h"

#include <filesystem>
#include <limits>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aggregates/periods.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
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

// Adds `delta` to the counter of `cell` in the page of `m`, `granularity`
// and `period`.
void AddToCounter(const Metric& m, uint8_t granularity, uint32_t period,
                  const std::vector<std::string>& cell, int64_t delta, CounterDeltas* deltas) {
  storage::AddToSum(&(*deltas)[storage::EncodeCounterPageKey(m.def.name(), granularity, period)],
                    storage::EncodeCounterCell(cell), delta);
}

void AddFlow(const Metric& m, absl::Time when, const std::vector<std::string>& cell,
             CounterDeltas* deltas) {
  AddToCounter(m, kWeekGranularity, WeekNumber(when), cell, 1, deltas);
  AddToCounter(m, kMonthGranularity, MonthNumber(when), cell, 1, deltas);
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
      if (counted) AddToCounter(m, kStockGranularity, 0, was_cell, -1, deltas);
      if (counts) AddToCounter(m, kStockGranularity, 0, is_cell, 1, deltas);
    }
  }
}

// Adds one merge operand per page to `batch`, holding the page's non-zero
// deltas; a page whose deltas all cancelled (AddToSum erased them) gets
// none. Live commits and recounts both write through here.
void MergeDeltas(const CounterDeltas& deltas, storage::WriteBatch* batch) {
  for (const auto& [page, cells] : deltas) {
    if (!cells.empty()) batch->Merge(Cf::kAggregates, page, storage::EncodeKeyedSums(cells));
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
  // the group by page (BeforeCommit writes them), so that the counters of
  // one page moved by any number of changes get one operand.
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

// The counter page range of Cf::kAggregates, and the ranges of the
// retired layouts: one key per counter, and per-case copies of counted
// values.
const std::string kPagesBegin(1, static_cast<char>(storage::kCounterPageTag));
const std::string kPagesEnd(1, static_cast<char>(storage::kCounterPageTag + 1));
const std::string kRetiredCountersBegin(1, static_cast<char>(storage::kCounterTag));
const std::string kRetiredCountersEnd(1, static_cast<char>(storage::kCounterTag + 1));
const std::string kRetiredCaseStatesBegin(1, static_cast<char>(storage::kRetiredAggregateCaseTag));
const std::string kRetiredCaseStatesEnd(1,
                                        static_cast<char>(storage::kRetiredAggregateCaseTag + 1));

// What kCountersFingerprintName holds for counters built from `metrics`
// in counter pages. The layout is part of it so that counters built in
// another layout (the bare fingerprint: one key per counter) are
// recounted. Persisted: never change the prefix but for a new layout.
std::string CountersFingerprint(const Metrics& metrics) {
  return absl::StrCat("counter-pages:", metrics.fingerprint());
}

// Every non-empty counter page of `store` (at `snap`, when given): its
// non-zero counters by cell, by page key. kDataLoss for a malformed page.
using Pages = std::map<std::string, storage::KeyedSums>;
absl::StatusOr<Pages> ReadAllPages(storage::Store* store, const storage::Snapshot* snap) {
  Pages out;
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kAggregates, kPagesBegin, kPagesEnd, snap);
  for (; it->Valid(); it->Next()) {
    storage::KeyedSums cells;
    RETURN_IF_ERROR(storage::AddKeyedSums(it->value(), &cells));
    if (!cells.empty()) out.emplace(std::string(it->key()), std::move(cells));
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

// True when `store` holds a key of Cf::kAggregates in [begin, end).
absl::StatusOr<bool> HoldsAny(storage::Store* store, const std::string& begin,
                              const std::string& end) {
  std::unique_ptr<storage::Iterator> it = store->NewIterator(Cf::kAggregates, begin, end);
  RETURN_IF_ERROR(it->status());
  return it->Valid();
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
      scratch->NewIterator(Cf::kAggregates, kPagesBegin, kPagesEnd);
  for (; it->Valid(); it->Next()) {
    if (it->value().empty()) continue;  // every counter of the page is back at 0
    ++outcome.pages;
    RETURN_IF_ERROR(storage::ForEachKeyedSum(it->value(), [&](std::string_view, int64_t) {
      ++outcome.counters;
      return absl::OkStatus();
    }));
  }
  RETURN_IF_ERROR(it->status());
  return outcome;
}

// Deletes the retired per-case copies of counted values, when `store`
// holds any; true when it did.
absl::StatusOr<bool> RemoveRetiredCaseStates(storage::Store* store) {
  ASSIGN_OR_RETURN(const bool held,
                   HoldsAny(store, kRetiredCaseStatesBegin, kRetiredCaseStatesEnd));
  if (!held) return false;
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
  const std::string fingerprint = CountersFingerprint(metrics);
  absl::StatusOr<std::string> stored = store->Get(Cf::kMetadata, fp_key);
  if (stored.ok() && *stored == fingerprint) {
    PrepareOutcome unchanged;
    unchanged.removed_case_states = removed;
    return unchanged;
  }
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  // A store written before counter pages holds one key per counter: they
  // are deleted in the write that deletes the old pages.
  ASSIGN_OR_RETURN(const bool retired_counters,
                   HoldsAny(store, kRetiredCountersBegin, kRetiredCountersEnd));
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> scratch, OpenScratch(scratch_dir));
  absl::StatusOr<PrepareOutcome> outcome = Recount(schema, metrics, store, nullptr, scratch.get());
  absl::Status copied = outcome.status();
  if (copied.ok()) {
    // The old counters go first; the fingerprint is written last, so an
    // interrupted rebuild runs again at the next start.
    storage::WriteBatch wb;
    wb.Delete(Cf::kMetadata, fp_key);
    if (retired_counters) {
      wb.DeleteRange(Cf::kAggregates, kRetiredCountersBegin, kRetiredCountersEnd);
    }
    wb.DeleteRange(Cf::kAggregates, kPagesBegin, kPagesEnd);
    std::unique_ptr<storage::Iterator> it =
        scratch->NewIterator(Cf::kAggregates, kPagesBegin, kPagesEnd);
    for (; copied.ok() && it->Valid(); it->Next()) {
      if (it->value().empty()) continue;  // the same as no page
      wb.Put(Cf::kAggregates, it->key(), it->value());
      if (wb.ByteSize() > (8 << 20)) {
        copied = store->Commit(&wb);
        wb.Clear();
      }
    }
    if (copied.ok()) copied = it->status();
    if (copied.ok()) {
      wb.Put(Cf::kMetadata, fp_key, fingerprint);
      copied = store->Commit(&wb);
    }
  }
  RemoveScratch(std::move(scratch), scratch_dir);
  RETURN_IF_ERROR(copied);
  outcome->rebuilt = true;
  outcome->removed_case_states = removed;
  outcome->removed_counter_keys = retired_counters;
  if (retired_counters) log::Info("aggregates.counter_keys_removed", {});
  log::Info(
      "aggregates.counters_rebuilt",
      {{"entries", outcome->entries}, {"counters", outcome->counters}, {"pages", outcome->pages}});
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
  absl::StatusOr<Pages> live = ReadAllPages(store, snap.get());
  absl::StatusOr<Pages> expected =
      recount.ok() ? ReadAllPages(scratch.get(), nullptr) : absl::StatusOr<Pages>(recount.status());
  RemoveScratch(std::move(scratch), scratch_dir);
  RETURN_IF_ERROR(live.status());
  RETURN_IF_ERROR(expected.status());
  VerifyOutcome out;
  out.entries = recount->entries;
  out.counters = recount->counters;
  // Counter by counter: a page holds many, and a difference names one.
  auto sum_at = [](const Pages& pages, const std::string& page, const std::string& cell) {
    auto p = pages.find(page);
    if (p == pages.end()) return int64_t{0};
    auto c = p->second.find(cell);
    return c == p->second.end() ? int64_t{0} : c->second;
  };
  auto add = [&](const std::string& page, const std::string& cell, int64_t l,
                 int64_t r) -> absl::Status {
    ASSIGN_OR_RETURN(storage::CounterKey k, storage::DecodeCounterPageKey(page));
    ASSIGN_OR_RETURN(std::vector<std::string> values, storage::DecodeCounterCell(cell));
    out.differences.push_back(CounterDifference{k.metric, static_cast<char>(k.granularity),
                                                k.period, std::move(values), l, r});
    return absl::OkStatus();
  };
  for (const auto& [page, cells] : *live) {
    for (const auto& [cell, v] : cells) {
      const int64_t r = sum_at(*expected, page, cell);
      if (r != v) RETURN_IF_ERROR(add(page, cell, v, r));
    }
  }
  for (const auto& [page, cells] : *expected) {
    for (const auto& [cell, r] : cells) {
      if (sum_at(*live, page, cell) == 0) RETURN_IF_ERROR(add(page, cell, 0, r));
    }
  }
  return out;
}

}  // namespace fieldsync::aggregates
