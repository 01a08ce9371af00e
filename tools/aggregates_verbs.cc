#include "tools/aggregates_verbs.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "aggregates/export.h"
#include "aggregates/query.h"
#include "common/file_io.h"
#include "fieldsync/v1/aggregates.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "tools/client.h"

namespace fieldsync::tools {
namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

// Splits repeated and comma-separated values: --group-by a,b --group-by c.
std::vector<std::string> ListOption(const Args& args, const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& v : args.GetAll(name)) {
    for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
      out.emplace_back(part);
    }
  }
  return out;
}

absl::Status ParseGranularity(const std::string& text, v1::Granularity* out) {
  if (text.empty() || text == "month") {
    *out = v1::GRANULARITY_MONTH;
  } else if (text == "week") {
    *out = v1::GRANULARITY_WEEK;
  } else if (text == "quarter") {
    *out = v1::GRANULARITY_QUARTER;
  } else if (text == "year") {
    *out = v1::GRANULARITY_YEAR;
  } else {
    return absl::InvalidArgumentError(
        absl::StrFormat("--granularity must be week, month, quarter or year, not \"%s\"", text));
  }
  return absl::OkStatus();
}

// Fills the period part of a request from --granularity, --from, --to.
absl::Status PeriodOptions(const Args& args, v1::QueryRequest* request) {
  v1::Granularity g = v1::GRANULARITY_MONTH;
  if (absl::Status s = ParseGranularity(args.Get("--granularity"), &g); !s.ok()) return s;
  request->set_granularity(g);
  if (args.Has("--from")) {
    absl::StatusOr<v1::Date> d = aggregates::ParseDate(args.Get("--from"), "--from");
    if (!d.ok()) return d.status();
    *request->mutable_from() = *d;
  }
  if (args.Has("--to")) {
    absl::StatusOr<v1::Date> d = aggregates::ParseDate(args.Get("--to"), "--to");
    if (!d.ok()) return d.status();
    *request->mutable_to() = *d;
  }
  return absl::OkStatus();
}

struct Client {
  Connection conn;
  std::unique_ptr<v1::AggregateService::Stub> stub;
};

absl::StatusOr<Client> Open(const Args& args) {
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return conn.status();
  Client c{*std::move(conn), nullptr};
  c.stub = v1::AggregateService::NewStub(c.conn.channel);
  return c;
}

bool ListMetrics(Client& c, v1::ListMetricsResponse* out, std::string* error) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c.stub->ListMetrics(&context, v1::ListMetricsRequest(), out);
  if (!s.ok()) *error = DescribeRpcError(s, c.conn.server);
  return s.ok();
}

bool Query(Client& c, const v1::QueryRequest& request, v1::QueryResponse* out, std::string* error) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c.stub->Query(&context, request, out);
  if (!s.ok()) *error = DescribeRpcError(s, c.conn.server);
  return s.ok();
}

std::string Label(const v1::CellCoordinate& c) {
  if (c.total()) return "(total)";
  return c.value().empty() ? "(not set)" : c.value();
}

void PrintTable(const v1::QueryResponse& r) {
  std::vector<std::string> header;
  const bool flow = r.kind() == v1::METRIC_KIND_FLOW;
  if (flow) header.push_back("PERIOD");
  for (const std::string& g : r.group_by()) header.push_back(absl::AsciiStrToUpper(g));
  header.push_back("COUNT");
  std::vector<std::vector<std::string>> rows;
  int suppressed = 0;
  for (const v1::AggregateCell& cell : r.cells()) {
    std::vector<std::string> row;
    if (flow) row.push_back(cell.period());
    for (const v1::CellCoordinate& c : cell.coordinates()) row.push_back(Label(c));
    if (cell.suppressed()) {
      row.push_back("suppressed");
      ++suppressed;
    } else {
      row.push_back(absl::StrCat(cell.count()));
    }
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  }
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      bool last = i + 1 == row.size();
      line += last ? absl::StrFormat("%*s", static_cast<int>(width[i]), row[i])
                   : absl::StrFormat("%-*s  ", static_cast<int>(width[i]), row[i]);
    }
    std::cout << line << "\n";
  };
  std::cout << r.metric();
  if (!r.regions().empty()) std::cout << " (regions: " << absl::StrJoin(r.regions(), ", ") << ")";
  std::cout << "\n";
  print(header);
  for (const auto& row : rows) print(row);
  std::cout << absl::StrFormat(
      "%d cells withheld: counts from 1 to %d, and cells that would reveal them\n", suppressed,
      r.min_cell_count() - 1);
}

}  // namespace

int AggregatesList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << "usage: fieldsync [--cert F --key F --ca F] aggregates list\n\n"
                 "Lists the deployment's metrics, their dimensions, the suppression threshold\n"
                 "and the regions you may see.\n";
    return 0;
  }
  if (absl::Status s = CheckOptions(args, kConnection); !s.ok())
    return Usage(error, std::string(s.message()));
  absl::StatusOr<Client> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::ListMetricsResponse r;
  if (!ListMetrics(*c, &r, error)) return 1;
  for (const v1::MetricDef& m : r.metrics()) {
    std::cout << absl::StrFormat("%-22s %-5s %s\n", m.name(),
                                 m.kind() == v1::METRIC_KIND_FLOW ? "flow" : "stock",
                                 m.description());
    std::cout << absl::StrFormat("%-22s       dimensions: %s\n", "",
                                 absl::StrJoin(m.dimensions(), ", "));
  }
  std::cout << "counts from 1 to " << r.min_cell_count() - 1 << " are withheld; your regions: "
            << (r.scope_regions().empty() ? "all" : absl::StrJoin(r.scope_regions(), ", ")) << "\n";
  return 0;
}

int AggregatesVerify(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << "usage: fieldsync [--cert F --key F --ca F] aggregates verify [--json]\n\n"
                 "Administrators: recounts every aggregate counter from the case log, the way\n"
                 "live commits count, and compares it with the counters queries read. Prints\n"
                 "each counter that differs (metric, period, cell, live and recounted values)\n"
                 "and exits 1 if any does; expected: none. The server replays the whole log,\n"
                 "so this takes about as long as a restart after a metrics change; it only\n"
                 "reads. --json prints one JSON object.\n";
    return 0;
  }
  std::vector<std::string> known = kConnection;
  known.push_back("--json");
  if (absl::Status s = CheckOptions(args, known); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  absl::StatusOr<Client> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  grpc::ClientContext context;
  // A recount replays the whole log: give it longer than a query.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
  v1::VerifyCountersResponse r;
  grpc::Status s = c->stub->VerifyCounters(&context, v1::VerifyCountersRequest(), &r);
  if (!s.ok()) {
    *error = DescribeRpcError(s, c->conn.server);
    return 1;
  }
  if (args.Has("--json")) {
    nlohmann::json j;
    j["entries"] = r.entries();
    j["counters"] = r.counters();
    j["differences"] = nlohmann::json::array();
    for (const v1::CounterDifference& d : r.differences()) {
      j["differences"].push_back(
          {{"metric", d.metric()},
           {"granularity", d.granularity()},
           {"period", d.period()},
           {"cell", std::vector<std::string>(d.cell().begin(), d.cell().end())},
           {"live", d.live()},
           {"recount", d.recount()}});
    }
    std::cout << j.dump() << "\n";
  } else {
    for (const v1::CounterDifference& d : r.differences()) {
      std::cout << absl::StrFormat("differs  %s %s %d [%s]: live %d, recount %d\n", d.metric(),
                                   d.granularity(), d.period(), absl::StrJoin(d.cell(), ", "),
                                   d.live(), d.recount());
    }
    std::cout << absl::StrFormat(
        "%d counters recounted from %d log entries: %s\n", r.counters(), r.entries(),
        r.differences().empty() ? "every live counter matches"
                                : absl::StrFormat("%d differ", r.differences_size()));
  }
  return r.differences().empty() ? 0 : 1;
}

int AggregatesQuery(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << "usage: fieldsync [--cert F --key F --ca F] aggregates query --metric M\n"
                 "         [--group-by DIM[,DIM]...] [--filter DIM=V[,V]...]...\n"
                 "         [--granularity week|month|quarter|year] [--from YYYY-MM-DD] [--to "
                 "YYYY-MM-DD]\n"
                 "         [--json]\n\n"
                 "Prints one metric's counts by up to 4 dimensions, with every sub-total. Flow\n"
                 "metrics are counted per period (default: month, the last 12 up to today);\n"
                 "stock metrics give today's counts. Counts from 1 to k-1, and counts that would\n"
                 "reveal them through the totals, read \"suppressed\".\n";
    return 0;
  }
  if (absl::Status s =
          CheckOptions(args, With(kConnection, {"--metric", "--group-by", "--filter",
                                                "--granularity", "--from", "--to", "--json"}));
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (!args.Has("--metric"))
    return Usage(error, "aggregates query needs --metric (see aggregates list)");
  v1::QueryRequest request;
  request.set_metric(args.Get("--metric"));
  for (const std::string& g : ListOption(args, "--group-by")) request.add_group_by(g);
  for (const std::string& f : args.GetAll("--filter")) {
    std::vector<std::string> kv = absl::StrSplit(f, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return Usage(error, absl::StrFormat("--filter must be DIM=VALUE[,VALUE]..., not \"%s\"", f));
    }
    v1::DimensionFilter* filter = request.add_filters();
    filter->set_dimension(kv[0]);
    for (absl::string_view v : absl::StrSplit(kv[1], ',')) filter->add_values(std::string(v));
  }
  if (absl::Status s = PeriodOptions(args, &request); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  absl::StatusOr<Client> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::QueryResponse response;
  if (!Query(*c, request, &response, error)) return 1;
  if (args.Has("--json")) {
    std::string json;
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(response, &json, o);
    std::cout << json << "\n";
    return 0;
  }
  PrintTable(response);
  return 0;
}

int AggregatesExport(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << "usage: fieldsync [--cert F --key F --ca F] aggregates export --format csv|dhis2\n"
                 "         [--out FILE] [--metric M]... [--group-by DIM[,DIM]...]\n"
                 "         [--mapping FILE] [--granularity week|month|quarter|year]\n"
                 "         [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n\n"
                 "Writes counts to FILE (default standard output), after suppression.\n"
                 "csv:   every metric (or each --metric), grouped by --group-by (default: the\n"
                 "       metric's first two dimensions), one line per cell and sub-total.\n"
                 "dhis2: a DHIS2 dataValueSets JSON document for the data elements of the mapping\n"
                 "       file (default DIR/dhis2-mapping.json); stock metrics are reported in\n"
                 "       the current period.\n";
    return 0;
  }
  if (absl::Status s =
          CheckOptions(args, With(kConnection, {"--format", "--out", "--metric", "--group-by",
                                                "--mapping", "--granularity", "--from", "--to"}));
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  const std::string format = args.Get("--format");
  if (format != "csv" && format != "dhis2") {
    return Usage(error, "aggregates export needs --format csv or --format dhis2");
  }
  v1::QueryRequest period;
  if (absl::Status s = PeriodOptions(args, &period); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  std::string mapping_text;
  if (format == "dhis2") {
    std::string path = args.Get("--mapping");
    if (path.empty()) {
      if (!args.Has("--data-dir")) {
        return Usage(error, "aggregates export --format dhis2 needs --mapping FILE or --data-dir");
      }
      path = args.Get("--data-dir") + "/dhis2-mapping.json";
    }
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) {
      *error = absl::StrFormat("DHIS2 mapping %s: %s", path, text.status().message());
      return 1;
    }
    mapping_text = *std::move(text);
  }
  absl::StatusOr<Client> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::ListMetricsResponse metrics;
  if (!ListMetrics(*c, &metrics, error)) return 1;
  std::vector<v1::MetricDef> defs(metrics.metrics().begin(), metrics.metrics().end());
  const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  std::string output;
  if (format == "csv") {
    std::vector<std::string> wanted = ListOption(args, "--metric");
    std::vector<std::string> group_by = ListOption(args, "--group-by");
    std::vector<v1::QueryResponse> answers;
    for (const v1::MetricDef& m : defs) {
      if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), m.name()) == wanted.end()) {
        continue;
      }
      v1::QueryRequest q = period;
      q.set_metric(m.name());
      if (!group_by.empty()) {
        for (const std::string& g : group_by) q.add_group_by(g);
      } else {
        for (int i = 0; i < m.dimensions_size() && i < 2; ++i) q.add_group_by(m.dimensions(i));
      }
      v1::QueryResponse r;
      if (!Query(*c, q, &r, error)) {
        *error = absl::StrFormat("metric %s: %s", m.name(), *error);
        return 1;
      }
      answers.push_back(std::move(r));
    }
    for (const std::string& w : wanted) {
      if (std::none_of(defs.begin(), defs.end(), [&](const auto& d) { return d.name() == w; })) {
        return Usage(error, absl::StrFormat("unknown metric \"%s\" (see aggregates list)", w));
      }
    }
    output = aggregates::ToCsv(answers);
  } else {
    absl::StatusOr<aggregates::Dhis2Mapping> mapping =
        aggregates::ParseDhis2Mapping(mapping_text, defs);
    if (!mapping.ok()) {
      *error = std::string(mapping.status().message());
      return 1;
    }
    std::vector<v1::QueryResponse> answers;
    for (const v1::QueryRequest& q : aggregates::Dhis2Queries(*mapping, period)) {
      v1::QueryResponse r;
      if (!Query(*c, q, &r, error)) {
        *error = absl::StrFormat("metric %s: %s", q.metric(), *error);
        return 1;
      }
      answers.push_back(std::move(r));
    }
    aggregates::Dhis2Skipped skipped;
    absl::StatusOr<std::string> json =
        aggregates::ToDhis2(*mapping, answers, period.granularity(), today, &skipped);
    if (!json.ok()) {
      *error = std::string(json.status().message());
      return 1;
    }
    if (skipped.unset_org_unit > 0) {
      std::cerr << skipped.unset_org_unit << " cells left out: their "
                << mapping->org_unit_dimension << " is not set\n";
    }
    output = *std::move(json);
  }
  if (!args.Has("--out") || args.Get("--out") == "-") {
    std::cout << output;
    return 0;
  }
  std::ofstream out(args.Get("--out"), std::ios::binary | std::ios::trunc);
  out << output;
  out.close();
  if (!out) {
    *error = absl::StrFormat("cannot write %s", args.Get("--out"));
    return 1;
  }
  std::cerr << "wrote " << args.Get("--out") << "\n";
  return 0;
}

}  // namespace fieldsync::tools
