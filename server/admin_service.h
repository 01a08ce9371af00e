// AdminService over gRPC's callback API: a thin adapter over admin/.
#ifndef FIELDSYNC_SERVER_ADMIN_SERVICE_H_
#define FIELDSYNC_SERVER_ADMIN_SERVICE_H_

#include <string>

#include "admin/audit_key_rotation.h"
#include "admin/backup.h"
#include "admin/case_erasure.h"
#include "admin/certificates.h"
#include "admin/deployment_status.h"
#include "admin/device_activity.h"
#include "admin/enrolment.h"
#include "admin/master_key_rotation.h"
#include "admin/officers.h"
#include "admin/principals.h"
#include "admin/sealing_keys.h"
#include "admin/staff.h"
#include "common/clock.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "server/auth.h"
#include "server/work_pool.h"
#include "sync/schema.h"

namespace fieldsync::server {

// Thread-safe. Pointers are not owned and must outlive the service.
class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `schema` is the deployment's (its regions).
  AdminServiceImpl(Authenticator* auth, admin::PrincipalRegistry* registry,
                   admin::StaffAdmin* staff, admin::OfficerAdmin* officers,
                   const admin::CertificateAuthorities* cas, admin::DeviceEnrolment* enrolment,
                   const sync::Schema* schema)
      : auth_(auth),
        registry_(registry),
        staff_(staff),
        officers_(officers),
        cas_(cas),
        enrolment_(enrolment),
        schema_(schema) {}

  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* context,
                                   const v1::WhoAmIRequest* request,
                                   v1::WhoAmIResponse* response) override;
  grpc::ServerUnaryReactor* AddStaff(grpc::CallbackServerContext* context,
                                     const v1::AddStaffRequest* request,
                                     v1::AddStaffResponse* response) override;
  grpc::ServerUnaryReactor* AddOfficer(grpc::CallbackServerContext* context,
                                       const v1::AddOfficerRequest* request,
                                       v1::AddOfficerResponse* response) override;
  grpc::ServerUnaryReactor* RevokePrincipal(grpc::CallbackServerContext* context,
                                            const v1::RevokePrincipalRequest* request,
                                            v1::RevokePrincipalResponse* response) override;
  grpc::ServerUnaryReactor* ListPrincipals(grpc::CallbackServerContext* context,
                                           const v1::ListPrincipalsRequest* request,
                                           v1::ListPrincipalsResponse* response) override;
  grpc::ServerUnaryReactor* CreateEnrolmentCode(grpc::CallbackServerContext* context,
                                                const v1::CreateEnrolmentCodeRequest* request,
                                                v1::CreateEnrolmentCodeResponse* response) override;
  grpc::ServerUnaryReactor* EraseCase(grpc::CallbackServerContext* context,
                                      const v1::EraseCaseRequest* request,
                                      v1::EraseCaseResponse* response) override;
  // Runs the whole rotation on the calling gRPC thread (re-wrapping every
  // case key: about 3 us per case, so ~3 s per million cases).
  grpc::ServerUnaryReactor* RotateMasterKey(grpc::CallbackServerContext* context,
                                            const v1::RotateMasterKeyRequest* request,
                                            v1::RotateMasterKeyResponse* response) override;
  // The batch-sealing keys (on the calling gRPC thread: one key generated,
  // one commit). Until set_sealing_keys, both fail with UNAVAILABLE.
  grpc::ServerUnaryReactor* RotateSealingKey(grpc::CallbackServerContext* context,
                                             const v1::RotateSealingKeyRequest* request,
                                             v1::RotateSealingKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListSealingKeys(grpc::CallbackServerContext* context,
                                            const v1::ListSealingKeysRequest* request,
                                            v1::ListSealingKeysResponse* response) override;

  // Rotates the audit log's signing key (admin/audit_key_rotation.h).
  grpc::ServerUnaryReactor* RotateAuditKey(grpc::CallbackServerContext* context,
                                           const v1::RotateAuditKeyRequest* request,
                                           v1::RotateAuditKeyResponse* response) override;

  // Runs on a thread of the work pool: a checkpoint flushes the store and
  // waits for it (about a second for a small store).
  grpc::ServerUnaryReactor* CreateBackup(grpc::CallbackServerContext* context,
                                         const v1::CreateBackupRequest* request,
                                         v1::CreateBackupResponse* response) override;

  // Certificates (server/admin_certificates.cc). Until set_certificates,
  // they fail with UNAVAILABLE.
  grpc::ServerUnaryReactor* GetCertificateStatus(grpc::CallbackServerContext* context,
                                                 const v1::CertificateStatusRequest* request,
                                                 v1::CertificateStatusResponse* response) override;
  grpc::ServerUnaryReactor* RenewStaffCertificate(
      grpc::CallbackServerContext* context, const v1::RenewStaffCertificateRequest* request,
      v1::RenewStaffCertificateResponse* response) override;
  grpc::ServerUnaryReactor* RenewServerCertificate(
      grpc::CallbackServerContext* context, const v1::RenewServerCertificateRequest* request,
      v1::RenewServerCertificateResponse* response) override;
  grpc::ServerUnaryReactor* RotateCa(grpc::CallbackServerContext* context,
                                     const v1::RotateCaRequest* request,
                                     v1::RotateCaResponse* response) override;

  struct CertificateOperations {
    admin::CertificateRenewal* renewal = nullptr;  // not owned
    // The server certificate file (ServerConfig.tls_cert_file), read per
    // call: a renewal replaces it.
    std::string server_certificate_file;
    std::string server_key_file;
    uint32_t warning_days = 30;
    Clock* clock = nullptr;  // not owned
  };
  // REQUIRES: called before the service is registered with a server.
  void set_certificates(CertificateOperations operations) { certificates_ = std::move(operations); }
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* UpdateStaff(grpc::CallbackServerContext* context,
                                        const v1::UpdateStaffRequest* request,
                                        v1::UpdateStaffResponse* response) override;
  grpc::ServerUnaryReactor* ListEnrolmentCodes(grpc::CallbackServerContext* context,
                                               const v1::ListEnrolmentCodesRequest* request,
                                               v1::ListEnrolmentCodesResponse* response) override;
  grpc::ServerUnaryReactor* CancelEnrolmentCode(grpc::CallbackServerContext* context,
                                                const v1::CancelEnrolmentCodeRequest* request,
                                                v1::CancelEnrolmentCodeResponse* response) override;

  // What GetStatus reports and where devices' last syncs are (not owned;
  // must outlive the service). Until set, GetStatus fails with UNAVAILABLE
  // and ListPrincipals lists no last sync. REQUIRES: called before the
  // service is registered with a server.
  void set_status(const admin::StatusSources* status, const admin::DeviceActivity* activity) {
    status_ = status;
    activity_ = activity;
  }

  // The key operations (not owned; must outlive the service). Until set,
  // EraseCase and RotateMasterKey fail with UNAVAILABLE. REQUIRES: called
  // before the service is registered with a server.
  void set_key_operations(admin::CaseErasure* erasure, admin::MasterKeyRotation* rotation) {
    erasure_ = erasure;
    rotation_ = rotation;
  }
  // The sealing key rotation, the keys in use and the clock their cutoffs
  // are read against (not owned; must outlive the service). REQUIRES:
  // called before the service is registered with a server.
  void set_sealing_keys(admin::SealingKeyRotation* rotation, const admin::LiveSealingKeys* live,
                        const Clock* clock) {
    sealing_rotation_ = rotation;
    sealing_keys_ = live;
    sealing_clock_ = clock;
  }
  // The audit key rotation (not owned; must outlive the service). Until
  // set, RotateAuditKey fails with UNAVAILABLE. REQUIRES: called before
  // the service is registered with a server.
  void set_audit_key_rotation(admin::AuditKeyRotation* rotation) { audit_rotation_ = rotation; }
  // The backup writer and the pool its calls run on (not owned; must
  // outlive the service). Until set, CreateBackup fails with UNAVAILABLE.
  // REQUIRES: called before the service is registered with a server.
  void set_backup(admin::BackupWriter* backup, WorkPool* pool) {
    backup_ = backup;
    pool_ = pool;
  }

 private:
  Authenticator* auth_;
  admin::PrincipalRegistry* registry_;
  admin::StaffAdmin* staff_;
  admin::OfficerAdmin* officers_;
  const admin::CertificateAuthorities* cas_;
  admin::DeviceEnrolment* enrolment_;
  const sync::Schema* schema_;
  admin::CaseErasure* erasure_ = nullptr;
  admin::MasterKeyRotation* rotation_ = nullptr;
  admin::AuditKeyRotation* audit_rotation_ = nullptr;
  admin::BackupWriter* backup_ = nullptr;
  admin::SealingKeyRotation* sealing_rotation_ = nullptr;
  const admin::LiveSealingKeys* sealing_keys_ = nullptr;
  const Clock* sealing_clock_ = nullptr;
  WorkPool* pool_ = nullptr;
  CertificateOperations certificates_;
  const admin::StatusSources* status_ = nullptr;
  const admin::DeviceActivity* activity_ = nullptr;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_ADMIN_SERVICE_H_
