// AdminService's certificate calls: status and renewals (admin/certificates.h).
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "crypto/x509.h"
#include "server/admin_service.h"
#include "server/rpc.h"

namespace fieldsync::server {

grpc::ServerUnaryReactor* AdminServiceImpl::GetCertificateStatus(
    grpc::CallbackServerContext* context, const v1::CertificateStatusRequest* /*request*/,
    v1::CertificateStatusResponse* response) {
  return RunUnary(
      context, "/fieldsync.v1.AdminService/GetCertificateStatus", auth_,
      [&](const Caller&) -> absl::Status {
        if (certificates_.clock == nullptr) {
          return absl::UnavailableError("certificate status is not set up on this server");
        }
        const absl::Time now = certificates_.clock->Now();
        absl::StatusOr<std::string> server_pem = ReadFile(certificates_.server_certificate_file);
        if (!server_pem.ok()) {
          return absl::FailedPreconditionError(absl::StrFormat(
              "the server certificate: %s", std::string(server_pem.status().message())));
        }
        ASSIGN_OR_RETURN(std::vector<admin::CertificateExpiry> expiries,
                         admin::ListCertificateExpiries(*registry_, cas_->Get()->trust_bundle_pem,
                                                        *server_pem, now));
        for (const admin::CertificateExpiry& e : expiries) {
          v1::CertificateExpiry* out = response->add_certificates();
          out->set_kind(e.kind);
          out->set_principal_id(e.principal_id);
          out->set_serial(e.serial);
          out->set_not_after_unix_micros(absl::ToUnixMicros(e.not_after));
          out->set_days_left(admin::DaysLeft(e.not_after, now));
          out->set_is_previous(e.is_previous);
        }
        response->set_now_unix_micros(absl::ToUnixMicros(now));
        response->set_warning_days(certificates_.warning_days);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RenewStaffCertificate(
    grpc::CallbackServerContext* context, const v1::RenewStaffCertificateRequest* request,
    v1::RenewStaffCertificateResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RenewStaffCertificate", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (certificates_.renewal == nullptr) {
          return absl::UnavailableError("certificate renewal is not set up on this server");
        }
        ASSIGN_OR_RETURN(admin::RenewedCertificate renewed,
                         certificates_.renewal->RenewStaff(request->id(), request->csr_pem(),
                                                           request->revoke_old(), caller.uri));
        log::Info("certs.renew-staff", {{"actor", caller.uri},
                                        {"staff", request->id()},
                                        {"serial", renewed.principal.certificate_serial()},
                                        {"revoked_old", renewed.revoked_serials.size()}});
        *response->mutable_principal() = std::move(renewed.principal);
        response->set_certificate_pem(std::move(renewed.certificate_pem));
        response->set_ca_certificate_pem(cas_->Get()->trust_bundle_pem);
        for (std::string& s : renewed.revoked_serials) response->add_revoked_serials(std::move(s));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RenewServerCertificate(
    grpc::CallbackServerContext* context, const v1::RenewServerCertificateRequest* request,
    v1::RenewServerCertificateResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RenewServerCertificate", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (certificates_.renewal == nullptr) {
          return absl::UnavailableError("certificate renewal is not set up on this server");
        }
        std::vector<std::string> add(request->add_hosts().begin(), request->add_hosts().end());
        std::vector<std::string> drop(request->drop_hosts().begin(), request->drop_hosts().end());
        ASSIGN_OR_RETURN(admin::RenewedServerCertificate renewed,
                         certificates_.renewal->RenewServer(add, drop, caller.uri));
        log::Info("certs.renew-server", {{"actor", caller.uri},
                                         {"serial", renewed.certificate.serial_hex},
                                         {"note", "served from the next start of fieldsyncd"}});
        response->set_serial(renewed.certificate.serial_hex);
        response->set_not_after_unix_micros(absl::ToUnixMicros(renewed.certificate.not_after));
        for (std::string& n : renewed.dns_names) response->add_dns_names(std::move(n));
        for (std::string& n : renewed.ip_addresses) response->add_ip_addresses(std::move(n));
        response->set_certificate_file(certificates_.server_certificate_file);
        response->set_key_file(certificates_.server_key_file);
        response->set_audit_leaf_index(renewed.audit_leaf_index);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RotateCa(grpc::CallbackServerContext* context,
                                                     const v1::RotateCaRequest* request,
                                                     v1::RotateCaResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.AdminService/RotateCa", auth_, pool_,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (certificates_.renewal == nullptr) {
          return absl::UnavailableError("certificate renewal is not set up on this server");
        }
        if (request->force() && !request->finish()) {
          return absl::InvalidArgumentError("force applies only to finishing a CA rotation");
        }
        ASSIGN_OR_RETURN(admin::CaRotationStep step,
                         request->finish()
                             ? certificates_.renewal->FinishCaRotation(request->force(), caller.uri)
                             : certificates_.renewal->StartCaRotation(caller.uri));
        ASSIGN_OR_RETURN(crypto::CertificateSummary ca,
                         crypto::ParseCertificate(step.ca_certificate_pem));
        log::Info(request->finish() ? "certs.rotate-ca-finish" : "certs.rotate-ca",
                  {{"actor", caller.uri},
                   {"ca_serial", ca.serial_hex},
                   {"generation", step.generation},
                   {"pending", step.pending.size()}});
        response->set_ca_certificate_pem(step.ca_certificate_pem);
        response->set_ca_serial(ca.serial_hex);
        response->set_ca_not_after_unix_micros(absl::ToUnixMicros(step.ca_not_after));
        response->set_generation(step.generation);
        response->set_trust_bundle_pem(step.trust_bundle_pem);
        response->set_pending_count(static_cast<uint32_t>(step.pending.size()));
        for (const admin::PrincipalName& name : step.pending) {
          if (response->pending_size() == 1000) break;
          response->add_pending(admin::PrincipalUri(name));
        }
        if (step.server_certificate.has_value()) {
          response->set_server_certificate_serial(step.server_certificate->serial_hex);
          response->set_server_certificate_file(certificates_.server_certificate_file);
        }
        return absl::OkStatus();
      });
}

}  // namespace fieldsync::server
