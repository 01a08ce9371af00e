// AdminService's officers, enrolment codes and principal listing through a
// real fieldsyncd (FieldsyncServer) on an ephemeral loopback port over real
// mutual TLS, with a deployment made by the init code.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "admin/deployment.h"
#include "admin/principals.h"
#include "admin/server_keys.h"
#include "common/build_info.h"
#include "common/file_io.h"
#include "crypto/master_key.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "server/server.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using Credentials = ::fieldsync::testing::ClientCredentials;
using Device = ::fieldsync::testing::EnrolledDevice;

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// The SyncErrorDetail reason of a refused call (PROTOCOL.md §8).
v1::SyncErrorReason ReasonOf(const grpc::Status& s) {
  return ::fieldsync::testing::DetailOf(s).reason();
}

std::vector<std::string> Ids(const v1::ListPrincipalsResponse& r) {
  std::vector<std::string> ids;
  for (const v1::Principal& p : r.principals()) ids.push_back(p.id());
  return ids;
}

// AddOfficer, AddStaff and the other calls of AdminService return the
// call's status here: AdminService is what these tests test.
class AdminServiceTest : public ::fieldsync::testing::ServerHarness {
 protected:
  AdminServiceTest() : ServerHarness(20261202) {}

  std::unique_ptr<v1::AdminService::Stub> Admin(const Credentials& who) {
    return v1::AdminService::NewStub(Channel(&who));
  }

  absl::StatusOr<v1::Principal> AddOfficer(const std::string& id, const std::string& region,
                                           const Credentials* who = nullptr) {
    v1::Principal principal;
    grpc::Status s = CallAddOfficer(id, region, who, &principal);
    if (!s.ok()) return FromGrpc(s);
    return principal;
  }

  // A staff member added as `fieldsync staff add` does; its key stays here.
  absl::StatusOr<Credentials> AddStaff(const std::string& id, v1::Role role,
                                       const std::vector<std::string>& regions) {
    Credentials staff;
    grpc::Status s = CallAddStaff(id, role, regions, &staff);
    if (!s.ok()) return FromGrpc(s);
    return staff;
  }

  absl::StatusOr<v1::CreateEnrolmentCodeResponse> CreateCode(const std::string& officer,
                                                             const std::string& region = "") {
    v1::CreateEnrolmentCodeResponse response;
    grpc::Status s = CallCreateEnrolmentCode(officer, region, &response);
    if (!s.ok()) return FromGrpc(s);
    return response;
  }

  // A tablet of `officer`, who must be registered.
  Device NewDevice(const std::string& officer, const std::string& region = "northern") {
    absl::StatusOr<v1::CreateEnrolmentCodeResponse> code = CreateCode(officer, region);
    EXPECT_THAT(code, IsOk());
    Device d;
    grpc::Status s = Enroll(code.ok() ? code->code() : "", &d);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return d;
  }

  absl::StatusOr<v1::RevokePrincipalResponse> Revoke(v1::PrincipalKind kind,
                                                     const std::string& id) {
    v1::RevokePrincipalRequest request;
    request.set_kind(kind);
    request.set_id(id);
    v1::RevokePrincipalResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Admin(admin_)->RevokePrincipal(&context, request, &response);
    if (!s.ok()) return FromGrpc(s);
    return response;
  }

  absl::StatusOr<v1::ListPrincipalsResponse> List(const Credentials& who, v1::PrincipalKind kind,
                                                  const std::string& region = "",
                                                  bool include_revoked = false) {
    v1::ListPrincipalsRequest request;
    request.set_kind(kind);
    request.set_region(region);
    request.set_include_revoked(include_revoked);
    v1::ListPrincipalsResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Admin(who)->ListPrincipals(&context, request, &response);
    if (!s.ok()) return FromGrpc(s);
    return response;
  }

  // A call a device makes (GetSchema), with its certificate.
  grpc::Status DeviceCall(const Device& d) {
    v1::GetSchemaResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::SyncService::NewStub(Channel(&d.tls))
        ->GetSchema(&context, v1::GetSchemaRequest(), &response);
  }

  // The last `n` audit log entries, decoded, read as an administrator.
  std::vector<protocol::Event> AuditTail(uint64_t n) {
    auto stub = v1::AuditService::NewStub(Channel(&admin_));
    v1::SignedTreeHead head;
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      grpc::Status s = stub->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    EXPECT_GE(head.tree_size(), n);
    v1::GetEntriesRequest request;
    request.set_start(head.tree_size() - n);
    request.set_end(head.tree_size());
    grpc::ClientContext context;
    SetDeadline(&context);
    auto reader = stub->GetEntries(&context, request);
    std::vector<protocol::Event> out;
    v1::AuditEntries chunk;
    while (reader->Read(&chunk)) {
      for (const std::string& e : chunk.entries()) {
        absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(e);
        EXPECT_THAT(event, IsOk());
        if (event.ok()) out.push_back(*std::move(event));
      }
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // The deployment CA, unwrapped from the database (before the server
  // starts: RocksDB allows one process).
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
};

// --- AddOfficer -------------------------------------------------------------

TEST_F(AdminServiceTest, AddOfficerRegistersAnActiveOfficerOfItsRegion) {
  StartServer();

  absl::StatusOr<v1::Principal> added = AddOfficer("amina.k", "northern");

  ASSERT_THAT(added, IsOk());
  EXPECT_EQ(added->kind(), v1::PRINCIPAL_KIND_OFFICER);
  EXPECT_EQ(added->role(), v1::ROLE_OFFICER);
  EXPECT_THAT(added->regions(), ElementsAre("northern"));
  EXPECT_EQ(added->status(), v1::PRINCIPAL_STATUS_ACTIVE);
  EXPECT_EQ(added->changed_by(), "fieldsync://staff/admin");
  EXPECT_TRUE(added->certificate_serial().empty());
  absl::StatusOr<v1::ListPrincipalsResponse> listed = List(admin_, v1::PRINCIPAL_KIND_OFFICER);
  ASSERT_THAT(listed, IsOk());
  EXPECT_THAT(Ids(*listed), ElementsAre("amina.k"));
}

TEST_F(AdminServiceTest, AddOfficerIsAuditedInItsCommit) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());

  std::vector<protocol::Event> tail = AuditTail(1);

  ASSERT_EQ(tail.size(), 1u);
  const auto* action = std::get_if<protocol::AdminAction>(&tail[0].body);
  ASSERT_NE(action, nullptr) << protocol::KindName(protocol::KindOf(tail[0]));
  EXPECT_EQ(action->action, "officer.add");
  EXPECT_EQ(action->actor, "fieldsync://staff/admin");
  EXPECT_EQ(action->subject_ids, (std::vector<std::string>{"amina.k", "northern"}));
}

TEST_F(AdminServiceTest, AddOfficerRefusesAnUnknownRegionNamingTheKnownOnes) {
  StartServer();

  EXPECT_THAT(
      AddOfficer("amina.k", "north"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("north"), HasSubstr("central, northern, eastern, western"))));
  absl::StatusOr<v1::ListPrincipalsResponse> listed =
      List(admin_, v1::PRINCIPAL_KIND_OFFICER, "", /*include_revoked=*/true);
  ASSERT_THAT(listed, IsOk());
  EXPECT_THAT(Ids(*listed), ::testing::IsEmpty());
}

TEST_F(AdminServiceTest, AddOfficerRefusesAMalformedId) {
  StartServer();

  EXPECT_THAT(AddOfficer("Amina K", "northern"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("officer id")));
}

TEST_F(AdminServiceTest, AddOfficerNeverReusesAnIdEvenRevoked) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  EXPECT_THAT(AddOfficer("amina.k", "eastern"), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "amina.k"), IsOk());

  EXPECT_THAT(AddOfficer("amina.k", "northern"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("revoked")));
}

TEST_F(AdminServiceTest, AStaffIdDoesNotTakeTheSameOfficerId) {
  StartServer();
  ASSERT_THAT(AddStaff("amina.k", v1::ROLE_SUPERVISOR, {"northern"}), IsOk());

  EXPECT_THAT(AddOfficer("amina.k", "northern"), IsOk());
}

TEST_F(AdminServiceTest, OnlyAdministratorsAddOfficers) {
  StartServer();
  absl::StatusOr<Credentials> sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sam, IsOk());

  EXPECT_THAT(AddOfficer("amina.k", "northern", &*sam),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// --- AddStaff ---------------------------------------------------------------

TEST_F(AdminServiceTest, AddStaffRefusesAnUnknownRegionNamingTheKnownOnes) {
  StartServer();

  EXPECT_THAT(AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern", "north"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unknown region 'north'"),
                             HasSubstr("central, northern, eastern, western"))));
  absl::StatusOr<v1::ListPrincipalsResponse> staff = List(admin_, v1::PRINCIPAL_KIND_STAFF);
  ASSERT_THAT(staff, IsOk());
  EXPECT_THAT(Ids(*staff), ElementsAre("admin"));
}

// --- An officer is never a caller -------------------------------------------

TEST_F(AdminServiceTest, NoCertificateAuthenticatesAnOfficer) {
  crypto::CertificateAuthority ca = DeploymentCa();
  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  ASSERT_THAT(key, IsOk());
  // A certificate of the deployment's own CA naming the officer, as an
  // officer URI and as a staff URI.
  auto as_officer = crypto::IssueClientCertificate(
      ca, key->public_key_pem, "fieldsync://officer/amina.k", absl::Now(), absl::Hours(24));
  auto as_staff = crypto::IssueClientCertificate(
      ca, key->public_key_pem, "fieldsync://staff/amina.k", absl::Now(), absl::Hours(24));
  ASSERT_THAT(as_officer, IsOk());
  ASSERT_THAT(as_staff, IsOk());
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());

  for (const auto* cert : {&as_officer, &as_staff}) {
    Credentials creds{(*cert)->certificate_pem, key->private_key_pem};
    v1::WhoAmIResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Admin(creds)->WhoAmI(&context, v1::WhoAmIRequest(), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }
}

// --- RevokePrincipal of an officer ------------------------------------------

TEST_F(AdminServiceTest, RevokingAnOfficerRevokesItsActiveDevicesInTheSameWrite) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  ASSERT_THAT(AddOfficer("bello", "northern"), IsOk());
  Device a1 = NewDevice("amina.k");
  Device a2 = NewDevice("amina.k");
  Device b = NewDevice("bello");

  absl::StatusOr<v1::RevokePrincipalResponse> r = Revoke(v1::PRINCIPAL_KIND_OFFICER, "amina.k");

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->principal().id(), "amina.k");
  EXPECT_EQ(r->principal().status(), v1::PRINCIPAL_STATUS_REVOKED);
  std::vector<std::string> expected = {a1.id, a2.id};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(
      std::vector<std::string>(r->revoked_device_ids().begin(), r->revoked_device_ids().end()),
      expected);
  absl::StatusOr<v1::ListPrincipalsResponse> active = List(admin_, v1::PRINCIPAL_KIND_DEVICE);
  ASSERT_THAT(active, IsOk());
  EXPECT_THAT(Ids(*active), ElementsAre(b.id));
}

TEST_F(AdminServiceTest, RevokedOfficersDevicesAreRefusedAtTheirNextCall) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  Device a = NewDevice("amina.k");
  ASSERT_TRUE(DeviceCall(a).ok());

  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "amina.k"), IsOk());

  grpc::Status s = DeviceCall(a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ReasonOf(s), v1::SYNC_ERROR_REASON_DEVICE_REVOKED);
}

TEST_F(AdminServiceTest, RevokingAnOfficerAuditsItAndEachDevice) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  Device a = NewDevice("amina.k");

  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "amina.k"), IsOk());

  std::vector<protocol::Event> tail = AuditTail(2);
  ASSERT_EQ(tail.size(), 2u);
  const auto* officer = std::get_if<protocol::AdminAction>(&tail[0].body);
  ASSERT_NE(officer, nullptr) << protocol::KindName(protocol::KindOf(tail[0]));
  EXPECT_EQ(officer->action, "officer.revoke");
  EXPECT_EQ(officer->actor, "fieldsync://staff/admin");
  EXPECT_EQ(officer->subject_ids, std::vector<std::string>{"amina.k"});
  const auto* device = std::get_if<protocol::PrincipalRevoked>(&tail[1].body);
  ASSERT_NE(device, nullptr) << protocol::KindName(protocol::KindOf(tail[1]));
  EXPECT_EQ(device->principal_kind, protocol::PrincipalKind::kDevice);
  EXPECT_EQ(device->principal_id, a.id);
  EXPECT_EQ(device->actor, "fieldsync://staff/admin");
}

TEST_F(AdminServiceTest, RevokingAnUnknownOfficerIsNotFound) {
  StartServer();

  EXPECT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "nobody"), StatusIs(absl::StatusCode::kNotFound));
}

// --- ListPrincipals ---------------------------------------------------------

TEST_F(AdminServiceTest, ListPrincipalsKeepsThoseOfTheRegion) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  ASSERT_THAT(AddOfficer("dayo", "eastern"), IsOk());
  ASSERT_THAT(AddStaff("sam", v1::ROLE_SUPERVISOR, {"eastern", "northern"}), IsOk());
  ASSERT_THAT(AddStaff("ana", v1::ROLE_ANALYST, {"central"}), IsOk());
  Device d = NewDevice("amina.k");

  absl::StatusOr<v1::ListPrincipalsResponse> northern =
      List(admin_, v1::PRINCIPAL_KIND_UNSPECIFIED, "northern");
  absl::StatusOr<v1::ListPrincipalsResponse> officers =
      List(admin_, v1::PRINCIPAL_KIND_OFFICER, "eastern");

  ASSERT_THAT(northern, IsOk());
  EXPECT_THAT(Ids(*northern), ElementsAre(d.id, "sam", "amina.k"));  // kind, then id
  ASSERT_THAT(officers, IsOk());
  EXPECT_THAT(Ids(*officers), ElementsAre("dayo"));
}

TEST_F(AdminServiceTest, ListPrincipalsRefusesAnUnknownRegionNamingTheKnownOnes) {
  StartServer();

  EXPECT_THAT(List(admin_, v1::PRINCIPAL_KIND_OFFICER, "north"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("central, northern, eastern, western")));
}

TEST_F(AdminServiceTest, SupervisorSeesOnlyTheOfficersOfItsRegions) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  ASSERT_THAT(AddOfficer("cyril", "central"), IsOk());
  ASSERT_THAT(AddOfficer("dayo", "eastern"), IsOk());
  absl::StatusOr<Credentials> sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern", "central"});
  ASSERT_THAT(sam, IsOk());

  absl::StatusOr<v1::ListPrincipalsResponse> all = List(*sam, v1::PRINCIPAL_KIND_OFFICER);
  absl::StatusOr<v1::ListPrincipalsResponse> central =
      List(*sam, v1::PRINCIPAL_KIND_OFFICER, "central");

  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(Ids(*all), ElementsAre("amina.k", "cyril"));
  ASSERT_THAT(central, IsOk());
  EXPECT_THAT(Ids(*central), ElementsAre("cyril"));
}

TEST_F(AdminServiceTest, SupervisorMayNotListARegionOutsideItsOwn) {
  StartServer();
  ASSERT_THAT(AddOfficer("dayo", "eastern"), IsOk());
  absl::StatusOr<Credentials> sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sam, IsOk());

  EXPECT_THAT(List(*sam, v1::PRINCIPAL_KIND_OFFICER, "eastern"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("northern")));
}

TEST_F(AdminServiceTest, SupervisorMayListOfficersOnly) {
  StartServer();
  absl::StatusOr<Credentials> sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sam, IsOk());

  for (v1::PrincipalKind kind :
       {v1::PRINCIPAL_KIND_UNSPECIFIED, v1::PRINCIPAL_KIND_DEVICE, v1::PRINCIPAL_KIND_STAFF}) {
    EXPECT_THAT(List(*sam, kind, "northern"), StatusIs(absl::StatusCode::kPermissionDenied))
        << kind;
  }
}

TEST_F(AdminServiceTest, AnalystMayNotListPrincipals) {
  StartServer();
  absl::StatusOr<Credentials> ana = AddStaff("ana", v1::ROLE_ANALYST, {"northern"});
  ASSERT_THAT(ana, IsOk());

  EXPECT_THAT(List(*ana, v1::PRINCIPAL_KIND_OFFICER),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(AdminServiceTest, ListPrincipalsShowsRevokedOnlyWhenAsked) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  ASSERT_THAT(AddOfficer("bello", "northern"), IsOk());
  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "bello"), IsOk());

  absl::StatusOr<v1::ListPrincipalsResponse> active = List(admin_, v1::PRINCIPAL_KIND_OFFICER);
  absl::StatusOr<v1::ListPrincipalsResponse> every =
      List(admin_, v1::PRINCIPAL_KIND_OFFICER, "", /*include_revoked=*/true);

  ASSERT_THAT(active, IsOk());
  EXPECT_THAT(Ids(*active), ElementsAre("amina.k"));
  ASSERT_THAT(every, IsOk());
  EXPECT_THAT(Ids(*every), ElementsAre("amina.k", "bello"));
}

// --- CreateEnrolmentCode and Enroll ------------------------------------------

TEST_F(AdminServiceTest, CodeForAnUnregisteredOfficerIsRefusedNamingTheActiveOnes) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  ASSERT_THAT(AddOfficer("dayo", "eastern"), IsOk());
  ASSERT_THAT(AddOfficer("chidi", "eastern"), IsOk());
  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "chidi"), IsOk());

  EXPECT_THAT(CreateCode("officer1", "northern"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("officer1 is not a registered officer"),
                             HasSubstr("active officers are: amina.k, dayo"),
                             HasSubstr("fieldsync officer add"), Not(HasSubstr("chidi")))));
}

TEST_F(AdminServiceTest, CodeWithNoOfficerRegisteredSaysHowToAddOne) {
  StartServer();

  EXPECT_THAT(CreateCode("officer1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("no active officer"), HasSubstr("fieldsync officer add"))));
}

TEST_F(AdminServiceTest, CodeForARevokedOfficerIsRefused) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "amina.k"), IsOk());

  EXPECT_THAT(CreateCode("amina.k"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("amina.k is revoked")));
}

TEST_F(AdminServiceTest, CodeRefusalNamesTwentyOfficersAndHowManyMore) {
  StartServer();
  for (int i = 0; i < 23; ++i) {
    ASSERT_THAT(AddOfficer(absl::StrFormat("off%02d", i), "central"), IsOk());
  }

  EXPECT_THAT(CreateCode("nobody"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("off00, off01"), HasSubstr("off19 and 3 more"),
                             Not(HasSubstr("off20")))));
}

TEST_F(AdminServiceTest, CodeForAnotherRegionIsRefusedSayingTheOfficersRegion) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());

  EXPECT_THAT(
      CreateCode("amina.k", "eastern"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("amina.k works in region northern")));
}

TEST_F(AdminServiceTest, CodeWithoutARegionIsForTheOfficersRegion) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());

  absl::StatusOr<v1::CreateEnrolmentCodeResponse> code = CreateCode("amina.k", "");

  ASSERT_THAT(code, IsOk());
  EXPECT_EQ(code->officer_id(), "amina.k");
  EXPECT_EQ(code->region(), "northern");
  Device d;
  grpc::Status s = Enroll(code->code(), &d);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(d.enrolment.officer_id(), "amina.k");
  EXPECT_EQ(d.enrolment.region(), "northern");
}

TEST_F(AdminServiceTest, EnrolWithACodeWhoseOfficerWasRevokedSinceIsRefused) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  absl::StatusOr<v1::CreateEnrolmentCodeResponse> code = CreateCode("amina.k");
  ASSERT_THAT(code, IsOk());
  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_OFFICER, "amina.k"), IsOk());

  Device d;
  grpc::Status s = Enroll(code->code(), &d);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReasonOf(s), v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID);
  EXPECT_THAT(s.error_message(), HasSubstr("officer amina.k, who has been revoked"));
  absl::StatusOr<v1::ListPrincipalsResponse> devices =
      List(admin_, v1::PRINCIPAL_KIND_DEVICE, "", /*include_revoked=*/true);
  ASSERT_THAT(devices, IsOk());
  EXPECT_THAT(Ids(*devices), ::testing::IsEmpty());
}

TEST_F(AdminServiceTest, EnrolmentStoresTheDeviceLabel) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina.k", "northern"), IsOk());
  absl::StatusOr<v1::CreateEnrolmentCodeResponse> code = CreateCode("amina.k");
  ASSERT_THAT(code, IsOk());
  Device d;
  ASSERT_TRUE(Enroll(code->code(), &d, "tablet 3, Gulu office").ok());

  absl::StatusOr<v1::ListPrincipalsResponse> devices = List(admin_, v1::PRINCIPAL_KIND_DEVICE);

  ASSERT_THAT(devices, IsOk());
  ASSERT_EQ(devices->principals_size(), 1);
  EXPECT_EQ(devices->principals(0).id(), d.id);
  EXPECT_EQ(devices->principals(0).device_label(), "tablet 3, Gulu office");
  EXPECT_EQ(devices->principals(0).officer_id(), "amina.k");
}

// --- Upgrade of a deployment from before officers were principals ----------

TEST_F(AdminServiceTest, FirstStartRegistersTheOfficersOfExistingDevicesAndCodes) {
  {
    storage::StoreOptions options;
    options.path = paths_->db;
    auto store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    admin::PrincipalRegistry registry(store->get());
    v1::Principal device;
    device.set_id("00000000-0000-4000-8000-000000000001");
    device.set_kind(v1::PRINCIPAL_KIND_DEVICE);
    device.set_role(v1::ROLE_DEVICE);
    device.add_regions("northern");
    device.set_officer_id("amina.k");
    device.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
    v1::EnrolmentCode code;
    code.set_officer_id("bello");
    code.set_region("central");
    storage::WriteBatch batch;
    ASSERT_THAT(registry.Put(device, &batch), IsOk());
    batch.Put(storage::Cf::kPrincipals, storage::EncodeEnrolmentCodeKey("c0de"),
              code.SerializeAsString());
    ASSERT_THAT((*store)->Commit(&batch), IsOk());
  }

  StartServer();

  absl::StatusOr<v1::ListPrincipalsResponse> officers = List(admin_, v1::PRINCIPAL_KIND_OFFICER);
  ASSERT_THAT(officers, IsOk());
  ASSERT_THAT(Ids(*officers), ElementsAre("amina.k", "bello"));
  EXPECT_THAT(officers->principals(0).regions(), ElementsAre("northern"));
  EXPECT_THAT(officers->principals(1).regions(), ElementsAre("central"));
  EXPECT_EQ(officers->principals(0).changed_by(), "fieldsync://server/upgrade");
  EXPECT_THAT(CreateCode("bello"), IsOk());
}

// --- GetStatus, UpdateStaff, ListEnrolmentCodes, CancelEnrolmentCode ------

// A device's pull, read to its end.
grpc::Status PullAll(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = v1::SyncService::NewStub(channel)->Pull(&context, v1::PullRequest());
  v1::PullChunk chunk;
  while (reader->Read(&chunk)) {
  }
  return reader->Finish();
}

TEST_F(AdminServiceTest, GetStatusReportsTheDeploymentToAdministratorsOnly) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina", "northern"), IsOk());
  Device d = NewDevice("amina");
  grpc::Status pulled = PullAll(Channel(&d.tls));
  ASSERT_TRUE(pulled.ok()) << pulled.error_message();
  ASSERT_THAT(CreateCode("amina"), IsOk());  // one open code
  absl::StatusOr<Credentials> sup = AddStaff("sup", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sup, IsOk());
  clock_.Advance(absl::Minutes(20));

  v1::GetStatusRequest request;
  request.set_active_window_seconds(3600);
  v1::GetStatusResponse status;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s = Admin(admin_)->GetStatus(&context, request, &status);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(status.health(), "serving");
  EXPECT_EQ(status.version(), std::string(BuildVersion()));
  EXPECT_EQ(status.commit(), std::string(BuildCommit()));
  EXPECT_EQ(status.deployment_id(), server_->deployment_id());
  EXPECT_EQ(status.uptime_seconds(), 20 * 60);
  EXPECT_GT(status.store_bytes(), 0u);
  EXPECT_GE(status.audit_tree_size(), 5u);  // admin, officer, code, device, code, staff
  EXPECT_EQ(status.active_devices(), 1u);
  EXPECT_EQ(status.active_window_seconds(), 3600u);
  EXPECT_EQ(status.enrolled_devices(), 1u);
  EXPECT_EQ(status.active_staff(), 2u);
  EXPECT_EQ(status.active_officers(), 1u);
  EXPECT_EQ(status.open_enrolment_codes(), 1u);
  // The CA, the server's certificate and the nearest client certificate,
  // soonest first.
  ASSERT_EQ(status.certificates_size(), 3);
  std::multiset<v1::CertificateKind> kinds;
  for (int i = 0; i < status.certificates_size(); ++i) {
    kinds.insert(status.certificates(i).kind());
    if (i > 0) {
      EXPECT_LE(status.certificates(i - 1).not_after_unix_micros(),
                status.certificates(i).not_after_unix_micros());
    }
  }
  EXPECT_EQ(kinds.count(v1::CERTIFICATE_KIND_CA), 1u);
  EXPECT_EQ(kinds.count(v1::CERTIFICATE_KIND_SERVER), 1u);
  EXPECT_EQ(kinds.count(v1::CERTIFICATE_KIND_STAFF) + kinds.count(v1::CERTIFICATE_KIND_DEVICE), 1u);

  // The default window (15 minutes) no longer holds the device.
  v1::GetStatusResponse later;
  grpc::ClientContext context2;
  SetDeadline(&context2);
  ASSERT_TRUE(Admin(admin_)->GetStatus(&context2, v1::GetStatusRequest(), &later).ok());
  EXPECT_EQ(later.active_devices(), 0u);
  EXPECT_EQ(later.active_window_seconds(), 15u * 60);

  // Its last sync is listed with it.
  absl::StatusOr<v1::ListPrincipalsResponse> listed = List(admin_, v1::PRINCIPAL_KIND_DEVICE);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->device_last_sync_unix_micros().count(d.id), 1u);
  EXPECT_EQ(listed->device_last_sync_unix_micros().at(d.id),
            absl::ToUnixMicros(clock_.Now() - absl::Minutes(20)));

  v1::GetStatusRequest too_long;
  too_long.set_active_window_seconds(8 * 24 * 3600);
  grpc::ClientContext context3;
  SetDeadline(&context3);
  EXPECT_EQ(Admin(admin_)->GetStatus(&context3, too_long, &later).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext context4;
  SetDeadline(&context4);
  EXPECT_EQ(Admin(*sup)->GetStatus(&context4, v1::GetStatusRequest(), &later).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

absl::StatusOr<v1::UpdateStaffResponse> UpdateStaff(v1::AdminService::Stub* stub,
                                                    const std::string& id,
                                                    const std::vector<std::string>& regions) {
  v1::UpdateStaffRequest request;
  request.set_id(id);
  for (const std::string& r : regions) request.add_regions(r);
  v1::UpdateStaffResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::Status s = stub->UpdateStaff(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

TEST_F(AdminServiceTest, UpdateStaffReplacesRegionsAndIsAudited) {
  StartServer();
  absl::StatusOr<Credentials> sup = AddStaff("sup", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sup, IsOk());
  ASSERT_THAT(AddOfficer("dayo", "eastern"), IsOk());
  EXPECT_THAT(List(*sup, v1::PRINCIPAL_KIND_OFFICER, "eastern"),
              StatusIs(absl::StatusCode::kPermissionDenied));

  absl::StatusOr<v1::UpdateStaffResponse> updated =
      UpdateStaff(Admin(admin_).get(), "sup", {"eastern", "western"});

  ASSERT_THAT(updated, IsOk());
  EXPECT_THAT(updated->principal().regions(), ElementsAre("eastern", "western"));
  EXPECT_THAT(updated->previous_regions(), ElementsAre("northern"));
  absl::StatusOr<v1::ListPrincipalsResponse> officers =
      List(*sup, v1::PRINCIPAL_KIND_OFFICER, "eastern");
  ASSERT_THAT(officers, IsOk());  // its new region, from its next call on
  EXPECT_THAT(Ids(*officers), ElementsAre("dayo"));
  std::vector<protocol::Event> tail = AuditTail(1);
  ASSERT_EQ(tail.size(), 1u);
  const auto* action = std::get_if<protocol::AdminAction>(&tail[0].body);
  ASSERT_NE(action, nullptr);
  EXPECT_EQ(action->action, "staff.update");
  EXPECT_EQ(action->actor, "fieldsync://staff/admin");
  EXPECT_THAT(action->subject_ids, ElementsAre("sup", "eastern", "western"));
}

TEST_F(AdminServiceTest, UpdateStaffRefusesWhatItCannotDo) {
  StartServer();
  absl::StatusOr<Credentials> sup = AddStaff("sup", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sup, IsOk());
  ASSERT_THAT(AddStaff("ana", v1::ROLE_ANALYST, {"central"}), IsOk());
  ASSERT_THAT(AddStaff("aud", v1::ROLE_AUDITOR, {}), IsOk());
  auto admin = Admin(admin_);

  EXPECT_THAT(UpdateStaff(admin.get(), "sup", {"atlantis"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("northern")));
  EXPECT_THAT(UpdateStaff(admin.get(), "sup", {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(UpdateStaff(admin.get(), "sup", {"central", "central"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(UpdateStaff(admin.get(), "nobody", {"central"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("ana, sup")));
  EXPECT_THAT(UpdateStaff(admin.get(), "aud", {"central"}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(UpdateStaff(Admin(*sup).get(), "sup", {"central"}),
              StatusIs(absl::StatusCode::kPermissionDenied));
  ASSERT_THAT(Revoke(v1::PRINCIPAL_KIND_STAFF, "ana"), IsOk());
  EXPECT_THAT(UpdateStaff(admin.get(), "ana", {"northern"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("revoked")));
  // Nothing changed.
  absl::StatusOr<v1::ListPrincipalsResponse> staff = List(admin_, v1::PRINCIPAL_KIND_STAFF);
  ASSERT_THAT(staff, IsOk());
  for (const v1::Principal& p : staff->principals()) {
    if (p.id() == "sup") {
      EXPECT_THAT(p.regions(), ElementsAre("northern"));
    }
  }
}

absl::StatusOr<v1::ListEnrolmentCodesResponse> ListCodes(v1::AdminService::Stub* stub,
                                                         const std::string& officer = "") {
  v1::ListEnrolmentCodesRequest request;
  request.set_officer_id(officer);
  v1::ListEnrolmentCodesResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::Status s = stub->ListEnrolmentCodes(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<v1::CancelEnrolmentCodeResponse> CancelCode(v1::AdminService::Stub* stub,
                                                           const std::string& code_id) {
  v1::CancelEnrolmentCodeRequest request;
  request.set_code_id(code_id);
  v1::CancelEnrolmentCodeResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::Status s = stub->CancelEnrolmentCode(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

TEST_F(AdminServiceTest, OpenCodesAreListedByIdAndACancelledOneNoLongerEnrols) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina", "northern"), IsOk());
  ASSERT_THAT(AddOfficer("bello", "central"), IsOk());
  absl::StatusOr<v1::CreateEnrolmentCodeResponse> a = CreateCode("amina");
  clock_.Advance(absl::Seconds(1));  // listed oldest first
  absl::StatusOr<v1::CreateEnrolmentCodeResponse> b = CreateCode("bello");
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_EQ(a->code_id().size(), 16u);
  EXPECT_NE(a->code_id(), b->code_id());
  auto admin = Admin(admin_);

  absl::StatusOr<v1::ListEnrolmentCodesResponse> listed = ListCodes(admin.get());
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->codes_size(), 2);
  EXPECT_EQ(listed->codes(0).code_id(), a->code_id());
  EXPECT_EQ(listed->codes(0).officer_id(), "amina");
  EXPECT_EQ(listed->codes(0).region(), "northern");
  EXPECT_EQ(listed->codes(0).expires_unix_micros(), a->expires_unix_micros());
  EXPECT_EQ(listed->codes(0).created_by(), "fieldsync://staff/admin");
  EXPECT_THAT(listed->DebugString(), Not(HasSubstr(a->code())));
  absl::StatusOr<v1::ListEnrolmentCodesResponse> of_bello = ListCodes(admin.get(), "bello");
  ASSERT_THAT(of_bello, IsOk());
  ASSERT_EQ(of_bello->codes_size(), 1);
  EXPECT_EQ(of_bello->codes(0).code_id(), b->code_id());
  EXPECT_THAT(ListCodes(admin.get(), "nobody"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("amina, bello")));

  absl::StatusOr<v1::CancelEnrolmentCodeResponse> cancelled = CancelCode(admin.get(), a->code_id());

  ASSERT_THAT(cancelled, IsOk());
  EXPECT_EQ(cancelled->code().officer_id(), "amina");
  std::vector<protocol::Event> tail = AuditTail(1);
  ASSERT_EQ(tail.size(), 1u);
  const auto* action = std::get_if<protocol::AdminAction>(&tail[0].body);
  ASSERT_NE(action, nullptr);
  EXPECT_EQ(action->action, "enrolment-code.cancel");
  EXPECT_THAT(action->subject_ids, ElementsAre(a->code_id(), "amina"));
  listed = ListCodes(admin.get());
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->codes_size(), 1);
  EXPECT_EQ(listed->codes(0).code_id(), b->code_id());
  Device d;
  grpc::Status s = Enroll(a->code(), &d);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("cancelled"));
  EXPECT_EQ(ReasonOf(s), v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID);
  EXPECT_THAT(CancelCode(admin.get(), a->code_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cancelled already")));
}

TEST_F(AdminServiceTest, CancelEnrolmentCodeRefusesWhatItCannotCancel) {
  StartServer();
  ASSERT_THAT(AddOfficer("amina", "northern"), IsOk());
  absl::StatusOr<v1::CreateEnrolmentCodeResponse> used = CreateCode("amina");
  absl::StatusOr<v1::CreateEnrolmentCodeResponse> open = CreateCode("amina");
  ASSERT_THAT(used, IsOk());
  ASSERT_THAT(open, IsOk());
  Device d;
  ASSERT_TRUE(Enroll(used->code(), &d).ok());
  auto admin = Admin(admin_);

  EXPECT_THAT(CancelCode(admin.get(), used->code_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(d.id)));
  EXPECT_THAT(CancelCode(admin.get(), "0123456789abcdef"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(open->code_id())));
  for (std::string bad : std::vector<std::string>{"", "0123", "0123456789ABCDEF", used->code()}) {
    EXPECT_THAT(CancelCode(admin.get(), bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  absl::StatusOr<Credentials> sup = AddStaff("sup", v1::ROLE_SUPERVISOR, {"northern"});
  ASSERT_THAT(sup, IsOk());
  EXPECT_THAT(CancelCode(Admin(*sup).get(), open->code_id()),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(ListCodes(Admin(*sup).get()), StatusIs(absl::StatusCode::kPermissionDenied));
  clock_.Advance(absl::Hours(25));  // past the default lifetime
  EXPECT_THAT(CancelCode(admin.get(), open->code_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("expired")));
  absl::StatusOr<v1::ListEnrolmentCodesResponse> listed = ListCodes(admin.get());
  ASSERT_THAT(listed, IsOk());
  EXPECT_EQ(listed->codes_size(), 0);
}

}  // namespace
}  // namespace fieldsync::server
