// SyncService and CaseService through a real fieldsyncd (FieldsyncServer) on
// an ephemeral loopback port over real mutual TLS, with a device written in
// C++ from docs/PROTOCOL.md: enrolment, sealed and signed pushes, sealed
// pulls, every refusal with its machine-readable reason, the schema, and the
// supervisor's conflict review.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "admin/deployment.h"
#include "common/file_io.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "server/server.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/schema.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Credentials = ::fieldsync::testing::ClientCredentials;
using Device = ::fieldsync::testing::EnrolledDevice;
using ::fieldsync::testing::DetailOf;

std::string Id(int n) { return absl::StrFormat("00000000-0000-4000-8000-%012x", n); }
std::string Upper(const std::string& s) { return absl::AsciiStrToUpper(s); }

// The changes of `chunks`, in order, as (position, change id).
std::vector<std::pair<uint64_t, std::string>> Flatten(
    const std::vector<v1::PulledChanges>& chunks) {
  std::vector<std::pair<uint64_t, std::string>> out;
  for (const auto& chunk : chunks) {
    for (const auto& c : chunk.changes()) out.emplace_back(c.position(), c.change_id());
  }
  return out;
}

// Lowercase hex SHA-256 of the deterministic serialization of `schema`
// (PROTOCOL.md §2.1), computed here rather than by the server's code.
std::string SchemaDigest(const v1::Schema& schema) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    schema.SerializeToCodedStream(&coded);
  }
  const crypto::Sha256Digest sha = crypto::Sha256(bytes);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(sha.data()), sha.size()));
}

v1::FieldValue Enum(std::string_view s) {
  v1::FieldValue v;
  v.set_enum_value(std::string(s));
  return v;
}
v1::FieldValue Str(std::string_view s) {
  v1::FieldValue v;
  v.set_string_value(std::string(s));
  return v;
}

class SyncServiceTest : public ::fieldsync::testing::ServerHarness {
 protected:
  SyncServiceTest() : ServerHarness(20261204) {}

  // A call of `method` whose request is `bytes` as they are, so that the
  // server gets what no protobuf library would write.
  grpc::Status RawCall(const Credentials* caller, const std::string& method,
                       const std::string& bytes) {
    grpc::GenericStub stub(Channel(caller));
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  grpc::Status AssignCase(const Credentials& supervisor, const std::string& case_id,
                          const std::string& officer_id) {
    v1::AssignCaseRequest request;
    request.set_case_id(case_id);
    request.set_officer_id(officer_id);
    v1::AssignCaseResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::CaseService::NewStub(Channel(&supervisor))->AssignCase(&context, request, &response);
  }

  grpc::Status TransferCase(const Credentials& supervisor, const std::string& case_id,
                            const std::string& to_region, const std::string& to_district,
                            const std::string& officer_id, v1::TransferCaseResponse* response) {
    v1::TransferCaseRequest request;
    request.set_case_id(case_id);
    request.set_to_region(to_region);
    request.set_to_district(to_district);
    request.set_officer_id(officer_id);
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::CaseService::NewStub(Channel(&supervisor))
        ->TransferCase(&context, request, response);
  }

  grpc::Status GetSchema(const Credentials* caller, const std::string& known_digest,
                         v1::GetSchemaResponse* response) {
    v1::GetSchemaRequest request;
    request.set_known_digest(known_digest);
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::SyncService::NewStub(Channel(caller))->GetSchema(&context, request, response);
  }

  // The schema fieldsyncd loads: the deployment's schema file, read here.
  v1::Schema DeploymentSchema() {
    absl::StatusOr<v1::Schema> schema = sync::LoadSchemaFile(paths_->schema);
    EXPECT_THAT(schema, IsOk());
    return *std::move(schema);
  }

  v1::RecordChange NewCase(const std::string& change_id, const std::string& case_id) {
    v1::RecordChange c;
    c.set_change_id(change_id);
    c.set_case_id(case_id);
    c.set_record_id(case_id);
    c.set_record_type("case_registration");
    c.set_kind(v1::CHANGE_KIND_UPSERT);
    c.mutable_hlc()->set_wall_micros(absl::ToUnixMicros(clock_.Now()));
    auto add = [&](const char* f, v1::FieldValue v) {
      v1::FieldWrite* w = c.add_fields();
      w->set_field(f);
      *w->mutable_value() = std::move(v);
    };
    add("given_name", Str("Amina"));
    add("sex", Enum("female"));
    add("age_band", Enum("10_14"));
    add("region", Enum("northern"));
    v1::FieldValue date;
    date.mutable_date_value()->set_year(2026);
    date.mutable_date_value()->set_month(11);
    date.mutable_date_value()->set_day(2);
    add("registration_date", date);
    return c;
  }

  v1::RecordChange SetName(const std::string& change_id, const std::string& case_id,
                           const std::string& name, uint64_t base, int64_t hlc_offset_us) {
    v1::RecordChange c;
    c.set_change_id(change_id);
    c.set_case_id(case_id);
    c.set_record_id(case_id);
    c.set_record_type("case_registration");
    c.set_kind(v1::CHANGE_KIND_UPSERT);
    c.mutable_hlc()->set_wall_micros(absl::ToUnixMicros(clock_.Now()) + hlc_offset_us);
    v1::FieldWrite* w = c.add_fields();
    w->set_field("given_name");
    *w->mutable_value() = Str(name);
    w->set_base_version(base);
    return c;
  }

  uint64_t NameVersion(const v1::ChangeResult& r) {
    for (const auto& f : r.fields()) {
      if (f.field() == "given_name") return f.version();
    }
    return 0;
  }
};

TEST_F(SyncServiceTest, EnrolReturnsCertificateKeysAndBinding) {
  StartServer();
  Device d;
  grpc::Status s = Enroll(EnrolmentCode("officer7", "eastern"), &d);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(ParseUuid(d.id), IsOk());
  absl::StatusOr<crypto::CertificateSummary> cert =
      crypto::ParseCertificate(d.enrolment.certificate_pem());
  ASSERT_THAT(cert, IsOk());
  EXPECT_THAT(cert->uris, ::testing::ElementsAre("fieldsync://device/" + d.id));
  ASSERT_EQ(d.enrolment.sealing_keys_size(), 1);
  EXPECT_EQ(d.enrolment.sealing_keys(0).public_key().size(), 32u);
  EXPECT_EQ(d.enrolment.audit_public_key().size(), 32u);
  EXPECT_FALSE(d.enrolment.audit_origin().empty());
  EXPECT_EQ(d.enrolment.officer_id(), "officer7");
  EXPECT_EQ(d.enrolment.region(), "eastern");
  EXPECT_EQ(d.enrolment.next_sequence(), 1u);
}

TEST_F(SyncServiceTest, ReusedEnrolmentCodeIsRefused) {
  StartServer();
  std::string code = EnrolmentCode();
  Device first, second;
  ASSERT_TRUE(Enroll(code, &first).ok());
  grpc::Status s = Enroll(code, &second);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID);
  EXPECT_THAT(s.error_message(), HasSubstr("already used"));
}

TEST_F(SyncServiceTest, ExpiredEnrolmentCodeIsRefused) {
  StartServer();
  std::string code = EnrolmentCode();
  clock_.Advance(absl::Hours(25));
  Device d;
  grpc::Status s = Enroll(code, &d);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID);
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
}

TEST_F(SyncServiceTest, UnknownEnrolmentCodeIsRefused) {
  StartServer();
  Device d;
  grpc::Status s = Enroll("0000-0000-0000-0000-0000", &d);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID);
}

TEST_F(SyncServiceTest, DeviceLabelOver100BytesIsRefusedWithoutSpendingTheCode) {
  StartServer();
  std::string code = EnrolmentCode();
  Device refused, enrolled;

  grpc::Status s = Enroll(code, &refused, std::string(101, 'x'));

  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_MALFORMED);
  EXPECT_THAT(s.error_message(), HasSubstr("device_label is longer than 100 bytes"));
  std::string label;
  for (int i = 0; i < 50; ++i) label += "\xc3\xa9";  // 50 characters, 100 bytes
  s = Enroll(code, &enrolled, label);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(SyncServiceTest, DeviceLabelWithAControlOrBidiCharacterIsRefusedWithoutSpendingTheCode) {
  StartServer();
  std::string code = EnrolmentCode();
  Device refused, enrolled;

  for (const std::string& label : {std::string("tablet\0 12", 9),
                                   std::string("tablet \xe2\x80\xae"
                                               "21"),
                                   std::string("tablet\n12"), std::string("tablet \x1b[31m12")}) {
    grpc::Status s = Enroll(code, &refused, label);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_MALFORMED);
    EXPECT_THAT(s.error_message(), HasSubstr("device_label: U+"));
    EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("tablet")));
  }
  grpc::Status s = Enroll(code, &enrolled, "tablet 12, \xd8\xba\xd9\x88\xd9\x84\xd9\x88");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(SyncServiceTest, RequestThatDoesNotParseIsAnsweredUnimplementedByGrpc) {
  StartServer();
  Device d = NewDevice();
  // PushRequest.batch (field 1, length-delimited) announcing 100 bytes
  // and carrying one.
  const std::string truncated("\x0a\x64\x01", 3);

  grpc::Status s = RawCall(&d.tls, "/fieldsync.v1.SyncService/Push", truncated);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "");
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_UNSPECIFIED);
}

TEST_F(SyncServiceTest, InvalidUtf8InAStringIsAnsweredUnimplementedByGrpc) {
  StartServer();
  v1::EnrollRequest request;
  request.set_enrolment_code(EnrolmentCode());
  // EnrollRequest.device_label (field 5) holding two bytes that are not UTF-8.
  const std::string bytes = request.SerializeAsString() + std::string("\x2a\x02\xff\xfe", 4);

  grpc::Status s = RawCall(nullptr, "/fieldsync.v1.SyncService/Enroll", bytes);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_UNSPECIFIED);
}

TEST_F(SyncServiceTest, PushWithoutClientCertificateIsUnauthenticated) {
  StartServer();
  Device d = NewDevice();
  v1::PushRequest request;
  *request.mutable_batch() = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3));
  v1::PushResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s = v1::SyncService::NewStub(Channel(nullptr))->Push(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SyncServiceTest, PushAppliesAndRetryGetsTheStoredAnswer) {
  StartServer();
  Device d = NewDevice();
  v1::SealedBatch batch = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3));
  v1::PushResponse first, again;
  grpc::Status s = Push(d, batch, &first);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(first.results_size(), 1);
  EXPECT_EQ(first.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(first.next_sequence(), 2u);
  EXPECT_FALSE(first.is_retry_answer());

  ASSERT_TRUE(Push(d, batch, &again).ok());
  EXPECT_TRUE(again.is_retry_answer());
  EXPECT_EQ(again.results(0).SerializeAsString(), first.results(0).SerializeAsString());
}

TEST_F(SyncServiceTest, CompressedBatchIsOpened) {
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;
  grpc::Status s =
      Push(d, Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3), /*compress=*/true), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(SyncServiceTest, InvalidChangesAreRejectedWithReasonsAndTheRestApplies) {
  StartServer();
  Device d = NewDevice();
  v1::RecordChange unknown_type = NewCase(Id(10), Id(11));
  unknown_type.set_record_type("no_such_type");
  v1::RecordChange wrong_type = NewCase(Id(12), Id(13));
  *wrong_type.mutable_fields(0)->mutable_value() = Enum("not-a-string");
  v1::PushResponse response;
  ASSERT_TRUE(
      Push(d, Seal(d, {unknown_type, wrong_type, NewCase(Id(1), Id(2))}, 1, Id(3)), &response)
          .ok());
  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).reject_reason(), v1::REJECT_REASON_UNKNOWN_RECORD_TYPE);
  EXPECT_EQ(response.results(1).reject_reason(), v1::REJECT_REASON_WRONG_VALUE_TYPE);
  EXPECT_EQ(response.results(2).outcome(), v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(SyncServiceTest, StringValuesAgainstTheTextPolicyAreRejectedPerChange) {
  StartServer();
  Device d = NewDevice();
  auto named = [&](int n, std::string name) {
    v1::RecordChange c = NewCase(Id(10 + 2 * n), Id(11 + 2 * n));
    *c.mutable_fields(0)->mutable_value() = Str(name);
    return c;
  };
  std::vector<v1::RecordChange> changes = {
      named(0, std::string("Ami\0na", 6)),  // NUL
      named(1,
            "Amina\xe2\x80\xae"
            "animA"),                               // right-to-left override
      named(2, "Amina \xe2\x81\xa6x\xe2\x81\xa9"),  // isolate
      named(3, "Amina\x1b[2J"),                     // escape sequence
      named(4, "Amina\xc2\x85"),                    // C1 NEL
      named(5, "Amina\nOkello"),                    // a line break: free text allows it
  };
  v1::PushResponse response;

  grpc::Status s = Push(d, Seal(d, changes, 1, Id(3)), &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.results_size(), 6);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(response.results(i).outcome(), v1::CHANGE_OUTCOME_REJECTED) << i;
    EXPECT_EQ(response.results(i).reject_reason(), v1::REJECT_REASON_TEXT_NOT_ALLOWED) << i;
    EXPECT_THAT(response.results(i).detail(), HasSubstr("field given_name"));
    EXPECT_THAT(response.results(i).detail(), ::testing::Not(HasSubstr("Ami")));
  }
  EXPECT_THAT(response.results(1).detail(), HasSubstr("U+202E"));
  EXPECT_EQ(response.results(5).outcome(), v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(SyncServiceTest, EmptyBatchIsRefusedAndItsSequenceStaysTheNext) {
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;

  grpc::Status empty = Push(d, Seal(d, {}, 1, Id(3)), &response);

  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << empty.error_message();
  EXPECT_EQ(DetailOf(empty).reason(), v1::SYNC_ERROR_REASON_MALFORMED);
  EXPECT_EQ(DetailOf(empty).expected_sequence(), 1u);
  EXPECT_THAT(empty.error_message(), HasSubstr("has no changes"));
  grpc::Status next = Push(d, Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(4)), &response);
  ASSERT_TRUE(next.ok()) << next.error_message();
  EXPECT_EQ(response.next_sequence(), 2u);
}

TEST_F(SyncServiceTest, BadSignatureIsUnauthenticated) {
  StartServer();
  Device d = NewDevice();
  v1::SealedBatch batch = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3));
  batch.mutable_signature()->at(5) ^= 1;
  v1::PushResponse response;
  grpc::Status s = Push(d, batch, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_BAD_SIGNATURE);
}

TEST_F(SyncServiceTest, UnknownSealingKeyIsRefused) {
  StartServer();
  Device d = NewDevice();
  v1::SealedBatch batch = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3));
  batch.mutable_header()->set_sealing_key_id(977);
  Resign(d, &batch);
  v1::PushResponse response;
  grpc::Status s = Push(d, batch, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_UNKNOWN_SEALING_KEY);
  EXPECT_EQ(DetailOf(s).sealing_key_id(), 977u);
}

TEST_F(SyncServiceTest, TamperedCiphertextDoesNotOpen) {
  StartServer();
  Device d = NewDevice();
  v1::SealedBatch batch = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3));
  batch.mutable_ciphertext()->at(0) ^= 1;
  Resign(d, &batch);  // signed by the device, but the seal is broken
  v1::PushResponse response;
  grpc::Status s = Push(d, batch, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_SEAL_DOES_NOT_OPEN);
}

TEST_F(SyncServiceTest, MissingHeaderIsMalformed) {
  StartServer();
  Device d = NewDevice();
  v1::SealedBatch batch = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3));
  batch.clear_header();
  v1::PushResponse response;
  grpc::Status s = Push(d, batch, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_MALFORMED);
}

TEST_F(SyncServiceTest, BatchOfAnotherDeviceIsRefused) {
  StartServer();
  Device d = NewDevice();
  Device other = NewDevice();
  v1::PushResponse response;
  grpc::Status s = Push(other, Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3)), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_MALFORMED);
}

TEST_F(SyncServiceTest, SequenceGapNamesTheExpectedSequence) {
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;
  grpc::Status s = Push(d, Seal(d, {NewCase(Id(1), Id(2))}, 3, Id(3)), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_SEQUENCE_GAP);
  EXPECT_EQ(DetailOf(s).expected_sequence(), 1u);
}

TEST_F(SyncServiceTest, ReplayBelowTheSequenceIsRefused) {
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;
  ASSERT_TRUE(Push(d, Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3)), &response).ok());
  grpc::Status s = Push(d, Seal(d, {NewCase(Id(4), Id(5))}, 1, Id(6)), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_SEQUENCE_REPLAY);
  EXPECT_EQ(DetailOf(s).expected_sequence(), 2u);
}

TEST_F(SyncServiceTest, ReusedBatchIdWithOtherContentIsRefused) {
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;
  ASSERT_TRUE(Push(d, Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3)), &response).ok());
  grpc::Status s = Push(d, Seal(d, {NewCase(Id(4), Id(5))}, 1, Id(3)), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_BATCH_ID_REUSED);
}

TEST_F(SyncServiceTest, TooManyChangesIsRefused) {
  config_.mutable_sync()->set_max_batch_changes(2);
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;
  grpc::Status s = Push(
      d, Seal(d, {NewCase(Id(1), Id(2)), NewCase(Id(4), Id(5)), NewCase(Id(6), Id(7))}, 1, Id(3)),
      &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_BATCH_TOO_LARGE);
  EXPECT_EQ(DetailOf(s).max_changes(), 2u);
}

TEST_F(SyncServiceTest, TooManyBytesIsRefused) {
  config_.mutable_sync()->set_max_batch_bytes(2000);
  StartServer();
  Device d = NewDevice();
  v1::RecordChange big = NewCase(Id(1), Id(2));
  *big.mutable_fields(0)->mutable_value() = Str(std::string(3000, 'a'));
  v1::PushResponse response;
  grpc::Status s = Push(d, Seal(d, {big}, 1, Id(3)), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_BATCH_TOO_LARGE);
  EXPECT_EQ(DetailOf(s).max_bytes(), 2000u);
}

TEST_F(SyncServiceTest, RevokedDeviceIsStoppedAtOnce) {
  StartServer();
  Device d = NewDevice();
  v1::PushResponse response;
  ASSERT_TRUE(Push(d, Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(3)), &response).ok());
  v1::RevokePrincipalRequest revoke;
  revoke.set_kind(v1::PRINCIPAL_KIND_DEVICE);
  revoke.set_id(d.id);
  v1::RevokePrincipalResponse revoked;
  grpc::ClientContext context;
  SetDeadline(&context);
  ASSERT_TRUE(v1::AdminService::NewStub(Channel(&admin_))
                  ->RevokePrincipal(&context, revoke, &revoked)
                  .ok());

  grpc::Status s = Push(d, Seal(d, {NewCase(Id(4), Id(5))}, 2, Id(6)), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_DEVICE_REVOKED);
  std::vector<v1::PulledChanges> chunks;
  EXPECT_EQ(Pull(d, 0, &chunks).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SyncServiceTest, ReflectionServesAnEnrolledDeviceUntilItIsRevoked) {
  // ServerReflectionRequest{list_services: ""}: field 7, length 0.
  const std::string list_services("\x3a\x00", 2);
  const std::string reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  StartServer();
  Device d = NewDevice();
  ASSERT_TRUE(RawCall(&d.tls, reflection, list_services).ok());
  v1::RevokePrincipalRequest revoke;
  revoke.set_kind(v1::PRINCIPAL_KIND_DEVICE);
  revoke.set_id(d.id);
  v1::RevokePrincipalResponse revoked;
  grpc::ClientContext context;
  SetDeadline(&context);
  ASSERT_TRUE(v1::AdminService::NewStub(Channel(&admin_))
                  ->RevokePrincipal(&context, revoke, &revoked)
                  .ok());

  grpc::Status s = RawCall(&d.tls, reflection, list_services);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
}

TEST_F(SyncServiceTest, PullReturnsSealedChangesAndResumesWithoutGapsOrDuplicates) {
  config_.mutable_sync()->set_min_pull_chunk_changes(1);  // chunks of 2, as asked
  StartServer();
  Device a = NewDevice();
  Device b = NewDevice();  // same officer: same cases
  std::vector<v1::RecordChange> changes;
  for (int i = 0; i < 5; ++i) changes.push_back(NewCase(Id(100 + i), Id(200 + i)));
  v1::PushResponse response;
  ASSERT_TRUE(Push(a, Seal(a, changes, 1, Id(3)), &response).ok());

  std::vector<v1::PulledChanges> first;
  ASSERT_TRUE(Pull(b, 0, &first, /*max_chunks=*/2, /*per_chunk=*/2).ok());
  ASSERT_EQ(first.size(), 2u);
  std::vector<v1::PulledChanges> rest;
  ASSERT_TRUE(Pull(b, first.back().next_cursor(), &rest, 1000, 2).ok());
  ASSERT_FALSE(rest.empty());
  EXPECT_TRUE(rest.back().caught_up());
  std::vector<std::string> seen;
  for (const auto* part : {&first, &rest}) {
    for (const auto& chunk : *part) {
      for (const auto& c : chunk.changes()) seen.push_back(c.change_id());
    }
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(Id(100 + i));
  EXPECT_EQ(seen, expected);
}

TEST_F(SyncServiceTest, ChunksSmallerThanTheFloorAreNotServed) {
  config_.mutable_sync()->set_min_pull_chunk_changes(3);
  StartServer();
  Device a = NewDevice();
  std::vector<v1::RecordChange> changes;
  for (int i = 0; i < 7; ++i) changes.push_back(NewCase(Id(100 + i), Id(200 + i)));
  v1::PushResponse response;
  ASSERT_TRUE(Push(a, Seal(a, changes, 1, Id(3)), &response).ok());

  std::vector<v1::PulledChanges> chunks;
  ASSERT_TRUE(Pull(a, 0, &chunks, 1000, /*per_chunk=*/1).ok());

  // 7 changes in chunks of the floor (3), not of the 1 asked for.
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].changes_size(), 3);
  EXPECT_EQ(chunks[1].changes_size(), 3);
  EXPECT_EQ(chunks[2].changes_size(), 1);
  EXPECT_TRUE(chunks[2].caught_up());
}

TEST_F(SyncServiceTest, ConcurrentEditsConflictAndSupervisorResolves) {
  StartServer();
  Device a = NewDevice();
  Device b = NewDevice();
  v1::PushResponse created, ra, rb;
  ASSERT_TRUE(Push(a, Seal(a, {NewCase(Id(1), Id(2))}, 1, Id(3)), &created).ok());
  uint64_t base = NameVersion(created.results(0));
  ASSERT_GT(base, 0u);
  ASSERT_TRUE(Push(a, Seal(a, {SetName(Id(4), Id(2), "Aminata", base, 10)}, 2, Id(5)), &ra).ok());
  ASSERT_TRUE(Push(b, Seal(b, {SetName(Id(6), Id(2), "Amina K.", base, 20)}, 1, Id(7)), &rb).ok());
  EXPECT_EQ(ra.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(rb.results(0).outcome(), v1::CHANGE_OUTCOME_CONFLICT);  // later HLC wins

  // A supervisor of the region reviews it.
  absl::StatusOr<crypto::KeyPem> key = crypto::GenerateP256Key();
  v1::AddStaffRequest add;
  add.set_id("sup1");
  add.set_role(v1::ROLE_SUPERVISOR);
  add.add_regions("northern");
  add.set_csr_pem(*crypto::CreateCsr(key->private_key_pem, "fieldsync://staff/sup1"));
  v1::AddStaffResponse added;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    ASSERT_TRUE(v1::AdminService::NewStub(Channel(&admin_))->AddStaff(&context, add, &added).ok());
  }
  Credentials sup{added.certificate_pem(), key->private_key_pem};
  auto cases = v1::CaseService::NewStub(Channel(&sup));
  v1::ListConflictsRequest list;
  list.set_region("northern");
  v1::ListConflictsResponse conflicts;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = cases->ListConflicts(&context, list, &conflicts);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_EQ(conflicts.conflicts_size(), 1);
  const v1::Conflict& c = conflicts.conflicts(0);
  EXPECT_EQ(c.field(), "given_name");
  EXPECT_EQ(c.current_value().string_value(), "Amina K.");
  EXPECT_EQ(c.losing_value().string_value(), "Aminata");

  v1::ResolveConflictRequest resolve;
  *resolve.mutable_id() = c.id();
  resolve.set_take_losing(true);
  resolve.set_base_version(c.current_version());
  v1::ResolveConflictResponse resolved;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = cases->ResolveConflict(&context, resolve, &resolved);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_GT(resolved.result().log_position(), 0u);

  // Another region's conflicts are out of scope.
  list.set_region("eastern");
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s = cases->ListConflicts(&context, list, &conflicts);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_OUT_OF_SCOPE);
}

TEST_F(SyncServiceTest, DeviceMayNotCallCaseService) {
  StartServer();
  Device d = NewDevice();
  v1::ListConflictsRequest list;
  list.set_region("northern");
  v1::ListConflictsResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s =
      v1::CaseService::NewStub(Channel(&d.tls))->ListConflicts(&context, list, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(SyncServiceTest, UpperCaseIdsAreAcceptedAndAnsweredInLowerCase) {
  StartServer();
  Device d = NewDevice();
  v1::RecordChange change = NewCase(Upper(Id(0xa1)), Upper(Id(0xa2)));
  v1::PushResponse response;

  v1::SealedBatch batch = Seal(d, {change}, 1, Id(0xa3));
  batch.mutable_header()->set_batch_id(Upper(Id(0xa3)));  // same 16 bytes: same signature

  grpc::Status s = Push(d, batch, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.batch_id(), Upper(Id(0xa3)));  // echoed as sent
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  EXPECT_EQ(response.results(0).change_id(), Id(0xa1));
  std::vector<v1::PulledChanges> chunks;
  ASSERT_TRUE(Pull(d, 0, &chunks).ok());
  ASSERT_EQ(Flatten(chunks).size(), 1u);
  EXPECT_EQ(chunks[0].changes(0).change_id(), Id(0xa1));
  EXPECT_EQ(chunks[0].changes(0).case_id(), Id(0xa2));
  EXPECT_EQ(chunks[0].changes(0).record_id(), Id(0xa2));
}

TEST_F(SyncServiceTest, BatchIdInOtherLetterCaseIsTheSameBatch) {
  StartServer();
  Device d = NewDevice();
  v1::SealedBatch batch = Seal(d, {NewCase(Id(1), Id(2))}, 1, Id(0xab));
  v1::PushResponse first, again;
  ASSERT_TRUE(Push(d, batch, &first).ok());
  batch.mutable_header()->set_batch_id(Upper(Id(0xab)));  // same 16 bytes: same signature

  grpc::Status s = Push(d, batch, &again);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(again.is_retry_answer());
  EXPECT_EQ(again.next_sequence(), 2u);
}

TEST_F(SyncServiceTest, ChangeResentUnderANewBatchIdIsLoggedAgain) {
  StartServer();
  Device d = NewDevice();
  v1::RecordChange change = NewCase(Id(1), Id(2));
  v1::PushResponse first, second;
  ASSERT_TRUE(Push(d, Seal(d, {change}, 1, Id(3)), &first).ok());

  grpc::Status s = Push(d, Seal(d, {change}, 2, Id(4)), &second);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(second.is_retry_answer());
  EXPECT_EQ(second.next_sequence(), 3u);
  EXPECT_GT(second.results(0).log_position(), first.results(0).log_position());
  std::vector<v1::PulledChanges> chunks;
  ASSERT_TRUE(Pull(d, 0, &chunks).ok());
  EXPECT_THAT(Flatten(chunks),
              ::testing::ElementsAre(::testing::Pair(first.results(0).log_position(), Id(1)),
                                     ::testing::Pair(second.results(0).log_position(), Id(1))));
}

TEST_F(SyncServiceTest, NewlyAssignedCaseComesInPullsAndItsHistoryByBackfill) {
  StartServer();
  Device a = NewDevice("officer1");
  Device b = NewDevice("officer2");
  v1::PushResponse created, own;
  ASSERT_TRUE(Push(a, Seal(a, {NewCase(Id(1), Id(0xca))}, 1, Id(3)), &created).ok());
  ASSERT_TRUE(Push(b, Seal(b, {NewCase(Id(4), Id(5))}, 1, Id(6)), &own).ok());
  std::vector<v1::PulledChanges> before;
  ASSERT_TRUE(Pull(b, 0, &before).ok());
  ASSERT_THAT(Flatten(before), ::testing::ElementsAre(::testing::Pair(2u, Id(4))));
  grpc::Status s = AssignCase(AddStaff("sup1", v1::ROLE_SUPERVISOR), Id(0xca), "officer2");
  ASSERT_TRUE(s.ok()) << s.error_message();

  // The next pull from the cursor brings the assignment: a case b lacks.
  std::vector<v1::PulledChanges> after;
  ASSERT_TRUE(Pull(b, before.back().next_cursor(), &after).ok());
  ASSERT_THAT(Flatten(after), ::testing::ElementsAre(::testing::Pair(3u, "server:3")));
  EXPECT_EQ(after[0].changes(0).kind(), v1::CHANGE_KIND_ASSIGN_CASE);
  EXPECT_EQ(after[0].changes(0).case_id(), Id(0xca));
  // Backfill from the new cursor: every entry of the case up to it, the
  // assignment again included, in chunks that leave the cursor where it is.
  std::vector<v1::PulledChanges> backfill;
  ASSERT_TRUE(Pull(b, after.back().next_cursor(), &backfill, 1000, 0, {Id(0xca)}).ok());
  EXPECT_THAT(Flatten(backfill),
              ::testing::ElementsAre(::testing::Pair(1u, Id(1)), ::testing::Pair(3u, "server:3")));
  ASSERT_EQ(backfill.size(), 2u);
  EXPECT_EQ(backfill[0].next_cursor(), 3u);
  EXPECT_FALSE(backfill[0].caught_up());
  EXPECT_EQ(backfill[1].next_cursor(), 3u);
  EXPECT_TRUE(backfill[1].caught_up());
}

TEST_F(SyncServiceTest, TransferCaseMovesTheDistrictWithTheRegion) {
  StartServer();
  Device a = NewDevice("officer1");
  v1::RecordChange created = NewCase(Id(1), Id(0xca));
  v1::FieldWrite* district = created.add_fields();
  district->set_field("district");
  *district->mutable_value() = Enum("northern_1");
  v1::PushResponse pushed;
  ASSERT_TRUE(Push(a, Seal(a, {created}, 1, Id(3)), &pushed).ok());
  ASSERT_EQ(pushed.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  Credentials sup = AddStaff("sup1", v1::ROLE_SUPERVISOR);

  Device c;
  ASSERT_TRUE(Enroll(EnrolmentCode("officer.c", "central"), &c).ok());

  v1::TransferCaseResponse moved;
  grpc::Status s = TransferCase(sup, Id(0xca), "central", "central_2", "officer.c", &moved);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(moved.result().log_position(), 2u);
  // The new officer's device pulls one entry with region, officer and
  // district (and the case's earlier history by backfill); the old
  // officer's device no longer gets the case.
  std::vector<v1::PulledChanges> chunks;
  ASSERT_TRUE(Pull(c, 1, &chunks).ok());
  ASSERT_THAT(Flatten(chunks), ::testing::ElementsAre(::testing::Pair(2u, "server:2")));
  const v1::PulledChange& entry = chunks[0].changes(0);
  EXPECT_EQ(entry.kind(), v1::CHANGE_KIND_TRANSFER_CASE);
  std::map<std::string, std::string> fields;
  for (const v1::PulledField& f : entry.fields()) {
    fields[f.field()] =
        f.value().has_enum_value() ? f.value().enum_value() : f.value().string_value();
  }
  EXPECT_THAT(fields, ::testing::ElementsAre(::testing::Pair("assigned_officer", "officer.c"),
                                             ::testing::Pair("district", "central_2"),
                                             ::testing::Pair("region", "central")));
  std::vector<v1::PulledChanges> old_officer;
  ASSERT_TRUE(Pull(a, 1, &old_officer).ok());
  EXPECT_THAT(Flatten(old_officer), ::testing::IsEmpty());
}

TEST_F(SyncServiceTest, AssignmentAndTransferGoOnlyToActiveOfficersOfTheRegion) {
  StartServer();
  Device a = NewDevice("officer1");
  v1::PushResponse pushed;
  ASSERT_TRUE(Push(a, Seal(a, {NewCase(Id(1), Id(0xca))}, 1, Id(3)), &pushed).ok());
  Credentials sup = AddStaff("sup1", v1::ROLE_SUPERVISOR);
  AddOfficer("officer2", "northern");
  AddOfficer("officer.c", "central");

  grpc::Status s = AssignCase(sup, Id(0xca), "zzz");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_INVALID_VALUE);
  EXPECT_THAT(s.error_message(), HasSubstr("officer1, officer2"));
  s = AssignCase(sup, Id(0xca), "officer.c");  // an officer of another region
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::TransferCaseResponse moved;
  s = TransferCase(sup, Id(0xca), "central", "", "officer2", &moved);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("officer.c"));

  v1::RevokePrincipalRequest revoke;
  revoke.set_kind(v1::PRINCIPAL_KIND_OFFICER);
  revoke.set_id("officer2");
  v1::RevokePrincipalResponse revoked;
  grpc::ClientContext context;
  SetDeadline(&context);
  ASSERT_TRUE(v1::AdminService::NewStub(Channel(&admin_))
                  ->RevokePrincipal(&context, revoke, &revoked)
                  .ok());
  s = AssignCase(sup, Id(0xca), "officer2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("officer2,")));

  EXPECT_TRUE(TransferCase(sup, Id(0xca), "central", "", "officer.c", &moved).ok());
}

TEST_F(SyncServiceTest, TransferCaseToADistrictOutsideTheNewRegionIsInvalid) {
  StartServer();
  Device a = NewDevice("officer1");
  v1::PushResponse pushed;
  ASSERT_TRUE(Push(a, Seal(a, {NewCase(Id(1), Id(0xca))}, 1, Id(3)), &pushed).ok());
  Credentials sup = AddStaff("sup1", v1::ROLE_SUPERVISOR);

  v1::TransferCaseResponse moved;
  AddOfficer("officer.c", "central");
  grpc::Status s = TransferCase(sup, Id(0xca), "central", "northern_2", "officer.c", &moved);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("the districts of region central are: central_1, "
                                           "central_2"));
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_INVALID_VALUE);
  EXPECT_EQ(DetailOf(s).field(), "district");
  // Nothing was logged: the device's next pull brings nothing new.
  std::vector<v1::PulledChanges> chunks;
  ASSERT_TRUE(Pull(a, 1, &chunks).ok());
  EXPECT_THAT(Flatten(chunks), ::testing::IsEmpty());
}

TEST_F(SyncServiceTest, DeviceWriteOfADistrictOutsideTheCasesRegionIsRejected) {
  StartServer();
  Device a = NewDevice("officer1");
  v1::PushResponse created, answer;
  ASSERT_TRUE(Push(a, Seal(a, {NewCase(Id(1), Id(0xca))}, 1, Id(3)), &created).ok());
  v1::RecordChange change = SetName(Id(4), Id(0xca), "unused", 0, 10);
  change.mutable_fields(0)->set_field("district");
  *change.mutable_fields(0)->mutable_value() = Enum("western_1");

  ASSERT_TRUE(Push(a, Seal(a, {change}, 2, Id(5)), &answer).ok());

  ASSERT_EQ(answer.results_size(), 1);
  EXPECT_EQ(answer.results(0).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(answer.results(0).reject_reason(), v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION);
  EXPECT_THAT(answer.results(0).detail(), HasSubstr("district western_1 lies in region western"));
}

TEST_F(SyncServiceTest, BackfillCaseIdInUpperCaseGetsTheCasesHistory) {
  StartServer();
  Device a = NewDevice("officer1");
  Device b = NewDevice("officer2");
  v1::PushResponse created;
  ASSERT_TRUE(Push(a, Seal(a, {NewCase(Id(1), Id(0xca))}, 1, Id(3)), &created).ok());
  ASSERT_TRUE(AssignCase(AddStaff("sup1", v1::ROLE_SUPERVISOR), Id(0xca), "officer2").ok());

  std::vector<v1::PulledChanges> backfill;
  grpc::Status s = Pull(b, 2, &backfill, 1000, 0, {Upper(Id(0xca))});

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(Flatten(backfill),
              ::testing::ElementsAre(::testing::Pair(1u, Id(1)), ::testing::Pair(2u, "server:2")));
}

TEST_F(SyncServiceTest, DeviceGetsTheSchemaAndItsDigest) {
  StartServer();
  Device d = NewDevice();
  const v1::Schema expected = DeploymentSchema();

  v1::GetSchemaResponse response;
  grpc::Status s = GetSchema(&d.tls, "", &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.digest(), SchemaDigest(expected));
  EXPECT_EQ(response.version(), expected.version());
  EXPECT_NE(response.version(), 0u);
  EXPECT_FALSE(response.unchanged());
  ASSERT_TRUE(response.has_schema());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(response.schema(), expected));
  EXPECT_EQ(response.schema().schema_id(), "child_protection");
  std::vector<std::string> types;
  for (const v1::RecordType& t : response.schema().record_types()) types.push_back(t.name());
  EXPECT_THAT(types, ::testing::ElementsAre("case_registration", "protection_concern", "incident",
                                            "risk_assessment", "referral", "follow_up", "closure"));
}

TEST_F(SyncServiceTest, CurrentDigestGetsUnchangedWithoutTheSchema) {
  StartServer();
  Device d = NewDevice();
  const std::string digest = SchemaDigest(DeploymentSchema());

  v1::GetSchemaResponse response;
  grpc::Status s = GetSchema(&d.tls, digest, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.unchanged());
  EXPECT_FALSE(response.has_schema());
  EXPECT_EQ(response.digest(), digest);
  EXPECT_EQ(response.version(), DeploymentSchema().version());
}

TEST_F(SyncServiceTest, AnyOtherDigestGetsTheWholeSchema) {
  StartServer();
  Device d = NewDevice();
  const v1::Schema expected = DeploymentSchema();
  const std::string digest = SchemaDigest(expected);

  for (const std::string& known :
       {std::string(64, '0'), std::string("not a digest"), absl::AsciiStrToUpper(digest)}) {
    v1::GetSchemaResponse response;
    grpc::Status s = GetSchema(&d.tls, known, &response);

    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(response.unchanged()) << known;
    EXPECT_EQ(response.digest(), digest) << known;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(response.schema(), expected))
        << known;
  }
}

TEST_F(SyncServiceTest, ChangedSchemaFileGivesANewDigestAndTheNewSchema) {
  StartServer();
  Device d = NewDevice();
  v1::GetSchemaResponse before;
  ASSERT_TRUE(GetSchema(&d.tls, "", &before).ok());
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();
  std::string text = *ReadFile(paths_->schema);
  const size_t at = text.find("\nversion: 2\n");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 11, "\nversion: 3");
  ASSERT_EQ(std::remove(paths_->schema.c_str()), 0);
  ASSERT_THAT(WriteNewFile(paths_->schema, text, 0644), IsOk());
  StartServer();

  v1::GetSchemaResponse after;
  grpc::Status s = GetSchema(&d.tls, before.digest(), &after);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(after.unchanged());
  EXPECT_EQ(after.schema().version(), 3u);
  EXPECT_EQ(after.digest(), SchemaDigest(after.schema()));
  EXPECT_NE(after.digest(), before.digest());
}

TEST_F(SyncServiceTest, SupervisorGetsTheSchema) {
  StartServer();
  Credentials supervisor = AddStaff("sup1", v1::ROLE_SUPERVISOR);
  const v1::Schema expected = DeploymentSchema();

  v1::GetSchemaResponse response;
  grpc::Status s = GetSchema(&supervisor, "", &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.digest(), SchemaDigest(expected));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(response.schema(), expected));
}

TEST_F(SyncServiceTest, AnalystMayNotGetTheSchema) {
  StartServer();
  Credentials analyst = AddStaff("ana1", v1::ROLE_ANALYST);

  v1::GetSchemaResponse response;
  grpc::Status s = GetSchema(&analyst, "", &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("GetSchema"));
  EXPECT_FALSE(response.has_schema());
}

TEST_F(SyncServiceTest, GetSchemaWithoutClientCertificateIsUnauthenticated) {
  StartServer();

  v1::GetSchemaResponse response;
  grpc::Status s = GetSchema(nullptr, "", &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(response.has_schema());
}

// ---------------------------------------------------------------------------
// A supervisor's reads and actions (CaseService), through the real server.

class CaseServiceTest : public SyncServiceTest {
 protected:
  void SetUp() override {
    SyncServiceTest::SetUp();
    // These tests pull again and again; the pull rate has a test of its
    // own (PullsPastThePrincipalsRateAreRefusedWithRetryAdvice).
    config_.mutable_limits()->set_pulls_per_minute(60000);
    config_.mutable_limits()->set_pull_burst(1000);
    StartServer();
    tablet_ = NewDevice("officer1");
    sup_ = AddStaff("sup1", v1::ROLE_SUPERVISOR);
  }

  std::unique_ptr<v1::CaseService::Stub> Cases(const Credentials& who) {
    return v1::CaseService::NewStub(Channel(&who));
  }

  // Creates case Id(n) from the tablet (the next sequence) and returns the
  // given name's version.
  uint64_t CreateCase(int n) {
    v1::PushResponse pushed = PushFromTablet({NewCase(Id(0x1000 + n), Id(n))});
    EXPECT_EQ(pushed.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
    return NameVersion(pushed.results(0));
  }

  v1::PushResponse PushFromTablet(const std::vector<v1::RecordChange>& changes) {
    v1::PushResponse pushed;
    grpc::Status s = PushChanges(tablet_, changes, &pushed);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return pushed;
  }

  // Makes an open conflict on case Id(n)'s given name: a second tablet of
  // the officer writes it concurrently.
  void MakeConflict(int n, uint64_t base) {
    if (second_.id.empty()) second_ = NewDevice("officer1");
    v1::PushResponse a, b;
    PushFromTablet({SetName(Id(0x3000 + n), Id(n), "Aminata", base, 10)});
    const uint64_t sequence = ++second_sequence_;
    ASSERT_TRUE(Push(second_,
                     Seal(second_, {SetName(Id(0x4000 + n), Id(n), "Amina K.", base, 20)}, sequence,
                          Id(0x5000 + n)),
                     &b)
                    .ok());
    ASSERT_EQ(b.results(0).outcome(), v1::CHANGE_OUTCOME_CONFLICT);
  }

  grpc::Status SetStatus(const std::string& case_id, bool close, const std::string& reason,
                         v1::SetCaseStatusResponse* response) {
    v1::SetCaseStatusRequest request;
    request.set_case_id(case_id);
    request.set_close(close);
    request.set_reason(reason);
    grpc::ClientContext context;
    SetDeadline(&context);
    return Cases(sup_)->SetCaseStatus(&context, request, response);
  }

  // The audit log's events (the server is stopped first).
  std::vector<protocol::Event> AuditEvents() {
    EXPECT_THAT(server_->Shutdown(), IsOk());
    server_.reset();
    storage::StoreOptions o;
    o.path = paths_->db;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(o);
    EXPECT_THAT(store, IsOk());
    std::vector<protocol::Event> out;
    std::unique_ptr<storage::Iterator> it =
        (*store)->NewIterator(storage::Cf::kAuditLeaves, storage::AuditLeafKeyPrefix(),
                              storage::PrefixUpperBound(storage::AuditLeafKeyPrefix()));
    for (; it->Valid(); it->Next()) {
      absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(it->value());
      EXPECT_THAT(event, IsOk());
      if (event.ok()) out.push_back(*std::move(event));
    }
    return out;
  }

  // The CaseAccess events in the audit log (the server is stopped first).
  std::vector<protocol::CaseAccess> AccessEvents() {
    std::vector<protocol::CaseAccess> out;
    for (const protocol::Event& e : AuditEvents()) {
      if (const auto* a = std::get_if<protocol::CaseAccess>(&e.body)) out.push_back(*a);
    }
    return out;
  }

  Device tablet_, second_;
  uint64_t second_sequence_ = 0;
  Credentials sup_;
};

// The flood of issue 14: a tablet re-pulling from cursor 0 with one change
// per chunk, as fast as it can, for FIELDSYNC_PULL_FLOOD_SECONDS (default
// 3; the figures in docs/SECURITY.md are of 15). Bound (docs/SECURITY.md):
// a principal re-reading a log range of C changes writes at most
// ceil(C / F) CaseAccess entries per repeat window W (F the chunk floor,
// default 100; W default 300 s), i.e. ceil(T / W) * ceil(C / F) over a
// time T, however many pulls it makes. Here C = 30: one entry per window;
// the (simulated) clock is moved one window on halfway, so exactly two.
TEST_F(CaseServiceTest, RepullingOneChangePerChunkWritesABoundedNumberOfAccessEntries) {
  constexpr int kCases = 30;
  std::vector<v1::RecordChange> changes;
  std::vector<Uuid> case_ids;
  for (int i = 1; i <= kCases; ++i) {
    changes.push_back(NewCase(Id(0x6000 + i), Id(0x7000 + i)));
    case_ids.push_back(*ParseUuid(Id(0x7000 + i)));
  }
  PushFromTablet(changes);
  double seconds = 3;
  if (const char* env = std::getenv("FIELDSYNC_PULL_FLOOD_SECONDS"); env != nullptr) {
    seconds = std::atof(env);
  }
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(seconds);
  int pulls = 0, chunks = 0;
  bool moved = false;
  while (absl::Now() < end) {
    if (!moved && absl::Now() > start + absl::Seconds(seconds / 2)) {
      clock_.Advance(absl::Seconds(301));  // the next repeat window
      moved = true;
    }
    std::vector<v1::PulledChanges> got;
    ASSERT_TRUE(Pull(tablet_, 0, &got, 1000, /*per_chunk=*/1).ok());
    ++pulls;
    chunks += static_cast<int>(got.size());
    // The floor: the 30 changes come in one chunk, not 30.
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].changes_size(), kCases);
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);

  std::vector<protocol::CaseAccess> mine;
  for (const protocol::CaseAccess& a : AccessEvents()) {
    if (a.principal_id == tablet_.id) mine.push_back(a);
  }
  std::printf("pull flood: %d pulls, %d chunks in %.1f s; %zu access entries\n", pulls, chunks,
              elapsed, mine.size());
  EXPECT_GE(pulls, 4);
  // ceil(T / W) * ceil(C / F) = 2 * 1.
  EXPECT_EQ(mine.size(), 2u);
  // What it read is in the log exactly: each entry names every case pulled,
  // over the log range that holds their changes.
  for (const protocol::CaseAccess& a : mine) {
    EXPECT_EQ(a.principal_kind, protocol::PrincipalKind::kDevice);
    EXPECT_EQ(a.access, protocol::AccessKind::kDevicePull);
    EXPECT_EQ(a.from_position, 0u);
    EXPECT_GE(a.to_position, static_cast<uint64_t>(kCases));
    EXPECT_EQ(a.case_ids, case_ids);
  }
}

TEST_F(CaseServiceTest, ListCasesFiltersByStatusConflictsAndPages) {
  const uint64_t base = CreateCase(1);
  CreateCase(2);
  CreateCase(3);
  MakeConflict(1, base);
  v1::SetCaseStatusResponse closed;
  ASSERT_TRUE(SetStatus(Id(3), true, "goals_achieved", &closed).ok());

  auto list = [&](v1::ListCasesRequest request) {
    std::vector<v1::CaseSummary> out;
    for (int page = 0; page < 10; ++page) {
      v1::ListCasesResponse response;
      grpc::ClientContext context;
      SetDeadline(&context);
      grpc::Status s = Cases(sup_)->ListCases(&context, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      out.insert(out.end(), response.cases().begin(), response.cases().end());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return out;
  };
  v1::ListCasesRequest all;
  all.set_page_size(1);  // three pages
  std::vector<v1::CaseSummary> cases = list(all);
  ASSERT_EQ(cases.size(), 3u);
  EXPECT_EQ(cases[0].case_id(), Id(1));
  EXPECT_EQ(cases[0].region(), "northern");
  EXPECT_EQ(cases[0].officer_id(), "officer1");
  EXPECT_EQ(cases[0].status(), "open");
  EXPECT_EQ(cases[0].open_conflicts(), 1u);
  EXPECT_EQ(cases[0].created_position(), 1u);
  EXPECT_GT(cases[0].last_position(), cases[0].created_position());
  EXPECT_GT(cases[0].last_hlc().wall_micros(), 0);
  EXPECT_EQ(cases[2].status(), "closed");
  EXPECT_EQ(cases[2].closure_reason(), "goals_achieved");

  v1::ListCasesRequest open;
  open.set_status("open");
  EXPECT_EQ(list(open).size(), 2u);
  v1::ListCasesRequest conflicted;
  conflicted.set_has_conflicts(true);
  ASSERT_EQ(list(conflicted).size(), 1u);
  EXPECT_EQ(list(conflicted)[0].case_id(), Id(1));
  v1::ListCasesRequest officer;
  officer.set_officer_id("officer1");
  officer.set_region("northern");
  EXPECT_EQ(list(officer).size(), 3u);
}

TEST_F(CaseServiceTest, ListCasesRefusesUnknownAndForeignRegions) {
  v1::ListCasesRequest request;
  v1::ListCasesResponse response;
  request.set_region("north");
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->ListCases(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_INVALID_VALUE);
    EXPECT_THAT(s.error_message(), HasSubstr("regions are: central, northern, eastern, western"));
  }
  request.set_region("eastern");
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status s = Cases(sup_)->ListCases(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_OUT_OF_SCOPE);
}

TEST_F(CaseServiceTest, GetCaseShowsDecryptedFieldsWithWriterAndVersionAndIsAudited) {
  const uint64_t base = CreateCase(1);
  MakeConflict(1, base);

  v1::GetCaseRequest request;
  request.set_case_id(Id(1));
  v1::GetCaseResponse got;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->GetCase(&context, request, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(got.summary().case_id(), Id(1));
  ASSERT_EQ(got.records_size(), 1);
  const v1::CaseRecordView& reg = got.records(0);
  EXPECT_EQ(reg.record_id(), Id(1));
  std::map<std::string, v1::CaseFieldView> fields;
  for (const v1::CaseFieldView& f : reg.fields()) fields[f.field()] = f;
  ASSERT_TRUE(fields.contains("given_name"));
  const v1::CaseFieldView& name = fields["given_name"];
  EXPECT_EQ(name.value().string_value(), "Amina K.");  // the later HLC
  EXPECT_FALSE(name.value_withheld());
  EXPECT_EQ(name.writer(), second_.id);
  EXPECT_EQ(name.officer_id(), "officer1");
  EXPECT_GT(name.version(), base);
  EXPECT_GT(name.conflict_position(), 0u);
  EXPECT_EQ(fields["region"].value().enum_value(), "northern");
  EXPECT_EQ(fields["assigned_officer"].value().string_value(), "officer1");

  // Another region's supervisor may not read it; an unknown case is named.
  Credentials east = AddStaff("sup.east", v1::ROLE_SUPERVISOR, {"eastern"});
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(east)->GetCase(&context, request, &got);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  request.set_case_id(Id(99));
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->GetCase(&context, request, &got);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  }

  std::vector<protocol::CaseAccess> access = AccessEvents();
  std::vector<protocol::CaseAccess> views;
  for (const protocol::CaseAccess& a : access) {
    if (a.access == protocol::AccessKind::kCaseView) views.push_back(a);
  }
  ASSERT_EQ(views.size(), 1u);  // refused reads send nothing and record nothing
  EXPECT_EQ(views[0].principal_id, "sup1");
  EXPECT_EQ(views[0].principal_kind, protocol::PrincipalKind::kStaff);
  EXPECT_THAT(views[0].case_ids, ElementsAre(*ParseUuid(Id(1))));
}

TEST_F(CaseServiceTest, HistoryListsTheCasesEntriesInOrderWithWriters) {
  const uint64_t base = CreateCase(1);
  CreateCase(2);  // another case: not in case 1's history
  MakeConflict(1, base);
  v1::SetCaseStatusResponse closed;
  ASSERT_TRUE(SetStatus(Id(1), true, "duplicate", &closed).ok());

  std::vector<v1::CaseHistoryEntry> entries;
  v1::GetCaseHistoryRequest request;
  request.set_case_id(Id(1));
  request.set_page_size(2);
  for (int page = 0; page < 10; ++page) {
    v1::GetCaseHistoryResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->GetCaseHistory(&context, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    entries.insert(entries.end(), response.entries().begin(), response.entries().end());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  ASSERT_EQ(entries.size(), 4u);
  std::vector<uint64_t> positions;
  for (const auto& e : entries) positions.push_back(e.position());
  EXPECT_THAT(positions, ElementsAre(1u, 3u, 4u, 5u));
  EXPECT_EQ(entries[0].writer(), tablet_.id);
  EXPECT_EQ(entries[0].officer_id(), "officer1");
  EXPECT_EQ(entries[2].outcome(), v1::CHANGE_OUTCOME_CONFLICT);
  ASSERT_EQ(entries[2].fields_size(), 1);
  EXPECT_EQ(entries[2].fields(0).field(), "given_name");
  EXPECT_EQ(entries[3].kind(), v1::CHANGE_KIND_CLOSE_CASE);
  EXPECT_EQ(entries[3].writer(), "staff:sup1");
  EXPECT_EQ(entries[3].officer_id(), "");
}

TEST_F(CaseServiceTest, GetConflictAndTheCasesConflictsNameTheOfficers) {
  const uint64_t base = CreateCase(1);
  CreateCase(2);
  MakeConflict(1, base);

  v1::ListConflictsRequest list;
  list.set_case_id(Id(1));
  v1::ListConflictsResponse conflicts;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->ListConflicts(&context, list, &conflicts);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_EQ(conflicts.conflicts_size(), 1);
  v1::GetConflictRequest get;
  *get.mutable_id() = conflicts.conflicts(0).id();
  v1::Conflict c;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->GetConflict(&context, get, &c);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(c.case_id(), Id(1));
  EXPECT_EQ(c.version(), conflicts.conflicts(0).version());
  EXPECT_EQ(c.current_officer_id(), "officer1");
  ASSERT_EQ(c.losing_values_size(), 1);
  EXPECT_EQ(c.losing_values(0).value().string_value(), "Aminata");
  ASSERT_EQ(c.losing_values(0).writes_size(), 1);
  EXPECT_EQ(c.losing_values(0).writes(0).writer(), tablet_.id);
  EXPECT_EQ(c.losing_values(0).writes(0).officer_id(), "officer1");

  EXPECT_EQ(c.status(), v1::CONFLICT_STATUS_OPEN);

  // Resolved, it is still there, closed, with the resolution's position.
  v1::ResolveConflictRequest resolve;
  *resolve.mutable_id() = c.id();
  resolve.set_keep_current(true);
  resolve.set_base_version(c.version());
  v1::ResolveConflictResponse resolved;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    ASSERT_TRUE(Cases(sup_)->ResolveConflict(&context, resolve, &resolved).ok());
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    ASSERT_TRUE(Cases(sup_)->GetConflict(&context, get, &c).ok());
  }
  EXPECT_EQ(c.status(), v1::CONFLICT_STATUS_RESOLVED);
  EXPECT_EQ(c.resolved_position(), resolved.result().log_position());

  get.mutable_id()->set_position(999);
  grpc::ClientContext context;
  SetDeadline(&context);
  EXPECT_EQ(Cases(sup_)->GetConflict(&context, get, &c).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CaseServiceTest, ActionsThatChangeNothingAreRefusedAndLogNothing) {
  CreateCase(1);
  v1::SetCaseStatusResponse response;
  grpc::Status s = SetStatus(Id(1), false, "", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_NO_CHANGE);
  EXPECT_THAT(s.error_message(), HasSubstr("already open"));

  s = SetStatus(Id(1), true, "", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("needs a reason: one of goals_achieved"));
  s = SetStatus(Id(1), true, "bored", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown closure reason 'bored'"));
  ASSERT_TRUE(SetStatus(Id(1), true, "lost_contact", &response).ok());
  EXPECT_EQ(response.result().log_position(), 2u);
  s = SetStatus(Id(1), true, "lost_contact", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_NO_CHANGE);
  EXPECT_THAT(s.error_message(), HasSubstr("already closed"));
  s = SetStatus(Id(1), false, "lost_contact", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(SetStatus(Id(1), false, "", &response).ok());
  EXPECT_EQ(response.result().log_position(), 3u);

  s = AssignCase(sup_, Id(1), "officer1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_NO_CHANGE);
  v1::TransferCaseResponse moved;
  s = TransferCase(sup_, Id(1), "northern", "", "officer1", &moved);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_NO_CHANGE);
  s = TransferCase(sup_, Id(1), "narnia", "", "", &moved);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("regions are: central, northern, eastern, western"));

  // Nothing was logged by the refusals: the history holds 3 entries.
  v1::GetCaseHistoryRequest request;
  request.set_case_id(Id(1));
  v1::GetCaseHistoryResponse history;
  grpc::ClientContext context;
  SetDeadline(&context);
  ASSERT_TRUE(Cases(sup_)->GetCaseHistory(&context, request, &history).ok());
  EXPECT_EQ(history.entries_size(), 3);
}

TEST_F(CaseServiceTest, EveryActionIsACaseChangeByTheSupervisorWithoutValues) {
  const uint64_t base = CreateCase(1);
  MakeConflict(1, base);
  v1::ListConflictsRequest list;
  list.set_case_id(Id(1));
  v1::ListConflictsResponse conflicts;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    ASSERT_TRUE(Cases(sup_)->ListConflicts(&context, list, &conflicts).ok());
  }
  ASSERT_EQ(conflicts.conflicts_size(), 1);
  v1::ResolveConflictRequest resolve;
  *resolve.mutable_id() = conflicts.conflicts(0).id();
  resolve.mutable_new_value()->set_string_value("Zawadi");
  resolve.set_base_version(conflicts.conflicts(0).version());
  v1::ResolveConflictResponse resolved;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = Cases(sup_)->ResolveConflict(&context, resolve, &resolved);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  v1::SetCaseStatusResponse status;
  ASSERT_TRUE(SetStatus(Id(1), true, "relocated", &status).ok());
  ASSERT_TRUE(SetStatus(Id(1), false, "", &status).ok());

  std::vector<uint8_t> kinds;
  for (const protocol::Event& e : AuditEvents()) {
    const auto* c = std::get_if<protocol::CaseChange>(&e.body);
    if (c == nullptr || c->actor != "staff:sup1") continue;
    kinds.push_back(c->change_kind);
    EXPECT_THAT(c->case_ids, ElementsAre(*ParseUuid(Id(1))));
    EXPECT_EQ(c->first_position, c->last_position);
    // No value of the case is in the event.
    absl::StatusOr<std::string> encoded = protocol::EncodeEvent(e);
    ASSERT_THAT(encoded, IsOk());
    EXPECT_EQ(encoded->find("Zawadi"), std::string::npos);
    EXPECT_EQ(encoded->find("Amina"), std::string::npos);
  }
  EXPECT_THAT(kinds, ElementsAre(v1::CHANGE_KIND_RESOLVE_CONFLICT, v1::CHANGE_KIND_CLOSE_CASE,
                                 v1::CHANGE_KIND_REOPEN_CASE));
}

TEST_F(CaseServiceTest, ADeviceCreatesCasesOnlyInItsRegionAndNeverMovesOne) {
  CreateCase(1);
  v1::RecordChange elsewhere = NewCase(Id(0x10), Id(2));
  for (v1::FieldWrite& w : *elsewhere.mutable_fields()) {
    if (w.field() == "region") *w.mutable_value() = Enum("eastern");
  }
  v1::RecordChange move = SetName(Id(0x11), Id(1), "Amina", 0, 30);
  move.mutable_fields(0)->set_field("region");
  *move.mutable_fields(0)->mutable_value() = Enum("western");
  v1::RecordChange same = SetName(Id(0x12), Id(1), "Amina", 0, 40);
  same.mutable_fields(0)->set_field("region");
  *same.mutable_fields(0)->mutable_value() = Enum("northern");

  v1::PushResponse pushed = PushFromTablet({elsewhere, move, same});

  ASSERT_EQ(pushed.results_size(), 3);
  EXPECT_EQ(pushed.results(0).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(pushed.results(0).reject_reason(), v1::REJECT_REASON_REGION_NOT_DEVICE_REGION);
  EXPECT_THAT(pushed.results(0).detail(), HasSubstr("device's own region northern"));
  EXPECT_EQ(pushed.results(1).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(pushed.results(1).reject_reason(), v1::REJECT_REASON_FIELD_NOT_WRITABLE);
  EXPECT_THAT(pushed.results(1).detail(), HasSubstr("fieldsync case transfer"));
  EXPECT_NE(pushed.results(2).outcome(), v1::CHANGE_OUTCOME_REJECTED);
}

// A principal's pull streams are a token bucket (LimitsConfig, default
// 10 at once then 60 a minute): past it a pull is refused RATE_LIMITED
// with the wait until the next token, and served again after it.
TEST_F(SyncServiceTest, PullsPastThePrincipalsRateAreRefusedWithRetryAdvice) {
  config_.mutable_limits()->set_pull_burst(3);
  config_.mutable_limits()->set_pulls_per_minute(6);  // one every 10 s
  StartServer();
  Device d;
  ASSERT_TRUE(Enroll(EnrolmentCode(), &d).ok());
  Device other;
  ASSERT_TRUE(Enroll(EnrolmentCode(), &other).ok());
  std::vector<v1::PulledChanges> chunks;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Pull(d, 0, &chunks).ok()) << i;
  grpc::Status refused = Pull(d, 0, &chunks);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(DetailOf(refused).reason(), v1::SYNC_ERROR_REASON_RATE_LIMITED);
  EXPECT_EQ(DetailOf(refused).retry_after_millis(), 10000u);
  EXPECT_THAT(refused.error_message(), HasSubstr(d.id));
  // Another device has its own bucket.
  EXPECT_TRUE(Pull(other, 0, &chunks).ok());
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(DetailOf(Pull(d, 0, &chunks)).retry_after_millis(), 6000u);
  clock_.Advance(absl::Seconds(6));
  EXPECT_TRUE(Pull(d, 0, &chunks).ok());
}

// Enrolment from one address: wrong codes are counted, then the address
// waits; the wait is RATE_LIMITED with its retry-after and spends no code.
TEST_F(SyncServiceTest, WrongEnrolmentCodesSlowTheAddressDown) {
  config_.mutable_limits()->set_enrolment_free_failures(2);
  StartServer();
  Device d;
  for (int i = 0; i < 2; ++i) {
    grpc::Status s = Enroll("0000-0000-0000-0000-0000", &d);
    EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID) << i;
  }
  const std::string code = EnrolmentCode();
  grpc::Status waiting = Enroll(code, &d);
  EXPECT_EQ(waiting.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(DetailOf(waiting).reason(), v1::SYNC_ERROR_REASON_RATE_LIMITED);
  EXPECT_EQ(DetailOf(waiting).retry_after_millis(), 1000u);
  clock_.Advance(absl::Seconds(1));
  // The code was not spent by the refused attempt.
  EXPECT_TRUE(Enroll(code, &d).ok());
}

}  // namespace
}  // namespace fieldsync::server
