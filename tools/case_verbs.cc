#include "tools/case_verbs.h"

#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/uuid.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tools/case_format.h"
#include "tools/client.h"

namespace fieldsync::tools {
namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

// Values longer than this are shortened in `case show`'s table.
constexpr size_t kValueWidth = 48;

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

struct CaseClient {
  Connection conn;
  std::unique_ptr<v1::CaseService::Stub> stub;
};

absl::StatusOr<CaseClient> Open(const Args& args) {
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return conn.status();
  CaseClient c{*std::move(conn), nullptr};
  c.stub = v1::CaseService::NewStub(c.conn.channel);
  return c;
}

// The one line for a refused call. A NO_CHANGE refusal is no error of the
// caller's: its message ("case ... is already closed") says all.
int Refused(const grpc::Status& s, const CaseClient& c, std::string* error) {
  if (SyncErrorDetailOf(s).reason() == v1::SYNC_ERROR_REASON_NO_CHANGE) {
    *error = s.error_message();
  } else {
    *error = DescribeRpcError(s, c.conn.server);
  }
  return 1;
}

// Checks the options and the one CASE_ID operand (words: "case" VERB ID).
int CheckCaseOperand(const Args& args, const std::vector<std::string>& options,
                     std::string* error) {
  if (absl::Status s = CheckOptions(args, With(kConnection, options)); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 3) {
    return Usage(error, absl::StrFormat("case %s needs one CASE_ID; see fieldsync case %s --help",
                                        args.words[1], args.words[1]));
  }
  if (!ParseUuid(args.words[2]).ok()) {
    return Usage(error, absl::StrFormat("CASE_ID \"%s\" is not a case id (a UUID, as "
                                        "`fieldsync case list` prints them)",
                                        args.words[2]));
  }
  return 0;
}

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

nlohmann::json SummaryJson(const v1::CaseSummary& s) {
  return {{"id", s.case_id()},
          {"region", s.region()},
          {"district", s.district()},
          {"officer", s.officer_id()},
          {"status", s.status()},
          {"closure_reason", s.closure_reason()},
          {"open_conflicts", s.open_conflicts()},
          {"created_position", s.created_position()},
          {"last_position", s.last_position()},
          {"last_change", JsonTime(s.last_hlc().wall_micros())},
          {"erased", s.erased()}};
}

// "412/family_name" for a field's open conflict; "" when none.
std::string FieldConflict(const v1::CaseFieldView& f) {
  return f.conflict_position() == 0 ? "" : absl::StrCat(f.conflict_position(), "/", f.field());
}

nlohmann::json RecordJson(const v1::CaseRecordView& r) {
  nlohmann::json fields = nlohmann::json::array();
  for (const v1::CaseFieldView& f : r.fields()) {
    nlohmann::json j = {{"field", f.field()},
                        {"version", f.version()},
                        {"writer", f.writer()},
                        {"officer", f.officer_id()},
                        {"device_label", f.device_label()},
                        {"changed_by", WriterName(f.writer(), f.officer_id(), f.device_label())},
                        {"time", JsonTime(f.hlc().wall_micros())}};
    PutJsonValue(f.has_value() ? &f.value() : nullptr, f.value_withheld(), &j);
    j["conflict"] =
        f.conflict_position() == 0 ? nlohmann::json(nullptr) : nlohmann::json(FieldConflict(f));
    fields.push_back(std::move(j));
  }
  return {{"id", r.record_id()},
          {"record_type", r.record_type()},
          {"deleted", r.deleted()},
          {"created_position", r.created_position()},
          {"version", r.record_version()},
          {"conflict", r.conflict_position() == 0
                           ? nlohmann::json(nullptr)
                           : nlohmann::json(absl::StrCat(r.conflict_position()))},
          {"fields", std::move(fields)}};
}

void PrintCase(const v1::GetCaseResponse& c) {
  const v1::CaseSummary& s = c.summary();
  std::cout << "case " << s.case_id() << (s.erased() ? " (erased: protected values are gone)" : "")
            << "\n"
            << "  region     " << Dash(s.region()) << "\n"
            << "  district   " << Dash(s.district()) << "\n"
            << "  officer    " << (s.officer_id().empty() ? "(unassigned)" : s.officer_id()) << "\n"
            << "  status     " << Dash(s.status())
            << (s.closure_reason().empty() ? "" : " (" + s.closure_reason() + ")") << "\n"
            << "  conflicts  " << s.open_conflicts() << " open\n"
            << absl::StrFormat("  log        created at position %d, last change at %d (%s UTC)\n",
                               s.created_position(), s.last_position(), UtcTime(s.last_hlc()));
  bool shortened = false;
  for (const v1::CaseRecordView& r : c.records()) {
    std::cout << absl::StrFormat("\nrecord %s %s%s: created at position %d, version %d\n",
                                 r.record_id(), r.record_type(), r.deleted() ? " (DELETED)" : "",
                                 r.created_position(), r.record_version());
    if (r.conflict_position() != 0) {
      std::cout << absl::StrFormat(
          "  open record-level conflict %d (deletes against writes they did not see): "
          "fieldsync conflict show %d\n",
          r.conflict_position(), r.conflict_position());
    }
    std::vector<std::vector<std::string>> rows;
    for (const v1::CaseFieldView& f : r.fields()) {
      std::string value =
          CellValue(f.has_value() ? &f.value() : nullptr, f.value_withheld(), kValueWidth);
      shortened |= value.ends_with("...") && !f.value_withheld();
      std::string conflict = FieldConflict(f);
      rows.push_back({f.field(), value, absl::StrCat(f.version()),
                      WriterName(f.writer(), f.officer_id(), f.device_label()), UtcTime(f.hlc()),
                      conflict.empty() ? "" : "CONFLICT " + conflict});
    }
    std::cout << "  ";
    std::ostringstream table;
    PrintTable({"FIELD", "VALUE", "VERSION", "CHANGED BY", "WHEN (UTC)", ""}, rows, table);
    std::string text = table.str();
    // Indent every line of the table under its record.
    for (size_t i = 0; i + 1 < text.size(); ++i) {
      if (text[i] == '\n') text.insert(i + 1, "  ");
    }
    std::cout << text;
  }
  if (shortened) {
    std::cout << absl::StrFormat(
        "\nvalues longer than %d characters are shortened; --json prints them whole\n",
        kValueWidth);
  }
}

std::string HistoryFields(const v1::CaseHistoryEntry& e) {
  std::vector<std::string> parts;
  for (const v1::CaseHistoryEntry::Field& f : e.fields()) {
    std::string part = absl::StrCat(f.field(), ":", OutcomeName(f.outcome()));
    if (f.cleared()) absl::StrAppend(&part, "(cleared)");
    if (f.server_set()) absl::StrAppend(&part, "(server)");
    parts.push_back(std::move(part));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string HistoryNotes(const v1::CaseHistoryEntry& e) {
  std::vector<std::string> notes;
  if (e.has_resolves()) {
    notes.push_back(
        e.resolves().field().empty()
            ? absl::StrCat("resolves ", e.resolves().position())
            : absl::StrCat("resolves ", e.resolves().position(), "/", e.resolves().field()));
  }
  if (e.revived()) notes.push_back("revived the record");
  if (e.clock_clamped()) notes.push_back("clock clamped");
  return notes.empty() ? std::string("-") : absl::StrJoin(notes, "; ");
}

nlohmann::json HistoryJson(const v1::CaseHistoryEntry& e) {
  nlohmann::json fields = nlohmann::json::array();
  for (const v1::CaseHistoryEntry::Field& f : e.fields()) {
    fields.push_back({{"field", f.field()},
                      {"outcome", OutcomeName(f.outcome())},
                      {"server_set", f.server_set()},
                      {"cleared", f.cleared()}});
  }
  nlohmann::json resolves = nullptr;
  if (e.has_resolves()) {
    resolves = e.resolves().field().empty()
                   ? absl::StrCat(e.resolves().position())
                   : absl::StrCat(e.resolves().position(), "/", e.resolves().field());
  }
  return {{"id", e.change_id()},
          {"position", e.position()},
          {"time", JsonTime(e.hlc().wall_micros())},
          {"kind", ChangeKindName(e.kind())},
          {"record_id", e.record_id()},
          {"record_type", e.record_type()},
          {"writer", e.writer()},
          {"officer", e.officer_id()},
          {"device_label", e.device_label()},
          {"changed_by", WriterName(e.writer(), e.officer_id(), e.device_label())},
          {"outcome", OutcomeName(e.outcome())},
          {"fields", std::move(fields)},
          {"resolves", resolves},
          {"revived", e.revived()},
          {"clock_clamped", e.clock_clamped()}};
}

// The result line shared by assign, transfer, close and reopen.
std::string Logged(const v1::ChangeResult& r) {
  return absl::StrFormat("log position %d", r.log_position());
}

int SetStatus(const Args& args, bool close, std::string* error) {
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::SetCaseStatusRequest request;
  request.set_case_id(args.words[2]);
  request.set_close(close);
  if (close) request.set_reason(args.Get("--reason"));
  v1::SetCaseStatusResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c->stub->SetCaseStatus(&context, request, &response);
  if (!s.ok()) return Refused(s, *c, error);
  std::cout << absl::StrFormat("case %s %s (%s)\n", request.case_id(),
                               close ? "closed, reason " + request.reason() : "reopened",
                               Logged(response.result()));
  return 0;
}

constexpr char kListHelp[] =
    "usage: fieldsync [connection options] case list [--region R] [--officer O]\n"
    "                 [--status open|closed] [--has-conflicts] [--json]\n\n"
    "Connection options: --server HOST:PORT --cert FILE --key FILE --ca FILE, a\n"
    "supervisor's credentials as `fieldsync staff add` writes them.\n\n"
    "Lists the cases of your regions (or of --region R), ordered by region and case\n"
    "id: where each is and who has it, never a field of the child. --officer keeps\n"
    "the cases assigned to one officer, --status open or closed ones, --has-conflicts\n"
    "those with an open conflict. Columns: CASE, REGION, DISTRICT, OFFICER, STATUS,\n"
    "CONFLICTS (open ones), LAST CHANGE (UTC). --json prints one array of objects\n"
    "(id, region, district, officer, status, closure_reason, open_conflicts,\n"
    "created_position, last_position, last_change, erased).\n";

constexpr char kShowHelp[] =
    "usage: fieldsync [connection options] case show CASE_ID [--json]\n\n"
    "Prints every record and field of one case: the value (\"(withheld)\" when your\n"
    "role may not read it), who changed it last (officer / device label, or\n"
    "staff:ID for a supervisor's change), when (UTC) and its version. Fields with\n"
    "an open conflict are marked CONFLICT ID (see fieldsync conflict show ID);\n"
    "deleted records are listed and marked DELETED. Reading a case is recorded in\n"
    "the audit log. --json prints one object (id, region, ..., records[].fields[]).\n";

constexpr char kHistoryHelp[] =
    "usage: fieldsync [connection options] case history CASE_ID [--json]\n\n"
    "Prints the case's log entries in order: position, time (UTC), kind (upsert,\n"
    "delete, close, reopen, assign, transfer, resolve), record, writer (officer /\n"
    "device label, or staff:ID), outcome, and each field written with its outcome\n"
    "(applied, converged, superseded, conflict). No values. Recorded in the audit\n"
    "log. --json prints one array of objects (id = change id, position, ...).\n";

constexpr char kAssignHelp[] =
    "usage: fieldsync [connection options] case assign CASE_ID --officer O\n\n"
    "Assigns the case to officer O: a registered, active officer of the case's\n"
    "region (fieldsync officer list). The officer's tablets receive the case at\n"
    "their next sync. Refused when the case already is with O.\n";

constexpr char kTransferHelp[] =
    "usage: fieldsync [connection options] case transfer CASE_ID --region R\n"
    "                 [--officer O] [--district D] --confirm CASE_ID\n\n"
    "Moves the case to region R, in district D (one of R's districts; without\n"
    "--district the case has none), assigned to officer O of region R (without\n"
    "--officer it is unassigned), all in one log entry. Supervisors of R see it\n"
    "from then on; you see it only if R is one of your regions. --confirm must\n"
    "repeat the case id: the tool refuses (exit 2) otherwise.\n";

constexpr char kCloseHelp[] =
    "usage: fieldsync [connection options] case close CASE_ID --reason REASON\n\n"
    "Closes the case. REASON is required: one of the values of the schema's closure\n"
    "reason field (case_fields.closure_reason_field; in the shipped schema\n"
    "goals_achieved, child_reached_18, transferred, relocated, death, lost_contact,\n"
    "refused_services, duplicate or other). The server stores it with the status,\n"
    "in the same log entry; another value is refused with the allowed ones.\n"
    "Refused when the case is closed already.\n";

constexpr char kReopenHelp[] =
    "usage: fieldsync [connection options] case reopen CASE_ID\n\n"
    "Reopens a closed case; the server clears its closure reason. Refused when the\n"
    "case is open already.\n";

}  // namespace

int CaseList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kListHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, With(kConnection, {"--region", "--officer", "--status",
                                                             "--has-conflicts", "--json"}));
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "case list takes no operand; see --help");
  const std::string status = args.Get("--status");
  if (args.Has("--status") && status != "open" && status != "closed") {
    return Usage(error, "--status must be open or closed");
  }
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::ListCasesRequest request;
  request.set_region(args.Get("--region"));
  request.set_officer_id(args.Get("--officer"));
  request.set_status(status);
  request.set_has_conflicts(args.Has("--has-conflicts"));
  request.set_page_size(1000);
  std::vector<v1::CaseSummary> cases;
  absl::flat_hash_set<std::string> tokens;
  do {
    v1::ListCasesResponse page;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = c->stub->ListCases(&context, request, &page);
    if (!s.ok()) return Refused(s, *c, error);
    for (v1::CaseSummary& summary : *page.mutable_cases()) cases.push_back(std::move(summary));
    // A token seen before would loop forever: the server's bug, not ours to hide.
    if (!page.next_page_token().empty() && !tokens.insert(page.next_page_token()).second) {
      *error = "the server repeated a page token; the list would never end";
      return 1;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());

  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::CaseSummary& s : cases) out.push_back(SummaryJson(s));
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (cases.empty()) {
    std::cout << "no case matches\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::CaseSummary& s : cases) {
    std::string st = Dash(s.status());
    if (!s.closure_reason().empty()) absl::StrAppend(&st, " (", s.closure_reason(), ")");
    if (s.erased()) absl::StrAppend(&st, " (erased)");
    rows.push_back({s.case_id(), Dash(s.region()), Dash(s.district()), Dash(s.officer_id()), st,
                    absl::StrCat(s.open_conflicts()), UtcTime(s.last_hlc())});
  }
  PrintTable({"CASE", "REGION", "DISTRICT", "OFFICER", "STATUS", "CONFLICTS", "LAST CHANGE"}, rows,
             std::cout);
  std::cout << cases.size() << (cases.size() == 1 ? " case\n" : " cases\n");
  return 0;
}

int CaseShow(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kShowHelp;
    return 0;
  }
  if (int code = CheckCaseOperand(args, {"--json"}, error); code != 0) return code;
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::GetCaseRequest request;
  request.set_case_id(args.words[2]);
  v1::GetCaseResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c->stub->GetCase(&context, request, &response);
  if (!s.ok()) return Refused(s, *c, error);
  if (args.Has("--json")) {
    nlohmann::json out = SummaryJson(response.summary());
    out["records"] = nlohmann::json::array();
    for (const v1::CaseRecordView& r : response.records()) out["records"].push_back(RecordJson(r));
    std::cout << out.dump() << "\n";
    return 0;
  }
  PrintCase(response);
  return 0;
}

int CaseHistory(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kHistoryHelp;
    return 0;
  }
  if (int code = CheckCaseOperand(args, {"--json"}, error); code != 0) return code;
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::GetCaseHistoryRequest request;
  request.set_case_id(args.words[2]);
  request.set_page_size(1000);
  std::vector<v1::CaseHistoryEntry> entries;
  absl::flat_hash_set<std::string> tokens;
  do {
    v1::GetCaseHistoryResponse page;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = c->stub->GetCaseHistory(&context, request, &page);
    if (!s.ok()) return Refused(s, *c, error);
    for (v1::CaseHistoryEntry& e : *page.mutable_entries()) entries.push_back(std::move(e));
    if (!page.next_page_token().empty() && !tokens.insert(page.next_page_token()).second) {
      *error = "the server repeated a page token; the history would never end";
      return 1;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());

  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::CaseHistoryEntry& e : entries) out.push_back(HistoryJson(e));
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::CaseHistoryEntry& e : entries) {
    rows.push_back({absl::StrCat(e.position()), UtcTime(e.hlc()), ChangeKindName(e.kind()),
                    absl::StrCat(e.record_type(), " ", e.record_id().substr(0, 8)),
                    WriterName(e.writer(), e.officer_id(), e.device_label()),
                    OutcomeName(e.outcome()), HistoryNotes(e), HistoryFields(e)});
  }
  std::cout << "case " << args.words[2] << ": " << entries.size()
            << (entries.size() == 1 ? " log entry\n" : " log entries\n");
  PrintTable({"POSITION", "TIME (UTC)", "KIND", "RECORD", "WRITER", "OUTCOME", "NOTE", "FIELDS"},
             rows, std::cout);
  return 0;
}

int CaseAssign(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kAssignHelp;
    return 0;
  }
  if (int code = CheckCaseOperand(args, {"--officer"}, error); code != 0) return code;
  if (args.Get("--officer").empty()) return Usage(error, "case assign needs --officer O");
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::AssignCaseRequest request;
  request.set_case_id(args.words[2]);
  request.set_officer_id(args.Get("--officer"));
  v1::AssignCaseResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c->stub->AssignCase(&context, request, &response);
  if (!s.ok()) return Refused(s, *c, error);
  std::cout << absl::StrFormat("case %s assigned to officer %s (%s)\n", request.case_id(),
                               request.officer_id(), Logged(response.result()));
  return 0;
}

int CaseTransfer(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kTransferHelp;
    return 0;
  }
  if (int code =
          CheckCaseOperand(args, {"--region", "--officer", "--district", "--confirm"}, error);
      code != 0) {
    return code;
  }
  if (args.Get("--region").empty()) return Usage(error, "case transfer needs --region R");
  if (!args.Has("--confirm")) {
    return Usage(error, "case transfer needs --confirm CASE_ID (the same case id again)");
  }
  if (args.Get("--confirm") != args.words[2]) {
    return Usage(error, absl::StrFormat("--confirm %s is not the case being transferred (%s): "
                                        "nothing was sent",
                                        args.Get("--confirm"), args.words[2]));
  }
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::TransferCaseRequest request;
  request.set_case_id(args.words[2]);
  request.set_to_region(args.Get("--region"));
  request.set_officer_id(args.Get("--officer"));
  request.set_to_district(args.Get("--district"));
  v1::TransferCaseResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c->stub->TransferCase(&context, request, &response);
  if (!s.ok()) return Refused(s, *c, error);
  std::cout << absl::StrFormat(
      "case %s transferred to region %s, %s, %s (%s)\n", request.case_id(), request.to_region(),
      request.to_district().empty() ? "no district" : "district " + request.to_district(),
      request.officer_id().empty() ? "unassigned" : "assigned to officer " + request.officer_id(),
      Logged(response.result()));
  return 0;
}

int CaseClose(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kCloseHelp;
    return 0;
  }
  if (int code = CheckCaseOperand(args, {"--reason"}, error); code != 0) return code;
  if (args.Get("--reason").empty()) {
    return Usage(error, "case close needs --reason REASON (why the case is closed; see --help)");
  }
  return SetStatus(args, /*close=*/true, error);
}

int CaseReopen(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kReopenHelp;
    return 0;
  }
  if (int code = CheckCaseOperand(args, {}, error); code != 0) return code;
  return SetStatus(args, /*close=*/false, error);
}

}  // namespace fieldsync::tools
