// A real fieldsyncd (FieldsyncServer) on an ephemeral loopback port, with a
// deployment made by the init code, called over real mutual TLS.
#include "server/server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/stat.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "admin/deployment.h"
#include "admin/principals.h"
#include "admin/server_keys.h"
#include "common/file_io.h"
#include "crypto/master_key.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_pki.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

using Credentials = ::fieldsync::testing::ClientCredentials;

class ServerTest : public ::fieldsync::testing::ServerHarness {
 protected:
  ServerTest() : ServerHarness(20261127) {}

  grpc::Status WhoAmI(const Credentials* client, v1::WhoAmIResponse* response) {
    auto stub = v1::AdminService::NewStub(Channel(client));
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub->WhoAmI(&context, v1::WhoAmIRequest(), response);
  }

  // The deployment CA, unwrapped from the database (the server must not
  // be running: RocksDB allows one process).
  crypto::CertificateAuthority DeploymentCa() {
    absl::StatusOr<crypto::MasterKeyRing> master =
        crypto::MasterKeyRing::LoadFile(paths_->master_key);
    EXPECT_THAT(master, IsOk());
    storage::StoreOptions options;
    options.path = paths_->db;
    auto store = storage::Store::Open(options);
    EXPECT_THAT(store, IsOk());
    absl::StatusOr<admin::ServerKeys> keys = admin::LoadServerKeys(**store, *master);
    EXPECT_THAT(keys, IsOk());
    return keys->ca;
  }

  // A fresh key and a certificate for `uri` issued by `ca` with the
  // extended key usage `purposes`, valid for a day from now.
  Credentials Issue(const crypto::CertificateAuthority& ca, const std::string& uri,
                    crypto::KeyPurposes purposes) {
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    auto cert = crypto::IssuePrincipalCertificate(ca, key->public_key_pem, uri, absl::Now(),
                                                  absl::Hours(24), purposes);
    EXPECT_THAT(cert, IsOk());
    return {cert->certificate_pem, key->private_key_pem};
  }

  // Replaces the deployment's server certificate and key (the server must
  // not be running).
  void InstallServerCertificate(const std::string& certificate_pem,
                                const std::string& private_key_pem) {
    std::filesystem::remove(paths_->server_cert);
    std::filesystem::remove(paths_->server_key);
    ASSERT_THAT(WriteNewFile(paths_->server_cert, certificate_pem, 0644), IsOk());
    ASSERT_THAT(WriteNewFile(paths_->server_key, private_key_pem, 0600), IsOk());
  }

  // Registers a staff principal directly in the registry and returns
  // credentials issued by `ca` valid from `now` for `validity`.
  Credentials RegisterStaff(const crypto::CertificateAuthority& ca, const std::string& id,
                            v1::Role role, absl::Time now, absl::Duration validity,
                            bool register_it = true,
                            crypto::KeyPurposes purposes = crypto::KeyPurposes::kClientAuth) {
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    auto cert = crypto::IssuePrincipalCertificate(
        ca, key->public_key_pem, admin::PrincipalUri({v1::PRINCIPAL_KIND_STAFF, id}), now, validity,
        purposes);
    EXPECT_THAT(cert, IsOk());
    if (register_it) {
      storage::StoreOptions options;
      options.path = paths_->db;
      auto store = storage::Store::Open(options);
      EXPECT_THAT(store, IsOk());
      admin::PrincipalRegistry registry(store->get());
      v1::Principal p;
      p.set_id(id);
      p.set_kind(v1::PRINCIPAL_KIND_STAFF);
      p.set_role(role);
      p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
      if (role == v1::ROLE_SUPERVISOR) p.add_regions("northern");
      storage::WriteBatch batch;
      EXPECT_THAT(registry.Put(p, &batch), IsOk());
      EXPECT_THAT((*store)->Commit(&batch), IsOk());
    }
    return {cert->certificate_pem, key->private_key_pem};
  }

  // Adds a staff member through AdminService with the administrator's
  // credentials, as `fieldsync staff add` does; returns the call's status.
  absl::StatusOr<Credentials> AddStaff(const std::string& id, v1::Role role,
                                       std::vector<std::string> regions) {
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    if (!key.ok()) return key.status();
    // The server names the certificate after the request's id, whatever
    // the CSR says.
    absl::StatusOr<std::string> csr =
        crypto::CreateCsr(key->private_key_pem, "fieldsync://staff/csr");
    if (!csr.ok()) return csr.status();
    v1::AddStaffRequest request;
    request.set_id(id);
    request.set_role(role);
    for (auto& r : regions) request.add_regions(r);
    request.set_csr_pem(*csr);
    auto stub = v1::AdminService::NewStub(Channel(&admin_));
    grpc::ClientContext context;
    v1::AddStaffResponse response;
    grpc::Status s = stub->AddStaff(&context, request, &response);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    return Credentials{response.certificate_pem(), key->private_key_pem};
  }
};

TEST_F(ServerTest, AdministratorCertificateIsRecognised) {
  StartServer();
  v1::WhoAmIResponse response;
  grpc::Status s = WhoAmI(&admin_, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.principal_uri(), "fieldsync://staff/admin");
  EXPECT_EQ(response.principal().role(), v1::ROLE_ADMINISTRATOR);
  EXPECT_EQ(response.principal().status(), v1::PRINCIPAL_STATUS_ACTIVE);
}

TEST_F(ServerTest, NoClientCertificateIsUnauthenticated) {
  StartServer();
  v1::WhoAmIResponse response;
  grpc::Status s = WhoAmI(nullptr, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("client certificate"));
}

// One request message, raw bytes in and out, on any method (unary or
// streaming), for services we have no generated stubs of.
grpc::Status RawCall(std::shared_ptr<grpc::Channel> channel, const std::string& method,
                     const std::string& request_bytes, std::string* response_bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer response;
  grpc::Status status;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = s;
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  response_bytes->clear();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (auto& sl : slices) {
      response_bytes->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
  }
  return status;
}

TEST_F(ServerTest, HealthCheckAnswersWithoutCertificate) {
  StartServer();
  std::string response;
  // grpc.health.v1.HealthCheckRequest{service: ""} encodes to zero bytes.
  grpc::Status status = RawCall(Channel(nullptr), "/grpc.health.v1.Health/Check", "", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // HealthCheckResponse{status: SERVING (1)} = field 1 varint 1.
  EXPECT_EQ(response, std::string("\x08\x01", 2));
}

TEST_F(ServerTest, ReflectionNeedsACertificate) {
  StartServer();
  // ServerReflectionRequest{list_services: ""}: field 7, length 0.
  const std::string list_services("\x3a\x00", 2);
  const std::string method = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  std::string response;
  grpc::Status anonymous = RawCall(Channel(nullptr), method, list_services, &response);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status admin = RawCall(Channel(&admin_), method, list_services, &response);
  ASSERT_TRUE(admin.ok()) << admin.error_message();
  EXPECT_THAT(response, HasSubstr("fieldsync.v1.AdminService"));
}

// ServerReflectionRequest{list_services: ""}: field 7, length 0.
const std::string kListServices("\x3a\x00", 2);
constexpr char kReflection[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

TEST_F(ServerTest, ReflectionWithASelfSignedCertificateIsUnauthenticated) {
  StartServer();
  // A self-signed certificate (a CA's own) with its key.
  absl::StatusOr<crypto::CertificateAuthority> self_signed =
      crypto::CreateCertificateAuthority("fieldsync://staff/admin", absl::Now(), absl::Hours(24));
  ASSERT_THAT(self_signed, IsOk());
  Credentials creds{self_signed->certificate_pem, self_signed->private_key_pem};
  std::string response;

  grpc::Status s = RawCall(Channel(&creds), kReflection, kListServices, &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("not issued by this deployment's CA"));
  EXPECT_THAT(response, Not(HasSubstr("fieldsync.v1")));
}

TEST_F(ServerTest, ReflectionWithAnotherDeploymentsDeviceIsUnauthenticated) {
  StartServer();
  auto other = fieldsync::testing::TestPki::CreateOrDie(absl::Now());
  auto device = other.IssueClientOrDie("fieldsync://device/0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0",
                                       absl::Now());
  Credentials creds{device.certificate_pem, device.private_key_pem};
  std::string response;

  grpc::Status s = RawCall(Channel(&creds), kReflection, kListServices, &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(response, Not(HasSubstr("fieldsync.v1")));
}

TEST_F(ServerTest, ReflectionForAnUnknownOrRevokedPrincipalIsUnauthenticated) {
  crypto::CertificateAuthority ca = DeploymentCa();
  // Issued by this deployment's CA, but for no registered principal.
  Credentials unknown = RegisterStaff(ca, "ghost", v1::ROLE_AUDITOR, absl::Now(), absl::Hours(24),
                                      /*register_it=*/false);
  StartServer();
  absl::StatusOr<Credentials> leaver = AddStaff("leaver", v1::ROLE_AUDITOR, {});
  ASSERT_THAT(leaver, IsOk());
  std::string response;
  ASSERT_TRUE(RawCall(Channel(&*leaver), kReflection, kListServices, &response).ok());
  {
    auto stub = v1::AdminService::NewStub(Channel(&admin_));
    grpc::ClientContext context;
    v1::RevokePrincipalRequest request;
    request.set_kind(v1::PRINCIPAL_KIND_STAFF);
    request.set_id("leaver");
    v1::RevokePrincipalResponse revoked;
    grpc::Status s = stub->RevokePrincipal(&context, request, &revoked);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status s_unknown = RawCall(Channel(&unknown), kReflection, kListServices, &response);
  grpc::Status s_revoked = RawCall(Channel(&*leaver), kReflection, kListServices, &response);

  EXPECT_EQ(s_unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s_unknown.error_message();
  EXPECT_THAT(s_unknown.error_message(), HasSubstr("not registered"));
  EXPECT_EQ(s_revoked.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s_revoked.error_message();
  EXPECT_THAT(s_revoked.error_message(), HasSubstr("revoked"));
}

TEST_F(ServerTest, ReflectionServesAnActiveStaffMember) {
  StartServer();
  absl::StatusOr<Credentials> auditor = AddStaff("reader", v1::ROLE_AUDITOR, {});
  ASSERT_THAT(auditor, IsOk());
  std::string response;

  grpc::Status s = RawCall(Channel(&*auditor), kReflection, kListServices, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response, HasSubstr("fieldsync.v1.SyncService"));
}

TEST_F(ServerTest, ServerAuthOnlyCertificateIsRefusedAsAClient) {
  crypto::CertificateAuthority ca = DeploymentCa();
  // Signed by this deployment's CA, naming a registered, active principal
  // with no certificate of record: only its extended key usage is wrong.
  Credentials server_only =
      RegisterStaff(ca, "night.shift", v1::ROLE_AUDITOR, absl::Now(), absl::Hours(24),
                    /*register_it=*/true, crypto::KeyPurposes::kServerAuth);
  StartServer();
  v1::WhoAmIResponse response;
  std::string reflection;

  grpc::Status s = WhoAmI(&server_only, &response);
  grpc::Status reflected = RawCall(Channel(&server_only), kReflection, kListServices, &reflection);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("extended key usage is serverAuth"));
  EXPECT_THAT(s.error_message(), HasSubstr("must allow clientAuth"));
  EXPECT_EQ(reflected.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ServerTest, ServerAuthOnlyCertificateNamingTheAdministratorIsRefused) {
  Credentials creds =
      Issue(DeploymentCa(), "fieldsync://staff/admin", crypto::KeyPurposes::kServerAuth);
  StartServer();
  v1::WhoAmIResponse response;

  grpc::Status s = WhoAmI(&creds, &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("must allow clientAuth"));
}

TEST_F(ServerTest, CertificateWithoutExtendedKeyUsageIsRefusedAndOneWithBothIsServed) {
  crypto::CertificateAuthority ca = DeploymentCa();
  Credentials no_eku = RegisterStaff(ca, "no.eku", v1::ROLE_AUDITOR, absl::Now(), absl::Hours(24),
                                     /*register_it=*/true, crypto::KeyPurposes::kNoExtension);
  Credentials both = RegisterStaff(ca, "both", v1::ROLE_AUDITOR, absl::Now(), absl::Hours(24),
                                   /*register_it=*/true, crypto::KeyPurposes::kServerAndClientAuth);
  StartServer();
  v1::WhoAmIResponse response;

  grpc::Status refused = WhoAmI(&no_eku, &response);
  grpc::Status served = WhoAmI(&both, &response);

  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("no extendedKeyUsage extension"));
  ASSERT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(response.principal().id(), "both");
}

TEST_F(ServerTest, UnlistedMethodIsRefusedBeforeAnyHandler) {
  StartServer();
  std::string response;
  grpc::Status s = RawCall(Channel(&admin_), "/fieldsync.v1.AdminService/Nope", "", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServerTest, CertificateFromAnotherCaIsUnauthenticated) {
  StartServer();
  auto other = fieldsync::testing::TestPki::CreateOrDie(absl::Now());
  auto forged = other.IssueClientOrDie("fieldsync://staff/admin", absl::Now());
  Credentials creds{forged.certificate_pem, forged.private_key_pem};
  v1::WhoAmIResponse response;
  grpc::Status s = WhoAmI(&creds, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
}

TEST_F(ServerTest, ExpiredCertificateIsUnauthenticated) {
  crypto::CertificateAuthority ca = DeploymentCa();
  Credentials expired = RegisterStaff(ca, "old.hand", v1::ROLE_AUDITOR,
                                      absl::Now() - absl::Hours(48), absl::Hours(1));
  StartServer();
  v1::WhoAmIResponse response;
  grpc::Status s = WhoAmI(&expired, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
}

TEST_F(ServerTest, UnknownPrincipalIsUnauthenticated) {
  crypto::CertificateAuthority ca = DeploymentCa();
  Credentials stranger = RegisterStaff(ca, "stranger", v1::ROLE_AUDITOR, absl::Now(),
                                       absl::Hours(24), /*register_it=*/false);
  StartServer();
  v1::WhoAmIResponse response;
  grpc::Status s = WhoAmI(&stranger, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("not registered"));
}

TEST_F(ServerTest, RevokedPrincipalIsRefusedAtOnce) {
  StartServer();
  absl::StatusOr<Credentials> sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sam, IsOk());
  v1::WhoAmIResponse response;
  ASSERT_TRUE(WhoAmI(&*sam, &response).ok());
  EXPECT_EQ(response.principal().role(), v1::ROLE_SUPERVISOR);
  EXPECT_THAT(response.principal().regions(), ::testing::ElementsAre("northern"));

  auto stub = v1::AdminService::NewStub(Channel(&admin_));
  grpc::ClientContext context;
  v1::RevokePrincipalRequest revoke;
  revoke.set_kind(v1::PRINCIPAL_KIND_STAFF);
  revoke.set_id("sam");
  v1::RevokePrincipalResponse revoked;
  ASSERT_TRUE(stub->RevokePrincipal(&context, revoke, &revoked).ok());

  grpc::Status s = WhoAmI(&*sam, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
}

TEST_F(ServerTest, SupervisorMayNotAddStaff) {
  StartServer();
  absl::StatusOr<Credentials> sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sam, IsOk());
  auto stub = v1::AdminService::NewStub(Channel(&*sam));
  grpc::ClientContext context;
  v1::AddStaffRequest request;
  request.set_id("eve");
  request.set_role(v1::ROLE_ADMINISTRATOR);
  v1::AddStaffResponse response;
  grpc::Status s = stub->AddStaff(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServerTest, AddStaffRefusesTakenIdAndBadRegions) {
  StartServer();
  ASSERT_THAT(AddStaff("ana", v1::ROLE_ANALYST, {"northern"}), IsOk());
  EXPECT_THAT(AddStaff("ana", v1::ROLE_ANALYST, {"northern"}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(AddStaff("bob", v1::ROLE_ANALYST, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("region")));
  EXPECT_THAT(AddStaff("Bad Id", v1::ROLE_AUDITOR, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("staff id")));
}

TEST_F(ServerTest, AdministratorCannotRevokeItself) {
  StartServer();
  auto stub = v1::AdminService::NewStub(Channel(&admin_));
  grpc::ClientContext context;
  v1::RevokePrincipalRequest revoke;
  revoke.set_kind(v1::PRINCIPAL_KIND_STAFF);
  revoke.set_id("admin");
  v1::RevokePrincipalResponse response;
  EXPECT_EQ(stub->RevokePrincipal(&context, revoke, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServerTest, ShutdownReleasesTheDatabase) {
  StartServer();
  ASSERT_THAT(server_->Shutdown(), IsOk());
  EXPECT_THAT(server_->Shutdown(), IsOk());
  storage::StoreOptions options;
  options.path = paths_->db;
  EXPECT_THAT(storage::Store::Open(options), IsOk());
}

TEST_F(ServerTest, SecondServerOnSameDataDirIsRefused) {
  StartServer();
  ServerOptions options = Options();
  auto second = FieldsyncServer::Start(options);
  EXPECT_FALSE(second.ok());
}

TEST_F(ServerTest, MissingDataDirNamesInit) {
  ServerOptions options = Options();
  options.data_dir = dir_.Sub("nowhere");
  EXPECT_THAT(FieldsyncServer::Start(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fieldsync init")));
}

TEST_F(ServerTest, ForeignDataDirIsRefused) {
  std::filesystem::create_directories(dir_.Sub("other"));
  ASSERT_THAT(WriteNewFile(dir_.Sub("other/notes.txt"), "x", 0644), IsOk());
  ServerOptions options = Options();
  options.data_dir = dir_.Sub("other");
  EXPECT_THAT(FieldsyncServer::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a fieldsync")));
}

TEST_F(ServerTest, MasterKeyReadableByOthersIsRefused) {
  ASSERT_EQ(chmod(paths_->master_key.c_str(), 0644), 0);
  EXPECT_THAT(FieldsyncServer::Start(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("chmod 600")));
}

TEST_F(ServerTest, WrongMasterKeyIsRefused) {
  fieldsync::testing::SeededRandom other_random(7);
  crypto::MasterKeyRing other = crypto::MasterKeyRing::Generate(other_random);
  std::filesystem::remove(paths_->master_key);
  ASSERT_THAT(WriteNewFile(paths_->master_key, other.Serialize(), 0600), IsOk());
  EXPECT_THAT(FieldsyncServer::Start(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("master key")));
}

TEST_F(ServerTest, PortInUseIsRefused) {
  StartServer();
  ServerOptions options = Options();
  options.data_dir = paths_->root;
  options.config.set_listen(server_->address());
  auto second = FieldsyncServer::Start(options);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
}

TEST_F(ServerTest, ServerCertificateThatAlsoAllowsClientAuthIsRefusedAtStart) {
  Credentials both =
      Issue(DeploymentCa(), "fieldsync://staff/admin", crypto::KeyPurposes::kServerAndClientAuth);
  InstallServerCertificate(both.certificate_pem, both.private_key_pem);

  EXPECT_THAT(FieldsyncServer::Start(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("a server certificate must allow serverAuth only")));
}

TEST_F(ServerTest, ExpiredServerCertificateIsRefusedAtStart) {
  crypto::CertificateAuthority ca = DeploymentCa();
  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  ASSERT_THAT(key, IsOk());
  auto cert = crypto::IssueServerCertificate(
      ca, crypto::MakeServerCertificateRequest(key->public_key_pem, {}),
      absl::Now() - absl::Hours(100), absl::Hours(1));
  ASSERT_THAT(cert, IsOk());
  InstallServerCertificate(cert->certificate_pem, key->private_key_pem);
  EXPECT_THAT(FieldsyncServer::Start(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("expired")));
}

}  // namespace
}  // namespace fieldsync::server
