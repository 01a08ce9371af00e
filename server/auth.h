// Authentication and authorization of every call: who the caller is (the
// URI in its verified client certificate, looked up in the registry) and
// whether the authorization table lets that role call the method.
#ifndef FIELDSYNC_SERVER_AUTH_H_
#define FIELDSYNC_SERVER_AUTH_H_

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "admin/certificates.h"
#include "admin/device_activity.h"
#include "admin/principals.h"
#include "common/clock.h"
#include "fieldsync/v1/admin.pb.h"
#include "server/authz.h"

namespace fieldsync::server {

// The authenticated caller of one RPC.
struct Caller {
  // False for calls to public methods made without a certificate.
  bool has_principal = false;
  v1::Principal principal;
  std::string uri;  // fieldsync://... or "anonymous"
  const RpcRule* rule = nullptr;
};

// Thread-safe. `registry` and `clock` are not owned and must outlive it.
class Authenticator {
 public:
  // Client certificates must chain to a CA `cas` trusts (both CAs during a
  // CA rotation); `cas` is not owned and must outlive it.
  Authenticator(admin::PrincipalRegistry* registry, const admin::CertificateAuthorities* cas,
                Clock* clock)
      : registry_(registry), cas_(cas), clock_(clock) {}

  // Identifies the caller of `context` and applies the rule of `method`.
  // Errors (documented in docs/ARCHITECTURE.md):
  //  kUnauthenticated: no client certificate on a method that needs one; a
  //    certificate not issued by this deployment's CA, expired or not yet
  //    valid (reason CERTIFICATE_EXPIRED), without clientAuth in its
  //    extended key usage, or naming no fieldsync principal; an unknown or revoked principal; a
  //    certificate of the principal that a renewal replaced and revoked.
  //  kPermissionDenied: a known principal whose role the table does not
  //    allow, or a method without a rule.
  //  kUnavailable: the registry could not be read.
  // `who`, when given, receives the URI of the principal the caller's
  // verified certificate names as soon as it is known, so that a refusal
  // (PERMISSION_DENIED for its role, UNAUTHENTICATED for a revoked or
  // unknown principal) is logged with it; "unauthenticated" when the
  // certificate is missing or refused, "anonymous" on public methods.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContextBase& context, std::string_view method,
                                   std::string* who = nullptr);

  // Authorize for a caller that presented the client certificate `pem`
  // ("" for none): what CertificateGate runs for services that have no
  // adapter of ours. Same answers and errors.
  absl::StatusOr<Caller> AuthorizeCertificate(const std::string& pem, std::string_view method,
                                              std::string* who = nullptr);

  // Notes every authorized Push and Pull of a device in `activity` (its
  // last sync, GetStatus's connected devices). Not owned; must outlive the
  // authenticator. REQUIRES: called before the server serves.
  void set_device_activity(admin::DeviceActivity* activity) { activity_ = activity; }

 private:
  struct VerifiedCertificate {
    admin::PrincipalName name;
    std::string serial;
  };
  // The principal named by a verified certificate `pem`, cached by PEM.
  absl::StatusOr<VerifiedCertificate> VerifiedName(const std::string& pem);

  admin::PrincipalRegistry* registry_;
  admin::DeviceActivity* activity_ = nullptr;
  const admin::CertificateAuthorities* cas_;
  Clock* clock_;
  struct CachedCertificate {
    VerifiedCertificate verified;
    uint64_t trust_version = 0;  // the CertificateAuthorities state it was verified under
    absl::Time not_before;
    absl::Time not_after;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, CachedCertificate> verified_ ABSL_GUARDED_BY(mu_);
};

// A first gate, run by gRPC for every call of every service (ours, health
// and reflection alike) before any handler: a method whose rule needs a
// client certificate, or that has no rule, is refused with UNAUTHENTICATED
// or PERMISSION_DENIED when no certificate was presented. A method whose
// rule is `authorized_by_gate` (gRPC's reflection service, which does not
// go through our adapters) is authorized fully here, as
// Authenticator::Authorize does for ours: a valid chain to the
// deployment's CA(s), clientAuth, a known and active principal, its role.
// Thread-safe.
class CertificateGate final : public grpc::AuthMetadataProcessor {
 public:
  // `auth` is not owned and must outlive every call the gate sees.
  explicit CertificateGate(Authenticator* auth) : auth_(auth) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  Authenticator* auth_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_AUTH_H_
