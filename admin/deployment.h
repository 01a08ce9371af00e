// A deployment's data directory: its layout, its creation (`fieldsync init`)
// and the checks that fieldsyncd and the command-line tool run before they
// use one.
//
// Layout of DIR (persisted: tools and operators rely on these names):
// DIR itself is mode 0700 (fieldsyncd refuses to start otherwise).
//   DEPLOYMENT          marker: format line, deployment id, audit log origin
//   master.key          the master key ring (KEK), mode 0600; absent when
//                       init's --master-key-file put it elsewhere
//   fieldsyncd.conf     server configuration, protobuf text form
//   db/                 the RocksDB instance
//   tls/ca.crt          deployment CA certificate (its key lives wrapped in db/)
//   tls/server.crt      server certificate, tls/server.key its key (0600)
//   admin/admin.crt     administrator client certificate, admin/admin.key (0600)
//   admin/ca.crt        copy of the CA certificate, for the administrator's tools
//   audit-log.pub       the audit log's C2SP signed-note verifier key
//   schema.textproto    the deployment schema (DESIGN §4), a copy of the
//                       shipped deploy/schema/child_protection.textproto
//   metrics.textproto   the aggregate metrics (DESIGN §9), a copy of
//                       deploy/metrics/child_protection.textproto
//   dhis2-mapping.json  the DHIS2 export mapping, a copy of
//                       deploy/dhis2/child_protection.json
#ifndef FIELDSYNC_ADMIN_DEPLOYMENT_H_
#define FIELDSYNC_ADMIN_DEPLOYMENT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/random.h"

namespace fieldsync::admin {

// Paths inside one data directory.
struct DeploymentPaths {
  explicit DeploymentPaths(std::string data_dir);
  std::string root;
  std::string marker;
  std::string master_key;
  std::string config;
  std::string db;
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
  std::string admin_cert;
  std::string admin_key;
  std::string admin_ca_cert;
  std::string audit_public_key;
  std::string schema;
  std::string metrics;
  std::string dhis2_mapping;
};

// What the DEPLOYMENT marker says.
struct DeploymentInfo {
  std::string deployment_id;  // UUID
  std::string audit_origin;   // origin line of the log's checkpoints
};

struct InitOptions {
  std::string data_dir;
  // Extra names for the server certificate, besides localhost, 127.0.0.1
  // and ::1: DNS names or IP addresses.
  std::vector<std::string> hosts;
  // Written to fieldsyncd.conf as the default listen address.
  std::string listen = "127.0.0.1:7443";
  // Id of the first administrator.
  std::string admin_id = "admin";
  // Where the master key goes: "" for DIR/master.key (the quickstart
  // layout), else a path outside DIR (production: /etc/fieldsync/master.key)
  // that must not exist and whose directory must; fieldsyncd.conf then
  // names it as master_key_file (absolute).
  std::string master_key_file;
  Clock* clock = nullptr;    // not owned
  Random* random = nullptr;  // not owned
};

// Creates a deployment in `options.data_dir`, which must not exist or be
// empty: CA, server and administrator certificates, master key, the
// server's HPKE sealing key, the audit signing key and the CA key (all
// three wrapped by the master key in the database), the administrator
// principal, a default fieldsyncd.conf and audit-log.pub. Everything is
// built in a sibling temporary directory and renamed into place, so a
// failure leaves nothing behind.
// A master_key_file outside DIR is written (mode 0600) under a temporary
// name next to it and linked into place just before DIR is.
// Returns kAlreadyExists if the directory holds anything or the master key
// file exists, kFailedPrecondition if its parent (or the key file's
// directory) does not exist or is not writable, kInvalidArgument if the
// master key file would be inside DIR.

absl::StatusOr<DeploymentInfo> InitDeployment(const InitOptions& options);

// True if `path` names a file inside `data_dir` (both made absolute and
// normal; symbolic links are not followed).
bool IsInside(const std::string& data_dir, const std::string& path);

// Checks that `data_dir` holds a deployment and returns its marker.
// kNotFound (with the `fieldsync init` command to run) if the directory or
// its marker is missing; kFailedPrecondition if the directory holds
// something else or a newer format.
absl::StatusOr<DeploymentInfo> CheckDeployment(const std::string& data_dir);

// Checks, before fieldsyncd uses them, that the data directory and every
// secret file grant group and other users nothing: the directory must be
// mode 0700 (it holds the store and, by default, the master key) and each
// secret 0600 or stricter. The secrets: DIR/master.key, tls/server.key,
// admin/admin.key, every other "*.key" or "master.key*" file in DIR, tls/
// and admin/, and each of `more_secrets` (the config's tls_key_file and
// master_key_file, wherever they are). A secret that does not exist is
// skipped (whoever reads it reports that).
// kFailedPrecondition, one line naming the first offending path, its mode
// and the fix ("run: chmod 600 PATH").
absl::Status CheckModes(const std::string& data_dir, const std::vector<std::string>& more_secrets);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_DEPLOYMENT_H_
