#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <malloc.h>
#include <signal.h>

#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "admin/audit_key_rotation.h"
#include "admin/backup.h"
#include "admin/case_erasure.h"
#include "admin/certificates.h"
#include "admin/deployment.h"
#include "admin/deployment_status.h"
#include "admin/device_activity.h"
#include "admin/enrolment.h"
#include "admin/master_key_rotation.h"
#include "admin/officers.h"
#include "admin/principals.h"
#include "admin/schema_upgrade.h"
#include "admin/sealing_keys.h"
#include "admin/server_keys.h"
#include "admin/staff.h"
#include "aggregates/counters.h"
#include "aggregates/metrics.h"
#include "audit/ingest_observer.h"
#include "audit/log.h"
#include "common/build_info.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "crypto/master_key.h"
#include "crypto/tls.h"
#include "crypto/x509.h"
#include "keys/case_keys.h"
#include "protocol/checkpoint.h"
#include "server/admin_service.h"
#include "server/aggregate_service.h"
#include "server/audit_rollback.h"
#include "server/audit_service.h"
#include "server/auth.h"
#include "server/certificate_watch.h"
#include "server/limits.h"
#include "server/listen_address.h"
#include "server/query_audit.h"
#include "server/sync_service.h"
#include "storage/store.h"
#include "sync/case_key_sealer.h"
#include "sync/change_feed.h"
#include "sync/ingest.h"
#include "sync/layout_upgrade.h"
#include "sync/rebuild.h"
#include "sync/schema.h"

namespace fieldsync::server {
namespace {

// Where a recount of the aggregate counters keeps its replayed state while
// it runs (removed afterwards).
std::string RecountDir(const std::string& data_dir) { return data_dir + "/aggregates-recount.tmp"; }

// Threads of the pool for blocking handlers (server/work_pool.h), and how
// far below the server's own priority they run: below the commit thread
// (sync/ingest.h), which keeps the server's priority. At 10 more niceness
// a handler's share of a contended core is about a tenth of the
// committer's; at 32 pushing devices the pushes that reach a started
// server together were answered within 300-370 ms rather than 445-475 ms
// (docs/BENCHMARKS.md).
constexpr int kBlockingHandlerThreads = 32;
constexpr int kBlockingHandlerNicenessIncrement = 10;

// How often failed enrolments go to the audit log (when there were any),
// and how often memory freed after a burst is given back to the system.
constexpr absl::Duration kEnrolmentAuditInterval = absl::Minutes(1);
constexpr absl::Duration kTrimInterval = absl::Seconds(5);
constexpr absl::Duration kHeadFileInterval = absl::Seconds(1);

admin::EnrolmentLimits EnrolmentLimitsOf(const v1::LimitsConfig& limits) {
  admin::EnrolmentLimits out;
  out.free_failures = limits.enrolment_free_failures();
  out.lockout_failures = limits.enrolment_lockout_failures();
  out.lockout = absl::Seconds(limits.enrolment_lockout_seconds());
  out.attempts_per_minute = limits.enrolment_attempts_per_minute();
  return out;
}

absl::StatusOr<crypto::MasterKeyRing> LoadMasterKey(const v1::ServerConfig& config) {
  if (!config.master_key_command().empty()) {
    crypto::MasterKeyRing::CommandOptions command;
    if (config.master_key_command_timeout_seconds() != 0) {  // else the default
      command.timeout = absl::Seconds(config.master_key_command_timeout_seconds());
    }
    // fieldsyncd's main blocks its stop signals before Start: pending, they
    // end the wait, so that a stop during start-up is not held up.
    command.stop_signals = {SIGTERM, SIGINT};
    return crypto::MasterKeyRing::LoadFromCommand(config.master_key_command(), command);
  }
  return crypto::MasterKeyRing::LoadFile(config.master_key_file());
}

struct TlsFiles {
  std::string certificate_pem;
  std::string private_key_pem;
  std::string ca_pem;
};

absl::StatusOr<std::string> ReadTlsFile(const std::string& path, std::string_view what) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(
        absl::StrFormat("TLS %s %s does not exist: check the data directory or tls_* in the config",
                        std::string(what), path));
  }
  return text;
}

absl::StatusOr<TlsFiles> LoadTlsFiles(const v1::ServerConfig& config, absl::Time now) {
  TlsFiles tls;
  ASSIGN_OR_RETURN(tls.certificate_pem, ReadTlsFile(config.tls_cert_file(), "certificate"));
  ASSIGN_OR_RETURN(tls.private_key_pem, ReadTlsFile(config.tls_key_file(), "key"));
  ASSIGN_OR_RETURN(tls.ca_pem, ReadTlsFile(config.tls_ca_file(), "CA certificate"));
  absl::Status chain = crypto::VerifyCertificateChain(tls.ca_pem, tls.certificate_pem, now);
  if (!chain.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("server certificate %s: %s", config.tls_cert_file(), chain.message()));
  }
  absl::Status usage = crypto::CheckServerOnlyUsage(tls.certificate_pem);
  if (!usage.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("server certificate %s: %s; restore the server certificate and key this "
                        "deployment issued (docs/OPERATIONS.md, Certificates)",
                        config.tls_cert_file(), usage.message()));
  }
  absl::Status match = crypto::CheckKeyMatchesCertificate(tls.private_key_pem, tls.certificate_pem);
  if (!match.ok()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "server key %s does not belong to certificate %s: restore the pair from the same "
        "deployment",
        config.tls_key_file(), config.tls_cert_file()));
  }
  return tls;
}

// The deployment's metrics: config.metrics_file, else DATA_DIR/metrics.textproto
// when it exists; null when there is none (aggregates are then off).
absl::StatusOr<std::unique_ptr<aggregates::Metrics>> LoadMetrics(const v1::ServerConfig& config,
                                                                 const std::string& data_dir,
                                                                 const sync::Schema* schema) {
  std::string path = config.metrics_file();
  const bool named = !path.empty();
  if (!named) path = data_dir + "/metrics.textproto";
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!named && absl::IsNotFound(text.status())) {
    log::Warn("aggregates", {{"metrics_file", "absent"},
                             {"note", "no aggregates until DATA_DIR/metrics.textproto exists"}});
    return nullptr;
  }
  if (!text.ok()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "metrics file: %s; set metrics_file in the config", text.status().message()));
  }
  absl::StatusOr<v1::MetricsConfig> parsed = aggregates::ParseMetricsConfig(*text);
  absl::StatusOr<std::unique_ptr<aggregates::Metrics>> metrics =
      parsed.ok() ? aggregates::Metrics::Create(*std::move(parsed), schema)
                  : absl::StatusOr<std::unique_ptr<aggregates::Metrics>>(parsed.status());
  if (!metrics.ok()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s; fix the file (the shipped default is deploy/metrics/child_protection.textproto)",
        path, metrics.status().message()));
  }
  return metrics;
}

// Where this server reads each file a backup copies (admin/backup.h):
// its config's paths, else the data directory's.
std::vector<std::pair<std::string, std::string>> BackupSources(const ServerOptions& options) {
  const v1::ServerConfig& config = options.config;
  const admin::DeploymentPaths paths(options.data_dir);
  return {
      {"DEPLOYMENT", paths.marker},
      {"fieldsyncd.conf", options.config_file.empty() ? paths.config : options.config_file},
      {"tls/ca.crt", config.tls_ca_file()},
      {"tls/server.crt", config.tls_cert_file()},
      {"tls/server.key", config.tls_key_file()},
      {"admin/admin.crt", paths.admin_cert},
      {"admin/admin.key", paths.admin_key},
      {"admin/ca.crt", paths.admin_ca_cert},
      {"audit-log.pub", paths.audit_public_key},
      {"schema.textproto", config.schema_file()},
      {"metrics.textproto", config.metrics_file().empty() ? paths.metrics : config.metrics_file()},
      {"dhis2-mapping.json", paths.dhis2_mapping},
  };
}

}  // namespace

class FieldsyncServer::Impl {
 public:
  std::string address;
  int port = 0;
  absl::Duration drain_timeout;
  admin::DeploymentInfo info;
  std::unique_ptr<storage::Store> store;
  admin::ServerKeys keys;
  // The CAs in use, from keys (a CA rotation changes them).
  std::unique_ptr<admin::CertificateAuthorities> cas;
  std::unique_ptr<admin::PrincipalRegistry> registry;
  std::unique_ptr<Authenticator> auth;
  // Audit (issue #5): before staff, which appends to the log.
  std::optional<protocol::NoteSigner> audit_signer;
  std::unique_ptr<audit::AuditLog> audit_log;
  std::unique_ptr<AuditServiceImpl> audit_service;
  std::unique_ptr<admin::StaffAdmin> staff;
  std::unique_ptr<admin::OfficerAdmin> officers;
  std::unique_ptr<AdminServiceImpl> admin_service;
  // Devices' last syncs and GetStatus's sources (AdminService.GetStatus).
  std::unique_ptr<admin::DeviceActivity> device_activity;
  admin::StatusSources status;
  // Sync (issue #4). Declared after the store so that they go first.
  std::unique_ptr<crypto::MasterKeyRing> master;
  std::unique_ptr<sync::Schema> schema;
  std::unique_ptr<keys::CaseKeyStore> case_keys;
  std::unique_ptr<sync::CaseKeySealer> sealer;
  // Case erasure and KEK rotation (AdminService), over case_keys and master.
  std::unique_ptr<admin::CaseErasure> case_erasure;
  std::unique_ptr<admin::MasterKeyRotation> kek_rotation;
  // AdminService.RotateAuditKey, over the audit log and the master key.
  std::unique_ptr<admin::AuditKeyRotation> audit_key_rotation;
  // AdminService.CreateBackup, over the store, the audit log and its signer.
  std::unique_ptr<admin::BackupWriter> backup;
  std::unique_ptr<audit::IngestObserver> audit_observer;
  // Aggregates (issue #6); null metrics when the deployment has none.
  std::unique_ptr<aggregates::Metrics> metrics;
  std::unique_ptr<aggregates::CounterObserver> counter_observer;
  // Appends the events of answered queries; flushed at shutdown before the
  // store closes.
  std::unique_ptr<QueryAuditTrail> query_trail;
  std::unique_ptr<AggregateServiceImpl> aggregate_service;
  std::unique_ptr<sync::Ingest> ingest;
  std::unique_ptr<sync::ChangeFeed> feed;
  std::unique_ptr<admin::DeviceEnrolment> enrolment;
  // The batch-sealing keys in use, and their rotation (AdminService).
  std::unique_ptr<admin::LiveSealingKeys> sealing_keys;
  std::unique_ptr<admin::SealingKeyRotation> sealing_rotation;
  // Runs the handlers that block (pushes waiting for their commit group);
  // destroyed after the gRPC server has drained, before what they use.
  std::unique_ptr<WorkPool> pool;
  // What one caller may use (server/limits.h): concurrent calls without a
  // certificate and per principal, pull streams per principal.
  std::unique_ptr<ConcurrencyLimit> unauthenticated_calls;
  std::unique_ptr<ConcurrencyLimit> principal_calls;
  std::unique_ptr<TokenBuckets> pull_buckets;
  CallLimits call_limits;
  // Enrolment backoff, lockout and counts; their audit events and the
  // return of freed memory run on `maintenance`, stopped by `stop`.
  std::unique_ptr<admin::EnrolmentAttempts> enrolment_attempts;
  absl::Notification stop;
  std::thread maintenance;
  std::unique_ptr<SyncServiceImpl> sync_service;
  std::unique_ptr<CaseServiceImpl> case_service;
  std::unique_ptr<grpc::Server> grpc_server;
  // Certificates: renewals (AdminService, SyncService) and the expiry
  // warnings, whose thread stops before the store closes.
  std::unique_ptr<admin::CertificateRenewal> certificate_renewal;
  std::unique_ptr<CertificateWatch> certificate_watch;
  absl::Mutex mu;
  bool is_shut_down ABSL_GUARDED_BY(mu) = false;
};

FieldsyncServer::FieldsyncServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FieldsyncServer::~FieldsyncServer() {
  absl::Status s = Shutdown();
  if (!s.ok()) log::Error("shutdown", {{"reason", s.message()}});
}

const std::string& FieldsyncServer::address() const { return impl_->address; }
int FieldsyncServer::port() const { return impl_->port; }
const std::string& FieldsyncServer::deployment_id() const { return impl_->info.deployment_id; }

absl::StatusOr<std::unique_ptr<FieldsyncServer>> FieldsyncServer::Start(
    const ServerOptions& options) {
  const v1::ServerConfig& config = options.config;
  auto impl = std::make_unique<Impl>();
  impl->drain_timeout = absl::Seconds(config.drain_timeout_seconds());
  ASSIGN_OR_RETURN(impl->info, admin::CheckDeployment(options.data_dir));
  RETURN_IF_ERROR(
      admin::CheckModes(options.data_dir, {config.tls_key_file(), config.master_key_file()}));
  ASSIGN_OR_RETURN(ListenAddress listen, ParseListenAddress(config.listen()));
  if (listen.port != 0) RETURN_IF_ERROR(ProbeListenAddress(listen));

  ASSIGN_OR_RETURN(crypto::MasterKeyRing master_ring, LoadMasterKey(config));
  impl->master = std::make_unique<crypto::MasterKeyRing>(std::move(master_ring));
  const crypto::MasterKeyRing& master = *impl->master;
  absl::StatusOr<v1::Schema> schema_proto = sync::LoadSchemaFile(config.schema_file());
  if (!schema_proto.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("schema: %s; set schema_file in the config (the shipped default is "
                        "deploy/schema/child_protection.textproto)",
                        schema_proto.status().message()));
  }
  ASSIGN_OR_RETURN(impl->schema, sync::Schema::Create(*std::move(schema_proto)));
  ASSIGN_OR_RETURN(impl->metrics, LoadMetrics(config, options.data_dir, impl->schema.get()));
  std::optional<TlsFiles> tls;
  if (!config.insecure_plaintext_loopback()) {
    // A server certificate renewal cut short between its two renames.
    RETURN_IF_ERROR(
        admin::CompleteServerCertificateRenewal(config.tls_cert_file(), config.tls_key_file()));
    ASSIGN_OR_RETURN(tls, LoadTlsFiles(config, options.clock->Now()));
  }

  storage::StoreOptions store_options;
  store_options.path = admin::DeploymentPaths(options.data_dir).db;
  store_options.block_cache_bytes = size_t{config.storage().block_cache_mib()} << 20;
  store_options.max_background_jobs = static_cast<int>(config.storage().max_background_jobs());
  ASSIGN_OR_RETURN(impl->store, storage::Store::Open(store_options));
  absl::StatusOr<admin::ServerKeys> keys = admin::LoadServerKeys(*impl->store, master);
  if (absl::IsDataLoss(keys.status())) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the master key does not open this database's keys: %s; use the master key file made "
        "with this deployment",
        keys.status().message()));
  }
  RETURN_IF_ERROR(keys.status());
  impl->keys = *std::move(keys);
  ASSIGN_OR_RETURN(
      protocol::NoteSigner audit_signer,
      protocol::NoteSigner::Create(impl->keys.audit_origin, impl->keys.audit_signing_seed.span()));
  impl->audit_signer.emplace(std::move(audit_signer));
  audit::AuditLogOptions audit_options;
  audit_options.store = impl->store.get();
  audit_options.clock = options.clock;
  audit_options.signer = &*impl->audit_signer;
  // Heads published before a rotation (a head file) are still the log's.
  for (const auto& [version, public_key] : impl->keys.former_audit_public_keys) {
    ASSIGN_OR_RETURN(protocol::NoteVerifier former,
                     protocol::NoteVerifier::FromPublicKey(impl->keys.audit_origin, public_key));
    audit_options.former_keys.push_back(std::move(former));
  }
  // Outside db/, so that restoring an old backup of db/ cannot roll it back.
  audit_options.head_file = options.data_dir + "/audit-head.note";
  // And a copy elsewhere, which also catches a restore of the whole
  // data directory.
  RETURN_IF_ERROR(CheckHeadCopyFile(config.audit_head_copy_file(), options.data_dir));
  audit_options.head_copy_file = config.audit_head_copy_file();
  // Each commit group's head is committed with the group; the head files
  // (fsync + rename each) get one at most this often, and the maintenance
  // thread writes a held-back head within kTrimInterval once pushes stop.
  audit_options.head_file_interval = kHeadFileInterval;
  ASSIGN_OR_RETURN(impl->audit_log, audit::AuditLog::Open(audit_options));
  // Before anything appends: the store must extend every published head,
  // or an administrator accepts that it does not.
  RETURN_IF_ERROR(CheckAuditRollback(impl->audit_log.get(), options.accept_rollback_size,
                                     LocalOperatorActor(), options.data_dir));

  impl->registry = std::make_unique<admin::PrincipalRegistry>(impl->store.get());
  impl->cas = std::make_unique<admin::CertificateAuthorities>(impl->keys);
  impl->auth =
      std::make_unique<Authenticator>(impl->registry.get(), impl->cas.get(), options.clock);
  impl->staff = std::make_unique<admin::StaffAdmin>(impl->store.get(), impl->registry.get(),
                                                    impl->schema.get(), impl->cas.get(),
                                                    options.clock, impl->audit_log.get());
  impl->officers = std::make_unique<admin::OfficerAdmin>(impl->store.get(), impl->registry.get(),
                                                         impl->schema.get(), options.clock,
                                                         impl->audit_log.get());
  impl->enrolment = std::make_unique<admin::DeviceEnrolment>(
      impl->store.get(), impl->registry.get(), impl->cas.get(), options.clock, options.random);
  impl->enrolment->set_audit_log(impl->audit_log.get());
  impl->admin_service = std::make_unique<AdminServiceImpl>(
      impl->auth.get(), impl->registry.get(), impl->staff.get(), impl->officers.get(),
      impl->cas.get(), impl->enrolment.get(), impl->schema.get());

  impl->case_keys = std::make_unique<keys::CaseKeyStore>(impl->store.get(), impl->master.get());
  impl->sealer = std::make_unique<sync::CaseKeySealer>(impl->store.get(), impl->case_keys.get(),
                                                       options.random);
  impl->case_erasure = std::make_unique<admin::CaseErasure>(
      impl->store.get(), impl->case_keys.get(), impl->audit_log.get(), options.clock);
  admin::RotationOptions rotation;
  rotation.store = impl->store.get();
  rotation.case_keys = impl->case_keys.get();
  // The ring is shared with case_keys; MasterKeyRing is thread-safe, and a
  // rotation installs its new version with Adopt only after the key file
  // holds it (admin/master_key_rotation.h).
  rotation.ring = impl->master.get();
  rotation.audit = impl->audit_log.get();
  rotation.clock = options.clock;
  rotation.random = options.random;
  rotation.key_file = config.master_key_command().empty() ? config.master_key_file() : "";
  impl->kek_rotation = std::make_unique<admin::MasterKeyRotation>(std::move(rotation));
  impl->admin_service->set_key_operations(impl->case_erasure.get(), impl->kek_rotation.get());
  admin::AuditKeyRotationOptions audit_rotation;
  audit_rotation.store = impl->store.get();
  audit_rotation.audit = impl->audit_log.get();
  audit_rotation.master = impl->master.get();
  audit_rotation.random = options.random;
  audit_rotation.audit_origin = impl->keys.audit_origin;
  audit_rotation.current_version = impl->keys.audit_key_version;
  audit_rotation.data_dir = options.data_dir;
  impl->audit_key_rotation = std::make_unique<admin::AuditKeyRotation>(std::move(audit_rotation));
  impl->admin_service->set_audit_key_rotation(impl->audit_key_rotation.get());
  {
    // The schema against the one the store was last served under, before
    // anything is read or rebuilt with it.
    admin::SchemaStartOptions schema_check;
    schema_check.store = impl->store.get();
    schema_check.audit = impl->audit_log.get();
    schema_check.schema = impl->schema.get();
    schema_check.accept_change = options.accept_schema_change;
    schema_check.now = options.clock->Now();
    RETURN_IF_ERROR(admin::CheckSchemaAtStart(schema_check).status());
    // Registries from before certificate expiries were recorded get them
    // once, before serving.
    ASSIGN_OR_RETURN(
        int filled, admin::RecordMissingCertificateExpiries(impl->store.get(), impl->registry.get(),
                                                            impl->keys.ca.certificate_pem));
    if (filled > 0) log::Info("certs.upgrade", {{"recorded_expiries", filled}});
    admin::CertificateRenewal::Options renewal;
    renewal.store = impl->store.get();
    renewal.registry = impl->registry.get();
    renewal.cas = impl->cas.get();
    renewal.master = impl->master.get();
    renewal.random = options.random;
    renewal.ca_certificate_file = config.tls_ca_file();
    renewal.clock = options.clock;
    renewal.audit = impl->audit_log.get();
    renewal.server_certificate_file = config.tls_cert_file();
    renewal.server_key_file = config.tls_key_file();
    renewal.device_renewal_window =
        std::max(admin::kDeviceRenewalWindow,
                 absl::Hours(24) * static_cast<int64_t>(config.certificate_warning_days()));
    impl->certificate_renewal = std::make_unique<admin::CertificateRenewal>(std::move(renewal));
    AdminServiceImpl::CertificateOperations certificates;
    certificates.renewal = impl->certificate_renewal.get();
    certificates.server_certificate_file = config.tls_cert_file();
    certificates.server_key_file = config.tls_key_file();
    certificates.warning_days = config.certificate_warning_days();
    certificates.clock = options.clock;
    impl->admin_service->set_certificates(std::move(certificates));
  }
  {
    // Deployments from before officers were principals get an officer entry
    // for every officer their devices and codes name, once, before serving.
    ASSIGN_OR_RETURN(admin::OfficerUpgrade officers,
                     admin::RegisterOfficersOfExistingDevices(
                         impl->store.get(), impl->registry.get(), *impl->schema, options.clock,
                         impl->audit_log.get()));
    if (officers.ran) {
      log::Info("officers.upgrade", {{"registered", officers.registered.size()}});
    }
  }
  {
    // State stored in layout 1 is rebuilt in layout 2, verified against it
    // first (sync/layout_upgrade.h).
    sync::LayoutUpgradeOptions layout;
    layout.scratch_dir = options.data_dir + "/layout-upgrade.tmp";
    ASSIGN_OR_RETURN(sync::LayoutUpgrade upgraded,
                     sync::UpgradeStateLayout(*impl->schema, impl->store.get(), layout));
    if (upgraded.upgraded) {
      log::Info("sync", {{"state", "layout upgraded"},
                         {"layout", std::to_string(sync::kStateLayout)},
                         {"entries", std::to_string(upgraded.entries)},
                         {"records", std::to_string(upgraded.records)},
                         {"conflicts", std::to_string(upgraded.conflicts)}});
    }
  }
  {
    // State built under earlier merge rules is rebuilt from the log before
    // anything commits; the counters are then recounted from it.
    ASSIGN_OR_RETURN(sync::StateUpgrade upgrade,
                     sync::BringStateToCurrentRules(*impl->schema, impl->store.get()));
    if (upgrade.rebuilt) {
      log::Info("sync", {{"state", "rebuilt"},
                         {"merge_rules", std::to_string(sync::kMergeRules)},
                         {"entries", std::to_string(upgrade.entries)}});
      storage::WriteBatch recount;
      recount.Delete(storage::Cf::kMetadata,
                     storage::EncodeMetadataKey(aggregates::kCountersFingerprintName));
      RETURN_IF_ERROR(impl->store->Commit(&recount));
    }
  }
  sync::Ingest::Options ingest;
  ingest.store = impl->store.get();
  ingest.schema = impl->schema.get();
  ingest.sealer = impl->sealer.get();
  ingest.clock = options.clock;
  ingest.max_clock_skew = absl::Seconds(config.sync().max_clock_skew_seconds());
  ingest.max_changes_per_batch = config.sync().max_batch_changes();
  // Every committed batch and supervisor change gets its audit event in the
  // same atomic write.
  impl->audit_observer = std::make_unique<audit::IngestObserver>(impl->audit_log.get());
  ingest.observers.push_back(impl->audit_observer.get());
  if (impl->metrics != nullptr) {
    // Counters follow every commit in the same atomic write; before the
    // first, they are brought in line with the metrics file.
    ASSIGN_OR_RETURN(aggregates::PrepareOutcome prepared,
                     aggregates::PrepareCounters(impl->store.get(), *impl->metrics, *impl->schema,
                                                 RecountDir(options.data_dir)));
    if (prepared.rebuilt) {
      log::Info("aggregates", {{"counters", "rebuilt"}, {"entries", prepared.entries}});
    }
    impl->counter_observer = std::make_unique<aggregates::CounterObserver>(impl->metrics.get());
    ingest.observers.push_back(impl->counter_observer.get());
  }
  impl->ingest = std::make_unique<sync::Ingest>(std::move(ingest));
  impl->feed =
      std::make_unique<sync::ChangeFeed>(impl->store.get(), impl->schema.get(), impl->sealer.get());
  ASSIGN_OR_RETURN(std::shared_ptr<const admin::SealingKeySet> sealing_keys,
                   admin::SealingKeySet::Prepare(impl->keys.sealing_keys));
  impl->sealing_keys = std::make_unique<admin::LiveSealingKeys>(std::move(sealing_keys));
  // From here on the live set is the only copy: none goes stale here.
  impl->keys.sealing_keys.clear();
  {
    admin::SealingKeyRotationOptions rotation;
    rotation.store = impl->store.get();
    // Shared with case_keys and the KEK rotation: MasterKeyRing is
    // thread-safe, and a new sealing key wrapped under a version the KEK
    // rotation is moving away from stays readable (the file keeps every
    // version) and moves at the next KEK rotation.
    rotation.ring = impl->master.get();
    rotation.audit = impl->audit_log.get();
    rotation.clock = options.clock;
    rotation.random = options.random;
    rotation.live = impl->sealing_keys.get();
    rotation.default_overlap =
        absl::Hours(24) * static_cast<int64_t>(config.sealing_key_overlap_days());
    impl->sealing_rotation = std::make_unique<admin::SealingKeyRotation>(std::move(rotation));
    impl->admin_service->set_sealing_keys(impl->sealing_rotation.get(), impl->sealing_keys.get(),
                                          options.clock);
  }
  // As many pushes may wait for one commit group as there are threads: 32
  // lets the group of 32 devices pushing at once commit together, and a
  // thread that waits costs no CPU.
  const v1::LimitsConfig& limits = config.limits();
  impl->pool = std::make_unique<WorkPool>(kBlockingHandlerThreads, limits.work_queue_bound(),
                                          kBlockingHandlerNicenessIncrement);
  impl->unauthenticated_calls =
      std::make_unique<ConcurrencyLimit>(limits.max_concurrent_unauthenticated_calls());
  impl->principal_calls =
      std::make_unique<ConcurrencyLimit>(limits.max_concurrent_calls_per_principal());
  impl->pull_buckets =
      std::make_unique<TokenBuckets>(limits.pulls_per_minute(), limits.pull_burst(), options.clock);
  impl->call_limits.unauthenticated = impl->unauthenticated_calls.get();
  impl->call_limits.per_principal = impl->principal_calls.get();
  impl->call_limits.pulls = impl->pull_buckets.get();
  impl->pool->set_call_limits(&impl->call_limits);
  impl->enrolment_attempts =
      std::make_unique<admin::EnrolmentAttempts>(EnrolmentLimitsOf(limits), options.clock);
  admin::BackupWriterOptions backup;
  backup.store = impl->store.get();
  backup.audit = impl->audit_log.get();
  backup.clock = options.clock;
  backup.info = impl->info;
  backup.files = BackupSources(options);
  impl->backup = std::make_unique<admin::BackupWriter>(std::move(backup));
  impl->admin_service->set_backup(impl->backup.get(), impl->pool.get());
  impl->device_activity = std::make_unique<admin::DeviceActivity>(impl->store.get(), options.clock);
  impl->auth->set_device_activity(impl->device_activity.get());
  impl->status.version = std::string(BuildVersion());
  impl->status.commit = std::string(BuildCommit());
  impl->status.build_type = std::string(BuildType());
  impl->status.deployment_id = impl->info.deployment_id;
  impl->status.db_path = admin::DeploymentPaths(options.data_dir).db;
  impl->status.audit = impl->audit_log.get();
  impl->status.registry = impl->registry.get();
  impl->status.enrolment = impl->enrolment.get();
  impl->status.enrolment_attempts = impl->enrolment_attempts.get();
  impl->status.activity = impl->device_activity.get();
  impl->status.server_certificate_pem = tls.has_value() ? tls->certificate_pem : "";
  impl->status.cas = impl->cas.get();
  impl->status.clock = options.clock;
  impl->status.started = options.clock->Now();
  impl->admin_service->set_status(&impl->status, impl->device_activity.get());
  SyncServiceDeps deps;
  deps.auth = impl->auth.get();
  deps.pool = impl->pool.get();
  deps.call_limits = &impl->call_limits;
  deps.enrolment = impl->enrolment.get();
  deps.enrolment_attempts = impl->enrolment_attempts.get();
  deps.max_enroll_request_bytes = limits.max_enroll_request_bytes();
  deps.renewal = impl->certificate_renewal.get();
  deps.keys = &impl->keys;
  deps.cas = impl->cas.get();
  deps.sealing_keys = impl->sealing_keys.get();
  deps.ingest = impl->ingest.get();
  deps.feed = impl->feed.get();
  deps.schema = impl->schema.get();
  deps.store = impl->store.get();
  deps.random = options.random;
  deps.audit_log = impl->audit_log.get();
  deps.clock = options.clock;
  deps.limits.max_bytes = config.sync().max_batch_bytes();
  deps.limits.max_changes = config.sync().max_batch_changes();
  deps.max_pull_chunk_changes = config.sync().max_pull_chunk_changes();
  deps.max_pull_chunk_bytes = config.sync().max_pull_chunk_bytes();
  deps.min_pull_chunk_changes = config.sync().min_pull_chunk_changes();
  deps.pull_access_repeat_window = absl::Seconds(config.sync().pull_access_repeat_seconds());
  impl->sync_service = std::make_unique<SyncServiceImpl>(deps);
  impl->case_service = std::make_unique<CaseServiceImpl>(deps);

  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (tls.has_value()) {
    RETURN_IF_ERROR(crypto::RequireTls13ForProcess());
    // The handshake proves the client holds the key of the certificate it
    // presents; the chain, validity and principal are checked per call by
    // Authenticator, so that a refusal is a clear UNAUTHENTICATED status
    // rather than a failed handshake, and so that Enroll works without one.
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
    ssl.pem_root_certs = tls->ca_pem;
    ssl.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->certificate_pem});
    credentials = grpc::SslServerCredentials(ssl);
    credentials->SetAuthMetadataProcessor(std::make_shared<CertificateGate>(impl->auth.get()));
  } else {
    credentials = grpc::InsecureServerCredentials();
    log::Warn("plaintext",
              {{"listen", config.listen()}, {"note", "no TLS: only the health check answers"}});
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen.ToString(), credentials, &impl->port);
  builder.RegisterService(impl->admin_service.get());
  impl->audit_service = std::make_unique<AuditServiceImpl>(impl->auth.get(), impl->audit_log.get());
  impl->audit_service->set_pool(impl->pool.get());
  builder.RegisterService(impl->audit_service.get());
  builder.RegisterService(impl->sync_service.get());
  builder.RegisterService(impl->case_service.get());
  impl->query_trail =
      std::make_unique<QueryAuditTrail>(impl->audit_log.get(), impl->store.get(), options.clock);
  impl->aggregate_service = std::make_unique<AggregateServiceImpl>(
      impl->auth.get(), impl->store.get(), impl->metrics.get(), impl->schema.get(), options.clock,
      impl->pool.get(), RecountDir(options.data_dir), impl->query_trail.get());
  builder.RegisterService(impl->aggregate_service.get());
  // Oversize batches must reach the service, which refuses them with a
  // machine-readable reason, rather than be cut off by gRPC's own limit.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(config.sync().max_batch_bytes() + (uint64_t{1} << 20)));
  // All messages being received, by anyone, share this memory: past it
  // gRPC shrinks its read buffers and then cancels calls being received
  // (RESOURCE_EXHAUSTED), so that callers without a certificate cannot
  // make the server hold a 5 MiB message each (docs/SECURITY.md).
  grpc::ResourceQuota quota("fieldsyncd");
  quota.Resize(size_t{limits.memory_quota_mib()} << 20);
  builder.SetResourceQuota(quota);
  impl->grpc_server = builder.BuildAndStart();
  if (impl->grpc_server == nullptr || impl->port == 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot listen on %s: the port is in use or the address is not on this machine; "
        "choose another with --listen",
        listen.ToString()));
  }
  impl->grpc_server->GetHealthCheckService()->SetServingStatus(true);
  impl->maintenance = std::thread([raw = impl.get()] {
    absl::Time next_audit = absl::Now() + kEnrolmentAuditInterval;
    while (!raw->stop.WaitForNotificationWithTimeout(kTrimInterval)) {
      // Memory freed after a burst of calls goes back to the system (glibc
      // builds; jemalloc purges on its own thread, server/main.cc).
      malloc_trim(0);
      if (raw->audit_log != nullptr) raw->audit_log->WriteHeadFilesIfBehind();
      if (absl::Now() < next_audit) continue;
      next_audit = absl::Now() + kEnrolmentAuditInterval;
      absl::StatusOr<bool> wrote = admin::AuditEnrolmentFailures(
          raw->enrolment_attempts.get(), raw->audit_log.get(), raw->store.get());
      if (!wrote.ok()) log::Warn("enrolment.failures", {{"reason", wrote.status().message()}});
    }
  });
  listen.port = impl->port;
  impl->address = listen.ToString();
  log::Info("serving", {{"listen", impl->address},
                        {"deployment", impl->info.deployment_id},
                        {"tls", tls.has_value() ? "mutual-tls1.3" : "none"}});
  {
    CertificateWatch::Options watch;
    watch.registry = impl->registry.get();
    watch.cas = impl->cas.get();
    watch.server_certificate_file = config.tls_cert_file();
    watch.clock = options.clock;
    watch.warning = absl::Hours(24) * static_cast<int64_t>(config.certificate_warning_days());
    impl->certificate_watch = std::make_unique<CertificateWatch>(std::move(watch));
    impl->certificate_watch->Start();
  }
  return std::unique_ptr<FieldsyncServer>(new FieldsyncServer(std::move(impl)));
}

absl::Status FieldsyncServer::Shutdown() {
  absl::MutexLock lock(&impl_->mu);
  if (impl_->is_shut_down) return absl::OkStatus();
  impl_->is_shut_down = true;
  log::Info("shutdown.begin", {{"drain_s", absl::ToInt64Seconds(impl_->drain_timeout)}});
  if (impl_->grpc_server != nullptr) {
    impl_->grpc_server->GetHealthCheckService()->SetServingStatus(false);
    // Stops accepting, waits for in-flight calls until the deadline, then
    // cancels what is left.
    impl_->grpc_server->Shutdown(absl::ToChronoTime(absl::Now() + impl_->drain_timeout));
    impl_->grpc_server->Wait();
  }
  if (impl_->ingest != nullptr) {
    // What this run committed (counts and sizes only).
    const sync::IngestStats stats = impl_->ingest->Stats();
    log::Info("ingest.summary", {{"groups", stats.groups},
                                 {"units", stats.units},
                                 {"log_entries", stats.log_entries},
                                 {"write_ops", stats.write_ops},
                                 {"write_bytes", stats.write_bytes},
                                 {"commit_micros", stats.commit_micros},
                                 {"write_micros", stats.write_micros}});
  }
  // The last committed head, if the head files do not hold it yet.
  if (impl_->audit_log != nullptr) impl_->audit_log->WriteHeadFilesIfBehind();
  impl_->query_trail.reset();
  impl_->certificate_watch.reset();
  if (impl_->maintenance.joinable()) {
    impl_->stop.Notify();
    impl_->maintenance.join();
  }
  if (impl_->enrolment_attempts != nullptr && impl_->audit_log != nullptr &&
      impl_->store != nullptr) {
    // The failed enrolments since the last minute's event.
    absl::StatusOr<bool> wrote = admin::AuditEnrolmentFailures(
        impl_->enrolment_attempts.get(), impl_->audit_log.get(), impl_->store.get());
    if (!wrote.ok()) log::Warn("enrolment.failures", {{"reason", wrote.status().message()}});
  }
  if (impl_->device_activity != nullptr) {
    // The last syncs noted since the last flush (at most a minute's worth).
    if (absl::Status s = impl_->device_activity->Flush(); !s.ok()) {
      log::Warn("device_activity.flush", {{"reason", s.message()}});
    }
  }
  absl::Status closed = absl::OkStatus();
  if (impl_->store != nullptr) {
    closed = impl_->store->Flush();
    absl::Status c = impl_->store->Close();
    if (closed.ok()) closed = c;
  }
  log::Info("shutdown.done", {{"code", absl::StatusCodeToString(closed.code())}});
  return closed;
}

}  // namespace fieldsync::server
