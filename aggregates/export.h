// Exports of query answers (DESIGN §9): CSV for people and spreadsheets,
// and DHIS2 dataValueSets JSON through a mapping file. Both take answers
// as AggregateService.Query returned them, so suppression has already
// been applied: a withheld count is never in an export.
#ifndef FIELDSYNC_AGGREGATES_EXPORT_H_
#define FIELDSYNC_AGGREGATES_EXPORT_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "fieldsync/v1/aggregates.pb.h"

namespace fieldsync::aggregates {

// CSV (RFC 4180, CRLF line ends, a header line) of `answers`, one line per
// cell:
//   metric,period,dimension_1,value_1,...,dimension_4,value_4,count,status
// Unused dimension columns are empty; a total's value is "(total)", an
// unset value "(not set)"; count is empty and status "suppressed" for a
// withheld cell, status "published" otherwise. Stock periods read
// "current". Values that a spreadsheet would take for a formula (starting
// with = + - @) are prefixed with an apostrophe.
std::string ToCsv(const std::vector<v1::QueryResponse>& answers);

// A DHIS2 mapping file (JSON): which data element, category option combo
// and organisation unit each cell of a metric goes to.
//   {
//     "dataSet": UID (optional), "attributeOptionCombo": UID (optional),
//     "orgUnitDimension": dimension whose values are organisation units,
//     "orgUnits": { value: UID, ... },
//     "dataElements": [ { "metric": name, "dataElement": UID,
//         "categoryDimensions": [dimension, ...] (may be empty),
//         "categoryOptionCombos": { "v1,v2": UID, ... } } ]
//   }
// Keys of categoryOptionCombos join the categoryDimensions' values with
// commas ("" when there are none). A "comment" key is allowed anywhere at
// the top level.
struct Dhis2DataElement {
  std::string metric;
  std::string data_element;
  std::vector<std::string> category_dimensions;
  std::map<std::string, std::string> category_option_combos;
};
struct Dhis2Mapping {
  std::string data_set;
  std::string attribute_option_combo;
  std::string org_unit_dimension;
  std::map<std::string, std::string> org_units;
  std::vector<Dhis2DataElement> data_elements;
};

// True for a DHIS2 UID: a letter then 10 letters or digits.
bool IsDhis2Uid(std::string_view s);

// Parses and checks a mapping against the deployment's metrics.
// kInvalidArgument naming the first problem: bad JSON, a missing key, a
// value that is not a UID, an unknown metric, or a dimension that the
// metric does not have.
absl::StatusOr<Dhis2Mapping> ParseDhis2Mapping(std::string_view json,
                                               const std::vector<v1::MetricDef>& metrics);

// The query of each data element of `mapping`, in its order: grouped by
// the organisation unit dimension then the category dimensions.
std::vector<v1::QueryRequest> Dhis2Queries(const Dhis2Mapping& mapping,
                                           const v1::QueryRequest& period_template);

// What ToDhis2 left out.
struct Dhis2Skipped {
  // Published cells whose organisation unit dimension is not set.
  int unset_org_unit = 0;
};

// The dataValueSets JSON of `answers` (one per data element, as
// Dhis2Queries built them): one dataValue per published, non-zero,
// non-total cell (DHIS2 stores no zero unless its data element says zero
// is significant; a withheld cell is absent too, never zero).
// Stock metrics take the period of `stock_granularity` containing
// `today`. kInvalidArgument naming a value the mapping lacks.
absl::StatusOr<std::string> ToDhis2(const Dhis2Mapping& mapping,
                                    const std::vector<v1::QueryResponse>& answers,
                                    v1::Granularity stock_granularity, absl::CivilDay today,
                                    Dhis2Skipped* skipped);

}  // namespace fieldsync::aggregates

#endif  // FIELDSYNC_AGGREGATES_EXPORT_H_
