#include "tools/enrol_device.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/x25519.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"

namespace fieldsync::tools {

std::shared_ptr<grpc::Channel> DeviceChannel(const std::string& server, const std::string& ca_pem,
                                             const std::string& certificate_pem,
                                             const std::string& private_key_pem) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  ssl.pem_cert_chain = certificate_pem;
  ssl.pem_private_key = private_key_pem;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(ssl), args);
}

absl::StatusOr<EnrolledDevice> EnrolDevice(const Connection& admin, const std::string& ca_pem,
                                           const EnrolDeviceRequest& request, Random& random) {
  v1::CreateEnrolmentCodeRequest code_request;
  code_request.set_officer_id(request.officer_id);
  code_request.set_region(request.region);
  code_request.set_ttl_seconds(3600);
  v1::CreateEnrolmentCodeResponse code;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = v1::AdminService::NewStub(admin.channel)
                         ->CreateEnrolmentCode(&context, code_request, &code);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrFormat("enrolment code: %s", DescribeRpcError(s, admin.server)));
    }
  }

  // The tablet's keys: TLS (P-256, CSR), signing (Ed25519), receiving
  // (X25519).
  ASSIGN_OR_RETURN(crypto::KeyPem tls_key, crypto::GenerateP256Key());
  ASSIGN_OR_RETURN(std::string csr,
                   crypto::CreateCsr(tls_key.private_key_pem, "fieldsync://device/new"));
  crypto::Ed25519KeyPair signing = crypto::GenerateEd25519(random);
  crypto::X25519KeyPair receiving = crypto::GenerateX25519(random);
  v1::EnrollRequest enrol;
  enrol.set_enrolment_code(code.code());
  enrol.set_csr_pem(csr);
  enrol.set_signing_public_key(crypto::ToString(signing.public_key));
  enrol.set_receiving_public_key(crypto::ToString(receiving.public_key));
  enrol.set_device_label(request.label);
  v1::EnrollResponse enrolment;
  {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_pem;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(admin.server, grpc::SslCredentials(ssl), args);
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status s = v1::SyncService::NewStub(channel)->Enroll(&context, enrol, &enrolment);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrFormat("enrol: %s", DescribeRpcError(s, admin.server)));
    }
  }
  ASSIGN_OR_RETURN(crypto::Ed25519Signer signer,
                   crypto::Ed25519Signer::Create(signing.seed.span()));
  ASSIGN_OR_RETURN(crypto::X25519PrivateKey receiving_key,
                   crypto::X25519PrivateKey::Create(receiving.private_key.span()));
  ASSIGN_OR_RETURN(device::Tablet tablet,
                   device::Tablet::Create(enrolment, std::move(signer), std::move(receiving_key)));
  EnrolledDevice out;
  out.tablet = std::make_unique<device::Tablet>(std::move(tablet));
  out.certificate_pem = enrolment.certificate_pem();
  out.tls_private_key_pem = tls_key.private_key_pem;
  out.channel = DeviceChannel(admin.server, ca_pem, out.certificate_pem, out.tls_private_key_pem);
  return out;
}

}  // namespace fieldsync::tools
