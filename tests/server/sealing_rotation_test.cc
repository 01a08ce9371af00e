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
#include "device/tablet.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "server/server.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::HasSubstr;

using Credentials = ::fieldsync::testing::ClientCredentials;
// An enrolled tablet: its device::Tablet and its TLS credentials.
using Enrolled = ::fieldsync::testing::EnrolledDevice;
using ::fieldsync::testing::DetailOf;

constexpr absl::Duration kDay = absl::Hours(24);

class SealingRotationTest : public ::fieldsync::testing::ServerHarness {
 protected:
  // The clock starts at a fixed time, days are added to it.
  SealingRotationTest() : ServerHarness(4711, absl::FromUnixSeconds(1795000000)) {
    config_.set_sealing_key_overlap_days(7);
  }

  void SetUp() override {
    ServerHarness::SetUp();
    StartServer();
  }

  // A tablet enrolled as a real one is: officer, code, Enroll.
  Enrolled Enrol() { return NewDevice("officer1", "northern"); }

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
