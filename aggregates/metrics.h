// The metrics of a deployment (DESIGN §9): the metrics file parsed,
// validated against the schema and indexed for the counters and queries.
#ifndef FIELDSYNC_AGGREGATES_METRICS_H_
#define FIELDSYNC_AGGREGATES_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/aggregates.pb.h"
#include "sync/case_dimensions.h"
#include "sync/schema.h"

namespace fieldsync::aggregates {

inline constexpr uint32_t kDefaultMinCellCount = 5;
inline constexpr int kMaxGroupBy = 4;
inline constexpr int kMaxMetricDimensions = 8;

// An aggregate dimension of a metric, resolved against the schema.
struct Dimension {
  // The aggregate dimension's name (schema.aggregate_dimensions).
  std::string name;
  // Where its value lives.
  std::string record_type;
  std::string field;
  // The value is the case registration's, for a metric over another
  // record type.
  bool from_case = false;
  // The values it can take, in schema order: an enum's values, or "false"
  // and "true"; empty for open types (strings, numbers, dates). "" (not
  // set) is always possible and not listed.
  std::vector<std::string> domain;
};

// A filter of a metric ("where"): the dimension's value must be one of
// `values`.
struct Condition {
  Dimension dimension;
  absl::flat_hash_set<std::string> values;
};

struct Metric {
  v1::MetricDef def;
  // The metric's dimensions in the order of its definition (and of its
  // counter keys).
  std::vector<Dimension> dimensions;
  std::vector<Condition> where;
  // Index in `dimensions` of the region dimension.
  size_t region_index = 0;

  bool is_flow() const { return def.kind() == v1::METRIC_KIND_FLOW; }
  // Index in `dimensions` of the dimension named `name`; -1 when absent.
  int IndexOf(std::string_view name) const;
};

// Parses a metrics file (protobuf text, or JSON when it starts with '{').
// kInvalidArgument naming the line and column of a syntax error.
absl::StatusOr<v1::MetricsConfig> ParseMetricsConfig(std::string_view text);

// The validated metrics of a deployment. Immutable, so thread-safe.
class Metrics {
 public:
  // Validates `config` against `schema` (not owned; must outlive this).
  // kInvalidArgument naming the first problem: schema_id differs from the
  // schema's, a bad or duplicate metric name, kind unset, an unknown
  // record type, an unknown dimension or one that is neither of the record
  // type nor of the case registration, a dimension twice, more than
  // kMaxMetricDimensions, no region dimension, a filter with no values or
  // a value outside an enum's values, min_cell_count 1.
  static absl::StatusOr<std::unique_ptr<Metrics>> Create(v1::MetricsConfig config,
                                                         const sync::Schema* schema);

  const v1::MetricsConfig& config() const { return config_; }
  const std::vector<Metric>& metrics() const { return metrics_; }
  // nullptr when absent.
  const Metric* Find(std::string_view name) const;
  // k: counts from 1 to k-1 are suppressed.
  uint32_t min_cell_count() const { return min_cell_count_; }
  // The name of the aggregate dimension holding the case's region.
  const std::string& region_dimension() const { return region_dimension_; }
  const sync::Schema& schema() const { return *schema_; }
  // Identifies what the counters were built from: hex SHA-256 over the
  // deterministic serialization of the metrics (k excluded: it changes
  // answers, not counters). Stored with the counters.
  const std::string& fingerprint() const { return fingerprint_; }
  // Every record type some metric reads, with the fields of it read (as a
  // dimension or in a condition), and the registration fields metrics over
  // other record types read: what the counters ask the ingest for. The
  // case registration is always there: other records take its values.
  const sync::DimensionNeeds& reads() const { return read_; }

 private:
  Metrics() = default;

  v1::MetricsConfig config_;
  const sync::Schema* schema_ = nullptr;
  std::vector<Metric> metrics_;
  uint32_t min_cell_count_ = kDefaultMinCellCount;
  std::string region_dimension_;
  std::string fingerprint_;
  // Every record type a metric reads, with the fields of it read.
  sync::DimensionNeeds read_;
};

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_METRICS_H_
