// The metrics file: parsing, validation against the schema with a reason
// for every mistake, and the shipped default.
#include "aggregates/metrics.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::aggregates {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { schema_ = sync::testing::LoadDefaultSchemaOrDie(); }
  absl::Status Check(const std::string& text) {
    absl::StatusOr<v1::MetricsConfig> c = ParseMetricsConfig(text);
    if (!c.ok()) return c.status();
    return Metrics::Create(*c, schema_.get()).status();
  }
  std::unique_ptr<sync::Schema> schema_;
};

constexpr char kHead[] = "schema_id: \"child_protection\"\n";

TEST_F(MetricsTest, TheShippedMetricsAreValid) {
  const char* src = std::getenv("FIELDSYNC_SOURCE_DIR");
  std::string text = fieldsync::testing::ReadFileOrDie(
      std::string(src == nullptr ? "." : src) + "/deploy/metrics/child_protection.textproto");
  absl::StatusOr<v1::MetricsConfig> c = ParseMetricsConfig(text);
  ASSERT_THAT(c, IsOk());
  absl::StatusOr<std::unique_ptr<Metrics>> m = Metrics::Create(*c, schema_.get());
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ((*m)->min_cell_count(), 5u);
  EXPECT_EQ((*m)->region_dimension(), "region");
  const Metric* concerns = (*m)->Find("protection_concerns");
  ASSERT_NE(concerns, nullptr);
  // Region comes from the case; the category from the concern itself.
  EXPECT_TRUE(concerns->dimensions[concerns->IndexOf("region")].from_case);
  EXPECT_FALSE(concerns->dimensions[concerns->IndexOf("concern_category")].from_case);
  EXPECT_EQ((*m)->fingerprint().size(), 64u);
}

// What the counters ask the ingest for: the fields each record type's
// metrics read, and the registration fields metrics over other records
// take from their case (a change of priority moves no concern).
TEST_F(MetricsTest, TheShippedMetricsReadTheirFieldsAndShareTheCaseLevelOnes) {
  const char* src = std::getenv("FIELDSYNC_SOURCE_DIR");
  absl::StatusOr<v1::MetricsConfig> c = ParseMetricsConfig(fieldsync::testing::ReadFileOrDie(
      std::string(src == nullptr ? "." : src) + "/deploy/metrics/child_protection.textproto"));
  ASSERT_THAT(c, IsOk());
  absl::StatusOr<std::unique_ptr<Metrics>> m = Metrics::Create(*c, schema_.get());
  ASSERT_THAT(m, IsOk());

  const sync::DimensionNeeds& reads = (*m)->reads();

  using Fields = absl::flat_hash_set<std::string>;
  EXPECT_EQ(reads.fields.at("case_registration"),
            (Fields{"region", "district", "sex", "age_band", "priority", "case_status"}));
  EXPECT_EQ(reads.fields.at("protection_concern"), Fields{"concern_category"});
  EXPECT_EQ(reads.fields.at("referral"), Fields{"service_type"});
  EXPECT_FALSE(reads.fields.contains("incident"));
  EXPECT_EQ(reads.shared_case_fields,
            (Fields{"region", "district", "sex", "age_band", "case_status"}));
}

TEST_F(MetricsTest, TheFingerprintFollowsWhatIsCountedNotDescriptionsOrK) {
  auto fp = [&](const std::string& text) {
    auto c = ParseMetricsConfig(text);
    auto m = Metrics::Create(*c, schema_.get());
    return (*m)->fingerprint();
  };
  std::string base = std::string(kHead) +
                     "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                     "\"case_registration\" dimensions: \"region\" }";
  EXPECT_EQ(fp(base), fp(base + " min_cell_count: 10"));
  EXPECT_EQ(fp(base), fp(std::string(kHead) +
                         "metrics { name: \"a\" description: \"x\" kind: METRIC_KIND_STOCK "
                         "record_type: \"case_registration\" dimensions: \"region\" }"));
  EXPECT_NE(fp(base), fp(std::string(kHead) +
                         "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                         "\"case_registration\" dimensions: \"region\" dimensions: \"sex\" }"));
}

TEST_F(MetricsTest, EveryMistakeIsNamed) {
  const std::string ok_metric =
      "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: \"case_registration\" "
      "dimensions: \"region\" }";
  struct Case {
    std::string text;
    std::string says;
  } cases[] = {
      {"schema_id: \"other\"\n" + ok_metric, "schema"},
      {std::string(kHead) + ok_metric + ok_metric, "duplicate metric a"},
      {std::string(kHead) + "metrics { name: \"Bad\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"region\" }",
       "not a valid metric name"},
      {std::string(kHead) + "metrics { name: \"a\" record_type: \"case_registration\" "
                            "dimensions: \"region\" }",
       "kind"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_FLOW record_type: "
                            "\"nope\" dimensions: \"region\" }",
       "unknown record type"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"sex\" }",
       "must include the region"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"region\" dimensions: "
                            "\"given_name\" }",
       "not an aggregate dimension"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"region\" dimensions: "
                            "\"referral_service\" }",
       "referral_service"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"region\" dimensions: "
                            "\"region\" }",
       "twice"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"region\" where { dimension: "
                            "\"case_status\" values: \"pending\" } }",
       "never takes"},
      {std::string(kHead) + "metrics { name: \"a\" kind: METRIC_KIND_STOCK record_type: "
                            "\"case_registration\" dimensions: \"region\" where { dimension: "
                            "\"case_status\" } }",
       "no values"},
      {std::string(kHead) + "min_cell_count: 1 " + ok_metric, "min_cell_count 1"},
      {std::string(kHead) + "metrics { name: \"a\" kind: 7 }", "kind"},
      {std::string(kHead) + "metrics { nme: \"a\" }", "line 2"},
      {"{\"schema_id\": 3}", "JSON"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Check(c.text), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.says)))
        << c.text;
  }
  EXPECT_THAT(Check(std::string(kHead) + ok_metric), IsOk());
}

}  // namespace
}  // namespace fieldsync::aggregates
