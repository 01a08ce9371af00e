// Rotating the HPKE batch-sealing key through a real fieldsyncd
// (FieldsyncServer) on an ephemeral loopback port over real mutual TLS,
// with a tablet (device::Tablet) enrolled through SyncService.Enroll: a
// batch sealed to the replaced key is accepted until the cutoff and refused
// with SEALING_KEY_RETIRED after it (the clock is simulated); the tablet
// fetches the keys (GetSealingKeys) and its resealed batch is accepted; the
// rotation is audited; a restart keeps the keys. docs/OPERATIONS.md
// "Rotating the batch-sealing key".
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_format.h"
#include "admin/deployment.h"
#include "common/file_io.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/x25519.h"
#include "crypto/x509.h"
#include "device/tablet.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/rpc_status.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "server/config.h"
#include "server/server.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::HasSubstr;

struct Credentials {
  std::string certificate_pem;
  std::string private_key_pem;
};

// An enrolled tablet and its TLS credentials.
struct Enrolled {
  std::unique_ptr<device::Tablet> tablet;
  Credentials tls;
  v1::EnrollResponse enrolment;
};

v1::SyncErrorDetail DetailOf(const grpc::Status& s) {
  v1::RpcStatus rich;
  v1::SyncErrorDetail detail;
  if (rich.ParseFromString(s.error_details()) && rich.details_size() == 1) {
    rich.details(0).UnpackTo(&detail);
  }
  return detail;
}

constexpr absl::Duration kDay = absl::Hours(24);

class SealingRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    admin::InitOptions init;
    init.data_dir = dir_.Sub("deployment");
    init.clock = &clock_;
    init.random = &random_;
    ASSERT_THAT(admin::InitDeployment(init), IsOk());
    paths_ = std::make_unique<admin::DeploymentPaths>(init.data_dir);
    admin_.certificate_pem = *ReadFile(paths_->admin_cert);
    admin_.private_key_pem = *ReadFile(paths_->admin_key);
    ca_pem_ = *ReadFile(paths_->ca_cert);
    StartServer();
  }

  void StartServer() {
    ServerOptions options;
    options.data_dir = paths_->root;
    options.config.set_listen("127.0.0.1:0");
    options.config.set_drain_timeout_seconds(2);
    options.config.set_sealing_key_overlap_days(7);
    ApplyDefaults(options.data_dir, &options.config);
    options.clock = &clock_;
    options.random = &random_;
    absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = FieldsyncServer::Start(options);
    ASSERT_THAT(s, IsOk());
    server_ = *std::move(s);
  }

  void RestartServer() {
    ASSERT_THAT(server_->Shutdown(), IsOk());
    server_.reset();
    StartServer();
  }

  std::shared_ptr<grpc::Channel> Channel(const Credentials* client) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_pem_;
    if (client != nullptr) {
      ssl.pem_cert_chain = client->certificate_pem;
      ssl.pem_private_key = client->private_key_pem;
    }
    return grpc::CreateChannel(server_->address(), grpc::SslCredentials(ssl));
  }

  static void SetDeadline(grpc::ClientContext* c) {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  }

  Credentials AddStaff(const std::string& id, v1::Role role) {
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    v1::AddStaffRequest request;
    request.set_id(id);
    request.set_role(role);
    request.add_regions("northern");
    request.set_csr_pem(*crypto::CreateCsr(key->private_key_pem, "fieldsync://staff/csr"));
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::AddStaffResponse response;
    grpc::Status s =
        v1::AdminService::NewStub(Channel(&admin_))->AddStaff(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return Credentials{response.certificate_pem(), key->private_key_pem};
  }

  // A tablet enrolled as a real one is: officer, code, Enroll.
  Enrolled Enrol() {
    {
      v1::AddOfficerRequest officer;
      officer.set_id("officer1");
      officer.set_region("northern");
      v1::AddOfficerResponse added;
      grpc::ClientContext context;
      SetDeadline(&context);
      grpc::Status s =
          v1::AdminService::NewStub(Channel(&admin_))->AddOfficer(&context, officer, &added);
      EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::ALREADY_EXISTS)
          << s.error_message();
    }
    v1::CreateEnrolmentCodeRequest code_request;
    code_request.set_officer_id("officer1");
    code_request.set_region("northern");
    v1::CreateEnrolmentCodeResponse code;
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      grpc::Status s = v1::AdminService::NewStub(Channel(&admin_))
                           ->CreateEnrolmentCode(&context, code_request, &code);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    Enrolled e;
    absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
    EXPECT_THAT(key, IsOk());
    crypto::Ed25519KeyPair signing = crypto::GenerateEd25519(random_);
    crypto::X25519KeyPair receiving = crypto::GenerateX25519(random_);
    v1::EnrollRequest request;
    request.set_enrolment_code(code.code());
    request.set_csr_pem(*crypto::CreateCsr(key->private_key_pem, "fieldsync://device/new"));
    request.set_signing_public_key(crypto::ToString(signing.public_key));
    request.set_receiving_public_key(crypto::ToString(receiving.public_key));
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s =
        v1::SyncService::NewStub(Channel(nullptr))->Enroll(&context, request, &e.enrolment);
    EXPECT_TRUE(s.ok()) << s.error_message();
    e.tls = {e.enrolment.certificate_pem(), key->private_key_pem};
    absl::StatusOr<device::Tablet> tablet =
        device::Tablet::Create(e.enrolment, *crypto::Ed25519Signer::Create(signing.seed.span()),
                               *crypto::X25519PrivateKey::Create(receiving.private_key.span()));
    EXPECT_THAT(tablet, IsOk());
    e.tablet = std::make_unique<device::Tablet>(*std::move(tablet));
    return e;
  }

  // Journals a new case on the tablet and seals it as the next batch.
  v1::SealedBatch SealNewCase(Enrolled& e) {
    const std::string case_id = FormatUuid(NewUuid(random_));
    auto value = [](const char* enum_value) {
      v1::FieldValue v;
      v.set_enum_value(enum_value);
      return v;
    };
    v1::FieldValue date;
    date.mutable_date_value()->set_year(2026);
    date.mutable_date_value()->set_month(11);
    date.mutable_date_value()->set_day(2);
    v1::FieldValue name;
    name.set_string_value("Amina");
    e.tablet->Upsert(FormatUuid(NewUuid(random_)), case_id, case_id, "case_registration",
                     {{"given_name", name},
                      {"sex", value("female")},
                      {"age_band", value("10_14")},
                      {"region", value("northern")},
                      {"registration_date", date}},
                     clock_.Now());
    absl::StatusOr<v1::SealedBatch> sealed = e.tablet->SealNext(100, NewUuid(random_), random_);
    EXPECT_THAT(sealed, IsOk());
    return *sealed;
  }

  grpc::Status Push(const Enrolled& e, const v1::SealedBatch& sealed, v1::PushResponse* response) {
    v1::PushRequest request;
    *request.mutable_batch() = sealed;
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::SyncService::NewStub(Channel(&e.tls))->Push(&context, request, response);
  }

  grpc::Status GetSealingKeys(const Credentials& who, v1::GetSealingKeysResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::SyncService::NewStub(Channel(&who))
        ->GetSealingKeys(&context, v1::GetSealingKeysRequest(), response);
  }

  grpc::Status Rotate(const Credentials& who, const v1::RotateSealingKeyRequest& request,
                      v1::RotateSealingKeyResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::AdminService::NewStub(Channel(&who))->RotateSealingKey(&context, request, response);
  }

  v1::RotateSealingKeyRequest OverlapOf(absl::Duration d) {
    v1::RotateSealingKeyRequest request;
    request.set_previous_overlap_seconds(static_cast<uint64_t>(absl::ToInt64Seconds(d)));
    return request;
  }

  v1::ListSealingKeysResponse ListKeys() {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::ListSealingKeysResponse response;
    grpc::Status s = v1::AdminService::NewStub(Channel(&admin_))
                         ->ListSealingKeys(&context, v1::ListSealingKeysRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  // The decoded audit entry at `index`, read through AuditService.
  absl::StatusOr<protocol::Event> AuditEntry(uint64_t index) {
    auto stub = v1::AuditService::NewStub(Channel(&admin_));
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      v1::SignedTreeHead head;
      grpc::Status s = stub->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head);
      if (!s.ok()) return absl::InternalError(s.error_message());
    }
    v1::GetEntriesRequest request;
    request.set_start(index);
    request.set_end(index + 1);
    grpc::ClientContext context;
    SetDeadline(&context);
    auto reader = stub->GetEntries(&context, request);
    v1::AuditEntries entries;
    std::string entry;
    while (reader->Read(&entries)) {
      if (entries.first_index() == index && entries.entries_size() > 0) entry = entries.entries(0);
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return absl::InternalError(s.error_message());
    if (entry.empty()) return absl::NotFoundError("no such entry");
    return protocol::DecodeEvent(entry);
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_;
  fieldsync::testing::SeededRandom random_{4711};
  std::unique_ptr<admin::DeploymentPaths> paths_;
  Credentials admin_;
  std::string ca_pem_;
  std::unique_ptr<FieldsyncServer> server_;
};

TEST_F(SealingRotationTest, PreviousKeyIsAcceptedUntilTheCutoffThenRetiredAndTheTabletReseals) {
  Enrolled e = Enrol();
  ASSERT_EQ(e.tablet->sealing_key_id(), 1u);
  v1::RotateSealingKeyResponse rotated;
  grpc::Status s = Rotate(admin_, OverlapOf(kDay), &rotated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(rotated.old_key_id(), 1u);
  ASSERT_EQ(rotated.new_key_id(), 2u);
  EXPECT_EQ(rotated.previous_until_unix_micros(), absl::ToUnixMicros(clock_.Now() + kDay));

  // Before the cutoff: a batch sealed to key 1 is accepted.
  v1::SealedBatch before = SealNewCase(e);
  ASSERT_EQ(before.header().sealing_key_id(), 1u);
  v1::PushResponse accepted;
  s = Push(e, before, &accepted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(accepted.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  ASSERT_THAT(e.tablet->Acknowledge(accepted), IsOk());

  // After it: refused with the documented reason, nothing recorded.
  v1::SealedBatch after = SealNewCase(e);
  ASSERT_EQ(after.header().sealing_key_id(), 1u);
  clock_.Advance(kDay + absl::Seconds(1));
  v1::PushResponse refused;
  s = Push(e, after, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("sealing key 1 is retired since"));
  EXPECT_THAT(s.error_message(), HasSubstr("GetSealingKeys"));
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_SEALING_KEY_RETIRED);
  EXPECT_EQ(DetailOf(s).sealing_key_id(), 1u);
  EXPECT_EQ(DetailOf(s).batch_id(), after.header().batch_id());

  // The tablet fetches the keys (key 1 is no longer offered) and reseals.
  v1::GetSealingKeysResponse keys;
  s = GetSealingKeys(e.tls, &keys);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(keys.sealing_keys_size(), 1);
  EXPECT_EQ(keys.sealing_keys(0).key_id(), 2u);
  EXPECT_EQ(keys.sealing_keys(0).public_key(), rotated.new_public_key());
  EXPECT_EQ(keys.sealing_keys(0).not_after_unix_micros(), 0);
  ASSERT_THAT(e.tablet->UpdateSealingKeys(keys.sealing_keys()), IsOk());
  absl::StatusOr<v1::SealedBatch> resealed = e.tablet->ResealInFlight(random_);
  ASSERT_THAT(resealed, IsOk());
  EXPECT_EQ(resealed->header().sealing_key_id(), 2u);
  v1::PushResponse answer;
  s = Push(e, *resealed, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(answer.is_retry_answer());
  EXPECT_EQ(answer.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(answer.next_sequence(), 3u) << "the reseal kept the refused batch's sequence";
}

TEST_F(SealingRotationTest, BatchCommittedBeforeItsKeyRetiredIsRecognisedWhenResealed) {
  Enrolled e = Enrol();
  v1::SealedBatch sealed = SealNewCase(e);
  v1::PushResponse first;
  ASSERT_TRUE(Push(e, sealed, &first).ok());  // its answer is "lost": no Acknowledge
  v1::RotateSealingKeyResponse rotated;
  v1::RotateSealingKeyRequest now;
  now.set_previous_overlap_seconds(0);  // retire key 1 at once
  ASSERT_TRUE(Rotate(admin_, now, &rotated).ok());
  clock_.Advance(absl::Seconds(1));
  v1::PushResponse refused;
  ASSERT_EQ(Push(e, sealed, &refused).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::GetSealingKeysResponse keys;
  ASSERT_TRUE(GetSealingKeys(e.tls, &keys).ok());
  ASSERT_THAT(e.tablet->UpdateSealingKeys(keys.sealing_keys()), IsOk());

  v1::PushResponse answer;
  grpc::Status s = Push(e, *e.tablet->ResealInFlight(random_), &answer);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(answer.is_retry_answer());
  EXPECT_EQ(answer.first_position(), first.first_position());
}

TEST_F(SealingRotationTest, RotationIsAuditedWithTheNewPublicKey) {
  v1::RotateSealingKeyResponse rotated;
  ASSERT_TRUE(Rotate(admin_, v1::RotateSealingKeyRequest(), &rotated).ok());

  absl::StatusOr<protocol::Event> event = AuditEntry(rotated.audit_leaf_index());

  ASSERT_THAT(event, IsOk());
  const protocol::KeyRotated* k = std::get_if<protocol::KeyRotated>(&event->body);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->actor, "fieldsync://staff/admin");
  EXPECT_EQ(k->purpose, "hpke-sealing");
  EXPECT_EQ(k->old_version, 1u);
  EXPECT_EQ(k->new_version, 2u);
  EXPECT_EQ(k->new_public_key, rotated.new_public_key());
  // Without a cutoff the config's sealing_key_overlap_days (7 here) applies.
  EXPECT_EQ(rotated.previous_until_unix_micros(), absl::ToUnixMicros(clock_.Now() + 7 * kDay));
}

TEST_F(SealingRotationTest, NewTabletEnrolledAfterARotationSealsToTheNewKey) {
  v1::RotateSealingKeyResponse rotated;
  ASSERT_TRUE(Rotate(admin_, OverlapOf(kDay), &rotated).ok());

  Enrolled e = Enrol();

  ASSERT_EQ(e.enrolment.sealing_keys_size(), 2);
  EXPECT_EQ(e.enrolment.sealing_keys(0).key_id(), 1u);
  EXPECT_EQ(e.enrolment.sealing_keys(0).not_after_unix_micros(),
            rotated.previous_until_unix_micros());
  EXPECT_EQ(e.tablet->sealing_key_id(), 2u);
  v1::PushResponse answer;
  grpc::Status s = Push(e, SealNewCase(e), &answer);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(SealingRotationTest, RestartKeepsTheKeysAndTheirCutoffs) {
  Enrolled e = Enrol();
  v1::RotateSealingKeyResponse rotated;
  ASSERT_TRUE(Rotate(admin_, OverlapOf(kDay), &rotated).ok());
  const std::string listed = ListKeys().SerializeAsString();

  RestartServer();

  EXPECT_EQ(ListKeys().SerializeAsString(), listed);
  v1::GetSealingKeysResponse keys;
  ASSERT_TRUE(GetSealingKeys(e.tls, &keys).ok());
  ASSERT_EQ(keys.sealing_keys_size(), 2);
  EXPECT_EQ(keys.sealing_keys(0).not_after_unix_micros(), rotated.previous_until_unix_micros());
  EXPECT_EQ(keys.sealing_keys(1).key_id(), 2u);
  // Key 1 still opens before its cutoff, and is retired after it.
  v1::PushResponse answer;
  grpc::Status s = Push(e, SealNewCase(e), &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_THAT(e.tablet->Acknowledge(answer), IsOk());
  clock_.Advance(kDay + absl::Seconds(1));
  RestartServer();
  s = Push(e, SealNewCase(e), &answer);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_SEALING_KEY_RETIRED);
}

TEST_F(SealingRotationTest, NextRotationDeletesKeysPastTheirCutoffWhichStayRetired) {
  Enrolled e = Enrol();
  v1::RotateSealingKeyResponse rotated;
  ASSERT_TRUE(Rotate(admin_, OverlapOf(absl::Hours(1)), &rotated).ok());
  clock_.Advance(absl::Hours(2));

  ASSERT_TRUE(Rotate(admin_, OverlapOf(kDay), &rotated).ok());

  EXPECT_EQ(rotated.new_key_id(), 3u);
  ASSERT_EQ(rotated.deleted_key_ids_size(), 1);
  EXPECT_EQ(rotated.deleted_key_ids(0), 1u);
  v1::ListSealingKeysResponse keys = ListKeys();
  ASSERT_EQ(keys.keys_size(), 2);
  EXPECT_EQ(keys.keys(0).key_id(), 2u);
  EXPECT_FALSE(keys.keys(0).is_retired());
  EXPECT_TRUE(keys.keys(1).is_current());
  v1::PushResponse answer;
  grpc::Status s = Push(e, SealNewCase(e), &answer);  // still sealed to key 1
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_SEALING_KEY_RETIRED);
  EXPECT_THAT(s.error_message(), HasSubstr("sealing key 1 is retired: fetch"));
}

TEST_F(SealingRotationTest, OnlyAdministratorsRotateOrList) {
  Credentials supervisor = AddStaff("sup1", v1::ROLE_SUPERVISOR);
  Enrolled e = Enrol();
  v1::RotateSealingKeyResponse response;

  for (const Credentials* who : {&supervisor, &e.tls}) {
    grpc::Status s = Rotate(*who, v1::RotateSealingKeyRequest(), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("RotateSealingKey"));
  }
  EXPECT_EQ(ListKeys().keys_size(), 1);
  v1::GetSealingKeysResponse keys;
  grpc::Status s = GetSealingKeys(supervisor, &keys);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(SealingRotationTest, CutoffInThePastOrTooFarIsInvalidAndChangesNothing) {
  v1::RotateSealingKeyRequest past;
  past.set_previous_until_unix_micros(absl::ToUnixMicros(clock_.Now() - absl::Seconds(1)));
  v1::RotateSealingKeyResponse response;

  grpc::Status s = Rotate(admin_, past, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("is in the past"));
  s = Rotate(admin_, OverlapOf(366 * kDay), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("365 days"));

  v1::ListSealingKeysResponse keys = ListKeys();
  ASSERT_EQ(keys.keys_size(), 1);
  EXPECT_EQ(keys.keys(0).key_id(), 1u);
  EXPECT_TRUE(keys.keys(0).is_current());
}

}  // namespace
}  // namespace fieldsync::server
