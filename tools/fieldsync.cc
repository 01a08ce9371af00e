// fieldsync: the command-line tool of administrators, analysts and auditors.
// Each verb is one function; every failure prints one line to standard
// error and exits non-zero.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "admin/deployment.h"
#include "admin/principals.h"
#include "common/build_info.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "crypto/system_random.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "tools/aggregates_verbs.h"
#include "tools/audit_verbs.h"
#include "tools/backup_verbs.h"
#include "tools/case_format.h"
#include "tools/case_verbs.h"
#include "tools/cert_verbs.h"
#include "tools/cli.h"
#include "tools/client.h"
#include "tools/conflict_verbs.h"
#include "tools/device_simulate.h"
#include "tools/key_verbs.h"
#include "tools/officer_verbs.h"
#include "tools/schema_verbs.h"
#include "tools/staff_verbs.h"
#include "tools/status_verbs.h"

namespace fieldsync::tools {
namespace {

constexpr char kUsage[] =
    "usage: fieldsync VERB [options]\n"
    "\n"
    "Verbs:\n"
    "  init --data-dir DIR [--host NAME]... [--master-key-file PATH]\n"
    "                                           create a deployment in a new directory\n"
    "  whoami                                   show the caller's principal, role, regions\n"
    "  status [--window 15m] [--json]           the running server's health, sizes, devices,\n"
    "                                           last signed head, certificate expiry\n"
    "  staff add --id ID --role ROLE [--region R]... --out OUTDIR\n"
    "                                           register a staff member, write its key pair\n"
    "  staff revoke --id ID [--device]          revoke a staff member (or device) at once\n"
    "  staff list [--role R] [--region R] [--officer O] [--include-revoked]\n"
    "             [--include-simulated] [--json]\n"
    "                                           staff, officers and tablets: created, last sync\n"
    "  staff update --id ID --region R [--region R]...\n"
    "                                           replace a supervisor's or analyst's regions\n"
    "  staff renew --id ID --out DIR [--revoke-old]\n"
    "                                           a new certificate for a staff member\n"
    "  officer add --id ID --region R           register a field officer\n"
    "  officer list [--region R] [--include-revoked] [--json]\n"
    "                                           list field officers\n"
    "  officer revoke --id ID                   revoke an officer and its tablets at once\n"
    "  device enrol-code --officer ID [--region R] [--ttl 24h]\n"
    "                                           issue a one-time device enrolment code\n"
    "  device codes list [--officer O] [--json] the open enrolment codes (ids, never the codes)\n"
    "  device codes cancel --id CODE_ID         cancel an open enrolment code\n"
    "  device revoke --id UUID                  revoke an enrolled device at once\n"
    "  device simulate --devices N [--seed S] [--cases C] [--edits E] [--json]\n"
    "                                           enrol N simulated tablets, sync overlapping edits\n"
    "  case list [--region R] [--officer O] [--status open|closed] [--has-conflicts] [--json]\n"
    "                                           the cases of your regions, no child's field\n"
    "  case show CASE_ID [--json]               every record and field of a case\n"
    "  case history CASE_ID [--json]            a case's log entries and their outcomes\n"
    "  case assign CASE_ID --officer O          assign a case to an officer\n"
    "  case transfer CASE_ID --region R [--officer O] [--district D] --confirm CASE_ID\n"
    "                                           move a case to another region\n"
    "  case close CASE_ID --reason REASON       close a case, saying why\n"
    "  case reopen CASE_ID                      reopen a closed case\n"
    "  case erase CASE_ID --confirm CASE_ID     crypto-shred a case (cannot be undone)\n"
    "  conflict list [--region R] [--case CASE_ID] [--json]\n"
    "                                           open conflicts, with the version shown\n"
    "  conflict show ID [--json]                a conflict's values side by side\n"
    "  conflict resolve ID --keep-current | --take N | --value V\n"
    "                                           decide a conflict on the version shown\n"
    "  aggregates list                          the metrics you may query, and your regions\n"
    "  aggregates query --metric M [--group-by D,..] [--filter D=V,..] [--granularity G]\n"
    "                                           counts by dimension, small counts withheld\n"
    "  aggregates export --format csv|dhis2 [--out FILE]\n"
    "                                           every metric as CSV, or DHIS2 dataValueSets\n"
    "  aggregates verify [--json]               recount every counter from the log, compare\n"
    "  keys rotate-master                       add a master key version, re-wrap every key\n"
    "  keys rotate-sealing [--previous-until DATE|DURATION|now]\n"
    "                                           new batch-sealing key; the old one until the "
    "cutoff\n"
    "  keys list                                the batch-sealing keys and their cutoffs\n"
    "  keys rotate-audit                        new audit signing key, logged as a transition\n"
    "  audit export --out FILE                  write the audit log and its signed head to FILE\n"
    "  audit verify FILE --key KEYFILE [--trusted-head SAVED] [--save-head OUT] [--json]\n"
    "                                           check an export offline (no server)\n"
    "  certs status [--within DAYS] [--json]    every certificate's expiry, soonest first\n"
    "  certs renew-server [--host NAME]... [--drop-host NAME]...\n"
    "                                           new server certificate (then restart fieldsyncd)\n"
    "  certs rotate-ca [--finish [--force]]     replace the deployment CA in two steps\n"
    "  backup create --out DIR                  back up while serving (DIR: on the server's host)\n"
    "  backup verify DIR --key KEYFILE [--json] check a backup offline (no server)\n"
    "  backup restore --from DIR --data-dir NEWDIR [--master-key-file FILE]\n"
    "                                           make a deployment from a backup (offline)\n"
    "  schema check --data-dir DIR [--schema FILE] [--json]\n"
    "                                           fieldsyncd's verdict on a schema file, offline\n"
    "\n"
    "Connection options (all verbs but init):\n"
    "  --data-dir DIR      deployment directory; its administrator credentials are used\n"
    "  --server HOST:PORT  fieldsyncd address (default: the running server's, from\n"
    "                      DIR/fieldsyncd.address, which fieldsyncd writes as it starts)\n"
    "  --cert FILE --key FILE --ca FILE   another principal's credentials (a supervisor's\n"
    "                      for case and conflict verbs, as `staff add` writes them)\n"
    "\n"
    "Run `fieldsync VERB --help` for a verb's details; `fieldsync --version` prints\n"
    "the version, git commit and build type.\n";

const std::vector<std::string> kConnectionOptions = {"--data-dir", "--server", "--cert", "--key",
                                                     "--ca"};

std::vector<std::string> With(std::vector<std::string> base, std::vector<std::string> more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

struct Failure {
  std::string message;
  int code = 1;
};

using Result = std::optional<Failure>;  // nullopt = success

Result Fail(absl::string_view message, int code = 1) { return Failure{std::string(message), code}; }
Result Fail(const absl::Status& status, int code = 1) { return Fail(status.message(), code); }

Result Init(const Args& args) {
  if (args.help) {
    std::cout << "usage: fieldsync init --data-dir DIR [--host NAME]... [--listen HOST:PORT]\n"
                 "                      [--master-key-file PATH]\n\n"
                 "Creates a deployment in DIR (which must not exist or be empty; mode 0700):\n"
                 "a CA, the server certificate (localhost, 127.0.0.1, ::1 and each --host),\n"
                 "the administrator's certificate and key in DIR/admin/, the master key\n"
                 "(mode 0600), the server's sealing, audit and CA keys wrapped under it,\n"
                 "DIR/fieldsyncd.conf and the audit log's verifier key DIR/audit-log.pub.\n"
                 "Never touches an existing deployment or key file.\n\n"
                 "  --listen HOST:PORT     the address written to DIR/fieldsyncd.conf\n"
                 "                         (default 127.0.0.1:7443)\n"
                 "  --master-key-file PATH write the master key at PATH, outside DIR, and\n"
                 "                         point DIR/fieldsyncd.conf at it (production:\n"
                 "                         /etc/fieldsync/master.key). Without it the key is\n"
                 "                         DIR/master.key, and a copy of DIR is a copy of\n"
                 "                         every key (see docs/OPERATIONS.md).\n";
    return std::nullopt;
  }
  if (absl::Status s =
          CheckOptions(args, {"--data-dir", "--host", "--listen", "--master-key-file"});
      !s.ok()) {
    return Fail(s, 2);
  }
  admin::InitOptions options;
  options.data_dir = args.Get("--data-dir");
  if (options.data_dir.empty()) return Fail("init needs --data-dir DIR", 2);
  options.hosts = args.GetAll("--host");
  if (args.Has("--listen")) options.listen = args.Get("--listen");
  if (args.Has("--master-key-file")) {
    options.master_key_file = args.Get("--master-key-file");
    if (options.master_key_file.empty()) return Fail("--master-key-file needs a path", 2);
  }
  options.clock = RealClock::Get();
  options.random = crypto::SystemRandom::Get();
  absl::StatusOr<admin::DeploymentInfo> info = admin::InitDeployment(options);
  if (!info.ok()) return Fail(info.status());
  admin::DeploymentPaths paths(options.data_dir);
  std::string master_key = paths.master_key;
  if (!options.master_key_file.empty()) {
    master_key = std::filesystem::absolute(options.master_key_file).lexically_normal().string();
  }
  std::cout << "created deployment " << info->deployment_id << " in " << options.data_dir << "\n"
            << "  administrator certificate: " << paths.admin_cert << "\n"
            << "  administrator key:         " << paths.admin_key << "\n"
            << "  master key (keep safe):    " << master_key << "\n"
            << "  audit log verifier key:    " << paths.audit_public_key << "\n"
            << "start the server with: fieldsyncd --data-dir " << options.data_dir << "\n";
  if (admin::IsInside(options.data_dir, master_key)) {
    std::cerr << "fieldsync: warning: the master key is inside the data directory (" << master_key
              << "): a copy of " << options.data_dir
              << " is then a copy of every key; for production use --master-key-file "
                 "/etc/fieldsync/master.key (docs/OPERATIONS.md)\n";
  }
  return std::nullopt;
}

Result WhoAmI(const Args& args) {
  if (args.help) {
    std::cout << "usage: fieldsync --data-dir DIR [--server HOST:PORT] whoami\n\n"
                 "Prints the principal id, role and regions the server sees for the\n"
                 "credentials in use.\n";
    return std::nullopt;
  }
  if (absl::Status s = CheckOptions(args, kConnectionOptions); !s.ok()) return Fail(s, 2);
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  auto stub = v1::AdminService::NewStub(conn->channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::WhoAmIResponse response;
  grpc::Status status = stub->WhoAmI(&context, v1::WhoAmIRequest(), &response);
  if (!status.ok()) return Fail(DescribeRpcError(status, conn->server));
  const v1::Principal& p = response.principal();
  std::cout << "principal: " << response.principal_uri() << "\n"
            << "id:        " << p.id() << "\n"
            << "role:      " << admin::RoleName(p.role()) << "\n"
            << "regions:   "
            << (p.regions().empty() ? std::string("(whole deployment)")
                                    : absl::StrJoin(p.regions(), ", "))
            << "\n";
  return std::nullopt;
}

// Checks that `out` can receive `files` before anything is registered: an
// existing directory without them that this user may write to, or a path
// whose nearest existing ancestor is such a directory. Returns the first
// directory to create ("" when `out` exists), which WriteOutputFiles removes
// again on failure. kAlreadyExists / kFailedPrecondition naming the path.
absl::StatusOr<std::string> CheckOutputDirectory(const std::string& out,
                                                 const std::vector<std::string>& files) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec)) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s exists and is not a directory: choose another --out", out));
    }
    for (const std::string& f : files) {
      if (fs::exists(f, ec) || fs::is_symlink(f, ec)) {
        return absl::AlreadyExistsError(
            absl::StrFormat("%s already exists (never overwritten): choose another --out", f));
      }
    }
    if (::access(out.c_str(), W_OK | X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot write to %s: choose another --out", out));
    }
    return std::string();
  }
  fs::path first = fs::absolute(fs::path(out), ec).lexically_normal();
  if (first.has_filename() == false) first = first.parent_path();
  fs::path parent = first.parent_path();
  while (!parent.empty() && !fs::exists(parent, ec)) {
    first = parent;
    parent = parent.parent_path();
  }
  if (!fs::is_directory(parent, ec) || ::access(parent.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot create %s: %s is not a directory this user may write to", out, parent.string()));
  }
  return first.string();
}

// Creates `out` and writes `files` (path -> content, mode) there, never over
// an existing file. On failure removes what it wrote and, when `made_from`
// is not empty, the directories it made from there down.
absl::Status WriteOutputFiles(
    const std::string& out, const std::string& made_from,
    const std::vector<std::pair<std::string, std::pair<std::string, mode_t>>>& files) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  absl::Status status =
      ec ? absl::FailedPreconditionError(absl::StrFormat("cannot create %s: %s", out, ec.message()))
         : absl::OkStatus();
  std::vector<std::string> written;
  for (const auto& [path, what] : files) {
    if (!status.ok()) break;
    status = WriteNewFile(path, what.first, what.second);
    if (status.ok()) written.push_back(path);
  }
  if (status.ok()) return status;
  for (const std::string& path : written) std::filesystem::remove(path, ec);
  if (!made_from.empty()) std::filesystem::remove_all(made_from, ec);
  return status;
}

Result StaffAdd(const Args& args) {
  if (args.help) {
    std::cout << "usage: fieldsync --data-dir DIR staff add --id ID --role ROLE [--region R]...\n"
                 "                 --out OUTDIR\n\n"
                 "ROLE is supervisor, analyst, auditor or administrator. Supervisors and\n"
                 "analysts need at least one --region. A new key is made here; only its\n"
                 "public half is sent. Writes OUTDIR/ID.crt, OUTDIR/ID.key (mode 0600) and\n"
                 "OUTDIR/ca.crt (kept if there), making OUTDIR if needed. Existing files are\n"
                 "never overwritten, and when the server refuses nothing is written and no\n"
                 "directory is left behind.\n";
    return std::nullopt;
  }
  if (absl::Status s =
          CheckOptions(args, With(kConnectionOptions, {"--id", "--role", "--region", "--out"}));
      !s.ok()) {
    return Fail(s, 2);
  }
  std::string id = args.Get("--id"), out = args.Get("--out");
  if (id.empty() || !args.Has("--role") || out.empty()) {
    return Fail("staff add needs --id, --role and --out", 2);
  }
  if (absl::Status s = admin::ValidateStaffId(id); !s.ok()) return Fail(s, 2);
  absl::StatusOr<v1::Role> role = admin::ParseRoleName(args.Get("--role"));
  if (!role.ok()) return Fail(role.status(), 2);
  std::string cert_path = absl::StrCat(out, "/", id, ".crt");
  std::string key_path = absl::StrCat(out, "/", id, ".key");
  std::string ca_path = out + "/ca.crt";
  // Everything that can be checked before the server registers anyone is
  // checked first; the directory is made only once there is something to
  // put in it, and removed again if writing fails.
  absl::StatusOr<std::string> made_from = CheckOutputDirectory(out, {cert_path, key_path});
  if (!made_from.ok()) return Fail(made_from.status());
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());

  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<std::string> csr =
      crypto::CreateCsr(key->private_key_pem, admin::PrincipalUri({v1::PRINCIPAL_KIND_STAFF, id}));
  if (!csr.ok()) return Fail(csr.status());
  v1::AddStaffRequest request;
  request.set_id(id);
  request.set_role(*role);
  for (const std::string& r : args.GetAll("--region")) request.add_regions(r);
  request.set_csr_pem(*csr);
  auto stub = v1::AdminService::NewStub(conn->channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::AddStaffResponse response;
  grpc::Status status = stub->AddStaff(&context, request, &response);
  if (!status.ok()) return Fail(DescribeRpcError(status, conn->server));
  std::vector<std::pair<std::string, std::pair<std::string, mode_t>>> files = {
      {key_path, {key->private_key_pem, 0600}}, {cert_path, {response.certificate_pem(), 0644}}};
  std::error_code ec;
  if (!std::filesystem::exists(ca_path, ec)) {
    files.push_back({ca_path, {response.ca_certificate_pem(), 0644}});
  }
  if (absl::Status s = WriteOutputFiles(out, *made_from, files); !s.ok()) {
    return Fail(absl::StrFormat(
        "registered fieldsync://staff/%s but could not write its files (%s), so its key is lost: "
        "revoke it (fieldsync staff revoke --id %s) and add it again under another id",
        id, s.message(), id));
  }
  std::cout << "registered fieldsync://staff/" << id << " as " << admin::RoleName(*role) << "\n"
            << "  certificate: " << cert_path << "\n"
            << "  key:         " << key_path << "\n"
            << "  CA:          " << ca_path << "\n";
  return std::nullopt;
}

Result StaffRevoke(const Args& args) {
  if (args.help) {
    std::cout << "usage: fieldsync --data-dir DIR staff revoke --id ID [--device]\n\n"
                 "Revokes a staff principal (or, with --device, a device) from its next call\n"
                 "on. Nobody can revoke themselves.\n";
    return std::nullopt;
  }
  if (absl::Status s = CheckOptions(args, With(kConnectionOptions, {"--id", "--device"}));
      !s.ok()) {
    return Fail(s, 2);
  }
  if (!args.Has("--id")) return Fail("staff revoke needs --id", 2);
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  v1::RevokePrincipalRequest request;
  request.set_kind(args.Has("--device") ? v1::PRINCIPAL_KIND_DEVICE : v1::PRINCIPAL_KIND_STAFF);
  request.set_id(args.Get("--id"));
  auto stub = v1::AdminService::NewStub(conn->channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RevokePrincipalResponse response;
  grpc::Status status = stub->RevokePrincipal(&context, request, &response);
  if (!status.ok()) return Fail(DescribeRpcError(status, conn->server));
  std::cout << "revoked " << admin::PrincipalUri({request.kind(), request.id()}) << "\n";
  return std::nullopt;
}

Result DeviceEnrolCode(const Args& args) {
  if (args.help) {
    std::cout << "usage: fieldsync --data-dir DIR device enrol-code --officer ID [--region R]\n"
                 "                 [--ttl DURATION]\n\n"
                 "Issues a one-time code that enrols one tablet for officer ID, a registered,\n"
                 "active officer (fieldsync officer add), in the officer's region (--region R\n"
                 "may name it again; another region is refused) (docs/PROTOCOL.md). DURATION\n"
                 "is like 30m, 24h or 7d (default 24h, at most 30 days). The server keeps only\n"
                 "a hash of the code: note it now.\n";
    return std::nullopt;
  }
  if (absl::Status s =
          CheckOptions(args, With(kConnectionOptions, {"--officer", "--region", "--ttl"}));
      !s.ok()) {
    return Fail(s, 2);
  }
  if (args.Get("--officer").empty()) return Fail("device enrol-code needs --officer ID", 2);
  absl::Duration ttl = absl::ZeroDuration();
  if (args.Has("--ttl")) {
    std::string text = args.Get("--ttl");
    // absl::ParseDuration knows h, m and s; days are written as 7d.
    if (!text.empty() && text.back() == 'd') {
      int days = 0;
      if (!absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) || days <= 0) {
        return Fail("--ttl must be a duration like 30m, 24h or 7d", 2);
      }
      ttl = absl::Hours(24) * days;
    } else if (!absl::ParseDuration(text, &ttl) || ttl <= absl::ZeroDuration()) {
      return Fail("--ttl must be a duration like 30m, 24h or 7d", 2);
    }
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  v1::CreateEnrolmentCodeRequest request;
  request.set_officer_id(args.Get("--officer"));
  request.set_region(args.Get("--region"));
  request.set_ttl_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(ttl)));
  auto stub = v1::AdminService::NewStub(conn->channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::CreateEnrolmentCodeResponse response;
  grpc::Status status = stub->CreateEnrolmentCode(&context, request, &response);
  if (!status.ok()) return Fail(DescribeRpcError(status, conn->server));
  std::cout << "enrolment code: " << response.code() << "\n"
            << "code id:        " << response.code_id()
            << " (for device codes list and cancel; not a secret)\n"
            << "officer:        " << response.officer_id() << "\n"
            << "region:         " << response.region() << "\n"
            << "expires:        "
            << absl::FormatTime(absl::RFC3339_sec,
                                absl::FromUnixMicros(response.expires_unix_micros()),
                                absl::UTCTimeZone())
            << "\n"
            << "one use only; the server keeps only its hash\n";
  return std::nullopt;
}

Result DeviceRevoke(const Args& args) {
  if (args.help) {
    std::cout << "usage: fieldsync --data-dir DIR device revoke --id UUID\n\n"
                 "Revokes an enrolled device: its next call is refused.\n";
    return std::nullopt;
  }
  if (absl::Status s = CheckOptions(args, With(kConnectionOptions, {"--id"})); !s.ok()) {
    return Fail(s, 2);
  }
  if (!args.Has("--id")) return Fail("device revoke needs --id", 2);
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  v1::RevokePrincipalRequest request;
  request.set_kind(v1::PRINCIPAL_KIND_DEVICE);
  request.set_id(args.Get("--id"));
  auto stub = v1::AdminService::NewStub(conn->channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RevokePrincipalResponse response;
  grpc::Status status = stub->RevokePrincipal(&context, request, &response);
  if (!status.ok()) return Fail(DescribeRpcError(status, conn->server));
  std::cout << "revoked " << admin::PrincipalUri({request.kind(), request.id()}) << "\n";
  return std::nullopt;
}

Result Run(const Args& args) {
  const std::vector<std::string>& w = args.words;
  if (w.empty()) {
    if (args.help) {
      std::cout << kUsage;
      return std::nullopt;
    }
    return Fail("no verb given; see fieldsync --help", 2);
  }
  if (w[0] == "init" && w.size() == 1) return Init(args);
  if (w[0] == "whoami" && w.size() == 1) return WhoAmI(args);
  if (w[0] == "status") {
    std::string error;
    int code = Status(args, &error);
    return code == 0 ? std::nullopt : Fail(error, code);
  }
  if (w[0] == "staff") {
    if (w.size() == 2 && w[1] == "add") return StaffAdd(args);
    if (w.size() == 2 && w[1] == "revoke") return StaffRevoke(args);
    if (w.size() >= 2 && (w[1] == "list" || w[1] == "update" || w[1] == "renew")) {
      std::string error;
      int code = w[1] == "list"     ? StaffList(args, &error)
                 : w[1] == "update" ? StaffUpdate(args, &error)
                                    : StaffRenew(args, &error);
      return code == 0 ? std::nullopt : Fail(error, code);
    }
    if (w.size() == 1 && args.help) {
      std::cout << "usage: fieldsync staff add|revoke|list|update|renew ...; see fieldsync staff "
                   "VERB --help\n";
      return std::nullopt;
    }
    return Fail("staff needs add, revoke, list, update or renew; see fieldsync staff --help", 2);
  }
  if (w[0] == "audit") {
    std::string error;
    int code = 0;
    if (w.size() == 2 && w[1] == "export") {
      code = AuditExport(args, &error);
    } else if (w.size() >= 2 && w[1] == "verify") {
      code = AuditVerify(args, &error);
    } else if (w.size() == 1 && args.help) {
      std::cout << "usage: fieldsync audit export|verify ...; see fieldsync audit VERB --help\n";
      return std::nullopt;
    } else {
      return Fail("audit needs export or verify; see fieldsync audit --help", 2);
    }
    if (code == 0) return std::nullopt;
    return Fail(error, code);
  }
  if (w[0] == "backup") {
    std::string error;
    int code = 0;
    if (w.size() >= 2 && w[1] == "create") {
      code = BackupCreate(args, &error);
    } else if (w.size() >= 2 && w[1] == "verify") {
      code = BackupVerify(args, &error);
    } else if (w.size() >= 2 && w[1] == "restore") {
      code = BackupRestore(args, &error);
    } else if (w.size() == 1 && args.help) {
      std::cout << kBackupUsage;
      return std::nullopt;
    } else {
      return Fail("backup needs create, verify or restore; see fieldsync backup --help", 2);
    }
    return code == 0 ? std::nullopt : Fail(error, code);
  }
  if (w[0] == "certs") {
    std::string error;
    int code = 0;
    if (w.size() >= 2 && w[1] == "status") {
      code = CertsStatus(args, &error);
    } else if (w.size() >= 2 && w[1] == "renew-server") {
      code = CertsRenewServer(args, &error);
    } else if (w.size() >= 2 && w[1] == "rotate-ca") {
      code = CertsRotateCa(args, &error);
    } else if (w.size() == 1 && args.help) {
      std::cout << kCertsUsage;
      return std::nullopt;
    } else {
      return Fail("certs needs status, renew-server or rotate-ca; see fieldsync certs --help", 2);
    }
    return code == 0 ? std::nullopt : Fail(error, code);
  }
  if (w[0] == "schema") {
    std::string error;
    int code = 0;
    if (w.size() >= 2 && w[1] == "check") {
      code = SchemaCheck(args, &error);
    } else if (w.size() == 1 && args.help) {
      std::cout << kSchemaUsage;
      return std::nullopt;
    } else {
      return Fail("schema needs check; see fieldsync schema --help", 2);
    }
    return code == 0 ? std::nullopt : Fail(error, code);
  }
  if (w[0] == "aggregates") {
    std::string error;
    int code = 0;
    if (w.size() == 2 && w[1] == "list") {
      code = AggregatesList(args, &error);
    } else if (w.size() == 2 && w[1] == "query") {
      code = AggregatesQuery(args, &error);
    } else if (w.size() == 2 && w[1] == "export") {
      code = AggregatesExport(args, &error);
    } else if (w.size() == 2 && w[1] == "verify") {
      code = AggregatesVerify(args, &error);
    } else if (w.size() == 1 && args.help) {
      std::cout << "usage: fieldsync aggregates list|query|export|verify ...; see fieldsync "
                   "aggregates "
                   "VERB --help\n";
      return std::nullopt;
    } else {
      return Fail("aggregates needs list, query, export or verify; see fieldsync aggregates --help",
                  2);
    }
    if (code == 0) return std::nullopt;
    return Fail(error, code);
  }
  if (w[0] == "case" || w[0] == "conflict" || w[0] == "officer" || w[0] == "keys") {
    using Verb = int (*)(const Args&, std::string*);
    static const std::vector<std::pair<std::string, Verb>> kVerbs = {
        {"case list", CaseList},
        {"case show", CaseShow},
        {"case history", CaseHistory},
        {"case assign", CaseAssign},
        {"case transfer", CaseTransfer},
        {"case close", CaseClose},
        {"case reopen", CaseReopen},
        {"case erase", CaseErase},
        {"conflict list", ConflictList},
        {"conflict show", ConflictShow},
        {"conflict resolve", ConflictResolve},
        {"officer add", OfficerAdd},
        {"officer list", OfficerList},
        {"officer revoke", OfficerRevoke},
        {"keys rotate-master", KeysRotateMaster},
        {"keys rotate-sealing", KeysRotateSealing},
        {"keys list", KeysList},
        {"keys rotate-audit", KeysRotateAudit}};
    std::vector<std::string> names;
    for (const auto& [name, verb] : kVerbs) {
      if (!name.starts_with(w[0] + " ")) continue;
      names.push_back(name.substr(w[0].size() + 1));
      if (w.size() >= 2 && name == w[0] + " " + w[1]) {
        std::string error;
        int code = verb(args, &error);
        return code == 0 ? std::nullopt : Fail(error, code);
      }
    }
    if (w.size() == 1 && args.help) {
      std::cout << absl::StrFormat("usage: fieldsync %s %s ...; see fieldsync %s VERB --help\n",
                                   w[0], absl::StrJoin(names, "|"), w[0]);
      return std::nullopt;
    }
    return Fail(absl::StrFormat("%s needs %s; see fieldsync %s --help", w[0],
                                absl::StrJoin(names, ", "), w[0]),
                2);
  }
  if (w[0] == "device") {
    if (w.size() >= 2 && w[1] == "codes") {
      std::string error;
      int code = 0;
      if (w.size() >= 3 && w[2] == "list") {
        code = DeviceCodesList(args, &error);
      } else if (w.size() >= 3 && w[2] == "cancel") {
        code = DeviceCodesCancel(args, &error);
      } else if (w.size() == 2 && args.help) {
        std::cout << "usage: fieldsync device codes list|cancel ...; see fieldsync device codes "
                     "VERB --help\n";
        return std::nullopt;
      } else {
        return Fail("device codes needs list or cancel; see fieldsync device codes --help", 2);
      }
      return code == 0 ? std::nullopt : Fail(error, code);
    }
    if (w.size() == 2 && w[1] == "enrol-code") return DeviceEnrolCode(args);
    if (w.size() == 2 && w[1] == "revoke") return DeviceRevoke(args);
    if (w.size() == 2 && w[1] == "simulate") {
      std::string error;
      int code = DeviceSimulate(args, &error);
      return code == 0 ? std::nullopt : Fail(error, code);
    }
    if (w.size() == 1 && args.help) {
      std::cout << "usage: fieldsync device enrol-code|codes|revoke|simulate ...; see fieldsync "
                   "device VERB --help\n";
      return std::nullopt;
    }
    return Fail("device needs enrol-code, codes, revoke or simulate; see fieldsync device --help",
                2);
  }
  return Fail(absl::StrFormat("unknown verb \"%s\"; see fieldsync --help", absl::StrJoin(w, " ")),
              2);
}

}  // namespace
}  // namespace fieldsync::tools

int main(int argc, char** argv) {
  // The tool prints its own results; library events (storage opened, ...)
  // are noise to a person at a terminal unless something goes wrong.
  fieldsync::log::Configure(fieldsync::log::Level::kWarn, fieldsync::log::Format::kKeyValue);
  absl::StatusOr<fieldsync::tools::Args> args = fieldsync::tools::ParseArgs(
      argc, argv,
      {"--device", "--finish", "--force", "--include-revoked", "--include-simulated", "--json",
       "--keep-current", "--has-conflicts", "--revoke-old", "--version"});
  if (!args.ok()) {
    std::cerr << "fieldsync: " << args.status().message() << "\n";
    return 2;
  }
  if (args->Has("--version")) {
    if (!args->words.empty() || args->options.size() != 1) {
      std::cerr << "fieldsync: --version takes nothing else\n";
      return 2;
    }
    std::cout << fieldsync::VersionLine("fieldsync") << "\n";
    return 0;
  }
  fieldsync::tools::Result failure = fieldsync::tools::Run(*args);
  if (failure.has_value()) std::cerr << "fieldsync: " << failure->message << "\n";
  // Every channel is gone by now, but gRPC may still be cleaning up behind
  // them on threads of its own (its last shutdown runs detached); running
  // static destructors under those threads can abort the process after its
  // work is done. Nothing of ours needs destroying: flush and leave.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(failure.has_value() ? failure->code : 0);
}
