// fieldsyncd as an object: opens a deployment's data directory, serves its
// gRPC services with mutual TLS, and shuts down cleanly. main() and the
// integration tests both run it this way.
#ifndef FIELDSYNC_SERVER_SERVER_H_
#define FIELDSYNC_SERVER_SERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/random.h"
#include "fieldsync/v1/config.pb.h"

namespace fieldsync::server {

struct ServerOptions {
  std::string data_dir;
  // With defaults applied (ApplyDefaults) and validated (ValidateConfig).
  v1::ServerConfig config;
  // The config file `config` was read from, which backups copy; "" means
  // DATA_DIR/fieldsyncd.conf (when it exists).
  std::string config_file;
  // `fieldsyncd --accept-rollback SIZE`: the administrator accepts that
  // the store's audit tree, of this size, does not extend the heads the
  // deployment published (server/audit_rollback.h). Empty: refuse to start
  // in that case.
  std::optional<uint64_t> accept_rollback_size;
  // Accept an incompatible schema change (fieldsyncd --accept-schema-change,
  // audited): see admin/schema_upgrade.h.
  bool accept_schema_change = false;
  Clock* clock = nullptr;    // not owned; must outlive the server
  Random* random = nullptr;  // not owned; must outlive the server
};

// Thread-safe.
class FieldsyncServer {
 public:
  // Opens the deployment and starts serving. Operator mistakes come back
  // as one-line statuses naming the problem and the fix:
  //  kNotFound / kFailedPrecondition: missing or foreign data directory,
  //   unreadable or too widely readable master key file, wrong master key
  //   for the database, missing, mismatched or expired TLS files, port in
  //   use, address not on this machine.
  //   The store's audit tree does not extend the last signed head the
  //   deployment published (a restore from an older backup, or a fork),
  //   unless accept_rollback_size is its size; accept_rollback_size given
  //   when there is nothing to accept, or another size.
  //   use, address not on this machine, a schema change the store cannot
  //   take (admin/schema_upgrade.h).
  //  kUnavailable: the database is locked by another fieldsyncd.
  static absl::StatusOr<std::unique_ptr<FieldsyncServer>> Start(const ServerOptions& options);

  // Stops accepting calls, lets in-flight calls finish for up to the
  // configured drain timeout (then cancels them), flushes and closes the
  // database. Idempotent.
  absl::Status Shutdown();
  ~FieldsyncServer();

  // The address actually bound (the port resolved if 0 was asked).
  const std::string& address() const;
  int port() const;
  const std::string& deployment_id() const;

  class Impl;

 private:
  explicit FieldsyncServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_SERVER_H_
