#include "tools/conflict_verbs.h"

#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/uuid.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tools/case_format.h"
#include "tools/client.h"
#include "tools/field_value_text.h"
#include "tools/seen_conflicts.h"

namespace fieldsync::tools {
namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

// Values in `conflict list`'s table are shortened to this.
constexpr size_t kCellWidth = 28;

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

std::string ValueText(const v1::FieldValue* value, bool withheld) {
  return CellValue(value, withheld, std::numeric_limits<size_t>::max());
}

const v1::FieldValue* CurrentValue(const v1::Conflict& c) {
  return c.has_current_value() && c.current_value().kind_case() != v1::FieldValue::KIND_NOT_SET
             ? &c.current_value()
             : nullptr;
}

const v1::FieldValue* LosingValueOf(const v1::LosingValue& v) {
  return v.has_value() && v.value().kind_case() != v1::FieldValue::KIND_NOT_SET ? &v.value()
                                                                                : nullptr;
}

nlohmann::json WriteJson(const v1::ConflictWrite& w) {
  return {{"writer", w.writer()},
          {"officer", w.officer_id()},
          {"device_label", w.device_label()},
          {"changed_by", WriterName(w.writer(), w.officer_id(), w.device_label())},
          {"time", JsonTime(w.hlc().wall_micros())},
          {"position", w.position()}};
}

std::vector<std::string> ResolveCommands(const v1::Conflict& c, const Args& args) {
  const std::string base =
      absl::StrCat(CommandPrefix(args), " conflict resolve ", FormatConflictId(c.id()));
  std::vector<std::string> out = {base + " --keep-current"};
  if (c.field().empty()) return out;
  for (int i = 0; i < c.losing_values_size(); ++i) {
    out.push_back(absl::StrCat(base, " --take ", i + 1));
  }
  out.push_back(base + " --value VALUE");
  return out;
}

nlohmann::json ConflictJson(const v1::Conflict& c) {
  nlohmann::json current = {{"version", c.current_version()},
                            {"writer", c.current_writer()},
                            {"officer", c.current_officer_id()},
                            {"device_label", c.current_device_label()},
                            {"changed_by", WriterName(c.current_writer(), c.current_officer_id(),
                                                      c.current_device_label())},
                            {"time", JsonTime(c.current_hlc().wall_micros())}};
  PutJsonValue(CurrentValue(c), c.current_value_withheld(), &current);
  nlohmann::json losing = nlohmann::json::array();
  for (int i = 0; i < c.losing_values_size(); ++i) {
    const v1::LosingValue& v = c.losing_values(i);
    nlohmann::json j = {{"number", i + 1}, {"writes", nlohmann::json::array()}};
    PutJsonValue(LosingValueOf(v), v.value_withheld(), &j);
    for (const v1::ConflictWrite& w : v.writes()) j["writes"].push_back(WriteJson(w));
    losing.push_back(std::move(j));
  }
  return {{"id", FormatConflictId(c.id())},
          {"case_id", c.case_id()},
          {"record_id", c.record_id()},
          {"record_type", c.record_type()},
          {"field", c.field()},
          {"record_level", c.field().empty()},
          {"region", c.region()},
          {"version", c.version()},
          {"open", c.status() != v1::CONFLICT_STATUS_RESOLVED},
          {"resolved_position", c.resolved_position()},
          {"current", std::move(current)},
          {"losing_count", c.losing_values_size()},
          {"losing", std::move(losing)}};
}

void PrintConflict(const v1::Conflict& c, std::ostream& out) {
  const std::string id = FormatConflictId(c.id());
  if (c.field().empty()) {
    out << absl::StrFormat(
        "conflict %s: record %s (%s) of case %s, region %s\n"
        "  tablets deleted the record without having seen writes that keep it\n",
        id, c.record_id(), c.record_type(), c.case_id(), c.region());
  } else {
    out << absl::StrFormat("conflict %s: field %s of record %s (%s) of case %s, region %s\n", id,
                           c.field(), c.record_id(), c.record_type(), c.case_id(), c.region());
  }
  if (c.status() == v1::CONFLICT_STATUS_RESOLVED) {
    out << absl::StrFormat(
        "  closed at log position %d (resolved, or a change left one value): nothing to decide;\n"
        "  the values it held:\n\n",
        c.resolved_position());
  } else {
    out << absl::StrFormat(
        "  version %d: a decision is sent with it, and refused if these values changed since\n\n",
        c.version());
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"current",
                  c.field().empty() ? "the record, as last written"
                                    : ValueText(CurrentValue(c), c.current_value_withheld()),
                  WriterName(c.current_writer(), c.current_officer_id(), c.current_device_label()),
                  UtcTime(c.current_hlc())});
  for (int i = 0; i < c.losing_values_size(); ++i) {
    const v1::LosingValue& v = c.losing_values(i);
    std::string value =
        c.field().empty() ? "DELETE" : ValueText(LosingValueOf(v), v.value_withheld());
    if (v.writes().empty()) rows.push_back({absl::StrCat(i + 1), value, "-", "-"});
    for (int w = 0; w < v.writes_size(); ++w) {
      const v1::ConflictWrite& write = v.writes(w);
      rows.push_back({w == 0 ? absl::StrCat(i + 1) : "", w == 0 ? value : "  (same value)",
                      WriterName(write.writer(), write.officer_id(), write.device_label()),
                      UtcTime(write.hlc())});
    }
  }
  PrintTable({"", "VALUE", "WRITTEN BY", "WHEN (UTC)"}, rows, out);
}

void PrintResolveCommands(const v1::Conflict& c, const Args& args, std::ostream& out) {
  out << "\ndecide with one of:\n";
  for (const std::string& command : ResolveCommands(c, args)) out << "  " << command << "\n";
  if (c.field().empty()) {
    out << "(a record-level conflict is resolved by keeping the record)\n";
  } else {
    out << "(--take N writes value N above; --value writes another value of the field's type)\n";
  }
}

// Remembers what was printed; a failure only costs a fetch at resolve
// time, so it is a warning, not an error.
void Remember(const std::string& server, const std::vector<const v1::Conflict*>& shown) {
  absl::StatusOr<SeenConflictsFile> file = SeenConflictsFile::FromEnvironment();
  absl::Status s = file.status();
  if (file.ok()) {
    std::vector<SeenConflict> seen;
    for (const v1::Conflict* c : shown) {
      seen.push_back({server, FormatConflictId(c->id()), c->version()});
    }
    s = file->Remember(seen);
  }
  if (!s.ok()) {
    std::cerr << "fieldsync: warning: the versions shown are not remembered (" << s.message()
              << "); conflict resolve will fetch the conflict again\n";
  }
}

absl::StatusOr<std::vector<std::string>> CallerRegions(const CaseClient& c) {
  v1::WhoAmIResponse who;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s =
      v1::AdminService::NewStub(c.conn.channel)->WhoAmI(&context, v1::WhoAmIRequest(), &who);
  if (!s.ok()) return absl::UnavailableError(DescribeRpcError(s, c.conn.server));
  return std::vector<std::string>(who.principal().regions().begin(),
                                  who.principal().regions().end());
}

// Every page of one ListConflicts query, appended to *out.
grpc::Status ListAll(const CaseClient& c, v1::ListConflictsRequest request,
                     std::vector<v1::Conflict>* out) {
  request.set_page_size(1000);
  absl::flat_hash_set<std::string> tokens;
  do {
    v1::ListConflictsResponse page;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = c.stub->ListConflicts(&context, request, &page);
    if (!s.ok()) return s;
    for (v1::Conflict& conflict : *page.mutable_conflicts()) out->push_back(std::move(conflict));
    if (!page.next_page_token().empty() && !tokens.insert(page.next_page_token()).second) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "the server repeated a page token; the list would never end");
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return grpc::Status::OK;
}

grpc::Status GetConflict(const CaseClient& c, const v1::ConflictId& id, v1::Conflict* out) {
  v1::GetConflictRequest request;
  *request.mutable_id() = id;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  return c.stub->GetConflict(&context, request, out);
}

std::string DescribeConflictError(const grpc::Status& s, const CaseClient& c,
                                  const std::string& id) {
  if (SyncErrorDetailOf(s).reason() == v1::SYNC_ERROR_REASON_NOT_FOUND) {
    return absl::StrFormat("no conflict %s on %s (fieldsync conflict list shows the open ones)", id,
                           c.conn.server);
  }
  return DescribeRpcError(s, c.conn.server);
}

// The definition of `field`: in `record_type` when given, else the one
// definition every record type with such a field shares. kNotFound when no
// record type has it; kFailedPrecondition when record types define it
// differently (the caller must learn the conflict's record type).
absl::StatusOr<v1::FieldDef> FindFieldDef(const v1::Schema& schema, const std::string& record_type,
                                          const std::string& field) {
  std::optional<v1::FieldDef> found;
  for (const v1::RecordType& t : schema.record_types()) {
    if (!record_type.empty() && t.name() != record_type) continue;
    for (const v1::FieldDef& f : t.fields()) {
      if (f.name() != field) continue;
      v1::FieldDef shape = f;
      shape.clear_label();
      if (found.has_value() && found->SerializeAsString() != shape.SerializeAsString()) {
        return absl::FailedPreconditionError("record types define the field differently");
      }
      found = std::move(shape);
    }
  }
  if (!found.has_value()) {
    return absl::NotFoundError(absl::StrFormat("the schema has no field %s", field));
  }
  return *found;
}

// The value --value names, read by the field's schema type.
absl::StatusOr<v1::FieldValue> NewValue(const CaseClient& c, const v1::ConflictId& id,
                                        const std::string& record_type, const std::string& text) {
  v1::GetSchemaResponse schema;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = v1::SyncService::NewStub(c.conn.channel)
                       ->GetSchema(&context, v1::GetSchemaRequest(), &schema);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("reading the schema: ", DescribeRpcError(s, c.conn.server)));
  }
  absl::StatusOr<v1::FieldDef> def = FindFieldDef(schema.schema(), record_type, id.field());
  if (absl::IsFailedPrecondition(def.status())) {
    // Only the conflict knows its record type; its version is not used.
    v1::Conflict conflict;
    if (grpc::Status g = GetConflict(c, id, &conflict); !g.ok()) {
      return absl::UnavailableError(DescribeConflictError(g, c, FormatConflictId(id)));
    }
    def = FindFieldDef(schema.schema(), conflict.record_type(), id.field());
  }
  if (!def.ok()) return def.status();
  return ParseFieldValue(*def, text);
}

constexpr char kListHelp[] =
    "usage: fieldsync [connection options] conflict list [--region R]... [--case CASE_ID]\n"
    "                 [--json]\n\n"
    "Lists the open conflicts of your regions (or of --region R, or of one case),\n"
    "oldest first: the conflict's ID, its region and case, the field (\"(record)\"\n"
    "for a record deleted on tablets that had not seen writes that keep it), the\n"
    "current value, how many values stand against it, and the version. A field\n"
    "conflict's ID is POSITION/FIELD (412/family_name), a record-level one's\n"
    "POSITION. The version of each conflict listed is remembered (per server, in\n"
    "$XDG_STATE_HOME/fieldsync/seen-conflicts or ~/.local/state/fieldsync/, ids and\n"
    "versions only) for conflict resolve. --json prints one array of objects (id,\n"
    "case_id, record_id, record_type, field, record_level, region, version,\n"
    "current{value,...}, losing_count, losing[]{number,value,writes[]}).\n";

constexpr char kShowHelp[] =
    "usage: fieldsync [connection options] conflict show ID [--json]\n\n"
    "Prints one conflict: the current value and every value that stands against\n"
    "it, numbered 1..N (--take N of conflict resolve), each with who wrote it\n"
    "(officer / device label) and when (UTC), then the resolve commands to run.\n"
    "Remembers the version shown for conflict resolve. Reading a conflict is\n"
    "recorded in the audit log. --json prints one object (as conflict list's, plus\n"
    "resolve_commands).\n";

constexpr char kResolveHelp[] =
    "usage: fieldsync [connection options] conflict resolve ID\n"
    "                 --keep-current | --take N | --value VALUE\n\n"
    "Decides a conflict: keep the current value (for a record-level conflict, keep\n"
    "the record), take value N as conflict show numbers them, or write VALUE, read\n"
    "by the field's type in the schema (text; enum: one of its values; true/false;\n"
    "dates 2026-05-01; times 2026-05-01T09:30:00Z; positions LAT,LON; lists a,b).\n"
    "The decision is sent with the version conflict list or conflict show last\n"
    "printed for ID on this server; when none was printed, the conflict is fetched\n"
    "and printed first, and its version is sent. If the conflict changed since it\n"
    "was printed, the server refuses the decision and nothing is written: show it\n"
    "again and decide again.\n";

}  // namespace

int ConflictList(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kListHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, With(kConnection, {"--region", "--case", "--json"}));
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "conflict list takes no operand; see --help");
  const std::string case_id = args.Get("--case");
  if (args.Has("--case") && !ParseUuid(case_id).ok()) {
    return Usage(error, absl::StrFormat("--case \"%s\" is not a case id (a UUID)", case_id));
  }
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  std::vector<std::string> regions = args.GetAll("--region");
  if (regions.empty() && case_id.empty()) {
    absl::StatusOr<std::vector<std::string>> mine = CallerRegions(*c);
    if (!mine.ok()) {
      *error = std::string(mine.status().message());
      return 1;
    }
    if (mine->empty()) {
      *error = "your principal has no regions: give --region R or --case CASE_ID";
      return 1;
    }
    regions = *std::move(mine);
  }
  if (regions.empty()) regions.push_back("");  // --case alone
  std::vector<v1::Conflict> conflicts;
  for (const std::string& region : regions) {
    v1::ListConflictsRequest request;
    request.set_region(region);
    request.set_case_id(case_id);
    grpc::Status s = ListAll(*c, request, &conflicts);
    if (!s.ok()) {
      *error = DescribeRpcError(s, c->conn.server);
      return 1;
    }
  }
  std::vector<const v1::Conflict*> shown;
  absl::flat_hash_set<std::string> ids;
  for (const v1::Conflict& conflict : conflicts) {
    if (ids.insert(FormatConflictId(conflict.id())).second) {
      shown.push_back(&conflict);
    }
  }
  Remember(c->conn.server, shown);
  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::Conflict* conflict : shown) out.push_back(ConflictJson(*conflict));
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (shown.empty()) {
    std::cout << "no open conflicts"
              << (case_id.empty() ? absl::StrCat(" in ", absl::StrJoin(regions, ", "))
                                  : absl::StrCat(" in case ", case_id))
              << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Conflict* conflict : shown) {
    const bool record = conflict->field().empty();
    rows.push_back(
        {FormatConflictId(conflict->id()), conflict->region(), conflict->case_id(),
         record ? absl::StrCat("(record ", conflict->record_type(), ")") : conflict->field(),
         record
             ? "(record kept)"
             : CellValue(CurrentValue(*conflict), conflict->current_value_withheld(), kCellWidth),
         absl::StrCat(conflict->losing_values_size()), absl::StrCat(conflict->version())});
  }
  PrintTable({"ID", "REGION", "CASE", "FIELD", "CURRENT", "LOSING", "VERSION"}, rows, std::cout);
  std::cout << shown.size() << (shown.size() == 1 ? " open conflict" : " open conflicts")
            << "; see one with: " << CommandPrefix(args) << " conflict show ID\n";
  return 0;
}

int ConflictShow(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kShowHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(args, With(kConnection, {"--json"})); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 3) return Usage(error, "conflict show needs one ID; see --help");
  absl::StatusOr<v1::ConflictId> id = ParseConflictId(args.words[2]);
  if (!id.ok()) return Usage(error, std::string(id.status().message()));
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  v1::Conflict conflict;
  if (grpc::Status s = GetConflict(*c, *id, &conflict); !s.ok()) {
    *error = DescribeConflictError(s, *c, args.words[2]);
    return 1;
  }
  Remember(c->conn.server, {&conflict});
  if (args.Has("--json")) {
    nlohmann::json out = ConflictJson(conflict);
    out["resolve_commands"] = ResolveCommands(conflict, args);
    std::cout << out.dump() << "\n";
    return 0;
  }
  PrintConflict(conflict, std::cout);
  if (conflict.status() != v1::CONFLICT_STATUS_RESOLVED) {
    PrintResolveCommands(conflict, args, std::cout);
  }
  return 0;
}

int ConflictResolve(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kResolveHelp;
    return 0;
  }
  if (absl::Status s =
          CheckOptions(args, With(kConnection, {"--keep-current", "--take", "--value"}));
      !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 3) return Usage(error, "conflict resolve needs one ID; see --help");
  const std::string id_text = args.words[2];
  absl::StatusOr<v1::ConflictId> id = ParseConflictId(id_text);
  if (!id.ok()) return Usage(error, std::string(id.status().message()));
  const int choices = args.Has("--keep-current") + args.Has("--take") + args.Has("--value");
  if (choices != 1) {
    return Usage(error,
                 "conflict resolve needs exactly one of --keep-current, --take N and "
                 "--value VALUE");
  }
  uint32_t take = 0;
  if (args.Has("--take") && (!absl::SimpleAtoi(args.Get("--take"), &take) || take == 0)) {
    return Usage(error, "--take N needs the number conflict show gives the value (1, 2, ...)");
  }
  if (id->field().empty() && !args.Has("--keep-current")) {
    return Usage(error, absl::StrFormat("%s is a record-level conflict (deletes against writes): "
                                        "only --keep-current applies",
                                        id_text));
  }
  absl::StatusOr<CaseClient> c = Open(args);
  if (!c.ok()) {
    *error = std::string(c.status().message());
    return 1;
  }
  absl::StatusOr<SeenConflictsFile> seen = SeenConflictsFile::FromEnvironment();
  std::optional<uint64_t> version;
  if (seen.ok()) version = seen->Find(c->conn.server, id_text);
  std::string record_type;
  bool fetched = false;
  if (!version.has_value()) {
    // Nothing was shown: show it now, and decide on what was shown.
    v1::Conflict conflict;
    if (grpc::Status s = GetConflict(*c, *id, &conflict); !s.ok()) {
      *error = DescribeConflictError(s, *c, id_text);
      return 1;
    }
    if (conflict.status() == v1::CONFLICT_STATUS_RESOLVED) {
      *error = absl::StrFormat(
          "conflict %s is already resolved (closed at log position %d, by a decision or a "
          "change that left one value): nothing to do",
          id_text, conflict.resolved_position());
      return 1;
    }
    PrintConflict(conflict, std::cout);
    Remember(c->conn.server, {&conflict});
    if (take > static_cast<uint32_t>(conflict.losing_values_size())) {
      return Usage(error, absl::StrFormat("conflict %s has %d losing values: there is no --take %d",
                                          id_text, conflict.losing_values_size(), take));
    }
    version = conflict.version();
    record_type = conflict.record_type();
    fetched = true;
  }
  v1::ResolveConflictRequest request;
  *request.mutable_id() = *id;
  request.set_base_version(*version);
  std::string decision;
  if (args.Has("--keep-current")) {
    request.set_keep_current(true);
    decision = id->field().empty() ? "kept the record" : "kept the current value";
  } else if (args.Has("--take")) {
    request.set_take_losing(true);
    request.set_losing_index(take - 1);
    decision = absl::StrFormat("took value %d", take);
  } else {
    absl::StatusOr<v1::FieldValue> value = NewValue(*c, *id, record_type, args.Get("--value"));
    if (!value.ok()) {
      *error = std::string(value.status().message());
      return absl::IsInvalidArgument(value.status()) ? 2 : 1;
    }
    *request.mutable_new_value() = *std::move(value);
    decision = "wrote the new value";
  }
  if (fetched) {
    std::cout << absl::StrFormat("\nresolving with version %d, as printed above\n", *version);
  }
  v1::ResolveConflictResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = c->stub->ResolveConflict(&context, request, &response);
  if (!s.ok()) {
    switch (SyncErrorDetailOf(s).reason()) {
      case v1::SYNC_ERROR_REASON_STALE_BASE:
        *error = absl::StrFormat(
            "conflict %s changed since you looked: show it again (fieldsync conflict show %s)",
            id_text, id_text);
        return 1;
      case v1::SYNC_ERROR_REASON_ALREADY_RESOLVED:
        if (seen.ok()) (void)seen->Forget(c->conn.server, id_text);
        *error = absl::StrFormat(
            "conflict %s is already resolved (by another decision, or a change that left one "
            "value): nothing to do",
            id_text);
        return 1;
      default:
        *error = DescribeConflictError(s, *c, id_text);
        if (args.Has("--take") &&
            SyncErrorDetailOf(s).reason() == v1::SYNC_ERROR_REASON_INVALID_VALUE) {
          // The server counts losing values from 0; people, from 1.
          absl::StrAppendFormat(error, " (--take %d is index %d)", take, take - 1);
        }
        return 1;
    }
  }
  if (seen.ok()) (void)seen->Forget(c->conn.server, id_text);
  std::cout << absl::StrFormat(
      "resolved conflict %s: %s (decided on version %d; log position %d)\n", id_text, decision,
      *version, response.result().log_position());
  return 0;
}

}  // namespace fieldsync::tools
