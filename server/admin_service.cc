#include "server/admin_service.h"

#include <optional>

#include "common/status_macros.h"
#include "server/audit_service.h"
#include "server/rpc.h"

namespace fieldsync::server {
namespace {

// The administrator's view of `keys` at `now`.
void AddServerSealingKeys(const admin::SealingKeySet& keys, absl::Time now,
                          google::protobuf::RepeatedPtrField<v1::ServerSealingKey>* out) {
  for (const admin::PreparedSealingKey& k : keys.keys()) {
    v1::ServerSealingKey* key = out->Add();
    key->set_key_id(k.key_id);
    key->set_public_key(std::string(k.public_key.begin(), k.public_key.end()));
    key->set_is_current(&k == &keys.current());
    if (k.not_after != absl::InfiniteFuture()) {
      key->set_not_after_unix_micros(absl::ToUnixMicros(k.not_after));
      key->set_is_retired(now > k.not_after);
    }
  }
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::WhoAmI(grpc::CallbackServerContext* context,
                                                   const v1::WhoAmIRequest* request,
                                                   v1::WhoAmIResponse* response) {
  return RunUnary(context, "/fieldsync.v1.AdminService/WhoAmI", auth_, [&](const Caller& caller) {
    response->set_principal_uri(caller.uri);
    *response->mutable_principal() = caller.principal;
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::AddStaff(grpc::CallbackServerContext* context,
                                                     const v1::AddStaffRequest* request,
                                                     v1::AddStaffResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/AddStaff", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        admin::NewStaff staff;
        staff.id = request->id();
        staff.role = request->role();
        staff.regions.assign(request->regions().begin(), request->regions().end());
        staff.csr_pem = request->csr_pem();
        ASSIGN_OR_RETURN(admin::IssuedStaff issued, staff_->Add(staff, caller.uri));
        *response->mutable_principal() = std::move(issued.principal);
        response->set_certificate_pem(std::move(issued.certificate_pem));
        response->set_ca_certificate_pem(cas_->Get()->trust_bundle_pem);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::AddOfficer(grpc::CallbackServerContext* context,
                                                       const v1::AddOfficerRequest* request,
                                                       v1::AddOfficerResponse* response) {
  return RunUnaryBlocking(context, "/fieldsync.v1.AdminService/AddOfficer", auth_, pool_,
                          [this, request, response](const Caller& caller) -> absl::Status {
                            ASSIGN_OR_RETURN(
                                *response->mutable_principal(),
                                officers_->Add(request->id(), request->region(), caller.uri));
                            return absl::OkStatus();
                          });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokePrincipal(
    grpc::CallbackServerContext* context, const v1::RevokePrincipalRequest* request,
    v1::RevokePrincipalResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RevokePrincipal", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        admin::PrincipalName name{request->kind(), request->id()};
        if (name.kind == v1::PRINCIPAL_KIND_OFFICER) {
          ASSIGN_OR_RETURN(admin::RevokedOfficer revoked, officers_->Revoke(name.id, caller.uri));
          *response->mutable_principal() = std::move(revoked.officer);
          for (std::string& id : revoked.device_ids)
            response->add_revoked_device_ids(std::move(id));
          return absl::OkStatus();
        }
        if (name.kind != v1::PRINCIPAL_KIND_STAFF && name.kind != v1::PRINCIPAL_KIND_DEVICE) {
          return absl::InvalidArgumentError("kind must be staff, device or officer");
        }
        ASSIGN_OR_RETURN(*response->mutable_principal(), staff_->Revoke(name, caller.uri));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListPrincipals(grpc::CallbackServerContext* context,
                                                           const v1::ListPrincipalsRequest* request,
                                                           v1::ListPrincipalsResponse* response) {
  return RunUnary(context, "/fieldsync.v1.AdminService/ListPrincipals", auth_,
                  [&](const Caller& caller) -> absl::Status {
                    ASSIGN_OR_RETURN(
                        std::vector<v1::Principal> listed,
                        admin::ListPrincipalsFor(*registry_, *schema_, caller.principal, *request));
                    for (v1::Principal& p : listed) *response->add_principals() = std::move(p);
                    if (activity_ == nullptr || caller.principal.role() != v1::ROLE_ADMINISTRATOR) {
                      return absl::OkStatus();
                    }
                    ASSIGN_OR_RETURN(auto last_syncs, activity_->LastSyncs());
                    auto& out = *response->mutable_device_last_sync_unix_micros();
                    for (const v1::Principal& p : response->principals()) {
                      if (p.kind() != v1::PRINCIPAL_KIND_DEVICE) continue;
                      auto it = last_syncs.find(p.id());
                      if (it != last_syncs.end()) out[p.id()] = absl::ToUnixMicros(it->second);
                    }
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateEnrolmentCode(
    grpc::CallbackServerContext* context, const v1::CreateEnrolmentCodeRequest* request,
    v1::CreateEnrolmentCodeResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/CreateEnrolmentCode", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        ASSIGN_OR_RETURN(admin::IssuedEnrolmentCode issued,
                         enrolment_->CreateCode(request->officer_id(), request->region(),
                                                absl::Seconds(request->ttl_seconds()), caller.uri));
        response->set_code(std::move(issued.code));
        response->set_code_id(std::move(issued.code_id));
        response->set_expires_unix_micros(absl::ToUnixMicros(issued.expires_at));
        response->set_officer_id(std::move(issued.officer_id));
        response->set_region(std::move(issued.region));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::EraseCase(grpc::CallbackServerContext* context,
                                                      const v1::EraseCaseRequest* request,
                                                      v1::EraseCaseResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/EraseCase", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (erasure_ == nullptr) {
          return absl::UnavailableError("case erasure is not set up on this server");
        }
        ASSIGN_OR_RETURN(
            admin::ErasedCase erased,
            erasure_->Erase(request->case_id(), request->confirm_case_id(), caller.uri));
        response->set_case_id(std::move(erased.case_id));
        response->set_audit_leaf_index(erased.audit_leaf_index);
        response->set_audit_tree_size(erased.audit_tree_size);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RotateMasterKey(
    grpc::CallbackServerContext* context, const v1::RotateMasterKeyRequest* /*request*/,
    v1::RotateMasterKeyResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RotateMasterKey", auth_, pool_,
      [this, response](const Caller& caller) -> absl::Status {
        if (rotation_ == nullptr) {
          return absl::UnavailableError("master key rotation is not set up on this server");
        }
        ASSIGN_OR_RETURN(admin::RotationResult r, rotation_->Rotate(caller.uri));
        response->set_old_version(r.old_version);
        response->set_new_version(r.new_version);
        response->set_rewrapped(r.case_keys.rewrapped);
        response->set_already_current(r.case_keys.already_current);
        response->set_erased(r.case_keys.erased);
        response->set_server_keys_rewrapped(r.server_keys_rewrapped);
        response->set_resumed(r.resumed);
        response->set_audit_leaf_index(r.audit_leaf_index);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RotateSealingKey(
    grpc::CallbackServerContext* context, const v1::RotateSealingKeyRequest* request,
    v1::RotateSealingKeyResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RotateSealingKey", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (sealing_rotation_ == nullptr) {
          return absl::UnavailableError("sealing key rotation is not set up on this server");
        }
        admin::SealingKeyCutoff cutoff;
        switch (request->previous_until_case()) {
          case v1::RotateSealingKeyRequest::kPreviousUntilUnixMicros:
            cutoff.at = absl::FromUnixMicros(request->previous_until_unix_micros());
            break;
          case v1::RotateSealingKeyRequest::kPreviousOverlapSeconds:
            if (request->previous_overlap_seconds() >
                static_cast<uint64_t>(absl::ToInt64Seconds(admin::kMaxSealingKeyOverlap))) {
              return absl::InvalidArgumentError(
                  "previous_overlap_seconds is more than 365 days: choose a shorter overlap");
            }
            cutoff.after = absl::Seconds(static_cast<int64_t>(request->previous_overlap_seconds()));
            break;
          case v1::RotateSealingKeyRequest::PREVIOUS_UNTIL_NOT_SET:
            break;
        }
        ASSIGN_OR_RETURN(admin::SealingKeyRotationResult r,
                         sealing_rotation_->Rotate(caller.uri, cutoff));
        response->set_old_key_id(r.old_key_id);
        response->set_new_key_id(r.new_key_id);
        response->set_previous_until_unix_micros(absl::ToUnixMicros(r.previous_until));
        response->set_new_public_key(std::string(r.new_public_key.begin(), r.new_public_key.end()));
        for (uint32_t id : r.deleted_key_ids) response->add_deleted_key_ids(id);
        response->set_audit_leaf_index(r.audit_leaf_index);
        AddServerSealingKeys(*r.keys, sealing_clock_->Now(), response->mutable_keys());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RotateAuditKey(
    grpc::CallbackServerContext* context, const v1::RotateAuditKeyRequest* /*request*/,
    v1::RotateAuditKeyResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RotateAuditKey", auth_, pool_,
      [this, response](const Caller& caller) -> absl::Status {
        if (audit_rotation_ == nullptr) {
          return absl::UnavailableError("audit key rotation is not set up on this server");
        }
        ASSIGN_OR_RETURN(admin::RotatedAuditKey r, audit_rotation_->Rotate(caller.uri));
        response->set_old_version(r.old_version);
        response->set_new_version(r.new_version);
        response->set_audit_leaf_index(r.transition.leaf_index);
        ToProto(r.transition.head, response->mutable_transition_head());
        response->set_verifier_key(std::move(r.verifier_key));
        response->set_verifier_key_file(std::move(r.verifier_key_file));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListSealingKeys(
    grpc::CallbackServerContext* context, const v1::ListSealingKeysRequest* /*request*/,
    v1::ListSealingKeysResponse* response) {
  return RunUnary(context, "/fieldsync.v1.AdminService/ListSealingKeys", auth_,
                  [&](const Caller&) -> absl::Status {
                    if (sealing_keys_ == nullptr) {
                      return absl::UnavailableError("sealing keys are not set up on this server");
                    }
                    AddServerSealingKeys(*sealing_keys_->Snapshot(), sealing_clock_->Now(),
                                         response->mutable_keys());
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateBackup(grpc::CallbackServerContext* context,
                                                         const v1::CreateBackupRequest* request,
                                                         v1::CreateBackupResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/CreateBackup", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (backup_ == nullptr) {
          return absl::UnavailableError("backups are not set up on this server");
        }
        ASSIGN_OR_RETURN(admin::CreatedBackup created,
                         backup_->Create(request->out_dir(), caller.uri));
        response->set_path(std::move(created.path));
        response->set_tree_size(created.head.checkpoint.size);
        ToProto(created.head, response->mutable_head());
        for (std::string& f : created.files) response->add_files(std::move(f));
        response->set_audit_leaf_index(created.audit_leaf_index);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                      const v1::GetStatusRequest* request,
                                                      v1::GetStatusResponse* response) {
  return RunUnary(
      context, "/fieldsync.v1.AdminService/GetStatus", auth_, [&](const Caller&) -> absl::Status {
        if (status_ == nullptr) {
          return absl::UnavailableError("status is not set up on this server");
        }
        ASSIGN_OR_RETURN(*response, admin::CollectStatus(
                                        *status_, absl::Seconds(request->active_window_seconds())));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UpdateStaff(grpc::CallbackServerContext* context,
                                                        const v1::UpdateStaffRequest* request,
                                                        v1::UpdateStaffResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/UpdateStaff", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        std::vector<std::string> regions(request->regions().begin(), request->regions().end());
        ASSIGN_OR_RETURN(admin::UpdatedStaff updated,
                         staff_->UpdateRegions(request->id(), regions, caller.uri));
        *response->mutable_principal() = std::move(updated.principal);
        for (std::string& r : updated.previous_regions) {
          response->add_previous_regions(std::move(r));
        }
        response->set_audit_leaf_index(updated.audit_leaf_index);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListEnrolmentCodes(
    grpc::CallbackServerContext* context, const v1::ListEnrolmentCodesRequest* request,
    v1::ListEnrolmentCodesResponse* response) {
  return RunUnary(context, "/fieldsync.v1.AdminService/ListEnrolmentCodes", auth_,
                  [&](const Caller&) -> absl::Status {
                    ASSIGN_OR_RETURN(std::vector<v1::ListedEnrolmentCode> codes,
                                     enrolment_->ListOpenCodes(request->officer_id()));
                    for (v1::ListedEnrolmentCode& c : codes) {
                      *response->add_codes() = std::move(c);
                    }
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::CancelEnrolmentCode(
    grpc::CallbackServerContext* context, const v1::CancelEnrolmentCodeRequest* request,
    v1::CancelEnrolmentCodeResponse* response) {
  return RunUnaryBlocking(context, "/fieldsync.v1.AdminService/CancelEnrolmentCode", auth_, pool_,
                          [this, request, response](const Caller& caller) -> absl::Status {
                            ASSIGN_OR_RETURN(
                                admin::CancelledEnrolmentCode cancelled,
                                enrolment_->CancelCode(request->code_id(), caller.uri));
                            *response->mutable_code() = std::move(cancelled.code);
                            response->set_audit_leaf_index(cancelled.audit_leaf_index);
                            return absl::OkStatus();
                          });
}

}  // namespace fieldsync::server
