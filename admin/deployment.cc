#include "admin/deployment.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "admin/default_schema.h"
#include "admin/principals.h"
#include "admin/server_keys.h"
#include "audit/checkpoint.h"
#include "audit/events.h"
#include "audit/log.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "crypto/master_key.h"
#include "crypto/x25519.h"
#include "crypto/x509.h"
#include "storage/store.h"

namespace fieldsync::admin {
namespace {

namespace fs = std::filesystem;

// First line of the DEPLOYMENT marker (persisted).
constexpr std::string_view kMarkerFormat = "fieldsync-deployment v1";
// The actor of what init records (persisted in the first audit entry).
constexpr std::string_view kInitActor = "fieldsync init";

std::string MarkerText(const DeploymentInfo& info) {
  return absl::StrCat(std::string(kMarkerFormat), "\nid ", info.deployment_id, "\norigin ",
                      info.audit_origin, "\n");
}

std::string DefaultConfig(const std::string& listen) {
  return absl::StrCat(
      "# fieldsyncd configuration, protobuf text format.\n"
      "# Every key is listed in proto/fieldsync/v1/config.proto.\n"
      "listen: \"",
      listen,
      "\"\n"
      "log_level: \"info\"\n"
      "log_format: \"text\"\n");
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot create directory %s: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Writes every file and the database of a new deployment into `paths`
// (a fresh directory).
absl::Status Populate(const InitOptions& options, const DeploymentPaths& paths,
                      const DeploymentInfo& info) {
  Clock& clock = *options.clock;
  Random& random = *options.random;
  absl::Time now = clock.Now();

  crypto::MasterKeyRing master = crypto::MasterKeyRing::Generate(random);
  RETURN_IF_ERROR(WriteNewFile(paths.master_key, master.Serialize(), 0600));

  ServerKeys keys;
  keys.deployment_id = info.deployment_id;
  keys.audit_origin = info.audit_origin;
  ASSIGN_OR_RETURN(keys.ca, crypto::CreateCertificateAuthority(
                                absl::StrCat("fieldsync deployment ", info.deployment_id), now,
                                crypto::kCaValidity));
  crypto::X25519KeyPair sealing = crypto::GenerateX25519(random);
  keys.sealing_key_id = 1;
  keys.sealing_private_key = std::move(sealing.private_key);
  keys.sealing_public_key = sealing.public_key;
  crypto::Ed25519KeyPair audit_key = crypto::GenerateEd25519(random);
  keys.audit_signing_seed = std::move(audit_key.seed);
  keys.audit_public_key = audit_key.public_key;

  // TLS: the server certificate and the first administrator's.
  RETURN_IF_ERROR(MakeDir(paths.root + "/tls", 0755));
  RETURN_IF_ERROR(MakeDir(paths.root + "/admin", 0700));
  ASSIGN_OR_RETURN(crypto::KeyPem server_key, crypto::GenerateP256Key());
  crypto::ServerCertificateRequest server_req;
  server_req.public_key_pem = server_key.public_key_pem;
  server_req.common_name = "fieldsyncd";
  server_req.dns_names = {"localhost"};
  server_req.ip_addresses = {"127.0.0.1", "::1"};
  for (const std::string& host : options.hosts) server_req.dns_names.push_back(host);
  ASSIGN_OR_RETURN(
      crypto::IssuedCertificate server_cert,
      crypto::IssueServerCertificate(keys.ca, server_req, now, crypto::kServerValidity));
  RETURN_IF_ERROR(WriteNewFile(paths.ca_cert, keys.ca.certificate_pem, 0644));
  RETURN_IF_ERROR(WriteNewFile(paths.server_cert, server_cert.certificate_pem, 0644));
  RETURN_IF_ERROR(WriteNewFile(paths.server_key, server_key.private_key_pem, 0600));

  PrincipalName admin_name{v1::PRINCIPAL_KIND_STAFF, options.admin_id};
  RETURN_IF_ERROR(ValidateStaffId(options.admin_id));
  ASSIGN_OR_RETURN(crypto::KeyPem admin_key, crypto::GenerateP256Key());
  ASSIGN_OR_RETURN(
      crypto::IssuedCertificate admin_cert,
      crypto::IssueClientCertificate(keys.ca, admin_key.public_key_pem, PrincipalUri(admin_name),
                                     now, crypto::kClientValidity));
  RETURN_IF_ERROR(WriteNewFile(paths.admin_cert, admin_cert.certificate_pem, 0644));
  RETURN_IF_ERROR(WriteNewFile(paths.admin_key, admin_key.private_key_pem, 0600));
  RETURN_IF_ERROR(WriteNewFile(paths.admin_ca_cert, keys.ca.certificate_pem, 0644));

  ASSIGN_OR_RETURN(audit::NoteVerifier verifier,
                   audit::NoteVerifier::FromPublicKey(info.audit_origin, keys.audit_public_key));
  RETURN_IF_ERROR(
      WriteNewFile(paths.audit_public_key, absl::StrCat(verifier.VerifierKey(), "\n"), 0644));
  RETURN_IF_ERROR(WriteNewFile(paths.config, DefaultConfig(options.listen), 0644));
  // The shipped schema, embedded at build time, for fieldsyncd to load
  // (ServerConfig.schema_file's default); operators edit their copy.
  RETURN_IF_ERROR(WriteNewFile(paths.schema, std::string(DefaultSchemaText()), 0644));
  // Its aggregates: the metrics fieldsyncd counts and the DHIS2 mapping
  // `fieldsync aggregates export` uses; operators edit their copies.
  RETURN_IF_ERROR(WriteNewFile(paths.metrics, std::string(DefaultMetricsText()), 0644));
  RETURN_IF_ERROR(WriteNewFile(paths.dhis2_mapping, std::string(DefaultDhis2MappingText()), 0644));

  // The database: server keys and the administrator principal, one commit.
  storage::StoreOptions store_options;
  store_options.path = paths.db;
  store_options.create_if_missing = true;
  store_options.error_if_exists = true;
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store, storage::Store::Open(store_options));
  storage::WriteBatch batch;
  RETURN_IF_ERROR(WriteServerKeys(keys, master, random, &batch));
  v1::Principal admin;
  admin.set_id(options.admin_id);
  admin.set_kind(v1::PRINCIPAL_KIND_STAFF);
  admin.set_role(v1::ROLE_ADMINISTRATOR);
  admin.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  admin.set_created_unix_micros(absl::ToUnixMicros(now));
  admin.set_certificate_serial(admin_cert.serial_hex);
  admin.set_changed_by(std::string(kInitActor));
  PrincipalRegistry registry(store.get());
  RETURN_IF_ERROR(registry.Put(admin, &batch));
  // The first administrator is the audit log's first entry (leaf 0), a
  // StaffAdded like every later `staff add`, in the same atomic commit as
  // the principal. No head is signed here: fieldsyncd signs on demand.
  audit::AuditLogOptions audit_options;
  audit_options.store = store.get();
  audit_options.clock = &clock;
  ASSIGN_OR_RETURN(std::unique_ptr<audit::AuditLog> audit_log,
                   audit::AuditLog::Open(audit_options));
  audit::AuditSession audit_session(audit_log.get(), &batch);
  audit::StaffAdded first_admin;
  first_admin.staff_id = options.admin_id;
  first_admin.role = static_cast<uint8_t>(v1::ROLE_ADMINISTRATOR);
  first_admin.certificate_serial = admin_cert.serial_hex;
  first_admin.actor = std::string(kInitActor);
  RETURN_IF_ERROR(audit_log->Append(audit::Event{now, std::move(first_admin)}, &batch).status());
  RETURN_IF_ERROR(store->Commit(&batch));
  audit_session.Committed();
  audit_log.reset();
  RETURN_IF_ERROR(store->Close());

  // The marker goes last: a directory without it is not a deployment.
  RETURN_IF_ERROR(WriteNewFile(paths.marker, MarkerText(info), 0644));
  return SyncDirectory(paths.root);
}

}  // namespace

DeploymentPaths::DeploymentPaths(std::string data_dir)
    : root(std::move(data_dir)),
      marker(root + "/DEPLOYMENT"),
      master_key(root + "/master.key"),
      config(root + "/fieldsyncd.conf"),
      db(root + "/db"),
      ca_cert(root + "/tls/ca.crt"),
      server_cert(root + "/tls/server.crt"),
      server_key(root + "/tls/server.key"),
      admin_cert(root + "/admin/admin.crt"),
      admin_key(root + "/admin/admin.key"),
      admin_ca_cert(root + "/admin/ca.crt"),
      audit_public_key(root + "/audit-log.pub"),
      schema(root + "/schema.textproto"),
      metrics(root + "/metrics.textproto"),
      dhis2_mapping(root + "/dhis2-mapping.json") {}

absl::StatusOr<DeploymentInfo> InitDeployment(const InitOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("--data-dir is required");
  }
  std::error_code ec;
  fs::path target = fs::absolute(options.data_dir, ec);
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec) || !fs::is_empty(target, ec)) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "%s already exists and is not an empty directory; fieldsync init never touches an "
          "existing deployment: choose a new directory",
          options.data_dir));
    }
  }
  fs::path parent = target.parent_path();
  if (!fs::is_directory(parent, ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the parent directory %s does not exist: create it first", parent.string()));
  }

  DeploymentInfo info;
  info.deployment_id = FormatUuid(NewUuid(*options.random));
  info.audit_origin = absl::StrCat("fieldsync/", info.deployment_id);

  // Build in a sibling directory and rename it into place, so that an
  // interrupted init leaves no half-made deployment.
  std::string staging = absl::StrCat(target.string(), ".init-", info.deployment_id.substr(0, 8));
  RETURN_IF_ERROR(MakeDir(staging, 0700));
  absl::Status populated = Populate(options, DeploymentPaths(staging), info);
  if (!populated.ok()) {
    fs::remove_all(staging, ec);
    return populated;
  }
  // An empty target directory (made by the operator) is replaced.
  if (fs::exists(target, ec)) fs::remove(target, ec);
  fs::rename(staging, target, ec);
  if (ec) {
    fs::remove_all(staging, ec);
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot move the new deployment into %s: %s", target.string(), ec.message()));
  }
  RETURN_IF_ERROR(SyncDirectory(parent.string()));
  return info;
}

absl::StatusOr<DeploymentInfo> CheckDeployment(const std::string& data_dir) {
  std::error_code ec;
  if (!fs::is_directory(data_dir, ec)) {
    return absl::NotFoundError(absl::StrFormat(
        "data directory %s does not exist: create a deployment with `fieldsync init "
        "--data-dir %s`",
        data_dir, data_dir));
  }
  DeploymentPaths paths(data_dir);
  absl::StatusOr<std::string> marker = ReadFile(paths.marker);
  if (absl::IsNotFound(marker.status())) {
    if (fs::is_empty(data_dir, ec)) {
      return absl::NotFoundError(absl::StrFormat(
          "data directory %s is empty: create a deployment with `fieldsync init --data-dir %s`",
          data_dir, data_dir));
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is not a fieldsync data directory (it has no DEPLOYMENT file): check --data-dir",
        data_dir));
  }
  RETURN_IF_ERROR(marker.status());
  std::vector<std::string> lines = absl::StrSplit(*marker, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kMarkerFormat) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s/DEPLOYMENT is not a fieldsync v1 deployment marker: this fieldsyncd cannot use "
        "the directory",
        data_dir));
  }
  DeploymentInfo info;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.starts_with("id ")) info.deployment_id = std::string(line.substr(3));
    if (line.starts_with("origin ")) info.audit_origin = std::string(line.substr(7));
  }
  if (info.deployment_id.empty() || info.audit_origin.empty()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s/DEPLOYMENT lacks its id or origin line", data_dir));
  }
  return info;
}

}  // namespace fieldsync::admin
