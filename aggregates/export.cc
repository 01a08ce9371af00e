#include "aggregates/export.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "aggregates/periods.h"
#include "nlohmann/json.hpp"

namespace fieldsync::aggregates {
namespace {

using json = nlohmann::json;

std::string CsvField(std::string_view v) {
  std::string s(v);
  if (!s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@')) s = "'" + s;
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string CoordinateText(const v1::CellCoordinate& c) {
  if (c.total()) return "(total)";
  if (c.value().empty()) return "(not set)";
  return c.value();
}

template <typename... Args>
absl::Status Invalid(const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrFormat(fmt, args...));
}

absl::StatusOr<std::string> Uid(const json& obj, const char* key, bool required,
                                std::string_view where) {
  if (!obj.contains(key)) {
    if (!required) return std::string();
    return Invalid("DHIS2 mapping: %s has no \"%s\"", std::string(where), key);
  }
  if (!obj[key].is_string() || !IsDhis2Uid(obj[key].get<std::string>())) {
    return Invalid(
        "DHIS2 mapping: %s \"%s\" is not a DHIS2 UID (a letter and 10 letters or "
        "digits)",
        std::string(where), key);
  }
  return obj[key].get<std::string>();
}

absl::StatusOr<std::map<std::string, std::string>> UidMap(const json& obj, const char* key,
                                                          std::string_view where) {
  if (!obj.contains(key) || !obj[key].is_object()) {
    return Invalid("DHIS2 mapping: %s needs an object \"%s\"", std::string(where), key);
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : obj[key].items()) {
    if (!v.is_string() || !IsDhis2Uid(v.get<std::string>())) {
      return Invalid("DHIS2 mapping: %s %s[\"%s\"] is not a DHIS2 UID", std::string(where), key, k);
    }
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

std::string ToCsv(const std::vector<v1::QueryResponse>& answers) {
  std::string out =
      "metric,period,dimension_1,value_1,dimension_2,value_2,dimension_3,value_3,dimension_4,"
      "value_4,count,status\r\n";
  for (const v1::QueryResponse& a : answers) {
    for (const v1::AggregateCell& cell : a.cells()) {
      std::vector<std::string> fields = {
          CsvField(a.metric()), cell.period().empty() ? "current" : CsvField(cell.period())};
      for (int d = 0; d < 4; ++d) {
        if (d < cell.coordinates_size() && d < a.group_by_size()) {
          fields.push_back(CsvField(a.group_by(d)));
          fields.push_back(CsvField(CoordinateText(cell.coordinates(d))));
        } else {
          fields.push_back("");
          fields.push_back("");
        }
      }
      fields.push_back(cell.suppressed() || !cell.has_count() ? "" : absl::StrCat(cell.count()));
      fields.push_back(cell.suppressed() ? "suppressed" : "published");
      absl::StrAppend(&out, absl::StrJoin(fields, ","), "\r\n");
    }
  }
  return out;
}

bool IsDhis2Uid(std::string_view s) {
  if (s.size() != 11) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(s[0])) return false;
  for (char c : s) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

absl::StatusOr<Dhis2Mapping> ParseDhis2Mapping(std::string_view text,
                                               const std::vector<v1::MetricDef>& metrics) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("DHIS2 mapping: not a JSON object");
  }
  for (const auto& [k, v] : root.items()) {
    if (k != "comment" && k != "dataSet" && k != "attributeOptionCombo" &&
        k != "orgUnitDimension" && k != "orgUnits" && k != "dataElements") {
      return Invalid("DHIS2 mapping: unknown key \"%s\"", k);
    }
  }
  Dhis2Mapping m;
  {
    absl::StatusOr<std::string> v = Uid(root, "dataSet", false, "the mapping");
    if (!v.ok()) return v.status();
    m.data_set = *v;
    v = Uid(root, "attributeOptionCombo", false, "the mapping");
    if (!v.ok()) return v.status();
    m.attribute_option_combo = *v;
  }
  if (!root.contains("orgUnitDimension") || !root["orgUnitDimension"].is_string()) {
    return absl::InvalidArgumentError(
        "DHIS2 mapping: needs \"orgUnitDimension\", a dimension name");
  }
  m.org_unit_dimension = root["orgUnitDimension"].get<std::string>();
  {
    absl::StatusOr<std::map<std::string, std::string>> ous =
        UidMap(root, "orgUnits", "the mapping");
    if (!ous.ok()) return ous.status();
    m.org_units = *std::move(ous);
  }
  if (!root.contains("dataElements") || !root["dataElements"].is_array()) {
    return absl::InvalidArgumentError("DHIS2 mapping: needs an array \"dataElements\"");
  }
  for (const json& de : root["dataElements"]) {
    if (!de.is_object() || !de.contains("metric") || !de["metric"].is_string()) {
      return absl::InvalidArgumentError("DHIS2 mapping: every data element needs a \"metric\"");
    }
    Dhis2DataElement out;
    out.metric = de["metric"].get<std::string>();
    const std::string where = absl::StrFormat("data element of metric %s", out.metric);
    const v1::MetricDef* def = nullptr;
    for (const v1::MetricDef& md : metrics) {
      if (md.name() == out.metric) def = &md;
    }
    if (def == nullptr) return Invalid("DHIS2 mapping: unknown metric \"%s\"", out.metric);
    auto has_dim = [&](const std::string& d) {
      return std::find(def->dimensions().begin(), def->dimensions().end(), d) !=
             def->dimensions().end();
    };
    if (!has_dim(m.org_unit_dimension)) {
      return Invalid("DHIS2 mapping: metric %s has no dimension %s (orgUnitDimension)", out.metric,
                     m.org_unit_dimension);
    }
    absl::StatusOr<std::string> uid = Uid(de, "dataElement", true, where);
    if (!uid.ok()) return uid.status();
    out.data_element = *uid;
    if (de.contains("categoryDimensions")) {
      if (!de["categoryDimensions"].is_array()) {
        return Invalid("DHIS2 mapping: %s: categoryDimensions must be an array", where);
      }
      for (const json& d : de["categoryDimensions"]) {
        if (!d.is_string() || !has_dim(d.get<std::string>())) {
          return Invalid(
              "DHIS2 mapping: %s: a category dimension is not a dimension of the "
              "metric",
              where);
        }
        out.category_dimensions.push_back(d.get<std::string>());
      }
    }
    if (out.category_dimensions.size() + 1 > 4) {
      return Invalid("DHIS2 mapping: %s: at most 3 category dimensions", where);
    }
    absl::StatusOr<std::map<std::string, std::string>> cocs =
        UidMap(de, "categoryOptionCombos", where);
    if (!cocs.ok()) return cocs.status();
    out.category_option_combos = *std::move(cocs);
    m.data_elements.push_back(std::move(out));
  }
  return m;
}

std::vector<v1::QueryRequest> Dhis2Queries(const Dhis2Mapping& mapping,
                                           const v1::QueryRequest& period_template) {
  std::vector<v1::QueryRequest> out;
  for (const Dhis2DataElement& de : mapping.data_elements) {
    v1::QueryRequest q = period_template;
    q.set_metric(de.metric);
    q.clear_group_by();
    q.add_group_by(mapping.org_unit_dimension);
    for (const std::string& d : de.category_dimensions) q.add_group_by(d);
    out.push_back(std::move(q));
  }
  return out;
}

absl::StatusOr<std::string> ToDhis2(const Dhis2Mapping& mapping,
                                    const std::vector<v1::QueryResponse>& answers,
                                    v1::Granularity stock_granularity, absl::CivilDay today,
                                    Dhis2Skipped* skipped) {
  if (answers.size() != mapping.data_elements.size()) {
    return absl::InvalidArgumentError("DHIS2 export: one answer per data element is needed");
  }
  const std::string stock_period = PeriodOf(stock_granularity, today).label;
  json values = json::array();
  for (size_t i = 0; i < answers.size(); ++i) {
    const Dhis2DataElement& de = mapping.data_elements[i];
    for (const v1::AggregateCell& cell : answers[i].cells()) {
      if (cell.suppressed() || !cell.has_count() || cell.count() == 0) continue;
      bool total = false;
      for (const v1::CellCoordinate& c : cell.coordinates()) total = total || c.total();
      if (total || cell.coordinates_size() != static_cast<int>(de.category_dimensions.size() + 1)) {
        continue;
      }
      const std::string& ou_value = cell.coordinates(0).value();
      if (ou_value.empty()) {
        ++skipped->unset_org_unit;
        continue;
      }
      auto ou = mapping.org_units.find(ou_value);
      if (ou == mapping.org_units.end()) {
        return Invalid("DHIS2 mapping has no orgUnit for %s \"%s\"; add it to orgUnits",
                       mapping.org_unit_dimension, ou_value);
      }
      std::vector<std::string> combo;
      for (int d = 1; d < cell.coordinates_size(); ++d)
        combo.push_back(cell.coordinates(d).value());
      const std::string combo_key = absl::StrJoin(combo, ",");
      auto coc = de.category_option_combos.find(combo_key);
      if (coc == de.category_option_combos.end()) {
        return Invalid("DHIS2 mapping has no categoryOptionCombo \"%s\" for metric %s; add it",
                       combo_key, de.metric);
      }
      json v = {{"dataElement", de.data_element},
                {"period", cell.period().empty() ? stock_period : cell.period()},
                {"orgUnit", ou->second},
                {"categoryOptionCombo", coc->second},
                {"value", absl::StrCat(cell.count())}};
      if (!mapping.attribute_option_combo.empty()) {
        v["attributeOptionCombo"] = mapping.attribute_option_combo;
      }
      values.push_back(std::move(v));
    }
  }
  json root = json::object();
  if (!mapping.data_set.empty()) root["dataSet"] = mapping.data_set;
  root["dataValues"] = std::move(values);
  return root.dump(2) + "\n";
}

}  // namespace fieldsync::aggregates
