// Aggregate counters maintained inside sync's commit, over a real RocksDB:
// explicit scenarios, then a randomized, seeded workload of thousands of
// changes from many devices (conflicts, resolutions, transfers, closures,
// reopenings, deletions) after which every stock counter equals a
// brute-force recount over the materialized state, written here
// independently of the product.
#include "aggregates/counters.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_format.h"
#include "aggregates/metrics.h"
#include "aggregates/periods.h"
#include "aggregates/query.h"
#include "common/uuid.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "storage/counter.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "sync/record_state.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::aggregates {
namespace {

using ::fieldsync::testing::IsOk;
using sync::StaffActor;
using sync::testing::Enum;
using sync::testing::HlcAt;
using sync::testing::Id;
using sync::testing::kStartMicros;
using sync::testing::Upsert;

// (metric, granularity, period, values) -> count, non-zero only.
using Counts = std::map<std::tuple<std::string, char, uint32_t, std::vector<std::string>>, int64_t>;

v1::MetricsConfig DefaultMetricsConfig() {
  const char* src = std::getenv("FIELDSYNC_SOURCE_DIR");
  std::string path =
      std::string(src == nullptr ? "." : src) + "/deploy/metrics/child_protection.textproto";
  absl::StatusOr<v1::MetricsConfig> c = ParseMetricsConfig(fieldsync::testing::ReadFileOrDie(path));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : v1::MetricsConfig();
}

// Every counter of every page of `store`.
Counts ReadCounters(storage::Store* store) {
  Counts out;
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(storage::Cf::kAggregates, std::string(1, char{storage::kCounterPageTag}),
                         std::string(1, char{storage::kCounterPageTag + 1}));
  for (; it->Valid(); it->Next()) {
    absl::StatusOr<storage::CounterKey> k = storage::DecodeCounterPageKey(it->key());
    EXPECT_TRUE(k.ok()) << k.status();
    if (!k.ok()) continue;
    absl::Status read = storage::ForEachKeyedSum(
        it->value(), [&](std::string_view member, int64_t v) -> absl::Status {
          absl::StatusOr<std::vector<std::string>> cell = storage::DecodeCounterCell(member);
          if (!cell.ok()) return cell.status();
          EXPECT_GT(v, 0) << "a negative counter for " << k->metric;
          out[{k->metric, static_cast<char>(k->granularity), k->period, *cell}] = v;
          return absl::OkStatus();
        });
    EXPECT_THAT(read, IsOk());
  }
  EXPECT_THAT(it->status(), IsOk());
  return out;
}

Counts Only(const Counts& all, char granularity) {
  Counts out;
  for (const auto& [k, v] : all) {
    if (std::get<1>(k) == granularity) out[k] = v;
  }
  return out;
}

// The brute force: read every record's header and DIMENSION fields from
// the records column family and count each stock metric from scratch.
Counts RecountStocks(storage::Store* store, const sync::Schema& schema,
                     const v1::MetricsConfig& config) {
  struct Rec {
    std::string type;
    bool live = false;
    std::map<std::string, std::string> values;
  };
  std::map<std::string, std::map<std::string, Rec>> cases;  // case -> record -> rec
  std::unique_ptr<storage::Iterator> it = store->NewIterator(storage::Cf::kRecords, "", "");
  for (; it->Valid(); it->Next()) {
    absl::StatusOr<storage::RecordsKey> key = storage::DecodeRecordsKey(it->key());
    EXPECT_TRUE(key.ok());
    Rec& rec = cases[FormatUuid(key->case_id)][FormatUuid(key->record_id)];
    absl::StatusOr<std::optional<sync::RecordState>> state =
        sync::ReadRecord(store, nullptr, key->case_id, key->record_id);
    EXPECT_TRUE(state.ok() && state->has_value());
    if (!state.ok() || !state->has_value()) continue;
    rec.type = (*state)->header.record_type();
    rec.live = !(*state)->header.deleted();
    for (const auto& [field, fs] : (*state)->fields) {
      if (fs.value().encrypted() || fs.value().cleared()) continue;
      v1::FieldValue v;
      EXPECT_TRUE(v.ParseFromString(fs.value().data()));
      if (v.has_enum_value()) rec.values[field] = v.enum_value();
      if (v.has_bool_value()) rec.values[field] = v.bool_value() ? "true" : "false";
    }
  }
  // Where each aggregate dimension lives.
  std::map<std::string, std::pair<std::string, std::string>> dims;
  for (const v1::AggregateDimension& d : schema.proto().aggregate_dimensions()) {
    dims[d.name()] = {d.record_type(), d.field()};
  }
  const std::string reg_type = schema.registration_type().name();
  Counts out;
  for (const v1::MetricDef& m : config.metrics()) {
    if (m.kind() != v1::METRIC_KIND_STOCK) continue;
    for (const auto& [case_id, records] : cases) {
      auto reg = records.find(case_id);
      if (reg == records.end() || !reg->second.live) continue;
      for (const auto& [record_id, rec] : records) {
        if (rec.type != m.record_type() || !rec.live) continue;
        const Rec& record = rec;  // a lambda cannot capture a structured binding in clang 14
        auto value = [&](const std::string& dim) {
          const auto& [type, field] = dims[dim];
          const Rec& from = type == reg_type ? reg->second : record;
          auto f = from.values.find(field);
          return f == from.values.end() ? std::string() : f->second;
        };
        bool keep = true;
        for (const v1::DimensionFilter& w : m.where()) {
          const std::string v = value(w.dimension());
          keep = keep && std::find(w.values().begin(), w.values().end(), v) != w.values().end();
        }
        if (!keep) continue;
        std::vector<std::string> cell;
        for (const std::string& d : m.dimensions()) cell.push_back(value(d));
        out[{m.name(), 'S', 0u, cell}] += 1;
      }
    }
  }
  return out;
}

class CountersTest : public sync::testing::IngestFixture {
 protected:
  // The version a supervisor sees for an open conflict (Conflict.version).
  uint64_t CurrentConflictVersion(const v1::ConflictRecord& rec) {
    for (const char* region : {"central", "northern", "eastern", "western"}) {
      absl::StatusOr<v1::ListConflictsResponse> list =
          feed_->ListConflicts(region, 1000, "", sync::ReadScope::AllClasses());
      if (!list.ok()) continue;
      for (const v1::Conflict& c : list->conflicts()) {
        if (c.id().position() == rec.id().position() && c.id().field() == rec.id().field()) {
          return c.version();
        }
      }
    }
    return 0;
  }

  void SetUp() override {
    IngestFixture::SetUp();
    config_ = DefaultMetricsConfig();
    absl::StatusOr<std::unique_ptr<Metrics>> m = Metrics::Create(config_, schema_.get());
    ASSERT_THAT(m, IsOk());
    metrics_ = *std::move(m);
    Attach();
  }
  void TearDown() override {
    ingest_.reset();
    observer_.reset();
    IngestFixture::TearDown();
  }
  // Rebuilds the Ingest with the counter observer over the current store.
  void Attach() {
    ingest_.reset();
    observer_ = std::make_unique<CounterObserver>(metrics_.get());
    AttachObservers({observer_.get()});
  }
  // Rebuilds the Ingest over the current store with `observers`.
  void AttachObservers(std::vector<sync::CommitObserver*> observers) {
    ingest_.reset();
    sync::Ingest::Options io;
    io.store = store_.get();
    io.schema = schema_.get();
    io.sealer = &sealer_;
    io.clock = &clock_;
    io.observers = std::move(observers);
    ingest_ = std::make_unique<sync::Ingest>(io);
  }
  int64_t Count(const std::string& metric, char g, uint32_t period,
                const std::vector<std::string>& cell) {
    Counts c = ReadCounters(store_.get());
    auto it = c.find({metric, g, period, cell});
    return it == c.end() ? 0 : it->second;
  }
  v1::RecordChange Case(int change, const std::string& case_id, const std::string& region,
                        const std::string& district, const std::string& sex, int64_t micros) {
    return Upsert(Id(change), case_id, case_id, "case_registration",
                  {{"given_name", sync::testing::Str("Child")},
                   {"sex", Enum(sex)},
                   {"age_band", Enum("5_9")},
                   {"region", Enum(region)},
                   {"district", Enum(district)},
                   {"priority", Enum("high")},
                   {"registration_date", sync::testing::DateValue(2026, 11, 2)}},
                  0, HlcAt(micros));
  }
  v1::RecordChange Concern(int change, const std::string& case_id, const std::string& record,
                           const std::string& category, int64_t micros) {
    return Upsert(Id(change), case_id, record, "protection_concern",
                  {{"concern_category", Enum(category)},
                   {"identified_date", sync::testing::DateValue(2026, 11, 1)}},
                  0, HlcAt(micros));
  }

  v1::MetricsConfig config_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<CounterObserver> observer_;
};

const std::vector<std::string> kOpenCell = {"northern", "northern_1", "female", "5_9", "high"};

TEST_F(CountersTest, ARegistrationCountsAsOpenCaseAndInItsWeekAndMonth) {
  const int64_t t = kStartMicros;  // 2026-11-18
  ASSERT_THAT(Push("dev-1", 1, {Case(1, Id(1), "northern", "northern_1", "female", t)}), IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 1);
  const uint32_t week = WeekNumber(absl::FromUnixMicros(t));
  const uint32_t month = MonthNumber(absl::FromUnixMicros(t));
  std::vector<std::string> reg = {"northern", "northern_1", "female", "5_9"};
  EXPECT_EQ(Count("registrations", 'W', week, reg), 1);
  EXPECT_EQ(Count("registrations", 'M', month, reg), 1);
  // Re-delivering the batch counts nothing twice.
  ASSERT_THAT(Push("dev-1", 1, {Case(1, Id(1), "northern", "northern_1", "female", t)}), IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 1);
  EXPECT_EQ(Count("registrations", 'W', week, reg), 1);
}

TEST_F(CountersTest, ChangesTransfersClosuresAndDeletionsMoveCounts) {
  int64_t t = kStartMicros;
  ASSERT_THAT(Push("dev-1", 1,
                   {Case(1, Id(1), "northern", "northern_1", "female", t),
                    Concern(2, Id(1), Id(101), "neglect", t + 1)}),
              IsOk());
  std::vector<std::string> concern = {"northern", "northern_1", "neglect", "female", "5_9"};
  EXPECT_EQ(Count("protection_concerns", 'S', 0, concern), 1);

  // A change of district moves the case and its concern.
  ASSERT_THAT(Push("dev-1", 2,
                   {Upsert(Id(3), Id(1), Id(1), "case_registration",
                           {{"district", Enum("northern_2")}}, 0, HlcAt(t + 2))}),
              IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 0);
  EXPECT_EQ(Count("open_cases", 'S', 0, {"northern", "northern_2", "female", "5_9", "high"}), 1);
  EXPECT_EQ(Count("protection_concerns", 'S', 0, concern), 0);
  EXPECT_EQ(
      Count("protection_concerns", 'S', 0, {"northern", "northern_2", "neglect", "female", "5_9"}),
      1);

  // A transfer moves both to the new region and district.
  ASSERT_THAT(
      ingest_->TransferCase(StaffActor{"sup"}, Id(1), "eastern", "eastern_1", "officer-1", 0),
      IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, {"northern", "northern_2", "female", "5_9", "high"}), 0);
  EXPECT_EQ(Count("open_cases", 'S', 0, {"eastern", "eastern_1", "female", "5_9", "high"}), 1);
  EXPECT_EQ(
      Count("protection_concerns", 'S', 0, {"eastern", "eastern_1", "neglect", "female", "5_9"}),
      1);

  // Closing: no longer open, one closure; the concern no longer counts
  // (its metric counts open cases' concerns).
  ASSERT_THAT(ingest_->SetCaseStatus(StaffActor{"sup"}, Id(1), true, "goals_achieved", 0), IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, {"eastern", "eastern_1", "female", "5_9", "high"}), 0);
  EXPECT_EQ(Count("closed_cases", 'S', 0, {"eastern", "eastern_1", "female"}), 1);
  Counts all = ReadCounters(store_.get());
  int64_t closures = 0;
  for (const auto& [k, v] : Only(all, 'M')) {
    if (std::get<0>(k) == "closures") closures += v;
  }
  EXPECT_EQ(closures, 1);
  // Reopening counts it open again; closures never decrease.
  ASSERT_THAT(ingest_->SetCaseStatus(StaffActor{"sup"}, Id(1), false, "", 0), IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, {"eastern", "eastern_1", "female", "5_9", "high"}), 1);
  closures = 0;
  for (const auto& [k, v] : Only(ReadCounters(store_.get()), 'M')) {
    if (std::get<0>(k) == "closures") closures += v;
  }
  EXPECT_EQ(closures, 1);

  // Deleting the concern removes it.
  v1::RecordChange del;
  del.set_change_id(Id(4));
  del.set_case_id(Id(1));
  del.set_record_id(Id(101));
  del.set_record_type("protection_concern");
  del.set_kind(v1::CHANGE_KIND_DELETE);
  *del.mutable_hlc() = HlcAt(t + 10);
  ASSERT_THAT(Push("dev-1", 3, {del}), IsOk());
  EXPECT_EQ(
      Count("protection_concerns", 'S', 0, {"eastern", "eastern_1", "neglect", "female", "5_9"}),
      0);
}

TEST_F(CountersTest, OnlyTheWinningValueOfAConflictCounts) {
  int64_t t = kStartMicros;
  ASSERT_THAT(Push("dev-1", 1, {Case(1, Id(1), "northern", "northern_1", "female", t)}), IsOk());
  // Two devices change sex offline from the same base: one wins, the other
  // is a conflict (or superseded); the case counts once either way.
  ASSERT_THAT(Push("dev-1", 2,
                   {Upsert(Id(2), Id(1), Id(1), "case_registration", {{"sex", Enum("male")}}, 1,
                           HlcAt(t + 5))}),
              IsOk());
  ASSERT_THAT(Push("dev-2", 1,
                   {Upsert(Id(3), Id(1), Id(1), "case_registration", {{"sex", Enum("other")}}, 1,
                           HlcAt(t + 3))}),
              IsOk());
  Counts stocks = Only(ReadCounters(store_.get()), 'S');
  int64_t open = 0;
  for (const auto& [k, v] : stocks) {
    if (std::get<0>(k) == "open_cases") open += v;
  }
  EXPECT_EQ(open, 1);
  EXPECT_EQ(stocks, RecountStocks(store_.get(), *schema_, config_));
}

TEST_F(CountersTest, AFailedCommitLeavesNoCounts) {
  fs_->FailSyncs(true);
  EXPECT_FALSE(
      Push("dev-1", 1, {Case(1, Id(1), "northern", "northern_1", "female", kStartMicros)}).ok());
  ReopenStore();
  Attach();
  EXPECT_TRUE(ReadCounters(store_.get()).empty());
  ASSERT_THAT(Push("dev-1", 1, {Case(1, Id(1), "northern", "northern_1", "female", kStartMicros)}),
              IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 1);
}

// Every key of Cf::kAggregates and its value, raw, in key order.
std::vector<std::pair<std::string, std::string>> AggregateKeys(storage::Store* store) {
  return sync::testing::DumpCf(store, storage::Cf::kAggregates);
}

// True when some key of Cf::kAggregates starts with `tag`.
bool HoldsTag(storage::Store* store, uint8_t tag) {
  for (const auto& [key, value] : AggregateKeys(store)) {
    if (!key.empty() && key[0] == static_cast<char>(tag)) return true;
  }
  return false;
}

// True when some key of Cf::kAggregates has the retired per-case tag.
bool HasCaseStates(storage::Store* store) {
  return HoldsTag(store, storage::kRetiredAggregateCaseTag);
}

// Forwards to another observer and notes how many operations its
// BeforeCommit adds to each group's batch.
class CountingObserver : public sync::CommitObserver {
 public:
  explicit CountingObserver(sync::CommitObserver* inner) : inner_(inner) {}
  absl::Status OnCommit(const sync::CommittedUnit& unit, storage::WriteBatch* batch) override {
    return inner_->OnCommit(unit, batch);
  }
  sync::DimensionNeeds RecordDimensionNeeds() const override {
    return inner_->RecordDimensionNeeds();
  }
  absl::Status BeforeCommit(storage::WriteBatch* batch) override {
    const int before = batch->Count();
    absl::Status s = inner_->BeforeCommit(batch);
    added.push_back(batch->Count() - before);
    return s;
  }
  void AfterCommit(const storage::WriteBatch* batch, const absl::Status& status) override {
    inner_->AfterCommit(batch, status);
  }

  std::vector<int> added;  // by group

 private:
  sync::CommitObserver* inner_;
};

// The answers every metric gives (all regions), over `store`'s counters,
// grouped by `group_by` where the metric has those dimensions.
std::vector<v1::QueryResponse> Answers(storage::Store* store, const Metrics& metrics,
                                       const std::vector<std::string>& group_by) {
  std::vector<v1::QueryResponse> out;
  Scope all;
  all.all_regions = true;
  for (const Metric& m : metrics.metrics()) {
    v1::QueryRequest r;
    r.set_metric(m.def.name());
    for (const std::string& g : group_by) {
      if (m.IndexOf(g) >= 0) r.add_group_by(g);
    }
    absl::StatusOr<v1::QueryResponse> answer =
        RunQuery(store, metrics, r, all, absl::CivilDay(2026, 12, 20));
    EXPECT_THAT(answer, IsOk()) << m.def.name();
    if (answer.ok()) out.push_back(*std::move(answer));
  }
  return out;
}

void ExpectSameAnswers(const std::vector<v1::QueryResponse>& a,
                       const std::vector<v1::QueryResponse>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a[i], b[i]))
        << a[i].metric() << ":\n"
        << a[i].DebugString() << "\nvs\n"
        << b[i].DebugString();
  }
}

// A commit group writes one Merge operand per counter page it moves,
// however many counters of the page it moves, and queries answer from
// those pages.
TEST_F(CountersTest, ACommitGroupWritesOneMergePerPageItMoves) {
  static const char* kRegions[] = {"central", "northern", "eastern", "western"};
  static const char* kSex[] = {"female", "male", "other", "unknown"};
  CountingObserver counting(observer_.get());
  AttachObservers({&counting});
  std::vector<v1::RecordChange> cases;
  std::map<std::pair<std::string, std::string>, int64_t> by_region_and_sex;
  for (int i = 0; i < 100; ++i) {
    const std::string region = kRegions[i % 4], sex = kSex[(i / 4) % 4];
    cases.push_back(Case(i + 1, Id(1000 + i), region, region + "_1", sex, kStartMicros + i));
    ++by_region_and_sex[{region, sex}];
  }

  ASSERT_THAT(Push("dev-1", 1, cases), IsOk());

  // open_cases (stock), and registrations in the week and in the month.
  const Counts counts = ReadCounters(store_.get());
  std::set<std::tuple<std::string, char, uint32_t>> pages;
  for (const auto& [key, n] : counts) {
    pages.insert({std::get<0>(key), std::get<1>(key), std::get<2>(key)});
  }
  EXPECT_EQ(pages.size(), 3u);
  EXPECT_EQ(counts.size(), 3 * 16u);  // in each, the 16 cells of region and sex
  EXPECT_THAT(counting.added, ::testing::ElementsAre(static_cast<int>(pages.size())));
  int64_t pages_written = 0;
  for (const auto& [key, value] : AggregateKeys(store_.get())) {
    EXPECT_THAT(storage::DecodeCounterPageKey(key), IsOk());
    ++pages_written;
  }
  EXPECT_EQ(pages_written, static_cast<int64_t>(pages.size()));
  // The answers hold every case once.
  v1::QueryRequest request;
  request.set_metric("open_cases");
  request.add_group_by("region");
  request.add_group_by("sex");
  Scope all;
  all.all_regions = true;
  absl::StatusOr<v1::QueryResponse> open =
      RunQuery(store_.get(), *metrics_, request, all, absl::CivilDay(2026, 11, 30));
  ASSERT_THAT(open, IsOk());
  int checked = 0;
  for (const v1::AggregateCell& cell : open->cells()) {
    if (cell.coordinates(0).total() || cell.coordinates(1).total()) continue;
    auto it = by_region_and_sex.find({cell.coordinates(0).value(), cell.coordinates(1).value()});
    EXPECT_FALSE(cell.suppressed());
    EXPECT_EQ(cell.count(), it == by_region_and_sex.end() ? 0 : it->second)
        << cell.ShortDebugString();
    ++checked;
  }
  EXPECT_EQ(checked, 16);
  // Moving the counters of one page back and forth in one group writes
  // nothing for it.
  counting.added.clear();
  absl::StatusOr<sync::PushResult> back_and_forth =
      Push("dev-1", 2,
           {Upsert(Id(200), Id(1000), Id(1000), "case_registration", {{"priority", Enum("low")}}, 1,
                   HlcAt(kStartMicros + 200)),
            Upsert(Id(201), Id(1000), Id(1000), "case_registration", {{"priority", Enum("high")}},
                   101, HlcAt(kStartMicros + 201))});
  ASSERT_THAT(back_and_forth, IsOk());
  for (const v1::ChangeResult& cr : back_and_forth->result.results()) {
    EXPECT_EQ(cr.outcome(), v1::CHANGE_OUTCOME_APPLIED) << cr.detail();
  }
  EXPECT_THAT(counting.added, ::testing::ElementsAre(0));
  EXPECT_EQ(ReadCounters(store_.get()), counts);
}

// A store written before counter pages holds one key per counter (tag 1)
// and the bare metrics fingerprint: its first start recounts the counters
// into pages and deletes every tag-1 key, and the answers are those of a
// recount.
TEST_F(CountersTest, CounterKeysOfTheRetiredLayoutAreRecountedIntoPagesAtStart) {
  const int64_t t = kStartMicros;
  ASSERT_THAT(Push("dev-1", 1,
                   {Case(1, Id(1), "northern", "northern_1", "female", t),
                    Case(2, Id(2), "eastern", "eastern_1", "male", t + 1),
                    Case(3, Id(3), "northern", "northern_2", "female", t + 2),
                    Concern(4, Id(1), Id(101), "neglect", t + 3)}),
              IsOk());
  ASSERT_THAT(ingest_->SetCaseStatus(StaffActor{"sup"}, Id(2), true, "goals_achieved", 0), IsOk());
  const Counts counts = ReadCounters(store_.get());
  ASSERT_FALSE(counts.empty());
  // What such a store holds: the same counters, one key each, 8-byte
  // values (and a stale one a recount would not give), no pages.
  {
    storage::WriteBatch wb;
    wb.DeleteRange(storage::Cf::kAggregates, std::string(1, char{storage::kCounterPageTag}),
                   std::string(1, char{storage::kCounterPageTag + 1}));
    auto retired_key = [](const std::string& metric, char g, uint32_t period,
                          const std::vector<std::string>& values) {
      storage::KeyBuilder b;
      b.U8(storage::kCounterTag).String(metric).U8(static_cast<uint8_t>(g)).U32(period);
      for (const std::string& v : values) b.String(v);
      return std::move(b).Finish();
    };
    for (const auto& [key, n] : counts) {
      const auto& [metric, g, period, values] = key;
      wb.Merge(storage::Cf::kAggregates, retired_key(metric, g, period, values),
               storage::EncodeInt64Counter(n));
    }
    wb.Put(storage::Cf::kAggregates, retired_key("open_cases", 'S', 0, kOpenCell),
           storage::EncodeInt64Counter(7));
    wb.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(kCountersFingerprintName),
           metrics_->fingerprint());
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }
  ASSERT_TRUE(HoldsTag(store_.get(), storage::kCounterTag));
  ASSERT_TRUE(ReadCounters(store_.get()).empty());

  absl::StatusOr<PrepareOutcome> started =
      PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount"));

  ASSERT_THAT(started, IsOk());
  EXPECT_TRUE(started->rebuilt);
  EXPECT_TRUE(started->removed_counter_keys);
  EXPECT_EQ(started->counters, counts.size());
  EXPECT_FALSE(HoldsTag(store_.get(), storage::kCounterTag));
  for (const auto& [key, value] : AggregateKeys(store_.get())) {
    EXPECT_THAT(storage::DecodeCounterPageKey(key), IsOk());
  }
  EXPECT_EQ(ReadCounters(store_.get()), counts);
  // The answers of a fresh recount from the log.
  {
    storage::StoreOptions o;
    o.path = dir_.Sub("fresh");
    o.create_if_missing = true;
    o.sync_writes = false;
    absl::StatusOr<std::unique_ptr<storage::Store>> fresh = storage::Store::Open(o);
    ASSERT_THAT(fresh, IsOk());
    ASSERT_THAT(RecountFromLog(*schema_, *metrics_, store_.get(), fresh->get()), IsOk());
    for (const std::vector<std::string>& group_by :
         std::vector<std::vector<std::string>>{{}, {"region"}, {"region", "sex"}}) {
      ExpectSameAnswers(Answers(store_.get(), *metrics_, group_by),
                        Answers(fresh->get(), *metrics_, group_by));
    }
  }
  // Counting goes on in pages, and the next start does nothing.
  Attach();
  ASSERT_THAT(Push("dev-1", 2, {Case(5, Id(4), "northern", "northern_1", "female", t + 4)}),
              IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 2);
  absl::StatusOr<PrepareOutcome> again =
      PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount"));
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->rebuilt);
  EXPECT_FALSE(again->removed_counter_keys);
  absl::StatusOr<VerifyOutcome> verified =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
  ASSERT_THAT(verified, IsOk());
  EXPECT_THAT(verified->differences, ::testing::IsEmpty());
}

// A change of a DIMENSION field no metric reads, or of a record of a type
// no metric counts, writes nothing to the aggregates.
TEST_F(CountersTest, FieldsAndRecordsNoMetricReadsWriteNothing) {
  const std::string case_id = Id(1);
  ASSERT_THAT(
      Push("dev-1", 1, {Case(1, case_id, "northern", "northern_1", "female", kStartMicros)}),
      IsOk());
  const std::vector<std::pair<std::string, std::string>> first = AggregateKeys(store_.get());
  const Counts counts = ReadCounters(store_.get());

  absl::StatusOr<sync::PushResult> r =
      Push("dev-1", 2,
           {Upsert(Id(2), case_id, case_id, "case_registration", {{"nationality", Enum("refugee")}},
                   0, HlcAt(kStartMicros + 1)),
            Upsert(Id(3), case_id, Id(3), "incident",
                   {{"place_type", Enum("school")},
                    {"incident_date", sync::testing::DateValue(2026, 11, 1)}},
                   0, HlcAt(kStartMicros + 2))});
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->result.results_size(), 2);
  for (const v1::ChangeResult& cr : r->result.results()) {
    EXPECT_EQ(cr.outcome(), v1::CHANGE_OUTCOME_APPLIED) << cr.detail();
  }

  EXPECT_EQ(AggregateKeys(store_.get()), first);
  EXPECT_EQ(ReadCounters(store_.get()), counts);
}

// The counters keep no copy of the values they count (issue #15, layout
// v2): after every kind of change, the aggregates hold counters only, and
// each equals a recount from the log.
TEST_F(CountersTest, EveryKindOfChangeLeavesCountersOnlyAndEqualToARecount) {
  int64_t t = kStartMicros;
  const std::string concern = Id(101), referral = Id(102);
  // New cases, a child record of each counted type, in one batch.
  ASSERT_THAT(Push("dev-1", 1,
                   {Case(1, Id(1), "northern", "northern_1", "female", t),
                    Case(2, Id(2), "northern", "northern_2", "male", t + 1),
                    Concern(3, Id(1), concern, "neglect", t + 2),
                    Upsert(Id(4), Id(1), referral, "referral",
                           {{"service_type", Enum("health")},
                            {"referral_status", Enum("pending")},
                            {"referral_date", sync::testing::DateValue(2026, 11, 3)}},
                           0, HlcAt(t + 3))}),
              IsOk());
  // Edits of dimension fields of the registration and of the child.
  ASSERT_THAT(
      Push("dev-1", 2,
           {Upsert(Id(5), Id(1), Id(1), "case_registration",
                   {{"age_band", Enum("10_14")}, {"priority", Enum("low")}}, 1, HlcAt(t + 4)),
            Upsert(Id(6), Id(1), concern, "protection_concern",
                   {{"concern_category", Enum("child_labour")}}, 3, HlcAt(t + 5))}),
      IsOk());
  // dev-1 deletes the concern; dev-2, which never saw the delete, writes
  // it: the concern comes back (a record-level conflict).
  v1::RecordChange del;
  del.set_change_id(Id(7));
  del.set_case_id(Id(1));
  del.set_record_id(concern);
  del.set_record_type("protection_concern");
  del.set_kind(v1::CHANGE_KIND_DELETE);
  del.set_base_version(6);
  *del.mutable_hlc() = HlcAt(t + 6);
  ASSERT_THAT(Push("dev-1", 3, {del}), IsOk());
  EXPECT_EQ(Count("protection_concerns", 'S', 0,
                  {"northern", "northern_1", "child_labour", "female", "10_14"}),
            0);
  absl::StatusOr<sync::PushResult> revived =
      Push("dev-2", 1,
           {Upsert(Id(8), Id(1), concern, "protection_concern",
                   {{"concern_category", Enum("trafficking")}}, 3, HlcAt(t + 7))});
  ASSERT_THAT(revived, IsOk());
  EXPECT_TRUE(revived->result.results(0).revived());
  // Two devices change the second case's sex from the same base: a field
  // conflict, which a supervisor resolves by taking the losing value.
  ASSERT_THAT(Push("dev-1", 4,
                   {Upsert(Id(9), Id(2), Id(2), "case_registration", {{"sex", Enum("other")}}, 2,
                           HlcAt(t + 9))}),
              IsOk());
  ASSERT_THAT(Push("dev-2", 2,
                   {Upsert(Id(10), Id(2), Id(2), "case_registration", {{"sex", Enum("unknown")}}, 2,
                           HlcAt(t + 8))}),
              IsOk());
  int resolved = 0;
  for (const auto& [key, value] : sync::testing::DumpCf(store_.get(), storage::Cf::kConflicts)) {
    v1::ConflictRecord rec;
    if (!rec.ParseFromString(value) || rec.status() != v1::CONFLICT_STATUS_OPEN ||
        rec.case_id() != Id(2)) {
      continue;
    }
    ASSERT_THAT(ingest_->ResolveConflict(StaffActor{"sup"}, rec.id(), rec.case_id(),
                                         sync::Ingest::Resolution::kTakeLosing, 0, v1::FieldValue(),
                                         CurrentConflictVersion(rec)),
                IsOk());
    ++resolved;
  }
  EXPECT_EQ(resolved, 1);
  // A transfer, a closure and a reopening.
  ASSERT_THAT(
      ingest_->TransferCase(StaffActor{"sup"}, Id(1), "eastern", "eastern_1", "officer-1", 0),
      IsOk());
  ASSERT_THAT(ingest_->SetCaseStatus(StaffActor{"sup"}, Id(2), true, "goals_achieved", 0), IsOk());
  ASSERT_THAT(ingest_->SetCaseStatus(StaffActor{"sup"}, Id(2), false, "", 0), IsOk());

  for (const auto& [key, value] : AggregateKeys(store_.get())) {
    EXPECT_THAT(storage::DecodeCounterPageKey(key), IsOk());
  }
  EXPECT_FALSE(HasCaseStates(store_.get()));
  EXPECT_EQ(Count("protection_concerns", 'S', 0,
                  {"eastern", "eastern_1", "trafficking", "female", "10_14"}),
            1);
  EXPECT_EQ(Count("open_cases", 'S', 0, {"northern", "northern_2", "unknown", "5_9", "high"}), 1);
  EXPECT_EQ(Only(ReadCounters(store_.get()), 'S'), RecountStocks(store_.get(), *schema_, config_));
  absl::StatusOr<VerifyOutcome> verified =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
  ASSERT_THAT(verified, IsOk());
  EXPECT_THAT(verified->differences, ::testing::IsEmpty());
  EXPECT_GT(verified->counters, 0u);
}

// A store from before layout v2 holds a per-case copy of the counted
// values beside the counters: the first start deletes them, once, and
// counts stay as they were.
TEST_F(CountersTest, RetiredCaseStatesAreRemovedAtStartAndCountsStay) {
  const int64_t t = kStartMicros;
  ASSERT_THAT(PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount")), IsOk());
  ASSERT_THAT(Push("dev-1", 1,
                   {Case(1, Id(1), "northern", "northern_1", "female", t),
                    Case(2, Id(2), "eastern", "eastern_1", "male", t + 1),
                    Concern(3, Id(1), Id(101), "neglect", t + 2)}),
              IsOk());
  const Counts counts = ReadCounters(store_.get());
  ASSERT_FALSE(counts.empty());
  // What such a store holds: one AggregateCaseState per case.
  {
    storage::WriteBatch wb;
    for (int c : {1, 2}) {
      absl::StatusOr<Uuid> id = ParseUuid(Id(c));
      ASSERT_THAT(id, IsOk());
      v1::AggregateCaseState state;
      v1::AggregateCaseState::Record* r = state.add_records();
      r->set_record_id(Id(c));
      r->set_record_type("case_registration");
      r->set_exists(true);
      (*r->mutable_values())["region"] = c == 1 ? "northern" : "eastern";
      wb.Put(storage::Cf::kAggregates,
             storage::KeyBuilder().U8(storage::kRetiredAggregateCaseTag).Uuid(*id).Finish(),
             state.SerializeAsString());
    }
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }
  ASSERT_TRUE(HasCaseStates(store_.get()));

  absl::StatusOr<PrepareOutcome> started =
      PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount"));

  ASSERT_THAT(started, IsOk());
  EXPECT_TRUE(started->removed_case_states);
  EXPECT_FALSE(started->rebuilt);  // the same metrics: counts are kept
  EXPECT_FALSE(HasCaseStates(store_.get()));
  EXPECT_EQ(ReadCounters(store_.get()), counts);
  // Counting goes on from there.
  Attach();
  ASSERT_THAT(Push("dev-1", 2, {Case(4, Id(3), "northern", "northern_1", "female", t + 3)}),
              IsOk());
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 2);
  absl::StatusOr<VerifyOutcome> verified =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
  ASSERT_THAT(verified, IsOk());
  EXPECT_THAT(verified->differences, ::testing::IsEmpty());
  // The next start finds nothing to delete.
  absl::StatusOr<PrepareOutcome> again =
      PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount"));
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->removed_case_states);
  EXPECT_FALSE(again->rebuilt);
}

// Devices pushing at the same time share commit groups: the counter
// observer sums the group's units, whose edits touch the same cases.
TEST_F(CountersTest, ConcurrentPushesSharingGroupsCountEveryChangeOnce) {
  static const char* kSex[] = {"female", "male", "other", "unknown"};
  static const char* kAge[] = {"0_4", "5_9", "10_14", "15_17"};
  constexpr int kDevices = 8, kBatches = 8, kCases = 12;
  std::vector<v1::RecordChange> created;
  for (int i = 0; i < kCases; ++i) {
    created.push_back(Case(i + 1, Id(1000 + i), i % 2 ? "northern" : "eastern",
                           i % 2 ? "northern_1" : "eastern_1", "female", kStartMicros));
  }
  ASSERT_THAT(Push("dev-0", 1, created), IsOk());
  // Every batch edits dimension fields of the same few cases and adds a
  // concern, with HLCs that interleave across devices.
  std::vector<std::vector<std::vector<v1::RecordChange>>> batches(kDevices);
  int change_no = 10000;
  for (int d = 0; d < kDevices; ++d) {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<v1::RecordChange> batch;
      for (int c = 0; c < 6; ++c) {
        const std::string case_id = Id(1000 + static_cast<int>(random_.Uniform(kCases)));
        const int64_t micros = kStartMicros + 1000000 * (1 + b * kDevices + d);
        if (c == 5) {
          batch.push_back(Concern(change_no, case_id, Id(500000 + change_no), "neglect", micros));
          ++change_no;
          continue;
        }
        batch.push_back(Upsert(
            Id(change_no++), case_id, case_id, "case_registration",
            {{"sex", Enum(kSex[random_.Uniform(4)])}, {"age_band", Enum(kAge[random_.Uniform(4)])}},
            random_.Uniform(4), HlcAt(micros)));
      }
      batches[d].push_back(std::move(batch));
    }
  }
  const sync::IngestStats before = ingest_->Stats();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int d = 0; d < kDevices; ++d) {
    threads.emplace_back([&, d] {
      const std::string device = absl::StrFormat("dev-%d", d + 1);
      for (int b = 0; b < kBatches; ++b) {
        if (!Push(device, static_cast<uint64_t>(b + 1), batches[d][b]).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  const sync::IngestStats after = ingest_->Stats();
  // The point of the test: some groups held more than one unit.
  ASSERT_GT(after.units - before.units, after.groups - before.groups);

  EXPECT_EQ(Only(ReadCounters(store_.get()), 'S'), RecountStocks(store_.get(), *schema_, config_));
  // The same counters as a rebuild from the state gives.
  const Counts incremental = ReadCounters(store_.get());
  {
    storage::WriteBatch wb;
    wb.Delete(storage::Cf::kMetadata, storage::EncodeMetadataKey(kCountersFingerprintName));
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }
  ASSERT_THAT(PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount")), IsOk());
  EXPECT_EQ(ReadCounters(store_.get()), incremental);
  EXPECT_FALSE(HasCaseStates(store_.get()));
}

// The randomized workload.
// Flows and stocks do not depend on batching: every change moves the
// counters as if it had been committed alone (issue "aggregates that are
// right and safe to publish", R1-R5).
class BatchingTest : public CountersTest {
 protected:
  // Pushes `changes` on a fresh store, as one batch or one change per
  // batch, checks (when `verify`) that a recount from the log gives every
  // counter as kept, and returns the whole aggregates column family:
  // every non-empty page's bytes (a page whose counters all moved back to
  // 0 may be stored empty or be absent).
  std::map<std::string, std::string> Run(const std::string& name, bool batched,
                                         const std::vector<v1::RecordChange>& changes,
                                         bool verify = true) {
    CloseStore();
    EXPECT_THAT(OpenStore(name + (batched ? "-batched" : "-single")), IsOk());
    Attach();
    if (batched) {
      EXPECT_THAT(Push("dev-1", 1, changes), IsOk());
    } else {
      for (size_t i = 0; i < changes.size(); ++i) {
        EXPECT_THAT(Push("dev-1", i + 1, {changes[i]}), IsOk());
      }
    }
    if (verify) {
      absl::StatusOr<VerifyOutcome> verified =
          VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
      EXPECT_THAT(verified, IsOk());
      if (verified.ok()) {
        EXPECT_THAT(verified->differences, ::testing::IsEmpty()) << name;
      }
    }
    return Aggregates();
  }
  std::map<std::string, std::string> Aggregates() {
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : sync::testing::DumpCf(store_.get(), storage::Cf::kAggregates)) {
      // Counter pages only: the counters keep no per-case copy of values.
      EXPECT_THAT(storage::DecodeCounterPageKey(key), IsOk());
      if (!value.empty()) out[key] = value;
    }
    return out;
  }
  // Asserts batched == single and returns the counters. Only the batched
  // run is recounted (the two must be equal), and only when `verify`: each
  // recount costs a scratch store.
  Counts Both(const std::string& name, const std::vector<v1::RecordChange>& changes,
              bool verify = true) {
    auto batched = Run(name, true, changes, verify);
    Counts counts = ReadCounters(store_.get());
    auto single = Run(name, false, changes, false);
    EXPECT_EQ(batched, single) << name;
    EXPECT_EQ(counts, ReadCounters(store_.get())) << name;
    return counts;
  }
  static v1::FieldValue Yes() {
    v1::FieldValue v;
    v.set_bool_value(true);
    return v;
  }
  static int64_t At(int y, int m, int d) {
    return absl::ToUnixMicros(absl::FromCivil(absl::CivilDay(y, m, d), absl::UTCTimeZone()) +
                              absl::Hours(10));
  }
  v1::RecordChange Status(int change, const std::string& case_id, bool close, uint64_t base,
                          int64_t micros) {
    v1::RecordChange c;
    c.set_change_id(Id(change));
    c.set_case_id(case_id);
    c.set_record_id(case_id);
    c.set_record_type("case_registration");
    c.set_kind(close ? v1::CHANGE_KIND_CLOSE_CASE : v1::CHANGE_KIND_REOPEN_CASE);
    c.set_base_version(base);
    *c.mutable_hlc() = HlcAt(micros);
    return c;
  }
  v1::RecordChange District(int change, const std::string& case_id, const std::string& d,
                            uint64_t base, int64_t micros) {
    return Upsert(Id(change), case_id, case_id, "case_registration", {{"district", Enum(d)}}, base,
                  HlcAt(micros));
  }
  v1::RecordChange Referral(int change, const std::string& case_id, const std::string& record,
                            const std::string& status, uint64_t base, int64_t micros) {
    return Upsert(Id(change), case_id, record, "referral",
                  {{"referral_date", sync::testing::DateValue(2026, 11, 20)},
                   {"service_type", Enum("health")},
                   {"referred_to", sync::testing::Str("Clinic")},
                   {"referral_status", Enum(status)},
                   {"consent_obtained", Yes()}},
                  base, HlcAt(micros));
  }
  v1::RecordChange DeleteRecord(int change, const std::string& case_id, const std::string& record,
                                const std::string& type, uint64_t base, int64_t micros) {
    v1::RecordChange c;
    c.set_change_id(Id(change));
    c.set_case_id(case_id);
    c.set_record_id(record);
    c.set_record_type(type);
    c.set_kind(v1::CHANGE_KIND_DELETE);
    c.set_base_version(base);
    *c.mutable_hlc() = HlcAt(micros);
    return c;
  }
  int64_t Closures(const Counts& c, char g, int64_t micros) {
    const absl::Time t = absl::FromUnixMicros(micros);
    const uint32_t period = g == 'W' ? WeekNumber(t) : MonthNumber(t);
    int64_t n = 0;
    for (const auto& [key, v] : c) {
      if (std::get<0>(key) == "closures" && std::get<1>(key) == g && std::get<2>(key) == period) {
        n += v;
      }
    }
    return n;
  }
  void SetUp() override {
    CountersTest::SetUp();
    clock_.Set(absl::FromUnixMicros(At(2026, 12, 20)));
  }
};

TEST_F(BatchingTest, R1AClosureIsCountedInTheWeekAndMonthOfTheClose) {
  const int64_t sun = At(2026, 11, 29), tue = At(2026, 12, 1);
  Counts c = Both("r1", {Case(1, Id(1), "northern", "northern_1", "female", sun),
                         Status(2, Id(1), true, 1, tue)});
  EXPECT_EQ(Closures(c, 'W', tue), 1);
  EXPECT_EQ(Closures(c, 'M', tue), 1);
  EXPECT_EQ(Closures(c, 'W', sun), 0);
  EXPECT_EQ(Closures(c, 'M', sun), 0);
}

TEST_F(BatchingTest, R2ACloseThenReopenCountsTheClosure) {
  const int64_t t = At(2026, 12, 1);
  Counts c = Both("r2", {Case(1, Id(1), "northern", "northern_1", "female", t),
                         Status(2, Id(1), true, 1, t + 1), Status(3, Id(1), false, 2, t + 2)});
  EXPECT_EQ(Closures(c, 'M', t), 1);
  EXPECT_EQ(Count("open_cases", 'S', 0, kOpenCell), 1);
}

TEST_F(BatchingTest, R3ClosedReopenedAndClosedAgainIsTwoClosures) {
  const int64_t t = At(2026, 12, 1);
  Counts c = Both("r3", {Case(1, Id(1), "northern", "northern_1", "female", t),
                         Status(2, Id(1), true, 1, t + 1), Status(3, Id(1), false, 2, t + 2),
                         Status(4, Id(1), true, 3, t + 3)});
  EXPECT_EQ(Closures(c, 'M', t), 2);
}

TEST_F(BatchingTest, R4ARegistrationCountsWhereTheCaseWasRegistered) {
  const int64_t t = At(2026, 12, 1);
  Counts c = Both("r4", {Case(1, Id(1), "northern", "northern_1", "female", t),
                         District(2, Id(1), "northern_2", 1, t + 1)});
  const uint32_t month = MonthNumber(absl::FromUnixMicros(t));
  EXPECT_EQ((c[{"registrations", 'M', month, {"northern", "northern_1", "female", "5_9"}}]), 1);
  EXPECT_EQ((c[{"registrations", 'M', month, {"northern", "northern_2", "female", "5_9"}}]), 0);
}

TEST_F(BatchingTest, R5AReferralDeletedAndWrittenAgainCountsEachTime) {
  const int64_t t = At(2026, 12, 1);
  // dev-1 registers, refers, deletes the referral; in a second batch
  // dev-2 (which never saw the delete) writes it again: it comes back.
  std::vector<v1::RecordChange> first = {Case(1, Id(1), "northern", "northern_1", "female", t),
                                         Referral(2, Id(1), Id(101), "pending", 0, t + 1),
                                         DeleteRecord(3, Id(1), Id(101), "referral", 2, t + 2)};
  std::vector<std::map<std::string, std::string>> ends;
  for (bool batched : {true, false}) {
    Run("r5", batched, first, /*verify=*/false);
    ASSERT_THAT(Push("dev-2", 1, {Referral(4, Id(1), Id(101), "accepted", 2, t + 3)}), IsOk());
    ends.push_back(Aggregates());
  }
  absl::StatusOr<VerifyOutcome> verified =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
  ASSERT_THAT(verified, IsOk());
  EXPECT_THAT(verified->differences, ::testing::IsEmpty());
  EXPECT_EQ(ends[0], ends[1]);
  int64_t referrals = 0;
  for (const auto& [key, v] : ReadCounters(store_.get())) {
    if (std::get<0>(key) == "referrals" && std::get<1>(key) == 'M') referrals += v;
  }
  EXPECT_EQ(referrals, 2);
}

TEST_F(BatchingTest, RandomChangeSequencesCountTheSameBatchedAndSingle) {
  static const char* kDistricts[] = {"northern_1", "northern_2"};
  static const char* kReferral[] = {"pending", "accepted", "declined"};
  for (int round = 0; round < 12; ++round) {
    // Positions are the same in both runs: every change is accepted.
    std::vector<v1::RecordChange> changes;
    int64_t t = At(2026, 10, 1 + static_cast<int>(random_.Uniform(20)));
    changes.push_back(Case(1, Id(1), "northern", "northern_1", "female", t));
    uint64_t district = 1, status = 1, referral = 0;
    bool closed = false, referral_exists = false;
    for (int i = 0; i < 12; ++i) {
      t += static_cast<int64_t>(random_.Uniform(4)) * 86400000000 + 1;
      const uint64_t pos = changes.size() + 1;
      const int change = 10 + i;
      switch (random_.Uniform(4)) {
        case 0:
          changes.push_back(District(change, Id(1), kDistricts[random_.Uniform(2)], district, t));
          district = pos;
          break;
        case 1:
          changes.push_back(Status(change, Id(1), !closed, status, t));
          closed = !closed;
          status = pos;
          break;
        case 2:
          changes.push_back(
              Referral(change, Id(1), Id(101), kReferral[random_.Uniform(3)], referral, t));
          referral = pos;
          referral_exists = true;
          break;
        default:
          if (!referral_exists) continue;
          changes.push_back(DeleteRecord(change, Id(1), Id(101), "referral", referral, t));
          referral_exists = false;
          // The device deleted it: it writes it again only as a new record.
          changes.push_back(Referral(change + 100, Id(1), Id(102 + i), "pending", 0, t + 1));
          break;
      }
    }
    Both(absl::StrFormat("random%d", round), changes, /*verify=*/round < 3);
    if (HasFailure()) {
      ADD_FAILURE() << "seed " << random_.seed() << " round " << round;
      return;
    }
  }
}

TEST_F(CountersTest, VerifyReportsACounterThatDiffersFromTheLog) {
  const int64_t t = kStartMicros;
  ASSERT_THAT(Push("dev-1", 1, {Case(1, Id(1), "northern", "northern_1", "female", t)}), IsOk());
  absl::StatusOr<VerifyOutcome> clean =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
  ASSERT_THAT(clean, IsOk());
  EXPECT_THAT(clean->differences, ::testing::IsEmpty());
  EXPECT_EQ(clean->entries, 1u);
  // A counter moved outside any commit.
  storage::WriteBatch wb;
  wb.Merge(storage::Cf::kAggregates, storage::EncodeCounterPageKey("open_cases", 'S', 0),
           storage::EncodeKeyedSums({{storage::EncodeCounterCell(kOpenCell), 1}}));
  ASSERT_THAT(store_->Commit(&wb), IsOk());

  absl::StatusOr<VerifyOutcome> v =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));

  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->differences.size(), 1u);
  EXPECT_EQ(v->differences[0].metric, "open_cases");
  EXPECT_EQ(v->differences[0].cell, kOpenCell);
  EXPECT_EQ(v->differences[0].live, 2);
  EXPECT_EQ(v->differences[0].recount, 1);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("verify")));
}

TEST_F(CountersTest, RandomWorkloadCountersEqualABruteForceRecount) {
  static const char* kRegions[] = {"central", "northern", "eastern", "western"};
  static const char* kSex[] = {"female", "male", "other", "unknown"};
  static const char* kAge[] = {"0_4", "5_9", "10_14", "15_17"};
  static const char* kPriority[] = {"high", "medium", "low"};
  static const char* kConcern[] = {"neglect", "child_labour", "trafficking", "physical_violence"};
  static const char* kService[] = {"health", "psychosocial", "legal_aid", "shelter"};
  constexpr int kDevices = 8, kBatches = 25, kChangesPerBatch = 20;
  int change_no = 100000;
  std::vector<std::string> cases;
  std::map<std::string, std::vector<std::string>> concerns, referrals;
  std::vector<uint64_t> sequence(kDevices, 0);
  int64_t hlc = kStartMicros - int64_t{40} * 86400 * 1000000;  // six weeks of work
  auto pick = [&](auto& arr) { return arr[random_.Uniform(sizeof(arr) / sizeof(arr[0]))]; };
  int pushed = 0, staff = 0;
  std::map<v1::ChangeOutcome, int> outcomes;
  for (int round = 0; round < kDevices * kBatches; ++round) {
    const int d = static_cast<int>(random_.Uniform(kDevices));
    if (sequence[d] >= static_cast<uint64_t>(kBatches)) continue;
    std::vector<v1::RecordChange> batch;
    for (int c = 0; c < kChangesPerBatch; ++c) {
      hlc += 1000000 * static_cast<int64_t>(1 + random_.Uniform(1200));
      const int kind = static_cast<int>(random_.Uniform(100));
      if (cases.empty() || (kind < 12 && cases.size() < 150)) {
        const std::string id = Id(static_cast<int>(1000 + cases.size()));
        const std::string region = pick(kRegions);
        v1::RecordChange ch = Case(change_no++, id, region, region + "_1", pick(kSex), hlc);
        batch.push_back(ch);
        cases.push_back(id);
        continue;
      }
      const std::string case_id = cases[random_.Uniform(cases.size())];
      if (kind < 45) {
        std::vector<std::pair<std::string, v1::FieldValue>> fields;
        if (random_.Uniform(2)) fields.push_back({"sex", Enum(pick(kSex))});
        if (random_.Uniform(2)) fields.push_back({"age_band", Enum(pick(kAge))});
        if (random_.Uniform(3) == 0) {
          fields.push_back({"district", Enum(std::string(pick(kRegions)) + "_2")});
        }
        if (fields.empty()) fields.push_back({"priority", Enum(pick(kPriority))});
        // Base versions from a small range: some current, many stale.
        batch.push_back(Upsert(Id(change_no++), case_id, case_id, "case_registration", fields,
                               random_.Uniform(3) == 0 ? 0 : random_.Uniform(200), HlcAt(hlc)));
      } else if (kind < 65) {
        auto& pool = concerns[case_id];
        std::string rec = (pool.empty() || random_.Uniform(2)) ? Id(500000 + change_no)
                                                               : pool[random_.Uniform(pool.size())];
        pool.push_back(rec);
        batch.push_back(Concern(change_no++, case_id, rec, pick(kConcern), hlc));
      } else if (kind < 78) {
        auto& pool = referrals[case_id];
        std::string rec = Id(700000 + change_no);
        pool.push_back(rec);
        batch.push_back(Upsert(Id(change_no++), case_id, rec, "referral",
                               {{"service_type", Enum(pick(kService))},
                                {"referral_status", Enum("pending")},
                                {"referral_date", sync::testing::DateValue(2026, 11, 3)}},
                               0, HlcAt(hlc)));
      } else if (kind < 86) {
        auto& pool = concerns[case_id];
        if (pool.empty()) continue;
        v1::RecordChange del;
        del.set_change_id(Id(change_no++));
        del.set_case_id(case_id);
        del.set_record_id(pool[random_.Uniform(pool.size())]);
        del.set_record_type("protection_concern");
        del.set_kind(v1::CHANGE_KIND_DELETE);
        del.set_base_version(random_.Uniform(2) ? 0 : random_.Uniform(300));
        *del.mutable_hlc() = HlcAt(hlc);
        batch.push_back(del);
      } else {
        v1::RecordChange st;
        st.set_change_id(Id(change_no++));
        st.set_case_id(case_id);
        st.set_record_id(case_id);
        st.set_record_type("case_registration");
        st.set_kind(random_.Uniform(2) ? v1::CHANGE_KIND_CLOSE_CASE : v1::CHANGE_KIND_REOPEN_CASE);
        st.set_base_version(random_.Uniform(2) ? 0 : random_.Uniform(300));
        *st.mutable_hlc() = HlcAt(hlc);
        batch.push_back(st);
      }
    }
    clock_.Advance(absl::Seconds(30));
    absl::StatusOr<sync::PushResult> r = Push(absl::StrFormat("dev-%d", d), ++sequence[d], batch);
    ASSERT_THAT(r, IsOk());
    for (const v1::ChangeResult& cr : r->result.results()) ++outcomes[cr.outcome()];
    ++pushed;
    // Supervisors act between pushes: transfers, closures, resolutions.
    const std::string case_id = cases[random_.Uniform(cases.size())];
    switch (random_.Uniform(5)) {
      case 0: {
        const std::string to = pick(kRegions);
        if (ingest_->TransferCase(StaffActor{"sup"}, case_id, to, to + "_1", "officer-1", 0).ok()) {
          ++staff;
        }
        break;
      }
      case 1: {
        const bool close = random_.Uniform(2) == 0;
        if (ingest_->SetCaseStatus(StaffActor{"sup"}, case_id, close, close ? "other" : "", 0)
                .ok()) {
          ++staff;
        }
        break;
      }
      case 2: {
        // Resolve one open conflict, taking the losing value half the time.
        for (const auto& [key, value] :
             sync::testing::DumpCf(store_.get(), storage::Cf::kConflicts)) {
          v1::ConflictRecord rec;
          if (!rec.ParseFromString(value) || rec.status() != v1::CONFLICT_STATUS_OPEN) continue;
          auto resolution = random_.Uniform(2) ? sync::Ingest::Resolution::kTakeLosing
                                               : sync::Ingest::Resolution::kKeepCurrent;
          if (ingest_
                  ->ResolveConflict(StaffActor{"sup"}, rec.id(), rec.case_id(), resolution, 0,
                                    v1::FieldValue(), CurrentConflictVersion(rec))
                  .ok()) {
            ++staff;
          }
          break;
        }
        break;
      }
      default:
        break;
    }
  }
  std::cout << "pushed " << pushed << " batches (" << cases.size() << " cases), " << staff
            << " supervisor changes; outcomes:";
  for (const auto& [o, n] : outcomes) std::cout << " " << v1::ChangeOutcome_Name(o) << "=" << n;
  std::cout << "\n";
  EXPECT_GT(outcomes[v1::CHANGE_OUTCOME_CONFLICT] + outcomes[v1::CHANGE_OUTCOME_SUPERSEDED], 0);

  const Counts all = ReadCounters(store_.get());
  const Counts recount = RecountStocks(store_.get(), *schema_, config_);
  EXPECT_FALSE(recount.empty());
  EXPECT_EQ(Only(all, 'S'), recount);

  // Flows: registrations and referrals are one per record ever created, in
  // the week and month of the change that created it.
  std::map<std::pair<std::string, char>, int64_t> flow_totals;
  for (const auto& [k, v] : all) {
    if (std::get<1>(k) != 'S') flow_totals[{std::get<0>(k), std::get<1>(k)}] += v;
  }
  int64_t registration_records = 0, referral_records = 0;
  for (const auto& [key, value] : sync::testing::DumpCf(store_.get(), storage::Cf::kRecords)) {
    absl::StatusOr<storage::RecordsKey> k = storage::DecodeRecordsKey(key);
    if (!k.ok() || !k->is_state) continue;
    v1::RecordHeader h;
    {
      sync::RecordState state;
      ASSERT_TRUE(sync::DecodeRecordState(value, store_->names(), &state).ok());
      h = state.header;
    }
    if (h.record_type() == "case_registration") ++registration_records;
    if (h.record_type() == "referral") ++referral_records;
  }
  EXPECT_GT(referral_records, 0);
  EXPECT_EQ(flow_totals[std::make_pair(std::string("registrations"), 'W')], registration_records);
  EXPECT_EQ(flow_totals[std::make_pair(std::string("registrations"), 'M')], registration_records);
  EXPECT_EQ(flow_totals[std::make_pair(std::string("referrals"), 'W')], referral_records);
  EXPECT_EQ(flow_totals[std::make_pair(std::string("closures"), 'W')],
            flow_totals[std::make_pair(std::string("closures"), 'M')]);
  int64_t closed_now = 0;
  for (const auto& [k, v] : recount) {
    if (std::get<0>(k) == "closed_cases") closed_now += v;
  }
  EXPECT_GE(flow_totals[std::make_pair(std::string("closures"), 'M')], closed_now);

  // A rebuild from the log (as after a change of the metrics file) gives
  // every counter as it was kept live, flow history included.
  {
    storage::WriteBatch wb;
    wb.Delete(storage::Cf::kMetadata, storage::EncodeMetadataKey(kCountersFingerprintName));
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }
  absl::StatusOr<VerifyOutcome> verified =
      VerifyCounters(store_.get(), *metrics_, *schema_, dir_.Sub("verify"));
  ASSERT_THAT(verified, IsOk());
  EXPECT_THAT(verified->differences, ::testing::IsEmpty());
  EXPECT_EQ(verified->counters, all.size());
  absl::StatusOr<PrepareOutcome> rebuilt =
      PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount"));
  ASSERT_THAT(rebuilt, IsOk());
  EXPECT_TRUE(rebuilt->rebuilt);
  EXPECT_FALSE(HasCaseStates(store_.get()));
  const Counts after = ReadCounters(store_.get());
  EXPECT_EQ(Only(after, 'S'), recount);
  auto per_period = [](const Counts& c, const std::string& metric) {
    std::map<std::pair<char, uint32_t>, int64_t> out;
    for (const auto& [k, v] : c) {
      if (std::get<0>(k) == metric && std::get<1>(k) != 'S')
        out[{std::get<1>(k), std::get<2>(k)}] += v;
    }
    return out;
  };
  EXPECT_EQ(per_period(after, "registrations"), per_period(all, "registrations"));
  EXPECT_EQ(per_period(after, "referrals"), per_period(all, "referrals"));
  EXPECT_EQ(after, all);
  // A second start with the same metrics does nothing.
  absl::StatusOr<PrepareOutcome> again =
      PrepareCounters(store_.get(), *metrics_, *schema_, dir_.Sub("recount"));
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->rebuilt);
}

}  // namespace
}  // namespace fieldsync::aggregates
