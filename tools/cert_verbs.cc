#include "tools/cert_verbs.h"

#include <sys/types.h>

#include <filesystem>
#include <iostream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "admin/certificates.h"
#include "admin/deployment.h"
#include "admin/principals.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tools/case_format.h"
#include "tools/client.h"

namespace fieldsync::tools {

const char kCertsUsage[] =
    "usage: fieldsync certs status|renew-server ...; see fieldsync certs VERB --help\n"
    "\n"
    "  certs status [--within DAYS] [--json]    every certificate's expiry, soonest first\n"
    "  certs renew-server [--host NAME]... [--drop-host NAME]...\n"
    "                                           a new server certificate (and key)\n"
    "  certs rotate-ca [--finish [--force]]     start or finish a CA rotation\n"
    "  staff renew --id ID --out DIR [--revoke-old]\n"
    "                                           a new certificate for a staff member\n";

namespace {

const std::vector<std::string> kConnection = {"--data-dir", "--server", "--cert", "--key", "--ca"};

constexpr char kStatusHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] certs status [--within DAYS] [--json]\n"
    "\n"
    "Lists every certificate of the deployment with its expiry, soonest first\n"
    "(administrators only): the deployment CA, fieldsyncd's server certificate,\n"
    "and each active staff member's and device's (with an earlier certificate a\n"
    "renewal left valid, marked \"previous\"). Those that expire within DAYS\n"
    "(default: the server's certificate_warning_days, 30 unless configured) are\n"
    "marked \"!\". Days are counted on the server's clock.\n"
    "\n"
    "Renew with `fieldsync staff renew`, `fieldsync certs renew-server`; devices\n"
    "renew themselves (docs/PROTOCOL.md), or re-enrol once expired.\n"
    "--json prints one array of {kind, id, serial, not_after, days_left,\n"
    "previous, expiring}.\n";

constexpr char kRenewServerHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] certs renew-server\n"
    "                 [--host NAME]... [--drop-host NAME]...\n"
    "\n"
    "Issues a new server certificate for a new key (administrators only), valid\n"
    "two years. It names everything the current one names, plus each --host (a\n"
    "DNS name or an IP address clients use to reach the server), minus each\n"
    "--drop-host; localhost, 127.0.0.1 and ::1 always stay. fieldsyncd writes the\n"
    "key and certificate over its tls_key_file and tls_cert_file (each replaced\n"
    "atomically) and records the renewal in the audit log.\n"
    "\n"
    "fieldsyncd serves the new certificate from its next start: restart it\n"
    "(systemctl restart fieldsyncd). Clients need nothing new: the CA is the same.\n";

constexpr char kRotateCaHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] certs rotate-ca [--finish [--force]]\n"
    "\n"
    "Replaces the deployment CA in two steps, without cutting anyone off\n"
    "(administrators only; docs/OPERATIONS.md \"Rotating the CA\"):\n"
    "\n"
    "  certs rotate-ca            starts: a new CA issues every certificate from now\n"
    "                             on; the current CA stays trusted, so every\n"
    "                             certificate it issued keeps working, and keeps\n"
    "                             signing the server's certificate. Tablets renew\n"
    "                             theirs on their next push; renew each staff\n"
    "                             member's with `fieldsync staff renew` (the\n"
    "                             administrator's own: --id admin --out DIR/admin).\n"
    "  certs rotate-ca --finish   once every active principal holds a certificate of\n"
    "                             the new CA: the server gets a certificate from it\n"
    "                             (served from fieldsyncd's next start: restart it)\n"
    "                             and the old CA is trusted no more. Refused, listing\n"
    "                             them, while some still hold only old certificates;\n"
    "                             --force finishes anyway (they must then re-enrol or\n"
    "                             be given new certificates).\n"
    "\n"
    "Each step replaces the CA file this command used (--ca, else DIR/admin/ca.crt)\n"
    "with the CA certificates to trust from then on, and is recorded in the audit\n"
    "log. `fieldsync certs status` lists both CAs during the rotation.\n";

constexpr char kStaffRenewHelp[] =
    "usage: fieldsync --data-dir DIR [--server HOST:PORT] staff renew --id ID --out DIR\n"
    "                 [--revoke-old]\n"
    "\n"
    "Issues a new certificate, for a new key made here, to an active staff member\n"
    "(administrators only), valid one year. Writes OUTDIR/ID.crt, OUTDIR/ID.key\n"
    "(mode 0600) and OUTDIR/ca.crt, replacing those files if they exist (each\n"
    "atomically): `--id admin --out DIR/admin` renews the administrator's own.\n"
    "\n"
    "The earlier certificate keeps working until it expires, so the staff member\n"
    "can switch at leisure; --revoke-old refuses it from now on (a lost or\n"
    "copied key). The renewal is recorded in the audit log.\n";

int Usage(std::string* error, std::string message) {
  *error = std::move(message);
  return 2;
}

int Failed(std::string* error, const absl::Status& status) {
  *error = std::string(status.message());
  return 1;
}

std::string Date(int64_t unix_micros) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

}  // namespace

int CertsRotateCa(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRotateCaHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.insert(allowed.end(), {"--finish", "--force"});
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "certs rotate-ca takes no operand");
  if (args.Has("--force") && !args.Has("--finish")) {
    return Usage(error, "--force applies only with --finish");
  }
  v1::RotateCaRequest request;
  request.set_finish(args.Has("--finish"));
  request.set_force(args.Has("--force"));
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, conn.status());
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RotateCaResponse response;
  grpc::Status status =
      v1::AdminService::NewStub(conn->channel)->RotateCa(&context, request, &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  const std::string ca_file =
      args.Get("--ca", admin::DeploymentPaths(args.Get("--data-dir")).admin_ca_cert);
  absl::Status written = admin::ReplaceFile(ca_file, response.trust_bundle_pem(), 0644);
  const std::string pending = absl::StrFormat("%d active principal(s)", response.pending_count());
  if (!request.finish()) {
    std::cout << "started a CA rotation: CA " << response.generation() << ", serial "
              << response.ca_serial() << ", valid until "
              << Date(response.ca_not_after_unix_micros()) << "\n"
              << "  " << pending
              << " hold a certificate of the previous CA; tablets renew on their next push\n";
    for (const std::string& uri : response.pending()) {
      if (absl::StartsWith(uri, "fieldsync://staff/")) {
        std::cout << "  renew: fieldsync staff renew --id " << uri.substr(18) << " --out DIR\n";
      }
    }
    std::cout << "next: once `fieldsync certs rotate-ca --finish` no longer lists anyone, run it "
                 "and restart fieldsyncd\n";
  } else {
    std::cout << "finished the CA rotation: CA " << response.generation() << " alone is trusted\n"
              << "  server certificate: serial " << response.server_certificate_serial()
              << ", written to " << response.server_certificate_file()
              << " on the server's machine\n";
    if (response.pending_count() > 0) {
      std::cout << "  cut off (re-enrol or issue new certificates): " << pending << ": "
                << absl::StrJoin(response.pending(), ", ") << "\n";
    }
    std::cout << "next: restart fieldsyncd to serve the new server certificate "
                 "(systemctl restart fieldsyncd)\n";
  }
  if (!written.ok()) {
    *error = absl::StrFormat(
        "the rotation step is done, but %s could not be replaced (%s): write the CA "
        "certificates of `fieldsync certs status` there by hand",
        ca_file, written.message());
    return 1;
  }
  std::cout << "  trusted CA certificates written to " << ca_file << "\n";
  return 0;
}

int CertsStatus(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kStatusHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.insert(allowed.end(), {"--within", "--json"});
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "certs status takes no operand");
  int64_t within = -1;
  if (args.Has("--within")) {
    if (!absl::SimpleAtoi(args.Get("--within"), &within) || within < 0 || within > 3650) {
      return Usage(error, "--within needs a number of days from 0 to 3650");
    }
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, conn.status());
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::CertificateStatusResponse response;
  grpc::Status status =
      v1::AdminService::NewStub(conn->channel)
          ->GetCertificateStatus(&context, v1::CertificateStatusRequest(), &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  if (within < 0) within = response.warning_days();
  auto expiring = [&](const v1::CertificateExpiry& c) { return c.days_left() < within; };
  if (args.Has("--json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::CertificateExpiry& c : response.certificates()) {
      out.push_back({{"kind", std::string(admin::CertificateKindName(c.kind()))},
                     {"id", c.principal_id()},
                     {"serial", c.serial()},
                     {"not_after", absl::FormatTime(absl::RFC3339_sec,
                                                    absl::FromUnixMicros(c.not_after_unix_micros()),
                                                    absl::UTCTimeZone())},
                     {"days_left", c.days_left()},
                     {"previous", c.is_previous()},
                     {"expiring", expiring(c)}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  int soon = 0;
  for (const v1::CertificateExpiry& c : response.certificates()) {
    const bool mark = expiring(c);
    soon += mark ? 1 : 0;
    rows.push_back(
        {mark ? "!" : "", Date(c.not_after_unix_micros()),
         c.days_left() < 0 ? "expired" : absl::StrCat(c.days_left()),
         std::string(admin::CertificateKindName(c.kind())) + (c.is_previous() ? " (previous)" : ""),
         c.principal_id().empty() ? "-" : c.principal_id(), c.serial().empty() ? "-" : c.serial()});
  }
  PrintTable({"", "NOT AFTER", "DAYS", "KIND", "ID", "SERIAL"}, rows, std::cout);
  std::cout << absl::StrFormat("%d certificate%s, %d expiring within %d days\n", rows.size(),
                               rows.size() == 1 ? "" : "s", soon, within);
  return 0;
}

int CertsRenewServer(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kRenewServerHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.insert(allowed.end(), {"--host", "--drop-host"});
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  if (args.words.size() != 2) return Usage(error, "certs renew-server takes no operand");
  v1::RenewServerCertificateRequest request;
  for (const std::string& h : args.GetAll("--host")) {
    if (h.empty()) return Usage(error, "--host needs a host name or IP address");
    request.add_add_hosts(h);
  }
  for (const std::string& h : args.GetAll("--drop-host")) request.add_drop_hosts(h);
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, conn.status());
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RenewServerCertificateResponse response;
  grpc::Status status = v1::AdminService::NewStub(conn->channel)
                            ->RenewServerCertificate(&context, request, &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::vector<std::string> names(response.dns_names().begin(), response.dns_names().end());
  names.insert(names.end(), response.ip_addresses().begin(), response.ip_addresses().end());
  std::cout << "renewed the server certificate: serial " << response.serial() << "\n"
            << "  valid until: " << Date(response.not_after_unix_micros()) << "\n"
            << "  names:       " << absl::StrJoin(names, ", ") << "\n"
            << "  written on the server's machine: " << response.certificate_file() << ", "
            << response.key_file() << "\n"
            << "  audit log entry: " << response.audit_leaf_index() << "\n"
            << "next: restart fieldsyncd to serve it (systemctl restart fieldsyncd); until then "
               "it serves the old one\n";
  return 0;
}

int StaffRenew(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kStaffRenewHelp;
    return 0;
  }
  std::vector<std::string> allowed = kConnection;
  allowed.insert(allowed.end(), {"--id", "--out", "--revoke-old"});
  if (absl::Status s = CheckOptions(args, allowed); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  const std::string id = args.Get("--id"), out = args.Get("--out");
  if (id.empty() || out.empty()) return Usage(error, "staff renew needs --id and --out");
  if (absl::Status s = admin::ValidateStaffId(id); !s.ok()) {
    return Usage(error, std::string(s.message()));
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(out, ec)) {
    // A new directory is made only once the certificate is issued.
    if (std::filesystem::exists(out, ec)) {
      *error = absl::StrFormat("%s exists and is not a directory: choose another --out", out);
      return 1;
    }
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Failed(error, conn.status());
  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  if (!key.ok()) return Failed(error, key.status());
  absl::StatusOr<std::string> csr =
      crypto::CreateCsr(key->private_key_pem, admin::PrincipalUri({v1::PRINCIPAL_KIND_STAFF, id}));
  if (!csr.ok()) return Failed(error, csr.status());
  v1::RenewStaffCertificateRequest request;
  request.set_id(id);
  request.set_csr_pem(*csr);
  request.set_revoke_old(args.Has("--revoke-old"));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::RenewStaffCertificateResponse response;
  grpc::Status status =
      v1::AdminService::NewStub(conn->channel)->RenewStaffCertificate(&context, request, &response);
  if (!status.ok()) {
    *error = DescribeRpcError(status, conn->server);
    return 1;
  }
  std::filesystem::create_directories(out, ec);
  if (ec) {
    *error = absl::StrFormat(
        "the certificate was issued but %s cannot be created (%s): run staff renew again with "
        "another --out",
        out, ec.message());
    return 1;
  }
  const std::string key_path = absl::StrCat(out, "/", id, ".key");
  const std::string cert_path = absl::StrCat(out, "/", id, ".crt");
  const std::string ca_path = absl::StrCat(out, "/ca.crt");
  struct Output {
    std::string path;
    std::string content;
    mode_t mode;
  };
  const Output outputs[] = {{key_path, key->private_key_pem, 0600},
                            {cert_path, response.certificate_pem(), 0644},
                            {ca_path, response.ca_certificate_pem(), 0644}};
  for (const Output& o : outputs) {
    if (absl::Status s = admin::ReplaceFile(o.path, o.content, o.mode); !s.ok()) {
      *error = absl::StrFormat(
          "the certificate was issued but not saved (%s): run staff renew again", s.message());
      return 1;
    }
  }
  std::cout << "renewed the certificate of fieldsync://staff/" << id << ": serial "
            << response.principal().certificate_serial() << "\n"
            << "  valid until: " << Date(response.principal().certificate_not_after_unix_micros())
            << "\n"
            << "  certificate: " << cert_path << "\n"
            << "  key:         " << key_path << "\n"
            << "  CA:          " << ca_path << "\n";
  if (response.revoked_serials_size() > 0) {
    std::cout << "  refused from now on: " << absl::StrJoin(response.revoked_serials(), ", ")
              << "\n";
  } else if (!args.Has("--revoke-old")) {
    std::cout << "  the earlier certificate keeps working until it expires (--revoke-old "
                 "refuses it)\n";
  }
  return 0;
}

}  // namespace fieldsync::tools
