// SyncService.RenewCertificate: a device renews its own certificate
// (admin/certificates.h; docs/PROTOCOL.md "Certificate renewal").
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/rpc.h"
#include "server/sync_service.h"
#include "sync/errors.h"

namespace fieldsync::server {
namespace {

constexpr char kRenewCertificate[] = "/fieldsync.v1.SyncService/RenewCertificate";
// A P-256 CSR is under 1 KiB; anything much larger is not one.
constexpr size_t kMaxCsrBytes = 8192;

}  // namespace

grpc::ServerUnaryReactor* SyncServiceImpl::RenewCertificate(
    grpc::CallbackServerContext* context, const v1::RenewCertificateRequest* request,
    v1::RenewCertificateResponse* response) {
  // A synced commit: on the pool, like enrolment.
  return RunUnaryBlocking(
      context, kRenewCertificate, deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        if (deps_.renewal == nullptr) {
          return sync::SyncError(absl::StatusCode::kUnavailable, v1::SYNC_ERROR_REASON_UNAVAILABLE,
                                 "certificate renewal is not set up on this server");
        }
        if (request->csr_pem().size() > kMaxCsrBytes) {
          return sync::SyncError(absl::StatusCode::kInvalidArgument,
                                 v1::SYNC_ERROR_REASON_MALFORMED,
                                 absl::StrFormat("csr_pem is longer than %d bytes", kMaxCsrBytes));
        }
        ASSIGN_OR_RETURN(admin::RenewedCertificate renewed,
                         deps_.renewal->RenewDevice(caller.principal.id(), request->csr_pem()));
        log::Info("certs.renew-device", {{"device", caller.principal.id()},
                                         {"serial", renewed.principal.certificate_serial()}});
        response->set_certificate_pem(std::move(renewed.certificate_pem));
        response->set_ca_certificate_pem(deps_.cas->Get()->trust_bundle_pem);
        response->set_not_after_unix_micros(absl::ToUnixMicros(renewed.not_after));
        return absl::OkStatus();
      });
}

}  // namespace fieldsync::server
