#include "tools/staff_verbs.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "admin/principals.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tools/case_format.h"
#include "tools/client.h"

namespace fieldsync::tools {
namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};
const std::vector<std::string> kRoleNames = {"administrator", "auditor", "supervisor",
                                             "analyst",       "officer", "device"};
constexpr size_t kMaxNamed = 20;

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

int Failed(std::string* error, std::string message) {
  *error = std::move(message);
  return 1;
}

// Checks options and that the verb has no operand (`words` has `depth`).
int CheckVerbOptions(const Args& args, const std::vector<std::string>& options, size_t depth,
                     std::string* error) {
  if (absl::Status s = CheckOptions(args, With(kConnection, options)); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != depth) {
    return Usage(
        error, absl::StrFormat("%s takes options only; see fieldsync %s --help",
                               absl::StrJoin(args.words.begin(), args.words.begin() + depth, " "),
                               absl::StrJoin(args.words.begin(), args.words.begin() + depth, " ")));
  }
  return 0;
}

// "sim-" + 6 lowercase hex digits + "-": the prefix of a simulator run's ids.
bool IsRunPrefix(std::string_view s) {
  if (s.size() != 11 || !s.starts_with("sim-") || s[10] != '-') return false;
  for (char c : s.substr(4, 6)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The run of a simulated officer's id ("sim-1a2b3c-officer-4" -> "1a2b3c"),
// or "".
std::string OfficerRun(std::string_view id) {
  if (id.size() < 11 || !IsRunPrefix(id.substr(0, 11))) return "";
  std::string_view rest = id.substr(11);
  if (!rest.starts_with("officer-") || !IsDigits(rest.substr(8))) return "";
  return std::string(id.substr(4, 6));
}

std::string NameSome(std::vector<std::string> names) {
  if (names.empty()) return "(none)";
  const size_t more = names.size() > kMaxNamed ? names.size() - kMaxNamed : 0;
  names.resize(names.size() - more);
  std::string out = absl::StrJoin(names, ", ");
  if (more > 0) absl::StrAppendFormat(&out, " and %d more", more);
  return out;
}

std::string PrincipalColumn(const v1::Principal& p) {
  if (p.kind() == v1::PRINCIPAL_KIND_OFFICER) return "officer " + p.id();
  return admin::PrincipalUri({p.kind(), p.id()});
}

std::string Regions(const v1::Principal& p) {
  return p.regions().empty() ? "-" : absl::StrJoin(p.regions(), ",");
}

constexpr char kStaffListHelp[] =
    "usage: fieldsync --data-dir DIR staff list [--role ROLE] [--region R] [--officer O]\n"
    "                 [--include-revoked] [--include-simulated] [--json]\n"
    "\n"
    "Lists staff, field officers and enrolled tablets: principal, role, status,\n"
    "regions, a tablet's officer and the label it enrolled with, when each was\n"
    "registered, when a tablet last synced (pushed or pulled; kept to the\n"
    "minute) and when it was revoked (UTC). Administrators only.\n"
    "\n"
    "  --role ROLE          administrator, auditor, supervisor, analyst, officer or\n"
    "                       device\n"
    "  --region R           those whose regions include R (a region of the schema)\n"
    "  --officer O          officer O and its tablets (a registered officer)\n"
    "  --include-revoked    revoked principals too\n"
    "  --include-simulated  what `fieldsync device simulate` made too (its officers\n"
    "                       sim-<run>-officer-N, supervisor and tablets labelled\n"
    "                       \"simulated tablet N (<run>)\"): hidden by default, and\n"
    "                       marked in a SIMULATED column when shown\n"
    "  --json               one array of objects (principal, id, kind, role, status,\n"
    "                       regions, officer, device_label, created, last_sync,\n"
    "                       revoked, simulated)\n";

constexpr char kStaffUpdateHelp[] =
    "usage: fieldsync --data-dir DIR staff update --id ID --region R [--region R]...\n"
    "\n"
    "Replaces the regions of supervisor or analyst ID with the regions given (each a\n"
    "region of the schema), from its next call on; its certificate is unchanged.\n"
    "Audited as staff.update. Administrators and auditors reach the whole\n"
    "deployment and have no regions. Administrators only.\n";

constexpr char kCodesListHelp[] =
    "usage: fieldsync --data-dir DIR device codes list [--officer O] [--json]\n"
    "\n"
    "Lists the enrolment codes still open (issued, not used, cancelled or expired),\n"
    "oldest first: the code's id, its officer and region, when it was issued and\n"
    "expires (UTC) and who issued it. Never the code itself: the server keeps only\n"
    "its hash. --officer O: only officer O's codes. Administrators only.\n";

constexpr char kCodesCancelHelp[] =
    "usage: fieldsync --data-dir DIR device codes cancel --id CODE_ID\n"
    "\n"
    "Cancels an open enrolment code by its id (as `device codes list` and `device\n"
    "enrol-code` print it): a tablet presenting it is refused. Audited as\n"
    "enrolment-code.cancel. A code already used enrolled a tablet: revoke the\n"
    "tablet instead (fieldsync device revoke). Administrators only.\n";

}  // namespace

bool IsSimulated(const v1::Principal& p) {
  switch (p.kind()) {
    case v1::PRINCIPAL_KIND_OFFICER:
      return !OfficerRun(p.id()).empty();
    case v1::PRINCIPAL_KIND_STAFF:
      return p.id().size() == 21 && IsRunPrefix(std::string_view(p.id()).substr(0, 11)) &&
             p.id().ends_with("-supervisor");
    case v1::PRINCIPAL_KIND_DEVICE: {
      const std::string run = OfficerRun(p.officer_id());
      if (run.empty()) return false;
      constexpr std::string_view kLabel = "simulated tablet ";
      std::string_view label = p.device_label();
      if (!label.starts_with(kLabel)) return false;
      label.remove_prefix(kLabel.size());
      const size_t space = label.find(' ');
      return space != std::string_view::npos && IsDigits(label.substr(0, space)) &&
             label.substr(space) == absl::StrFormat(" (%s)", run);
    }
    default:
      return false;
  }
}

std::string RoleOf(const v1::Principal& p) {
  if (p.role() == v1::ROLE_OFFICER || p.kind() == v1::PRINCIPAL_KIND_OFFICER) return "officer";
  return std::string(admin::RoleName(p.role()));
}

absl::Status CheckRoleName(std::string_view role) {
  if (std::find(kRoleNames.begin(), kRoleNames.end(), role) != kRoleNames.end()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown role \"%s\": the roles are %s", std::string(role), absl::StrJoin(kRoleNames, ", ")));
}

absl::StatusOr<std::vector<const v1::Principal*>> FilterPrincipals(
    const std::vector<v1::Principal>& all, const std::vector<v1::Principal>& known,
    const StaffFilter& filter) {
  if (!filter.role.empty()) {
    if (absl::Status s = CheckRoleName(filter.role); !s.ok()) return s;
  }
  if (!filter.officer.empty()) {
    std::vector<std::string> officers;
    bool found = false;
    for (const v1::Principal& p : known) {
      if (p.kind() != v1::PRINCIPAL_KIND_OFFICER) continue;
      found = found || p.id() == filter.officer;
      if (filter.include_simulated || !IsSimulated(p)) officers.push_back(p.id());
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrFormat("no officer \"%s\" is registered; the officers are: %s", filter.officer,
                          NameSome(std::move(officers))));
    }
  }
  std::vector<const v1::Principal*> out;
  for (const v1::Principal& p : all) {
    if (!filter.include_revoked && p.status() == v1::PRINCIPAL_STATUS_REVOKED) continue;
    if (!filter.include_simulated && IsSimulated(p)) continue;
    if (!filter.role.empty() && RoleOf(p) != filter.role) continue;
    if (!filter.officer.empty()) {
      const bool is_officer = p.kind() == v1::PRINCIPAL_KIND_OFFICER && p.id() == filter.officer;
      const bool is_its_device =
          p.kind() == v1::PRINCIPAL_KIND_DEVICE && p.officer_id() == filter.officer;
      if (!is_officer && !is_its_device) continue;
    }
    out.push_back(&p);
  }
  return out;
}

int StaffList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kStaffListHelp;
    return 0;
  }
  if (int code = CheckVerbOptions(
          args,
          {"--role", "--region", "--officer", "--include-revoked", "--include-simulated", "--json"},
          2, error);
      code != 0) {
    return code;
  }
  StaffFilter filter;
  filter.role = args.Get("--role");
  filter.officer = args.Get("--officer");
  filter.include_revoked = args.Has("--include-revoked");
  filter.include_simulated = args.Has("--include-simulated");
  if (args.Has("--role")) {
    if (absl::Status s = CheckRoleName(filter.role); !s.ok()) {
      return Usage(error, std::string(s.message()));
    }
  }
  if (args.Has("--officer") && filter.officer.empty()) return Usage(error, "--officer needs an id");
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, std::string(conn.status().message()));
  auto stub = v1::AdminService::NewStub(conn->channel);
  auto list = [&](const std::string& region, v1::ListPrincipalsResponse* response) -> absl::Status {
    v1::ListPrincipalsRequest request;
    request.set_include_revoked(true);  // filtered here, so --officer finds revoked officers
    request.set_region(region);
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = stub->ListPrincipals(&context, request, response);
    if (!s.ok()) return absl::UnavailableError(DescribeRpcError(s, conn->server));
    return absl::OkStatus();
  };
  v1::ListPrincipalsResponse listed;
  // The server checks --region against the schema and names the known ones.
  if (absl::Status s = list(args.Get("--region"), &listed); !s.ok()) {
    return Failed(error, std::string(s.message()));
  }
  std::vector<v1::Principal> all(listed.principals().begin(), listed.principals().end());
  std::vector<v1::Principal> known = all;
  if (!filter.officer.empty() && !args.Get("--region").empty()) {
    v1::ListPrincipalsResponse everyone;
    if (absl::Status s = list("", &everyone); !s.ok()) {
      return Failed(error, std::string(s.message()));
    }
    known.assign(everyone.principals().begin(), everyone.principals().end());
  }
  absl::StatusOr<std::vector<const v1::Principal*>> shown = FilterPrincipals(all, known, filter);
  if (!shown.ok()) return Failed(error, std::string(shown.status().message()));
  const auto& last_syncs = listed.device_last_sync_unix_micros();
  auto last_sync = [&](const v1::Principal& p) -> int64_t {
    auto it = last_syncs.find(p.id());
    return p.kind() == v1::PRINCIPAL_KIND_DEVICE && it != last_syncs.end() ? it->second : 0;
  };
  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::Principal* p : *shown) {
      const bool device = p->kind() == v1::PRINCIPAL_KIND_DEVICE;
      out.push_back(
          {{"principal", PrincipalColumn(*p)},
           {"id", p->id()},
           {"kind", p->kind() == v1::PRINCIPAL_KIND_DEVICE    ? "device"
                    : p->kind() == v1::PRINCIPAL_KIND_OFFICER ? "officer"
                                                              : "staff"},
           {"role", RoleOf(*p)},
           {"status", p->status() == v1::PRINCIPAL_STATUS_REVOKED ? "revoked" : "active"},
           {"regions", std::vector<std::string>(p->regions().begin(), p->regions().end())},
           {"officer", device ? nlohmann::json(p->officer_id()) : nlohmann::json(nullptr)},
           {"device_label", device ? nlohmann::json(p->device_label()) : nlohmann::json(nullptr)},
           {"created", JsonTime(p->created_unix_micros())},
           {"last_sync", JsonTime(last_sync(*p))},
           {"revoked", JsonTime(p->revoked_unix_micros())},
           {"simulated", IsSimulated(*p)}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  int hidden_simulated = 0;
  if (!filter.include_simulated) {
    StaffFilter with_simulated = filter;
    with_simulated.include_simulated = true;
    absl::StatusOr<std::vector<const v1::Principal*>> all_shown =
        FilterPrincipals(all, known, with_simulated);
    if (all_shown.ok()) hidden_simulated = static_cast<int>(all_shown->size() - shown->size());
  }
  std::vector<std::string> header = {
      "PRINCIPAL",    "ROLE",          "STATUS",          "REGIONS",      "OFFICER",
      "DEVICE LABEL", "CREATED (UTC)", "LAST SYNC (UTC)", "REVOKED (UTC)"};
  if (filter.include_simulated) header.push_back("SIMULATED");
  std::vector<std::vector<std::string>> rows;
  for (const v1::Principal* p : *shown) {
    const bool device = p->kind() == v1::PRINCIPAL_KIND_DEVICE;
    std::vector<std::string> row = {
        PrincipalColumn(*p),
        RoleOf(*p),
        p->status() == v1::PRINCIPAL_STATUS_REVOKED ? "revoked" : "active",
        Regions(*p),
        device && !p->officer_id().empty() ? p->officer_id() : "-",
        device && !p->device_label().empty() ? p->device_label() : "-",
        UtcTime(p->created_unix_micros()),
        device ? UtcTime(last_sync(*p)) : "-",
        UtcTime(p->revoked_unix_micros())};
    if (filter.include_simulated) row.push_back(IsSimulated(*p) ? "yes" : "no");
    rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    std::cout << "no principals match\n";
  } else {
    PrintTable(header, rows, std::cout);
  }
  if (hidden_simulated > 0) {
    std::cout << absl::StrFormat(
        "(%d made by device simulate not shown: --include-simulated shows them)\n",
        hidden_simulated);
  }
  return 0;
}

int StaffUpdate(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kStaffUpdateHelp;
    return 0;
  }
  if (int code = CheckVerbOptions(args, {"--id", "--region"}, 2, error); code != 0) return code;
  const std::string id = args.Get("--id");
  const std::vector<std::string> regions = args.GetAll("--region");
  if (id.empty() || regions.empty()) {
    return Usage(error, "staff update needs --id and at least one --region");
  }
  if (absl::Status s = admin::ValidateStaffId(id); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, std::string(conn.status().message()));
  v1::UpdateStaffRequest request;
  request.set_id(id);
  for (const std::string& r : regions) request.add_regions(r);
  v1::UpdateStaffResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(conn->channel)->UpdateStaff(&context, request, &response);
  if (!s.ok()) return Failed(error, DescribeRpcError(s, conn->server));
  std::cout << absl::StrFormat("updated fieldsync://staff/%s (%s): regions %s (were %s)\n", id,
                               RoleOf(response.principal()),
                               absl::StrJoin(response.principal().regions(), ", "),
                               absl::StrJoin(response.previous_regions(), ", "))
            << absl::StrFormat("audited as staff.update (audit entry %d)\n",
                               response.audit_leaf_index());
  return 0;
}

int DeviceCodesList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kCodesListHelp;
    return 0;
  }
  if (int code = CheckVerbOptions(args, {"--officer", "--json"}, 3, error); code != 0) return code;
  if (args.Has("--officer") && args.Get("--officer").empty()) {
    return Usage(error, "--officer needs an id");
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, std::string(conn.status().message()));
  v1::ListEnrolmentCodesRequest request;
  request.set_officer_id(args.Get("--officer"));
  v1::ListEnrolmentCodesResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(conn->channel)->ListEnrolmentCodes(&context, request, &response);
  if (!s.ok()) return Failed(error, DescribeRpcError(s, conn->server));
  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::ListedEnrolmentCode& c : response.codes()) {
      out.push_back({{"code_id", c.code_id()},
                     {"officer", c.officer_id()},
                     {"region", c.region()},
                     {"created", JsonTime(c.created_unix_micros())},
                     {"expires", JsonTime(c.expires_unix_micros())},
                     {"created_by", c.created_by()}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (response.codes().empty()) {
    std::cout << "no open enrolment codes"
              << (request.officer_id().empty() ? "" : " for officer " + request.officer_id())
              << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::ListedEnrolmentCode& c : response.codes()) {
    rows.push_back({c.code_id(), c.officer_id(), c.region(), UtcTime(c.created_unix_micros()),
                    UtcTime(c.expires_unix_micros()), c.created_by()});
  }
  PrintTable({"CODE ID", "OFFICER", "REGION", "ISSUED (UTC)", "EXPIRES (UTC)", "ISSUED BY"}, rows,
             std::cout);
  return 0;
}

int DeviceCodesCancel(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kCodesCancelHelp;
    return 0;
  }
  if (int code = CheckVerbOptions(args, {"--id"}, 3, error); code != 0) return code;
  if (args.Get("--id").empty()) return Usage(error, "device codes cancel needs --id CODE_ID");
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, std::string(conn.status().message()));
  v1::CancelEnrolmentCodeRequest request;
  request.set_code_id(args.Get("--id"));
  v1::CancelEnrolmentCodeResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(conn->channel)->CancelEnrolmentCode(&context, request, &response);
  if (!s.ok()) return Failed(error, DescribeRpcError(s, conn->server));
  std::cout << absl::StrFormat(
      "cancelled enrolment code %s (officer %s, region %s): it no longer enrols\n"
      "audited as enrolment-code.cancel (audit entry %d)\n",
      response.code().code_id(), response.code().officer_id(), response.code().region(),
      response.audit_leaf_index());
  return 0;
}

}  // namespace fieldsync::tools
