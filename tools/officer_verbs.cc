#include "tools/officer_verbs.h"

#include <iostream>
#include <vector>

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

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

// Checks options and that there is no operand (words: "officer" VERB).
int CheckOfficerOptions(const Args& args, const std::vector<std::string>& options,
                        std::string* error) {
  if (absl::Status s = CheckOptions(args, With(kConnection, options)); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) {
    return Usage(error, absl::StrFormat("officer %s takes options only; see fieldsync officer %s "
                                        "--help",
                                        args.words[1], args.words[1]));
  }
  return 0;
}

std::string Regions(const v1::Principal& p) {
  return p.regions().empty() ? "-" : absl::StrJoin(p.regions(), ",");
}

constexpr char kAddHelp[] =
    "usage: fieldsync --data-dir DIR officer add --id ID --region R\n\n"
    "Registers field officer ID (1-40 characters of a-z, 0-9, '.', '_', '-'; never\n"
    "reused) in region R (a value of the schema's region field). Administrators\n"
    "only. Officers have no certificate: cases are assigned to them and their\n"
    "tablets enrol with codes issued for them (fieldsync device enrol-code --officer\n"
    "ID), which the server issues only for registered, active officers.\n";

constexpr char kListHelp[] =
    "usage: fieldsync [connection options] officer list [--region R] [--include-revoked]\n"
    "                 [--json]\n\n"
    "Lists the registered field officers (of region R), with their region, status\n"
    "and when they were registered and revoked (UTC). Administrators see every\n"
    "officer; supervisors the officers of their regions. --json prints one array\n"
    "of objects (id, region, regions, status, registered, revoked, changed_by).\n";

constexpr char kRevokeHelp[] =
    "usage: fieldsync --data-dir DIR officer revoke --id ID\n\n"
    "Revokes field officer ID and, in the same write, every active tablet enrolled\n"
    "for it (their next call is refused); prints the tablets revoked. No new\n"
    "enrolment code is issued for a revoked officer, and no case can be assigned\n"
    "to it: assign its cases to another officer (fieldsync case assign). Ids are\n"
    "never reused. Administrators only.\n";

}  // namespace

int OfficerAdd(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kAddHelp;
    return 0;
  }
  if (int code = CheckOfficerOptions(args, {"--id", "--region"}, error); code != 0) return code;
  const std::string id = args.Get("--id"), region = args.Get("--region");
  if (id.empty() || region.empty()) return Usage(error, "officer add needs --id and --region");
  if (absl::Status s = admin::ValidateStaffId(id); !s.ok()) {
    return Usage(error, absl::StrFormat("officer id \"%s\": an officer id, like a staff id, must "
                                        "be 1-40 characters of a-z, 0-9, '.', '_' or '-'",
                                        id));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  v1::AddOfficerRequest request;
  request.set_id(id);
  request.set_region(region);
  v1::AddOfficerResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(conn->channel)->AddOfficer(&context, request, &response);
  if (!s.ok()) {
    *error = DescribeRpcError(s, conn->server);
    return 1;
  }
  std::cout << absl::StrFormat("registered officer %s in region %s\n", id,
                               Regions(response.principal()))
            << "enrol its tablets with codes from: " << CommandPrefix(args)
            << " device enrol-code --officer " << id << "\n";
  return 0;
}

int OfficerList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kListHelp;
    return 0;
  }
  if (int code = CheckOfficerOptions(args, {"--region", "--include-revoked", "--json"}, error);
      code != 0) {
    return code;
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  v1::ListPrincipalsRequest request;
  request.set_kind(v1::PRINCIPAL_KIND_OFFICER);
  request.set_region(args.Get("--region"));
  request.set_include_revoked(args.Has("--include-revoked"));
  v1::ListPrincipalsResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(conn->channel)->ListPrincipals(&context, request, &response);
  if (!s.ok()) {
    *error = DescribeRpcError(s, conn->server);
    return 1;
  }
  std::vector<const v1::Principal*> officers;
  for (const v1::Principal& p : response.principals()) {
    // An older server may ignore the kind filter.
    if (p.kind() == v1::PRINCIPAL_KIND_OFFICER) officers.push_back(&p);
  }
  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::Principal* p : officers) {
      out.push_back(
          {{"id", p->id()},
           {"region", p->regions().empty() ? "" : p->regions(0)},
           {"regions", std::vector<std::string>(p->regions().begin(), p->regions().end())},
           {"status", p->status() == v1::PRINCIPAL_STATUS_REVOKED ? "revoked" : "active"},
           {"registered", JsonTime(p->created_unix_micros())},
           {"revoked", JsonTime(p->revoked_unix_micros())},
           {"changed_by", p->changed_by()}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (officers.empty()) {
    std::cout << "no officers" << (request.region().empty() ? "" : " in region " + request.region())
              << (request.include_revoked() ? "" : " (active ones; --include-revoked for all)")
              << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Principal* p : officers) {
    const bool revoked = p->status() == v1::PRINCIPAL_STATUS_REVOKED;
    rows.push_back({p->id(), Regions(*p), revoked ? "revoked" : "active",
                    UtcTime(p->created_unix_micros()),
                    revoked ? UtcTime(p->revoked_unix_micros()) : ""});
  }
  PrintTable({"OFFICER", "REGION", "STATUS", "REGISTERED (UTC)", "REVOKED (UTC)"}, rows, std::cout);
  return 0;
}

int OfficerRevoke(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRevokeHelp;
    return 0;
  }
  if (int code = CheckOfficerOptions(args, {"--id"}, error); code != 0) return code;
  if (args.Get("--id").empty()) return Usage(error, "officer revoke needs --id");
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  v1::RevokePrincipalRequest request;
  request.set_kind(v1::PRINCIPAL_KIND_OFFICER);
  request.set_id(args.Get("--id"));
  v1::RevokePrincipalResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(conn->channel)->RevokePrincipal(&context, request, &response);
  if (!s.ok()) {
    *error = DescribeRpcError(s, conn->server);
    return 1;
  }
  std::cout << "revoked officer " << request.id() << "\n";
  if (response.revoked_device_ids().empty()) {
    std::cout << "it had no active tablets\n";
  } else {
    std::cout << "and its " << response.revoked_device_ids_size()
              << (response.revoked_device_ids_size() == 1 ? " tablet:\n" : " tablets:\n");
    for (const std::string& device : response.revoked_device_ids()) {
      std::cout << "  fieldsync://device/" << device << "\n";
    }
  }
  std::cout << "its cases stay assigned to it until a supervisor moves them (fieldsync case "
               "list --officer "
            << request.id() << ", then fieldsync case assign CASE_ID --officer OTHER)\n";
  return 0;
}

}  // namespace fieldsync::tools
