// Certificate status and renewal through a real fieldsyncd (FieldsyncServer)
// on a loopback port with real mutual TLS: AdminService's
// GetCertificateStatus, RenewStaffCertificate and RenewServerCertificate,
// SyncService.RenewCertificate, the expiry reason, the registry upgrade and
// the expiry warnings. The server's clock is simulated (it starts at the
// real time, since gRPC checks the server certificate against the real one).
#include "admin/certificates.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_format.h"
#include "admin/deployment.h"
#include "admin/principals.h"
#include "common/file_io.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/certificate_watch.h"
#include "server/server.h"
#include "storage/store.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kDay = absl::Hours(24);

using Credentials = ::fieldsync::testing::ClientCredentials;
using ::fieldsync::testing::DetailOf;

std::string SerialOf(const std::string& pem) {
  absl::StatusOr<crypto::CertificateSummary> s = crypto::ParseCertificate(pem);
  EXPECT_THAT(s, IsOk());
  return s.ok() ? s->serial_hex : "";
}

class CertificatesTest : public ::fieldsync::testing::ServerHarness {
 protected:
  CertificatesTest() : ServerHarness(20261202) {}

  // Unlike ServerHarness::Channel: no retries, a connection of its own,
  // and the server name checked against `target_name` when given.
  std::shared_ptr<grpc::Channel> Channel(const Credentials* client,
                                         const std::string& target_name = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_pem_;
    if (client != nullptr) {
      ssl.pem_cert_chain = client->certificate_pem;
      ssl.pem_private_key = client->private_key_pem;
    }
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // A channel of its own per call: no connection reused across
    // credentials.
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    if (!target_name.empty()) args.SetSslTargetNameOverride(target_name);
    return grpc::CreateCustomChannel(server_->address(), grpc::SslCredentials(ssl), args);
  }

  grpc::Status WhoAmI(const Credentials& client, const std::string& target_name = "") {
    auto stub = v1::AdminService::NewStub(Channel(&client, target_name));
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::WhoAmIResponse response;
    return stub->WhoAmI(&context, v1::WhoAmIRequest(), &response);
  }

  grpc::Status RenewStaff(const Credentials& caller, const std::string& id, bool revoke_old,
                          Credentials* renewed, v1::RenewStaffCertificateResponse* out = nullptr) {
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    absl::StatusOr<std::string> csr =
        crypto::CreateCsr(key->private_key_pem, "fieldsync://staff/" + id);
    EXPECT_THAT(csr, IsOk());
    v1::RenewStaffCertificateRequest request;
    request.set_id(id);
    request.set_csr_pem(*csr);
    request.set_revoke_old(revoke_old);
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RenewStaffCertificateResponse response;
    grpc::Status s = v1::AdminService::NewStub(Channel(&caller))
                         ->RenewStaffCertificate(&context, request, &response);
    if (renewed != nullptr) *renewed = {response.certificate_pem(), key->private_key_pem};
    if (out != nullptr) *out = response;
    return s;
  }

  // Enrols a device through the protocol; its TLS credentials.
  Credentials EnrolDevice(std::string* device_id) {
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      v1::AddOfficerRequest request;
      request.set_id(absl::StrFormat("officer%d", officers_++));
      request.set_region("northern");
      v1::AddOfficerResponse response;
      grpc::Status s =
          v1::AdminService::NewStub(Channel(&admin_))->AddOfficer(&context, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      last_officer_ = request.id();
    }
    v1::CreateEnrolmentCodeResponse code;
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      v1::CreateEnrolmentCodeRequest request;
      request.set_officer_id(last_officer_);
      grpc::Status s = v1::AdminService::NewStub(Channel(&admin_))
                           ->CreateEnrolmentCode(&context, request, &code);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    v1::EnrollRequest request;
    request.set_enrolment_code(code.code());
    request.set_csr_pem(*crypto::CreateCsr(key->private_key_pem, "fieldsync://device/x"));
    request.set_signing_public_key(std::string(32, 'S'));
    request.set_receiving_public_key(std::string(32, 'R'));
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::EnrollResponse response;
    grpc::Status s =
        v1::SyncService::NewStub(Channel(nullptr))->Enroll(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    *device_id = response.device_id();
    return {response.certificate_pem(), key->private_key_pem};
  }

  grpc::Status RenewDevice(const Credentials& device, Credentials* renewed,
                           v1::RenewCertificateResponse* out = nullptr,
                           const std::string& csr_override = "") {
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    v1::RenewCertificateRequest request;
    request.set_csr_pem(csr_override.empty()
                            ? *crypto::CreateCsr(key->private_key_pem, "fieldsync://device/x")
                            : csr_override);
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RenewCertificateResponse response;
    grpc::Status s =
        v1::SyncService::NewStub(Channel(&device))->RenewCertificate(&context, request, &response);
    if (renewed != nullptr) *renewed = {response.certificate_pem(), key->private_key_pem};
    if (out != nullptr) *out = response;
    return s;
  }

  grpc::Status GetSchema(const Credentials& device) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::GetSchemaResponse response;
    return v1::SyncService::NewStub(Channel(&device))
        ->GetSchema(&context, v1::GetSchemaRequest(), &response);
  }

  v1::CertificateStatusResponse Status() {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CertificateStatusResponse response;
    grpc::Status s =
        v1::AdminService::NewStub(Channel(&admin_))
            ->GetCertificateStatus(&context, v1::CertificateStatusRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  int officers_ = 1;
  std::string last_officer_;
};

TEST_F(CertificatesTest, StatusListsEveryActiveCertificateSoonestFirst) {
  StartServer();
  clock_.Advance(10 * kDay);
  Credentials amina = AddStaff("amina", v1::ROLE_SUPERVISOR, {"northern"});
  Credentials gone = AddStaff("gone", v1::ROLE_ANALYST, {"northern"});
  std::string device_id;
  Credentials device = EnrolDevice(&device_id);
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RevokePrincipalRequest request;
    request.set_kind(v1::PRINCIPAL_KIND_STAFF);
    request.set_id("gone");
    v1::RevokePrincipalResponse response;
    ASSERT_TRUE(v1::AdminService::NewStub(Channel(&admin_))
                    ->RevokePrincipal(&context, request, &response)
                    .ok());
  }
  clock_.Advance(100 * kDay);

  v1::CertificateStatusResponse status = Status();

  std::vector<std::pair<v1::CertificateKind, std::string>> listed;
  for (const v1::CertificateExpiry& c : status.certificates()) {
    listed.emplace_back(c.kind(), c.principal_id());
  }
  // The administrator's certificate was issued 10 days before the others.
  EXPECT_THAT(listed, ElementsAre(std::pair(v1::CERTIFICATE_KIND_STAFF, std::string("admin")),
                                  std::pair(v1::CERTIFICATE_KIND_STAFF, std::string("amina")),
                                  std::pair(v1::CERTIFICATE_KIND_DEVICE, device_id),
                                  std::pair(v1::CERTIFICATE_KIND_SERVER, std::string()),
                                  std::pair(v1::CERTIFICATE_KIND_CA, std::string())));
  // Each entry is what the certificate itself says.
  absl::StatusOr<crypto::CertificateSummary> admin_cert =
      crypto::ParseCertificate(admin_.certificate_pem);
  ASSERT_THAT(admin_cert, IsOk());
  EXPECT_EQ(status.certificates(0).serial(), admin_cert->serial_hex);
  EXPECT_EQ(status.certificates(0).not_after_unix_micros(),
            absl::ToUnixMicros(admin_cert->not_after));
  // 365 - 110 days, less the part of a second the certificate drops.
  EXPECT_THAT(status.certificates(0).days_left(), ::testing::AnyOf(254, 255));
  EXPECT_EQ(status.certificates(1).serial(), SerialOf(amina.certificate_pem));
  EXPECT_EQ(status.certificates(2).serial(), SerialOf(device.certificate_pem));
  EXPECT_EQ(status.certificates(3).serial(), SerialOf(*ReadFile(paths_->server_cert)));
  EXPECT_EQ(status.certificates(4).serial(), SerialOf(ca_pem_));
  EXPECT_EQ(status.now_unix_micros(), absl::ToUnixMicros(clock_.Now()));
  EXPECT_EQ(status.warning_days(), 30u);
}

TEST_F(CertificatesTest, OnlyAdministratorsReadCertificateStatus) {
  StartServer();
  Credentials amina = AddStaff("amina", v1::ROLE_SUPERVISOR, {"northern"});
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::CertificateStatusResponse response;
  grpc::Status s = v1::AdminService::NewStub(Channel(&amina))
                       ->GetCertificateStatus(&context, v1::CertificateStatusRequest(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(CertificatesTest, RenewedStaffCertificateWorksAndTheEarlierOneUntilItExpires) {
  StartServer();
  Credentials amina = AddStaff("amina", v1::ROLE_SUPERVISOR, {"northern"});
  clock_.Advance(300 * kDay);

  Credentials renewed;
  v1::RenewStaffCertificateResponse response;
  grpc::Status s = RenewStaff(admin_, "amina", /*revoke_old=*/false, &renewed, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.ca_certificate_pem(), ca_pem_);
  EXPECT_TRUE(response.revoked_serials().empty());
  EXPECT_EQ(response.principal().certificate_serial(), SerialOf(renewed.certificate_pem));
  absl::StatusOr<crypto::CertificateSummary> cert =
      crypto::ParseCertificate(renewed.certificate_pem);
  ASSERT_THAT(cert, IsOk());
  EXPECT_THAT(cert->uris, ElementsAre("fieldsync://staff/amina"));
  EXPECT_EQ(cert->not_after,
            absl::FromUnixSeconds(absl::ToUnixSeconds(clock_.Now() + crypto::kClientValidity)));
  EXPECT_TRUE(WhoAmI(renewed).ok());
  EXPECT_TRUE(WhoAmI(amina).ok()) << "the earlier certificate keeps working";
  // Both are listed, the earlier one as previous.
  std::vector<std::pair<std::string, bool>> amina_rows;
  const v1::CertificateStatusResponse status = Status();
  for (const v1::CertificateExpiry& c : status.certificates()) {
    if (c.principal_id() == "amina") amina_rows.emplace_back(c.serial(), c.is_previous());
  }
  EXPECT_THAT(amina_rows, ElementsAre(std::pair(SerialOf(amina.certificate_pem), true),
                                      std::pair(SerialOf(renewed.certificate_pem), false)));
  // Past the earlier certificate's expiry, only the renewed one works.
  clock_.Advance(70 * kDay);
  grpc::Status old = WhoAmI(amina);
  EXPECT_EQ(old.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(DetailOf(old).reason(), v1::SYNC_ERROR_REASON_CERTIFICATE_EXPIRED);
  EXPECT_TRUE(WhoAmI(renewed).ok());
}

TEST_F(CertificatesTest, RevokeOldRefusesTheEarlierCertificateAtOnce) {
  StartServer();
  Credentials amina = AddStaff("amina", v1::ROLE_SUPERVISOR, {"northern"});
  Credentials second;
  ASSERT_TRUE(RenewStaff(admin_, "amina", false, &second).ok());
  Credentials third;
  v1::RenewStaffCertificateResponse response;

  grpc::Status s = RenewStaff(admin_, "amina", /*revoke_old=*/true, &third, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response.revoked_serials(), UnorderedElementsAre(SerialOf(amina.certificate_pem),
                                                               SerialOf(second.certificate_pem)));
  for (const Credentials* old : {&amina, &second}) {
    grpc::Status refused = WhoAmI(*old);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(refused.error_message(), HasSubstr("replaced by a renewal"));
  }
  EXPECT_TRUE(WhoAmI(third).ok());
  // Still refused after a restart: the registry holds it.
  RestartServer();
  EXPECT_EQ(WhoAmI(amina).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(WhoAmI(third).ok());
}

TEST_F(CertificatesTest, AdministratorRenewsItsOwnCertificate) {
  StartServer();
  Credentials renewed;
  ASSERT_TRUE(RenewStaff(admin_, "admin", /*revoke_old=*/true, &renewed).ok());
  EXPECT_EQ(WhoAmI(admin_).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(WhoAmI(renewed).ok());
}

TEST_F(CertificatesTest, StaffRenewalRefusals) {
  StartServer();
  Credentials amina = AddStaff("amina", v1::ROLE_SUPERVISOR, {"northern"});

  grpc::Status unknown = RenewStaff(admin_, "nobody", false, nullptr);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown.error_message(), HasSubstr("active staff: admin, amina"));

  grpc::Status not_admin = RenewStaff(amina, "amina", false, nullptr);
  EXPECT_EQ(not_admin.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  v1::RenewStaffCertificateRequest bad_csr;
  bad_csr.set_id("amina");
  bad_csr.set_csr_pem("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n");
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::RenewStaffCertificateResponse response;
  grpc::Status malformed = v1::AdminService::NewStub(Channel(&admin_))
                               ->RenewStaffCertificate(&context, bad_csr, &response);
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(WhoAmI(amina).ok()) << "a refused renewal changes nothing";
}

TEST_F(CertificatesTest, DeviceRenewsOverTheProtocolWithinTheWindow) {
  StartServer();
  std::string device_id;
  Credentials device = EnrolDevice(&device_id);

  grpc::Status early = RenewDevice(device, nullptr);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(early).reason(), v1::SYNC_ERROR_REASON_NO_CHANGE);
  EXPECT_THAT(early.error_message(), HasSubstr("renew it from"));

  clock_.Advance(310 * kDay);
  Credentials renewed;
  v1::RenewCertificateResponse response;
  grpc::Status s = RenewDevice(device, &renewed, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  absl::StatusOr<crypto::CertificateSummary> cert =
      crypto::ParseCertificate(renewed.certificate_pem);
  ASSERT_THAT(cert, IsOk());
  EXPECT_THAT(cert->uris, ElementsAre("fieldsync://device/" + device_id));
  EXPECT_EQ(response.not_after_unix_micros(), absl::ToUnixMicros(cert->not_after));
  EXPECT_EQ(response.ca_certificate_pem(), ca_pem_);
  EXPECT_TRUE(GetSchema(renewed).ok());
  EXPECT_TRUE(GetSchema(device).ok()) << "the earlier certificate works until it expires";
  // The renewed certificate is not due again for a year.
  EXPECT_EQ(RenewDevice(renewed, nullptr).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(RenewDevice(renewed, nullptr, nullptr, "not a csr").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CertificatesTest, ExpiredDeviceCertificateIsRefusedWithItsReason) {
  StartServer();
  std::string device_id;
  Credentials device = EnrolDevice(&device_id);
  clock_.Advance(366 * kDay);

  grpc::Status s = GetSchema(device);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_CERTIFICATE_EXPIRED);
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
  // Too late to renew: the device re-enrols.
  EXPECT_EQ(DetailOf(RenewDevice(device, nullptr)).reason(),
            v1::SYNC_ERROR_REASON_CERTIFICATE_EXPIRED);
}

TEST_F(CertificatesTest, RenewedServerCertificateNamesANewHostAfterARestart) {
  StartServer();
  const std::string old_key = *ReadFile(paths_->server_key);
  EXPECT_EQ(WhoAmI(admin_, "fieldsync.example.org").error_code(), grpc::StatusCode::UNAVAILABLE)
      << "the name is not in the certificate yet";

  grpc::ClientContext context;
  SetDeadline(&context);
  v1::RenewServerCertificateRequest request;
  request.add_add_hosts("fieldsync.example.org");
  request.add_add_hosts("10.1.2.3");
  v1::RenewServerCertificateResponse response;
  grpc::Status s = v1::AdminService::NewStub(Channel(&admin_))
                       ->RenewServerCertificate(&context, request, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response.dns_names(), ElementsAre("localhost", "fieldsync.example.org"));
  EXPECT_THAT(response.ip_addresses(), ElementsAre("127.0.0.1", "::1", "10.1.2.3"));
  const std::string cert = *ReadFile(paths_->server_cert);
  const std::string key = *ReadFile(paths_->server_key);
  EXPECT_NE(key, old_key) << "a new key";
  EXPECT_THAT(crypto::CheckKeyMatchesCertificate(key, cert), IsOk());
  EXPECT_EQ(SerialOf(cert), response.serial());
  struct stat st;
  ASSERT_EQ(::stat(paths_->server_key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  RestartServer();
  EXPECT_TRUE(WhoAmI(admin_, "fieldsync.example.org").ok());
  EXPECT_TRUE(WhoAmI(admin_).ok());
  // A second renewal keeps the names the first added.
  grpc::ClientContext again;
  SetDeadline(&again);
  v1::RenewServerCertificateRequest drop;
  drop.add_drop_hosts("10.1.2.3");
  s = v1::AdminService::NewStub(Channel(&admin_))->RenewServerCertificate(&again, drop, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response.dns_names(), ElementsAre("localhost", "fieldsync.example.org"));
  EXPECT_THAT(response.ip_addresses(), ElementsAre("127.0.0.1", "::1"));
}

TEST_F(CertificatesTest, ServerRenewalRefusesToDropLoopbackOrUnknownNames) {
  StartServer();
  const std::string before = *ReadFile(paths_->server_cert);
  for (const char* name : {"localhost", "127.0.0.1", "not-there.example.org"}) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RenewServerCertificateRequest request;
    request.add_drop_hosts(name);
    v1::RenewServerCertificateResponse response;
    grpc::Status s = v1::AdminService::NewStub(Channel(&admin_))
                         ->RenewServerCertificate(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
  }
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::RenewServerCertificateRequest bad;
  bad.add_add_hosts("not a host!");
  v1::RenewServerCertificateResponse response;
  EXPECT_EQ(v1::AdminService::NewStub(Channel(&admin_))
                ->RenewServerCertificate(&context, bad, &response)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(*ReadFile(paths_->server_cert), before) << "nothing written";
}

TEST_F(CertificatesTest, RegistryWithoutExpiriesGetsThemAtStart) {
  {
    storage::StoreOptions options;
    options.path = paths_->db;
    auto store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    admin::PrincipalRegistry registry(store->get());
    absl::StatusOr<v1::Principal> p = registry.Get({v1::PRINCIPAL_KIND_STAFF, "admin"});
    ASSERT_THAT(p, IsOk());
    ASSERT_NE(p->certificate_not_after_unix_micros(), 0);
    p->clear_certificate_not_after_unix_micros();
    storage::WriteBatch batch;
    ASSERT_THAT(registry.Put(*p, &batch), IsOk());
    ASSERT_THAT((*store)->Commit(&batch), IsOk());
  }
  StartServer();

  v1::CertificateStatusResponse status = Status();

  absl::StatusOr<crypto::CertificateSummary> admin_cert =
      crypto::ParseCertificate(admin_.certificate_pem);
  ASSERT_THAT(admin_cert, IsOk());
  ASSERT_GE(status.certificates_size(), 1);
  EXPECT_EQ(status.certificates(0).principal_id(), "admin");
  EXPECT_EQ(status.certificates(0).not_after_unix_micros(),
            absl::ToUnixMicros(admin_cert->not_after));
}

TEST_F(CertificatesTest, WatchWarnsOfWhatExpiresWithinThePeriod) {
  StartServer();
  std::string device_id;
  EnrolDevice(&device_id);
  // The watch reads the registry of a stopped server's store.
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();
  storage::StoreOptions options;
  options.path = paths_->db;
  auto store = storage::Store::Open(options);
  ASSERT_THAT(store, IsOk());
  admin::PrincipalRegistry registry(store->get());
  CertificateWatch::Options watch_options;
  watch_options.registry = &registry;
  admin::ServerKeys keys;
  keys.ca.certificate_pem = ca_pem_;
  admin::CertificateAuthorities cas(keys);
  watch_options.cas = &cas;
  watch_options.server_certificate_file = paths_->server_cert;
  watch_options.clock = &clock_;
  watch_options.warning = 30 * kDay;
  CertificateWatch watch(watch_options);

  absl::StatusOr<std::vector<admin::CertificateExpiry>> now = watch.CheckNow();
  ASSERT_THAT(now, IsOk());
  EXPECT_TRUE(now->empty());

  clock_.Advance(340 * kDay);
  absl::StatusOr<std::vector<admin::CertificateExpiry>> later = watch.CheckNow();
  ASSERT_THAT(later, IsOk());
  std::vector<std::string> ids;
  for (const admin::CertificateExpiry& e : *later) ids.push_back(e.principal_id);
  EXPECT_THAT(ids, ElementsAre("admin", device_id));

  clock_.Advance(400 * kDay);  // the server certificate's two years come near
  absl::StatusOr<std::vector<admin::CertificateExpiry>> server = watch.CheckNow();
  ASSERT_THAT(server, IsOk());
  ASSERT_FALSE(server->empty());
  EXPECT_EQ(server->back().kind, v1::CERTIFICATE_KIND_SERVER);
}

class CaRotationTest : public CertificatesTest {
 protected:
  grpc::Status RotateCa(bool finish, bool force, v1::RotateCaResponse* out,
                        const Credentials* caller = nullptr) {
    v1::RotateCaRequest request;
    request.set_finish(finish);
    request.set_force(force);
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::AdminService::NewStub(Channel(caller != nullptr ? caller : &admin_))
        ->RotateCa(&context, request, out);
  }

  static int CertificatesIn(const std::string& pem) {
    absl::StatusOr<std::vector<crypto::CertificateSummary>> certs = crypto::ParseCertificates(pem);
    return certs.ok() ? static_cast<int>(certs->size()) : -1;
  }
};

TEST_F(CaRotationTest, OldCertificatesWorkUntilFinishedAndRenewalsMoveToTheNewCa) {
  StartServer();
  std::string device_id;
  Credentials device = EnrolDevice(&device_id);
  Credentials analyst = AddStaff("ana", v1::ROLE_ANALYST, {"northern"});

  v1::RotateCaResponse started;
  grpc::Status s = RotateCa(false, false, &started);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(started.generation(), 2u);
  EXPECT_EQ(CertificatesIn(started.trust_bundle_pem()), 2);
  EXPECT_EQ(started.pending_count(), 3u);  // admin, ana and the device
  EXPECT_THAT(started.pending(),
              UnorderedElementsAre("fieldsync://staff/admin", "fieldsync://staff/ana",
                                   "fieldsync://device/" + device_id));
  const std::string new_ca = started.ca_certificate_pem();
  EXPECT_NE(SerialOf(new_ca), SerialOf(ca_pem_));
  // The server's CA file names both: the old server certificate still
  // verifies against it at the next start.
  EXPECT_EQ(CertificatesIn(*ReadFile(paths_->ca_cert)), 2);

  // Certificates of the old CA keep working.
  EXPECT_TRUE(WhoAmI(admin_).ok());
  EXPECT_TRUE(WhoAmI(analyst).ok());
  EXPECT_TRUE(GetSchema(device).ok());
  // A second start is refused while one runs.
  v1::RotateCaResponse again;
  s = RotateCa(false, false, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("--finish"));
  // Only administrators rotate.
  s = RotateCa(false, false, &again, &analyst);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Both CAs are listed, the old one as previous.
  v1::CertificateStatusResponse status = Status();
  int cas = 0;
  for (const v1::CertificateExpiry& c : status.certificates()) {
    if (c.kind() != v1::CERTIFICATE_KIND_CA) continue;
    ++cas;
    EXPECT_EQ(c.is_previous(), c.serial() == SerialOf(ca_pem_));
  }
  EXPECT_EQ(cas, 2);

  // A new tablet is enrolled under the new CA and given both to trust.
  std::string device2_id;
  Credentials device2 = EnrolDevice(&device2_id);
  EXPECT_THAT(crypto::VerifyCertificateChain(new_ca, device2.certificate_pem, clock_.Now()),
              IsOk());
  EXPECT_TRUE(GetSchema(device2).ok());

  // A device of the old CA renews at once, whatever its expiry.
  Credentials renewed_device;
  v1::RenewCertificateResponse renewal;
  s = RenewDevice(device, &renewed_device, &renewal);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(crypto::VerifyCertificateChain(new_ca, renewed_device.certificate_pem, clock_.Now()),
              IsOk());
  EXPECT_EQ(CertificatesIn(renewal.ca_certificate_pem()), 2);
  EXPECT_TRUE(GetSchema(renewed_device).ok());
  // Renewed once, it waits for its window again.
  s = RenewDevice(renewed_device, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_NO_CHANGE);

  // Finishing is refused while admin and ana hold only old certificates.
  v1::RotateCaResponse finished;
  s = RotateCa(true, false, &finished);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("fieldsync://staff/admin"));
  EXPECT_THAT(s.error_message(), HasSubstr("fieldsync://staff/ana"));
  EXPECT_THAT(s.error_message(), HasSubstr("staff renew"));

  Credentials admin2;
  v1::RenewStaffCertificateResponse admin_renewal;
  ASSERT_TRUE(RenewStaff(admin_, "admin", false, &admin2, &admin_renewal).ok());
  EXPECT_EQ(CertificatesIn(admin_renewal.ca_certificate_pem()), 2);
  Credentials analyst2;
  ASSERT_TRUE(RenewStaff(admin2, "ana", false, &analyst2).ok());

  s = RotateCa(true, false, &finished, &admin2);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(finished.pending_count(), 0u);
  EXPECT_EQ(CertificatesIn(finished.trust_bundle_pem()), 1);
  EXPECT_EQ(SerialOf(finished.trust_bundle_pem()), SerialOf(new_ca));
  EXPECT_EQ(SerialOf(*ReadFile(paths_->server_cert)), finished.server_certificate_serial());
  EXPECT_THAT(crypto::VerifyCertificateChain(new_ca, *ReadFile(paths_->server_cert), clock_.Now()),
              IsOk());
  EXPECT_EQ(SerialOf(*ReadFile(paths_->ca_cert)), SerialOf(new_ca));

  // Certificates of the old CA are refused at once; the new ones work.
  s = WhoAmI(admin_);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("not issued by this deployment's CA"));
  EXPECT_EQ(GetSchema(device).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(WhoAmI(admin2).ok());
  EXPECT_TRUE(GetSchema(renewed_device).ok());

  // After a restart the server presents the new CA's certificate, which
  // clients holding the trust bundle accept; the rotation is over.
  ca_pem_ = started.trust_bundle_pem();
  RestartServer();
  EXPECT_TRUE(WhoAmI(admin2).ok());
  EXPECT_TRUE(WhoAmI(analyst2).ok());
  EXPECT_TRUE(GetSchema(device2).ok());
  EXPECT_EQ(WhoAmI(analyst).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  s = RotateCa(true, false, &finished, &admin2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no CA rotation is running"));
  // And a new one can start.
  s = RotateCa(false, false, &started, &admin2);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(started.generation(), 3u);
}

TEST_F(CaRotationTest, RotationSurvivesARestartAndForceCutsOffWhoDidNotRenew) {
  StartServer();
  std::string device_id;
  Credentials device = EnrolDevice(&device_id);
  v1::RotateCaResponse started;
  ASSERT_TRUE(RotateCa(false, false, &started).ok());

  // Still running after a restart: both CAs trusted, the old server
  // certificate served.
  RestartServer();
  EXPECT_TRUE(WhoAmI(admin_).ok());
  EXPECT_TRUE(GetSchema(device).ok());
  // An administrator whose own certificate is old cannot cut itself off.
  v1::RotateCaResponse finished;
  grpc::Status s = RotateCa(true, true, &finished);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("your own certificate"));
  Credentials admin2;
  ASSERT_TRUE(RenewStaff(admin_, "admin", false, &admin2).ok());

  s = RotateCa(true, false, &finished, &admin2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("fieldsync://device/" + device_id));
  // --force is only for finishing.
  s = RotateCa(false, true, &finished, &admin2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  s = RotateCa(true, true, &finished, &admin2);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(finished.pending(), ElementsAre("fieldsync://device/" + device_id));
  EXPECT_EQ(GetSchema(device).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  ca_pem_ = finished.trust_bundle_pem();
  RestartServer();
  EXPECT_TRUE(WhoAmI(admin2).ok());
  EXPECT_EQ(WhoAmI(admin_).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace fieldsync::server
