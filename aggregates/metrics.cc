#include "aggregates/metrics.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/proto_text.h"
#include "common/status_macros.h"
#include "crypto/hash.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fieldsync::aggregates {
namespace {

template <typename... Args>
absl::Status Invalid(const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrFormat(fmt, args...));
}

// Resolves dimension `name` for a metric over `record_type`.
absl::StatusOr<Dimension> Resolve(const sync::Schema& schema, const v1::MetricDef& m,
                                  std::string_view name) {
  const std::string& registration = schema.registration_type().name();
  for (const v1::AggregateDimension& d : schema.proto().aggregate_dimensions()) {
    if (d.name() != name) continue;
    if (d.record_type() != m.record_type() && d.record_type() != registration) {
      return Invalid(
          "metrics: metric %s uses dimension %s of record type %s; a metric over %s may use "
          "dimensions of %s or of %s",
          m.name(), d.name(), d.record_type(), m.record_type(), m.record_type(), registration);
    }
    Dimension out;
    out.name = d.name();
    out.record_type = d.record_type();
    out.field = d.field();
    out.from_case = d.record_type() != m.record_type();
    const v1::FieldDef* f = schema.FindField(d.record_type(), d.field());
    if (f->type() == v1::FIELD_TYPE_ENUM) {
      out.domain.assign(f->enum_values().begin(), f->enum_values().end());
    } else if (f->type() == v1::FIELD_TYPE_BOOL) {
      out.domain = {"false", "true"};
    }
    return out;
  }
  return Invalid("metrics: metric %s uses %s, which is not an aggregate dimension of the schema",
                 m.name(), std::string(name));
}

absl::Status CheckValues(const v1::MetricDef& m, const Dimension& d,
                         const v1::DimensionFilter& filter) {
  if (filter.values().empty()) {
    return Invalid("metrics: metric %s filters dimension %s on no values", m.name(), d.name);
  }
  if (d.domain.empty()) return absl::OkStatus();
  for (const std::string& v : filter.values()) {
    if (v.empty()) continue;
    if (std::find(d.domain.begin(), d.domain.end(), v) == d.domain.end()) {
      return Invalid("metrics: metric %s filters dimension %s on \"%s\", which it never takes",
                     m.name(), d.name, v);
    }
  }
  return absl::OkStatus();
}

}  // namespace

int Metric::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < dimensions.size(); ++i) {
    if (dimensions[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<v1::MetricsConfig> ParseMetricsConfig(std::string_view text) {
  v1::MetricsConfig config;
  RETURN_IF_ERROR(ParseTextOrJson(text, "metrics", &config));
  return config;
}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Create(v1::MetricsConfig config,
                                                         const sync::Schema* schema) {
  std::unique_ptr<Metrics> out(new Metrics());
  out->schema_ = schema;
  if (config.schema_id() != schema->proto().schema_id()) {
    return Invalid("metrics: written for schema \"%s\" but the deployment's schema is \"%s\"",
                   config.schema_id(), schema->proto().schema_id());
  }
  if (config.min_cell_count() == 1) {
    return Invalid("metrics: min_cell_count 1 would publish every count; use at least 2");
  }
  out->min_cell_count_ =
      config.min_cell_count() == 0 ? kDefaultMinCellCount : config.min_cell_count();
  const std::string& registration = schema->registration_type().name();
  for (const v1::AggregateDimension& d : schema->proto().aggregate_dimensions()) {
    if (d.record_type() == registration && d.field() == schema->region_field()) {
      out->region_dimension_ = d.name();
    }
  }
  if (out->region_dimension_.empty()) {
    return Invalid(
        "metrics: the schema has no aggregate dimension on %s.%s (the region), which "
        "every metric needs for scoping",
        registration, schema->region_field());
  }
  absl::flat_hash_set<std::string> names;
  for (const v1::MetricDef& m : config.metrics()) {
    if (!sync::IsSchemaName(m.name())) {
      return Invalid(
          "metrics: \"%s\" is not a valid metric name (1-64 of [a-z0-9_], starting "
          "with a letter)",
          m.name());
    }
    if (!names.insert(m.name()).second) return Invalid("metrics: duplicate metric %s", m.name());
    if (m.kind() != v1::METRIC_KIND_STOCK && m.kind() != v1::METRIC_KIND_FLOW) {
      return Invalid("metrics: metric %s needs kind METRIC_KIND_STOCK or METRIC_KIND_FLOW",
                     m.name());
    }
    if (schema->FindRecordType(m.record_type()) == nullptr) {
      return Invalid("metrics: metric %s counts unknown record type \"%s\"", m.name(),
                     m.record_type());
    }
    if (m.dimensions_size() > kMaxMetricDimensions) {
      return Invalid("metrics: metric %s has %d dimensions; at most %d", m.name(),
                     m.dimensions_size(), kMaxMetricDimensions);
    }
    Metric metric;
    metric.def = m;
    bool has_region = false;
    for (const std::string& name : m.dimensions()) {
      ASSIGN_OR_RETURN(Dimension d, Resolve(*schema, m, name));
      if (metric.IndexOf(name) >= 0) {
        return Invalid("metrics: metric %s lists dimension %s twice", m.name(), name);
      }
      if (name == out->region_dimension_) {
        has_region = true;
        metric.region_index = metric.dimensions.size();
      }
      metric.dimensions.push_back(std::move(d));
    }
    if (!has_region) {
      return Invalid(
          "metrics: metric %s must include the region dimension %s (it scopes "
          "analysts and supervisors)",
          m.name(), out->region_dimension_);
    }
    absl::flat_hash_set<std::string> filtered;
    for (const v1::DimensionFilter& f : m.where()) {
      ASSIGN_OR_RETURN(Dimension d, Resolve(*schema, m, f.dimension()));
      if (!filtered.insert(f.dimension()).second) {
        return Invalid("metrics: metric %s filters dimension %s twice", m.name(), f.dimension());
      }
      RETURN_IF_ERROR(CheckValues(m, d, f));
      Condition c;
      c.dimension = std::move(d);
      c.values.insert(f.values().begin(), f.values().end());
      metric.where.push_back(std::move(c));
    }
    out->metrics_.push_back(std::move(metric));
  }
  // The fingerprint covers what the counters depend on: the metrics, in
  // a deterministic serialization, without k.
  v1::MetricsConfig counted = config;
  counted.clear_min_cell_count();
  for (v1::MetricDef& m : *counted.mutable_metrics()) m.clear_description();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    counted.SerializeToCodedStream(&coded);
  }
  crypto::Sha256Digest digest = crypto::Sha256(std::string_view(bytes));
  out->fingerprint_ = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  const std::string& registration_type = schema->registration_type().name();
  out->read_.fields[registration_type];
  for (const Metric& m : out->metrics_) {
    out->read_.fields[m.def.record_type()];
    auto read = [&](const Dimension& d) {
      out->read_.fields[d.record_type].insert(d.field);
      if (d.from_case) out->read_.shared_case_fields.insert(d.field);
    };
    for (const Dimension& d : m.dimensions) read(d);
    for (const Condition& c : m.where) read(c.dimension);
  }
  out->config_ = std::move(config);
  return out;
}

const Metric* Metrics::Find(std::string_view name) const {
  for (const Metric& m : metrics_) {
    if (m.def.name() == name) return &m;
  }
  return nullptr;
}

}  // namespace fieldsync::aggregates
