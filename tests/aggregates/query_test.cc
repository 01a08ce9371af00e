// Queries over counters in a real RocksDB: sums, totals, periods, scoping,
// errors, and disclosure control of every answer, checked by the
// independent attacker of tests/aggregates/attacker.h.
#include "aggregates/query.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "aggregates/export.h"
#include "aggregates/periods.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "tests/aggregates/attacker.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::aggregates {
namespace {

using ::fieldsync::aggregates::testing::Attacker;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kMetrics[] = R"pb(
  schema_id: "child_protection"
  metrics {
    name: "open_cases"
    kind: METRIC_KIND_STOCK
    record_type: "case_registration"
    where { dimension: "case_status" values: "open" }
    dimensions: "region"
    dimensions: "sex"
    dimensions: "age_band"
  }
  metrics {
    name: "registrations"
    kind: METRIC_KIND_FLOW
    record_type: "case_registration"
    dimensions: "region"
    dimensions: "district"
  }
)pb";

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    schema_ = sync::testing::LoadDefaultSchemaOrDie();
    absl::StatusOr<v1::MetricsConfig> config = ParseMetricsConfig(kMetrics);
    ASSERT_THAT(config, IsOk());
    absl::StatusOr<std::unique_ptr<Metrics>> m = Metrics::Create(*config, schema_.get());
    ASSERT_THAT(m, IsOk());
    metrics_ = *std::move(m);
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    o.sync_writes = false;
    absl::StatusOr<std::unique_ptr<storage::Store>> s = storage::Store::Open(o);
    ASSERT_THAT(s, IsOk());
    store_ = *std::move(s);
  }

  // Adds `count` to the counter of `values` in its page.
  void Put(const std::string& metric, uint8_t g, uint32_t period, std::vector<std::string> values,
           int64_t count) {
    storage::WriteBatch wb;
    wb.Merge(storage::Cf::kAggregates, storage::EncodeCounterPageKey(metric, g, period),
             storage::EncodeKeyedSums({{storage::EncodeCounterCell(values), count}}));
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }
  // Writes `value` as is at `key` of the aggregates.
  void PutRaw(const std::string& key, const std::string& value) {
    storage::WriteBatch wb;
    wb.Put(storage::Cf::kAggregates, key, value);
    ASSERT_THAT(store_->Commit(&wb), IsOk());
  }

  absl::StatusOr<v1::QueryResponse> Run(const v1::QueryRequest& r, Scope scope = AllRegions()) {
    return RunQuery(store_.get(), *metrics_, r, scope, absl::CivilDay(2026, 11, 27));
  }
  static Scope AllRegions() {
    Scope s;
    s.all_regions = true;
    return s;
  }
  static Scope Regions(std::initializer_list<std::string> r) {
    Scope s;
    s.regions.insert(r.begin(), r.end());
    return s;
  }
  static v1::QueryRequest Request(const std::string& metric, std::vector<std::string> group_by) {
    v1::QueryRequest r;
    r.set_metric(metric);
    for (const std::string& g : group_by) r.add_group_by(g);
    return r;
  }
  // The cell with these coordinates ("*" = total) in period `period`.
  static const v1::AggregateCell* Cell(const v1::QueryResponse& r, std::vector<std::string> coords,
                                       const std::string& period = "") {
    for (const v1::AggregateCell& c : r.cells()) {
      if (c.period() != period || c.coordinates_size() != static_cast<int>(coords.size())) continue;
      bool match = true;
      for (size_t i = 0; i < coords.size(); ++i) {
        const v1::CellCoordinate& x = c.coordinates(static_cast<int>(i));
        match = match && (coords[i] == "*" ? x.total() : (!x.total() && x.value() == coords[i]));
      }
      if (match) return &c;
    }
    return nullptr;
  }

  std::unique_ptr<sync::Schema> schema_;
  std::unique_ptr<Metrics> metrics_;
  fieldsync::testing::ScopedTempDir dir_;
  std::unique_ptr<storage::Store> store_;
};

TEST_F(QueryTest, StockCountsAreSummedOverDimensionsNotGroupedBy) {
  Put("open_cases", kStockGranularity, 0, {"northern", "female", "5_9"}, 20);
  Put("open_cases", kStockGranularity, 0, {"northern", "female", "0_4"}, 10);
  Put("open_cases", kStockGranularity, 0, {"northern", "male", "5_9"}, 30);
  Put("open_cases", kStockGranularity, 0, {"eastern", "male", "5_9"}, 7);
  absl::StatusOr<v1::QueryResponse> r = Run(Request("open_cases", {"region", "sex"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind(), v1::METRIC_KIND_STOCK);
  EXPECT_TRUE(r->periods().empty());
  // 4 regions + total, 4 sexes + total.
  EXPECT_EQ(r->cells_size(), 5 * 5);
  EXPECT_EQ(Cell(*r, {"northern", "female"})->count(), 30);
  EXPECT_EQ(Cell(*r, {"northern", "male"})->count(), 30);
  EXPECT_EQ(Cell(*r, {"northern", "*"})->count(), 60);
  EXPECT_EQ(Cell(*r, {"eastern", "male"})->count(), 7);
  EXPECT_EQ(Cell(*r, {"*", "*"})->count(), 67);
  EXPECT_EQ(Cell(*r, {"central", "other"})->count(), 0);
  EXPECT_FALSE(Cell(*r, {"central", "other"})->suppressed());
}

TEST_F(QueryTest, SmallCountsAreSuppressedWithComplementsNotZeroed) {
  Put("open_cases", kStockGranularity, 0, {"northern", "female", "5_9"}, 3);
  Put("open_cases", kStockGranularity, 0, {"northern", "male", "5_9"}, 30);
  Put("open_cases", kStockGranularity, 0, {"eastern", "male", "5_9"}, 40);
  Put("open_cases", kStockGranularity, 0, {"eastern", "female", "5_9"}, 12);
  absl::StatusOr<v1::QueryResponse> r = Run(Request("open_cases", {"region", "sex"}));
  ASSERT_THAT(r, IsOk());
  const v1::AggregateCell* small = Cell(*r, {"northern", "female"});
  EXPECT_TRUE(small->suppressed());
  EXPECT_FALSE(small->has_count());
  // Its row and column each lose another cell, or the totals give it away.
  EXPECT_TRUE(Cell(*r, {"eastern", "female"})->suppressed() ||
              Cell(*r, {"*", "female"})->suppressed());
  EXPECT_EQ(r->min_cell_count(), 5u);
}

TEST_F(QueryTest, FlowsArePerPeriodWithDhis2Labels) {
  Put("registrations", kWeekGranularity, 202647, {"northern", "northern_1"}, 6);
  Put("registrations", kWeekGranularity, 202648, {"northern", "northern_1"}, 8);
  Put("registrations", kMonthGranularity, 202610, {"northern", "northern_1"}, 9);
  Put("registrations", kMonthGranularity, 202611, {"northern", "northern_1"}, 14);
  Put("registrations", kMonthGranularity, 202611, {"northern", "northern_2"}, 6);
  v1::QueryRequest weeks = Request("registrations", {"district"});
  weeks.set_granularity(v1::GRANULARITY_WEEK);
  weeks.mutable_from()->set_year(2026);
  weeks.mutable_from()->set_month(11);
  weeks.mutable_from()->set_day(16);
  absl::StatusOr<v1::QueryResponse> r = Run(weeks);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->periods(), ::testing::ElementsAre("2026W47", "2026W48"));
  EXPECT_EQ(Cell(*r, {"northern_1"}, "2026W47")->count(), 6);
  EXPECT_EQ(Cell(*r, {"*"}, "2026W48")->count(), 8);

  v1::QueryRequest quarter = Request("registrations", {});
  quarter.set_granularity(v1::GRANULARITY_QUARTER);
  r = Run(quarter);
  ASSERT_THAT(r, IsOk());
  // Default range: the 12 quarters up to today's.
  EXPECT_EQ(r->periods_size(), 12);
  EXPECT_EQ(r->periods(11), "2026Q4");
  EXPECT_EQ(Cell(*r, {}, "2026Q4")->count(), 9 + 14 + 6);
}

TEST_F(QueryTest, FiltersAndScopeRestrictTheAnswer) {
  Put("open_cases", kStockGranularity, 0, {"northern", "female", "5_9"}, 20);
  Put("open_cases", kStockGranularity, 0, {"eastern", "female", "5_9"}, 50);
  Put("open_cases", kStockGranularity, 0, {"eastern", "male", "10_14"}, 60);
  // An analyst of the eastern region sees only it, without asking.
  absl::StatusOr<v1::QueryResponse> r =
      Run(Request("open_cases", {"region"}), Regions({"eastern"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->regions(), ::testing::ElementsAre("eastern"));
  EXPECT_EQ(r->cells_size(), 2);  // eastern and the total
  EXPECT_EQ(Cell(*r, {"*"})->count(), 110);
  EXPECT_EQ(Cell(*r, {"northern"}), nullptr);
  // A filter narrows further.
  v1::QueryRequest f = Request("open_cases", {"sex"});
  v1::DimensionFilter* age = f.add_filters();
  age->set_dimension("age_band");
  age->add_values("5_9");
  r = Run(f, Regions({"eastern"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(Cell(*r, {"*"})->count(), 50);
  // Asking for another region is refused, naming it.
  v1::QueryRequest other = Request("open_cases", {});
  v1::DimensionFilter* region = other.add_filters();
  region->set_dimension("region");
  region->add_values("northern");
  EXPECT_THAT(Run(other, Regions({"eastern"})),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("northern")));
  EXPECT_THAT(Run(Request("open_cases", {}), Scope()),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(QueryTest, CountersOfManyCellsShareOnePagePerPeriod) {
  Put("registrations", kMonthGranularity, 202611, {"northern", "northern_1"}, 9);
  Put("registrations", kMonthGranularity, 202611, {"northern", "northern_2"}, 6);
  Put("registrations", kMonthGranularity, 202611, {"northern", "northern_1"}, 5);
  Put("registrations", kMonthGranularity, 202610, {"eastern", "eastern_1"}, 7);
  EXPECT_EQ(sync::testing::DumpCf(store_.get(), storage::Cf::kAggregates).size(), 2u);
  v1::QueryRequest months = Request("registrations", {"district"});
  months.mutable_from()->set_year(2026);
  months.mutable_from()->set_month(10);
  months.mutable_from()->set_day(1);
  absl::StatusOr<v1::QueryResponse> r = Run(months);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->periods(), ::testing::ElementsAre("202610", "202611"));
  EXPECT_EQ(Cell(*r, {"northern_1"}, "202611")->count(), 14);
  EXPECT_EQ(Cell(*r, {"northern_2"}, "202611")->count(), 6);
  EXPECT_EQ(Cell(*r, {"eastern_1"}, "202610")->count(), 7);
  EXPECT_EQ(Cell(*r, {"*"}, "202610")->count(), 7);
}

// A page the store holds damaged is kDataLoss (the server raises an
// alert), never a crash nor a count.
TEST_F(QueryTest, AMalformedPageIsDataLoss) {
  const std::string page = storage::EncodeCounterPageKey("open_cases", kStockGranularity, 0);
  const std::string good =
      storage::EncodeKeyedSums({{storage::EncodeCounterCell({"northern", "female", "5_9"}), 20},
                                {storage::EncodeCounterCell({"eastern", "male", "0_4"}), 7}});
  const v1::QueryRequest request = Request("open_cases", {"region"});
  PutRaw(page, good);
  ASSERT_THAT(Run(request), IsOk());

  // A truncated value, a member that is not a cell, a key that is not a
  // page key inside the metric's range.
  PutRaw(page, good.substr(0, good.size() - 1));
  EXPECT_THAT(Run(request), StatusIs(absl::StatusCode::kDataLoss));
  PutRaw(page, storage::EncodeKeyedSums({{std::string("a\0\x02", 3), 5}}));
  EXPECT_THAT(Run(request), StatusIs(absl::StatusCode::kDataLoss));
  PutRaw(page, good);
  PutRaw(page + "x", good);
  EXPECT_THAT(Run(request), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(QueryTest, EveryByteFlipOfAPageGivesAnAnswerOrDataLoss) {
  const std::string page = storage::EncodeCounterPageKey("open_cases", kStockGranularity, 0);
  const std::string good =
      storage::EncodeKeyedSums({{storage::EncodeCounterCell({"northern", "female", "5_9"}), 20},
                                {storage::EncodeCounterCell({"eastern", "male", "0_4"}), 300}});
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    PutRaw(page, bad);
    absl::StatusOr<v1::QueryResponse> r = Run(Request("open_cases", {"region", "sex"}));
    if (!r.ok()) {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss)) << "byte " << i;
    }
  }
}

TEST_F(QueryTest, BadRequestsGetAReason) {
  EXPECT_THAT(Run(Request("no_such", {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown metric")));
  EXPECT_THAT(Run(Request("open_cases", {"district"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("district")));
  EXPECT_THAT(Run(Request("open_cases", {"sex", "sex"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(Run(Request("open_cases", {"region", "sex", "age_band", "region", "sex"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 4")));
  v1::QueryRequest bad_date = Request("registrations", {});
  bad_date.mutable_to()->set_year(2026);
  bad_date.mutable_to()->set_month(2);
  bad_date.mutable_to()->set_day(30);
  EXPECT_THAT(Run(bad_date), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to")));
  v1::QueryRequest empty_filter = Request("open_cases", {});
  empty_filter.add_filters()->set_dimension("sex");
  EXPECT_THAT(Run(empty_filter), StatusIs(absl::StatusCode::kInvalidArgument));
  // A region the schema does not know is named with the known ones, for
  // every caller (before any scope check).
  v1::QueryRequest atlantis = Request("open_cases", {});
  v1::DimensionFilter* region = atlantis.add_filters();
  region->set_dimension("region");
  region->add_values("atlantis");
  EXPECT_THAT(Run(atlantis), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("unknown region \"atlantis\"; the deployment's "
                                                "regions are: central, northern, eastern, "
                                                "western")));
  EXPECT_THAT(Run(atlantis, Regions({"eastern"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("atlantis")));
  EXPECT_THAT(ParseDate("2026-13-01", "--from"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDate("26-1-1", "--from"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDate("2026-02-28", "--from"), IsOk());
}

// The disclosure property over the whole query path: random sparse
// counters, random group-bys and filters; in no answer is a count from 1
// to k-1 published, and for every withheld one the attacker's range (LPs
// over the published entries of its period's table and non-negativity)
// reaches 0 and k.
TEST_F(QueryTest, NoAnswerRevealsASmallCount) {
  fieldsync::testing::SeededRandom random(7);
  static const char* kRegion[] = {"central", "northern", "eastern", "western"};
  static const char* kSex[] = {"female", "male", "other", "unknown"};
  static const char* kAge[] = {"0_4", "5_9", "10_14", "15_17", "unknown"};
  std::map<std::vector<std::string>, int64_t> truth;  // (region, sex, age) -> count
  for (int i = 0; i < 120; ++i) {
    int64_t count = random.Uniform(3) == 0 ? 1 + random.Uniform(4) : 5 + random.Uniform(30);
    std::vector<std::string> key = {kRegion[random.Uniform(4)], kSex[random.Uniform(4)],
                                    kAge[random.Uniform(5)]};
    Put("open_cases", kStockGranularity, 0, key, count);
    truth[key] += count;
  }
  const std::vector<std::string> dims = {"region", "sex", "age_band"};
  int answers = 0, withheld = 0, small = 0;
  for (int q = 0; q < 40; ++q) {
    std::vector<size_t> group;
    for (size_t d = 0; d < dims.size(); ++d) {
      if (random.Uniform(2)) group.push_back(d);
    }
    std::vector<std::string> group_names;
    for (size_t d : group) group_names.push_back(dims[d]);
    v1::QueryRequest r = Request("open_cases", group_names);
    std::set<std::string> ages(std::begin(kAge), std::end(kAge));
    if (random.Uniform(2)) {
      v1::DimensionFilter* f = r.add_filters();
      f->set_dimension("age_band");
      ages = {kAge[random.Uniform(5)], kAge[random.Uniform(5)]};
      for (const std::string& a : ages) f->add_values(a);
    }
    const bool all = random.Uniform(2);
    const std::set<std::string> regions =
        all ? std::set<std::string>(std::begin(kRegion), std::end(kRegion))
            : std::set<std::string>{"northern", "western"};
    absl::StatusOr<v1::QueryResponse> a =
        Run(r, all ? AllRegions() : Regions({"northern", "western"}));
    ASSERT_THAT(a, IsOk());
    ++answers;
    // Rebuild the table's shape from the answer, in its order (values of a
    // dimension in order of first appearance, the total last).
    std::vector<std::vector<std::string>> values(group.size());
    for (const v1::AggregateCell& c : a->cells()) {
      for (size_t d = 0; d < group.size(); ++d) {
        const v1::CellCoordinate& x = c.coordinates(static_cast<int>(d));
        if (!x.total() &&
            std::find(values[d].begin(), values[d].end(), x.value()) == values[d].end()) {
          values[d].push_back(x.value());
        }
      }
    }
    std::vector<size_t> sizes;
    for (const auto& v : values) sizes.push_back(v.size());
    std::vector<bool> suppressed;
    std::vector<int64_t> published, counts;
    for (const v1::AggregateCell& c : a->cells()) {
      int64_t n = 0;  // the true count, from what was put
      for (const auto& [key, count] : truth) {
        bool in = regions.contains(key[0]) && ages.contains(key[2]);
        for (size_t d = 0; d < group.size() && in; ++d) {
          const v1::CellCoordinate& x = c.coordinates(static_cast<int>(d));
          in = x.total() || x.value() == key[group[d]];
        }
        if (in) n += count;
      }
      counts.push_back(n);
      if (!c.suppressed()) {
        EXPECT_TRUE(c.count() == 0 || c.count() >= 5) << "published count " << c.count();
        EXPECT_EQ(c.count(), n);
      }
      suppressed.push_back(c.suppressed());
      published.push_back(c.suppressed() ? 0 : c.count());
      withheld += c.suppressed() ? 1 : 0;
      small += n >= 1 && n < 5;
    }
    size_t expected = 1;
    for (size_t s : sizes) expected *= s + 1;
    ASSERT_EQ(suppressed.size(), expected);
    EXPECT_THAT(Attacker(sizes, suppressed, published).Disclosed(counts, 5), ::testing::IsEmpty())
        << "query " << q;
  }
  std::cout << "attacker checked " << answers << " answers, " << small << " small counts, "
            << withheld << " withheld cells\n";
  EXPECT_GT(small, 0);
}

TEST(ExportTest, CsvQuotesAndMarksSuppressedCells) {
  v1::QueryResponse r;
  r.set_metric("open_cases");
  r.add_group_by("district");
  v1::AggregateCell* a = r.add_cells();
  a->add_coordinates()->set_value("north, \"old\" town");
  a->set_count(12);
  v1::AggregateCell* b = r.add_cells();
  b->add_coordinates()->set_value("=cmd()");
  b->set_suppressed(true);
  v1::AggregateCell* c = r.add_cells();
  c->add_coordinates()->set_total(true);
  c->set_count(30);
  std::string csv = ToCsv({r});
  EXPECT_THAT(
      csv,
      HasSubstr("open_cases,current,district,\"north, \"\"old\"\" town\",,,,,,,12,published\r\n"));
  EXPECT_THAT(csv, HasSubstr("open_cases,current,district,'=cmd(),,,,,,,,suppressed\r\n"));
  EXPECT_THAT(csv, HasSubstr("district,(total),,,,,,,30,published\r\n"));
}

TEST(ExportTest, Dhis2MappingIsValidated) {
  v1::MetricDef m;
  m.set_name("registrations");
  m.add_dimensions("region");
  m.add_dimensions("district");
  m.add_dimensions("sex");
  const std::vector<v1::MetricDef> defs = {m};
  const std::string good = R"({"orgUnitDimension": "district",
      "orgUnits": {"northern_1": "OuNorth0001"},
      "dataElements": [{"metric": "registrations", "dataElement": "DeRegistr01",
                        "categoryDimensions": ["sex"],
                        "categoryOptionCombos": {"female": "CocFemale01"}}]})";
  absl::StatusOr<Dhis2Mapping> mapping = ParseDhis2Mapping(good, defs);
  ASSERT_THAT(mapping, IsOk());
  EXPECT_EQ(mapping->data_elements[0].category_dimensions, std::vector<std::string>{"sex"});
  for (
      const std::string& bad : {
          std::string("not json"),
          std::string(
              R"({"orgUnitDimension": "district", "orgUnits": {}, "dataElements": [{"metric": "nope", "dataElement": "DeRegistr01", "categoryOptionCombos": {}}]})"),
          std::string(
              R"({"orgUnitDimension": "district", "orgUnits": {"x": "short"}, "dataElements": []})"),
          std::string(
              R"({"orgUnitDimension": "village", "orgUnits": {}, "dataElements": [{"metric": "registrations", "dataElement": "DeRegistr01", "categoryOptionCombos": {}}]})"),
          std::string(
              R"({"orgUnitDimension": "district", "orgUnits": {}, "extra": 1, "dataElements": []})"),
          std::string(good.substr(0, good.size() / 2)),
      }) {
    EXPECT_THAT(ParseDhis2Mapping(bad, defs), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_TRUE(IsDhis2Uid("HllvX50cXC0"));
  EXPECT_FALSE(IsDhis2Uid("1llvX50cXC0"));
  EXPECT_FALSE(IsDhis2Uid("HllvX50cXC"));

  // Published non-zero cells become data values; totals, zeros and
  // withheld cells do not; a value missing from the mapping is an error.
  v1::QueryResponse r;
  r.set_metric("registrations");
  auto add = [&](const std::string& ou, const std::string& sex, int64_t n, bool suppressed) {
    v1::AggregateCell* c = r.add_cells();
    c->set_period("202611");
    if (ou == "*")
      c->add_coordinates()->set_total(true);
    else
      c->add_coordinates()->set_value(ou);
    if (sex == "*")
      c->add_coordinates()->set_total(true);
    else
      c->add_coordinates()->set_value(sex);
    if (suppressed)
      c->set_suppressed(true);
    else
      c->set_count(n);
  };
  add("northern_1", "female", 12, false);
  add("northern_1", "*", 14, false);
  add("", "female", 6, false);
  Dhis2Skipped skipped;
  absl::StatusOr<std::string> json =
      ToDhis2(*mapping, {r}, v1::GRANULARITY_MONTH, absl::CivilDay(2026, 11, 27), &skipped);
  ASSERT_THAT(json, IsOk());
  EXPECT_THAT(*json, HasSubstr("\"value\": \"12\""));
  EXPECT_THAT(*json, ::testing::Not(HasSubstr("\"14\"")));
  EXPECT_EQ(skipped.unset_org_unit, 1);
  add("northern_1", "male", 9, false);
  EXPECT_THAT(ToDhis2(*mapping, {r}, v1::GRANULARITY_MONTH, absl::CivilDay(2026, 11, 27), &skipped),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("male")));
}

}  // namespace
}  // namespace fieldsync::aggregates
