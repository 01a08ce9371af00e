// SyncService (tablets) and CaseService (supervisors) over gRPC's callback
// API: thin adapters over admin/enrolment.h, server/sealed_batch.h and the
// sync module (sync/ingest.h, sync/change_feed.h, sync/schema.h).
// docs/PROTOCOL.md is the device-side contract.
#ifndef FIELDSYNC_SERVER_SYNC_SERVICE_H_
#define FIELDSYNC_SERVER_SYNC_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "admin/certificates.h"
#include "admin/enrolment.h"
#include "admin/sealing_keys.h"
#include "admin/server_keys.h"
#include "audit/access_ledger.h"
#include "audit/log.h"
#include "common/clock.h"
#include "common/random.h"
#include "crypto/x25519.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "server/auth.h"
#include "server/limits.h"
#include "server/sealed_batch.h"
#include "server/work_pool.h"
#include "storage/store.h"
#include "sync/change_feed.h"
#include "sync/ingest.h"
#include "sync/schema.h"

namespace fieldsync::server {

// What both services need. Pointers are not owned and must outlive the
// services.
struct SyncServiceDeps {
  Authenticator* auth = nullptr;
  // Where handlers that block (push, enrolment, case changes) run; inline
  // on gRPC's threads when null.
  WorkPool* pool = nullptr;
  // Per-principal pull rate and concurrent calls (server/limits.h); null:
  // none.
  const CallLimits* call_limits = nullptr;
  admin::DeviceEnrolment* enrolment = nullptr;
  // Per-address backoff and lockout of enrolment attempts, and their
  // counts; null: none.
  admin::EnrolmentAttempts* enrolment_attempts = nullptr;
  // Largest Enroll request accepted (LimitsConfig.max_enroll_request_bytes).
  uint32_t max_enroll_request_bytes = 65536;
  // Device certificate renewal; RenewCertificate is UNAVAILABLE when null.
  admin::CertificateRenewal* renewal = nullptr;
  const admin::ServerKeys* keys = nullptr;
  // The CAs devices are given to trust, and whether a device's certificate
  // is from a CA being retired.
  const admin::CertificateAuthorities* cas = nullptr;
  // The batch-sealing keys in use (replaced by a rotation while serving).
  const admin::LiveSealingKeys* sealing_keys = nullptr;
  sync::Ingest* ingest = nullptr;
  const sync::ChangeFeed* feed = nullptr;
  const sync::Schema* schema = nullptr;
  storage::Store* store = nullptr;
  Random* random = nullptr;
  // Optional: when set, a push answer carries the audit receipt of the
  // batch's audit event (if the log holds one).
  // When set, every pull chunk and conflict list that carries case data
  // is first recorded as a CaseAccess event (who read which cases); the
  // data is withheld if that fails.
  audit::AuditLog* audit_log = nullptr;
  // The time of those events; absl::Now() when null.
  const Clock* clock = nullptr;
  BatchLimits limits;
  uint32_t max_pull_chunk_changes = 2000;
  uint32_t max_pull_chunk_bytes = 2 << 20;
  // The floor on a pull request's max_changes_per_chunk (a device may ask
  // for less than max_pull_chunk_changes, not for less than this; capped
  // at max_pull_chunk_changes), so that a pull cannot be cut into
  // one-change chunks (PROTOCOL.md §6).
  uint32_t min_pull_chunk_changes = 100;
  // A pull chunk whose changes a CaseAccess entry written this recently
  // covers (same principal) is not recorded again (audit/access_ledger.h,
  // docs/AUDIT.md §1). Zero records every chunk that carries changes.
  absl::Duration pull_access_repeat_window = absl::Minutes(5);
};

// Thread-safe.
class SyncServiceImpl final : public v1::SyncService::CallbackService {
 public:
  explicit SyncServiceImpl(SyncServiceDeps deps);

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const v1::PushRequest* request,
                                 v1::PushResponse* response) override;
  grpc::ServerWriteReactor<v1::PullChunk>* Pull(grpc::CallbackServerContext* context,
                                                const v1::PullRequest* request) override;
  grpc::ServerUnaryReactor* GetSchema(grpc::CallbackServerContext* context,
                                      const v1::GetSchemaRequest* request,
                                      v1::GetSchemaResponse* response) override;
  // server/sync_certificates.cc.
  grpc::ServerUnaryReactor* RenewCertificate(grpc::CallbackServerContext* context,
                                             const v1::RenewCertificateRequest* request,
                                             v1::RenewCertificateResponse* response) override;
  grpc::ServerUnaryReactor* GetSealingKeys(grpc::CallbackServerContext* context,
                                           const v1::GetSealingKeysRequest* request,
                                           v1::GetSealingKeysResponse* response) override;

 private:
  // Enroll from the peer `address` (an IP), under the request size limit
  // and the address's backoff and lockout; counts a wrong code.
  absl::Status DoEnroll(const std::string& address, const v1::EnrollRequest& request,
                        v1::EnrollResponse* response);
  absl::Status EnrollDevice(const v1::EnrollRequest& request, v1::EnrollResponse* response);
  absl::Status DoPush(const Caller& caller, const v1::PushRequest& request,
                      v1::PushResponse* response);
  SyncServiceDeps deps_;
  // Records pulls' reads; null without an audit log.
  std::unique_ptr<audit::AccessLedger> access_ledger_;
};

// Thread-safe.
class CaseServiceImpl final : public v1::CaseService::CallbackService {
 public:
  explicit CaseServiceImpl(SyncServiceDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* ListCases(grpc::CallbackServerContext* context,
                                      const v1::ListCasesRequest* request,
                                      v1::ListCasesResponse* response) override;
  grpc::ServerUnaryReactor* GetCase(grpc::CallbackServerContext* context,
                                    const v1::GetCaseRequest* request,
                                    v1::GetCaseResponse* response) override;
  grpc::ServerUnaryReactor* GetCaseHistory(grpc::CallbackServerContext* context,
                                           const v1::GetCaseHistoryRequest* request,
                                           v1::GetCaseHistoryResponse* response) override;
  grpc::ServerUnaryReactor* GetConflict(grpc::CallbackServerContext* context,
                                        const v1::GetConflictRequest* request,
                                        v1::Conflict* response) override;

  grpc::ServerUnaryReactor* ListConflicts(grpc::CallbackServerContext* context,
                                          const v1::ListConflictsRequest* request,
                                          v1::ListConflictsResponse* response) override;
  grpc::ServerUnaryReactor* ResolveConflict(grpc::CallbackServerContext* context,
                                            const v1::ResolveConflictRequest* request,
                                            v1::ResolveConflictResponse* response) override;
  grpc::ServerUnaryReactor* AssignCase(grpc::CallbackServerContext* context,
                                       const v1::AssignCaseRequest* request,
                                       v1::AssignCaseResponse* response) override;
  grpc::ServerUnaryReactor* TransferCase(grpc::CallbackServerContext* context,
                                         const v1::TransferCaseRequest* request,
                                         v1::TransferCaseResponse* response) override;
  grpc::ServerUnaryReactor* SetCaseStatus(grpc::CallbackServerContext* context,
                                          const v1::SetCaseStatusRequest* request,
                                          v1::SetCaseStatusResponse* response) override;

 private:
  // OK when `case_id` is a case of one of the caller's regions. NOT_FOUND
  // (no such case), OUT_OF_SCOPE, MALFORMED (not a UUID).
  absl::Status CheckCaseInScope(const Caller& caller, const std::string& case_id);
  // OK when `region` is a region of the schema (else INVALID_VALUE naming
  // them) and one of the caller's (else OUT_OF_SCOPE).
  absl::Status CheckRegionInScope(const Caller& caller, const std::string& region);
  // OK when `officer_id` is a registered, active officer of `region` (else
  // INVALID_VALUE naming the region's officers).
  absl::Status CheckOfficer(const std::string& case_id, const std::string& officer_id,
                            const std::string& region);
  SyncServiceDeps deps_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_SYNC_SERVICE_H_
