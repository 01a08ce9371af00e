#include "server/auth.h"

#include <grpcpp/security/auth_context.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "admin/certificates.h"
#include "common/status_macros.h"
#include "crypto/x509.h"
#include "server/grpc_status.h"
#include "server/rpc.h"
#include "sync/errors.h"

namespace fieldsync::server {
namespace {

constexpr std::string_view kPushMethod = "/fieldsync.v1.SyncService/Push";
constexpr std::string_view kPullMethod = "/fieldsync.v1.SyncService/Pull";

// Bound on cached certificate verifications; the cache is cleared when full.
constexpr size_t kMaxCachedCertificates = 20000;

std::string PeerCertificatePem(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> values = auth->FindPropertyValues("x509_pem_cert");
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

absl::StatusOr<Authenticator::VerifiedCertificate> Authenticator::VerifiedName(
    const std::string& pem) {
  absl::Time now = clock_->Now();
  std::shared_ptr<const admin::CertificateAuthorities::State> cas = cas_->Get();
  {
    absl::MutexLock lock(&mu_);
    auto it = verified_.find(pem);
    if (it != verified_.end() && it->second.trust_version == cas->version &&
        now >= it->second.not_before && now < it->second.not_after) {
      return it->second.verified;
    }
  }
  absl::Status chain = crypto::VerifyCertificateChain(cas->trust_bundle_pem, pem, now);
  if (absl::IsFailedPrecondition(chain)) {
    // Expired or not yet valid (this certificate or the CA's): a tablet
    // acts on the reason (PROTOCOL.md "Certificate renewal").
    return sync::SyncError(absl::StatusCode::kUnauthenticated,
                           v1::SYNC_ERROR_REASON_CERTIFICATE_EXPIRED,
                           absl::StrFormat("client certificate refused: %s", chain.message()));
  }
  if (!chain.ok()) {
    return absl::UnauthenticatedError(
        absl::StrFormat("client certificate refused: %s", chain.message()));
  }
  ASSIGN_OR_RETURN(crypto::CertificateSummary summary, crypto::ParseCertificate(pem));
  if (!summary.extended_key_usage.client_auth) {
    // Every certificate this deployment has issued to a principal carries
    // clientAuth (SECURITY.md "Certificate purposes"); one without it is
    // meant for a server (or for nothing TLS) and never names a caller.
    return absl::UnauthenticatedError(absl::StrFormat(
        "client certificate refused: its extended key usage is %s, and a client certificate "
        "must allow clientAuth; connect with the certificate this deployment issued to the "
        "principal (staff add, device enrolment, renewal), not a server certificate",
        crypto::DescribeExtendedKeyUsage(summary.extended_key_usage)));
  }
  if (summary.uris.size() != 1) {
    return absl::UnauthenticatedError(
        "client certificate must name exactly one fieldsync principal in a URI SAN");
  }
  absl::StatusOr<admin::PrincipalName> name = admin::ParsePrincipalUri(summary.uris.front());
  if (!name.ok()) return absl::UnauthenticatedError(name.status().message());
  VerifiedCertificate verified{*std::move(name), summary.serial_hex};
  absl::MutexLock lock(&mu_);
  if (verified_.size() >= kMaxCachedCertificates) verified_.clear();
  verified_[pem] = CachedCertificate{verified, cas->version, summary.not_before, summary.not_after};
  return verified;
}

absl::StatusOr<Caller> Authenticator::Authorize(const grpc::ServerContextBase& context,
                                                std::string_view method, std::string* who) {
  return AuthorizeCertificate(PeerCertificatePem(context), method, who);
}

absl::StatusOr<Caller> Authenticator::AuthorizeCertificate(const std::string& pem,
                                                           std::string_view method,
                                                           std::string* who) {
  std::string ignored;
  if (who == nullptr) who = &ignored;
  *who = "unauthenticated";
  Caller caller;
  ASSIGN_OR_RETURN(caller.rule, FindRule(method));
  if (!caller.rule->requires_certificate) {
    // Public methods never depend on who calls: a device re-enrolling with
    // an expired certificate must still reach Enroll.
    caller.uri = "anonymous";
    *who = caller.uri;
    return caller;
  }
  if (pem.empty()) {
    return absl::UnauthenticatedError(absl::StrFormat(
        "%s needs a client certificate: connect with a principal's certificate and key",
        std::string(method)));
  }
  ASSIGN_OR_RETURN(VerifiedCertificate certificate, VerifiedName(pem));
  const admin::PrincipalName& name = certificate.name;
  caller.uri = admin::PrincipalUri(name);
  // The certificate verified: whatever is refused from here on is refused
  // to this principal, and logged so.
  *who = caller.uri;
  absl::StatusOr<v1::Principal> principal = registry_->Get(name);
  if (absl::IsNotFound(principal.status())) {
    std::string message =
        absl::StrFormat("principal %s is not registered in this deployment", caller.uri);
    if (name.kind == v1::PRINCIPAL_KIND_DEVICE) {
      // The certificate is this deployment's own, so the device was
      // enrolled once: the server lost the enrolment (restored from an
      // older backup). The tablet acts on the reason (PROTOCOL.md §8).
      return sync::SyncError(
          absl::StatusCode::kUnauthenticated, v1::SYNC_ERROR_REASON_NOT_ENROLLED,
          absl::StrCat(message,
                       " (its enrolment was lost, e.g. by a restore from a backup): re-enrol "
                       "the device with a new enrolment code"));
    }
    return absl::UnauthenticatedError(message);
  }
  if (!principal.ok()) {
    return absl::UnavailableError("the principal registry cannot be read; retry later");
  }
  if (principal->status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    std::string message =
        absl::StrFormat("principal %s is revoked: ask an administrator", caller.uri);
    if (name.kind == v1::PRINCIPAL_KIND_DEVICE) {
      // A tablet acts on the reason: it must re-enrol (PROTOCOL.md §8).
      return sync::SyncError(absl::StatusCode::kUnauthenticated,
                             v1::SYNC_ERROR_REASON_DEVICE_REVOKED,
                             absl::StrCat(message, " or re-enrol the device"));
    }
    return absl::UnauthenticatedError(message);
  }
  if (!admin::AcceptsCertificate(*principal, certificate.serial, clock_->Now())) {
    // A renewal replaced this certificate and revoked it (or it was never
    // the principal's).
    return absl::UnauthenticatedError(absl::StrFormat(
        "certificate %s of %s was replaced by a renewal and is no longer accepted: use the "
        "renewed certificate",
        certificate.serial, caller.uri));
  }
  caller.principal = *std::move(principal);
  caller.has_principal = true;
  RETURN_IF_ERROR(CheckRole(*caller.rule, caller.principal.role()));
  if (activity_ != nullptr && name.kind == v1::PRINCIPAL_KIND_DEVICE &&
      (method == kPushMethod || method == kPullMethod)) {
    activity_->Record(name.id);
  }
  return caller;
}

grpc::Status CertificateGate::Process(const InputMetadata& auth_metadata,
                                      grpc::AuthContext* context, OutputMetadata*,
                                      OutputMetadata*) {
  auto path = auth_metadata.find(":path");
  if (path == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "call without a method path");
  }
  std::string method(path->second.data(), path->second.size());
  absl::StatusOr<const RpcRule*> rule = FindRule(method);
  if (!rule.ok()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(rule.status().message()));
  }
  if (!(*rule)->requires_certificate) return grpc::Status::OK;
  std::vector<grpc::string_ref> certificates = context->FindPropertyValues("x509_pem_cert");
  if (certificates.empty()) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrFormat("%s needs a client certificate: connect with a principal's certificate "
                        "and key",
                        method));
  }
  if (!(*rule)->authorized_by_gate) return grpc::Status::OK;
  // No adapter of ours runs for this service: the whole check is here.
  const absl::Time start = absl::Now();
  std::string who;
  std::string pem(certificates.front().data(), certificates.front().size());
  absl::StatusOr<Caller> caller = auth_->AuthorizeCertificate(pem, method, &who);
  LogRpc(method, who, caller.status(), absl::Now() - start);
  return ToGrpcStatus(caller.status());
}

}  // namespace fieldsync::server
