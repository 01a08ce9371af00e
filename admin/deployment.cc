#include "admin/deployment.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "admin/default_schema.h"
#include "admin/principals.h"
#include "admin/server_keys.h"
#include "audit/log.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "crypto/master_key.h"
#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "crypto/x509.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
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

std::string DefaultConfig(const std::string& listen, const std::string& master_key_file) {
  std::string config = absl::StrCat(
      "# fieldsyncd configuration, protobuf text format.\n"
      "# Every key is listed in proto/fieldsync/v1/config.proto.\n"
      "listen: \"",
      listen,
      "\"\n"
      "log_level: \"info\"\n"
      "log_format: \"text\"\n");
  if (!master_key_file.empty()) {
    // Written by `fieldsync init --master-key-file`; the path holds no
    // quote or backslash (checked before).
    absl::StrAppend(&config,
                    "# The master key, kept outside the data directory (docs/OPERATIONS.md).\n"
                    "master_key_file: \"",
                    master_key_file, "\"\n");
  }
  return config;
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
// (a fresh directory); the master key goes to `master_key_at` when it is
// not "" (its final path is `master_key_file`, written to the config).
absl::Status Populate(const InitOptions& options, const DeploymentPaths& paths,
                      const DeploymentInfo& info, const std::string& master_key_at,
                      const std::string& master_key_file) {
  Clock& clock = *options.clock;
  Random& random = *options.random;
  absl::Time now = clock.Now();

  crypto::MasterKeyRing master = crypto::MasterKeyRing::Generate(random);
  {
    std::string text = master.Serialize();
    absl::Status written =
        WriteNewFile(master_key_at.empty() ? paths.master_key : master_key_at, text, 0600);
    crypto::Cleanse(text);
    RETURN_IF_ERROR(written);
  }

  ServerKeys keys;
  keys.deployment_id = info.deployment_id;
  keys.audit_origin = info.audit_origin;
  ASSIGN_OR_RETURN(keys.ca, crypto::CreateCertificateAuthority(
                                absl::StrCat("fieldsync deployment ", info.deployment_id), now,
                                crypto::kCaValidity));
  crypto::X25519KeyPair sealing = crypto::GenerateX25519(random);
  SealingKeyPair& first = keys.sealing_keys.emplace_back();
  first.key_id = 1;
  first.private_key = std::move(sealing.private_key);
  first.public_key = sealing.public_key;
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

  ASSIGN_OR_RETURN(protocol::NoteVerifier verifier,
                   protocol::NoteVerifier::FromPublicKey(info.audit_origin, keys.audit_public_key));
  RETURN_IF_ERROR(
      WriteNewFile(paths.audit_public_key, absl::StrCat(verifier.VerifierKey(), "\n"), 0644));
  RETURN_IF_ERROR(WriteNewFile(paths.config, DefaultConfig(options.listen, master_key_file), 0644));
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
  admin.set_certificate_not_after_unix_micros(absl::ToUnixMicros(admin_cert.not_after));
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
  protocol::StaffAdded first_admin;
  first_admin.staff_id = options.admin_id;
  first_admin.role = static_cast<uint8_t>(v1::ROLE_ADMINISTRATOR);
  first_admin.certificate_serial = admin_cert.serial_hex;
  first_admin.actor = std::string(kInitActor);
  RETURN_IF_ERROR(audit_session.Append(protocol::Event{now, std::move(first_admin)}).status());
  RETURN_IF_ERROR(store->Commit(&batch));
  audit_session.Committed();
  audit_log.reset();
  RETURN_IF_ERROR(store->Close());

  // The marker goes last: a directory without it is not a deployment.
  RETURN_IF_ERROR(WriteNewFile(paths.marker, MarkerText(info), 0644));
  return SyncDirectory(paths.root);
}

// The absolute path of a master key file init may create at `path` for
// the deployment in `target`.
absl::StatusOr<std::string> CheckNewKeyFile(const fs::path& target, const std::string& path) {
  std::error_code ec;
  fs::path key = fs::absolute(path, ec).lexically_normal();
  if (ec || !key.has_filename()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--master-key-file %s does not name a file", path));
  }
  if (key.string().find_first_of("\"\\\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--master-key-file %s: choose a path without quotes, backslashes or newlines", path));
  }
  if (IsInside(target.string(), key.string())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--master-key-file %s is inside the data directory %s: omit --master-key-file to keep "
        "the key there, or choose a path outside it (e.g. /etc/fieldsync/master.key)",
        path, target.string()));
  }
  if (fs::exists(fs::symlink_status(key, ec))) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "master key file %s already exists; fieldsync init never overwrites a key: move it away "
        "(if it is from an interrupted init) or choose another --master-key-file",
        key.string()));
  }
  if (!fs::is_directory(key.parent_path(), ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the directory of --master-key-file, %s, does not exist: create it first (owned by the "
        "user fieldsyncd runs as, mode 0700 or 0750)",
        key.parent_path().string()));
  }
  return key.string();
}

// Puts the written key at `tmp` in place at `key_file`, never replacing a
// file, durably.
absl::Status LinkKeyFile(const std::string& tmp, const std::string& key_file) {
  if (::link(tmp.c_str(), key_file.c_str()) != 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "master key file %s appeared during init; fieldsync init never overwrites a key",
          key_file));
    }
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot create master key file %s: %s", key_file, std::strerror(err)));
  }
  ::unlink(tmp.c_str());
  return SyncDirectory(fs::path(key_file).parent_path().string());
}

// Moves every entry of `staging` (a subdirectory of `target`) into
// `target`, the DEPLOYMENT marker last, removes `staging` and makes
// `target` mode 0700.
absl::Status MoveEntriesUp(const std::string& staging, const fs::path& target) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(staging, ec)) {
    if (entry.path().filename() != "DEPLOYMENT") entries.push_back(entry.path());
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot list %s: %s", staging, ec.message()));
  }
  entries.push_back(fs::path(staging) / "DEPLOYMENT");
  RETURN_IF_ERROR(SyncDirectory(staging));
  for (const fs::path& from : entries) {
    fs::rename(from, target / from.filename(), ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cannot move %s into %s: %s", from.string(), target.string(), ec.message()));
    }
  }
  fs::remove(staging, ec);
  if (::chmod(target.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot make %s mode 0700: %s", target.string(), std::strerror(errno)));
  }
  return SyncDirectory(target.string());
}

}  // namespace

bool IsInside(const std::string& data_dir, const std::string& path) {
  std::error_code ec;
  const fs::path dir = fs::absolute(data_dir, ec).lexically_normal();
  const fs::path p = fs::absolute(path, ec).lexically_normal();
  const fs::path rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != ".." && rel != ".";
}

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
  fs::path target = fs::absolute(options.data_dir, ec).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
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

  std::string key_file;  // absolute; "" for DIR/master.key
  if (!options.master_key_file.empty()) {
    ASSIGN_OR_RETURN(key_file, CheckNewKeyFile(target, options.master_key_file));
  }

  DeploymentInfo info;
  info.deployment_id = FormatUuid(NewUuid(*options.random));
  info.audit_origin = absl::StrCat("fieldsync/", info.deployment_id);

  // Build in a sibling directory and rename it into place, so that an
  // interrupted init leaves no half-made deployment. A key file kept
  // elsewhere is written under a temporary name and linked into place just
  // before: a deployment never exists without its key.
  const std::string suffix = info.deployment_id.substr(0, 8);
  // An existing empty directory (the service's /var/lib/fieldsync, made by
  // root for the service user, whose parent that user may not write) is
  // filled in place instead, keeping its owner: built in a hidden
  // subdirectory, then moved up entry by entry, the DEPLOYMENT marker last
  // (a directory without it is not a deployment).
  const bool in_place = fs::exists(target, ec);
  std::string staging = in_place ? (target / absl::StrCat(".init-", suffix)).string()
                                 : absl::StrCat(target.string(), ".init-", suffix);
  std::string key_tmp = key_file.empty() ? "" : absl::StrCat(key_file, ".init-", suffix);
  RETURN_IF_ERROR(MakeDir(staging, 0700));
  absl::Status populated = Populate(options, DeploymentPaths(staging), info, key_tmp, key_file);
  bool is_key_linked = false;
  if (populated.ok() && !key_file.empty()) {
    populated = LinkKeyFile(key_tmp, key_file);
    is_key_linked = populated.ok();
  }
  if (!key_tmp.empty()) ::unlink(key_tmp.c_str());
  if (populated.ok() && in_place) {
    populated = MoveEntriesUp(staging, target);
    if (populated.ok()) return info;
  }
  if (!populated.ok()) {
    fs::remove_all(staging, ec);
    if (in_place) {
      for (const auto& entry : fs::directory_iterator(target, ec)) fs::remove_all(entry, ec);
    }
    if (is_key_linked) ::unlink(key_file.c_str());
    return populated;
  }
  fs::rename(staging, target, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove_all(staging, ec);
    if (is_key_linked) ::unlink(key_file.c_str());
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot move the new deployment into %s: %s", target.string(), reason));
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

absl::Status CheckModes(const std::string& data_dir, const std::vector<std::string>& more_secrets) {
  struct stat st;
  if (::stat(data_dir.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot stat data directory %s: %s", data_dir, std::strerror(errno)));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "data directory %s has mode %04o: group and other users may %s the deployment's files; "
        "run: chmod 700 %s",
        data_dir, st.st_mode & 07777,
        (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ? "change or replace" : "list or read", data_dir));
  }
  const DeploymentPaths paths(data_dir);
  std::vector<std::string> secrets = {paths.master_key, paths.server_key, paths.admin_key};
  for (const std::string& dir : {paths.root, paths.root + "/tls", paths.root + "/admin"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.ends_with(".key") || name.starts_with("master.key")) {
        secrets.push_back(entry.path().string());
      }
    }
  }
  secrets.insert(secrets.end(), more_secrets.begin(), more_secrets.end());
  for (const std::string& path : secrets) {
    if (path.empty() || ::stat(path.c_str(), &st) != 0) continue;
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "secret file %s has mode %04o: group or other users may %s it; run: chmod 600 %s", path,
          st.st_mode & 07777, (st.st_mode & (S_IRGRP | S_IROTH)) != 0 ? "read" : "change or run",
          path));
    }
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::admin
