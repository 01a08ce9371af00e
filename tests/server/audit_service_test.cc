// AuditService through a real fieldsyncd (FieldsyncServer) on an ephemeral
// loopback port over real mutual TLS: who may call it, what each call
// answers (every proof checked with audit/merkle's verifier), the refusals
// for bad arguments, the receipt a device's push carries, and the first
// administrator recorded by `fieldsync init` as the log's first entry.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "admin/deployment.h"
#include "audit/export.h"
#include "common/file_io.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/x509.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
#include "protocol/merkle.h"
#include "server/server.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;

using Credentials = ::fieldsync::testing::ClientCredentials;
using Device = ::fieldsync::testing::EnrolledDevice;

std::vector<std::string> Hashes(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return {r.begin(), r.end()};
}

class AuditServiceTest : public ::fieldsync::testing::ServerHarness {
 protected:
  AuditServiceTest() : ServerHarness(20261205) {}

  void SetUp() override {
    ServerHarness::SetUp();
    absl::StatusOr<std::string> key_text = ReadFile(paths_->audit_public_key);
    ASSERT_THAT(key_text, IsOk());
    std::string key_line = *key_text;
    while (!key_line.empty() && key_line.back() == '\n') key_line.pop_back();
    absl::StatusOr<protocol::NoteVerifier> key = protocol::NoteVerifier::FromVerifierKey(key_line);
    ASSERT_THAT(key, IsOk());
    key_ = std::make_unique<protocol::NoteVerifier>(*std::move(key));
    StartServer();
  }

  std::unique_ptr<v1::AuditService::Stub> Audit(const Credentials& who) {
    return v1::AuditService::NewStub(Channel(&who));
  }

  // Registers officer1 (northern), whose tablets Enrol enrols.
  void RegisterOfficer() { AddOfficer("officer1", "northern"); }

  // An enrolled tablet of officer1 (PROTOCOL.md §2).
  Device Enrol() { return NewDevice("officer1", "northern"); }

  // Pushes one new case as the tablet's next batch (PROTOCOL.md §5).
  v1::PushResponse PushNewCase(Device& d) {
    const std::string case_id = FormatUuid(NewUuid(random_));
    v1::RecordChange c;
    c.set_change_id(FormatUuid(NewUuid(random_)));
    c.set_case_id(case_id);
    c.set_record_id(case_id);
    c.set_record_type("case_registration");
    c.set_kind(v1::CHANGE_KIND_UPSERT);
    c.mutable_hlc()->set_wall_micros(absl::ToUnixMicros(clock_.Now()));
    auto add = [&](const std::string& field, const std::string& value, bool is_enum) {
      v1::FieldWrite* w = c.add_fields();
      w->set_field(field);
      if (is_enum) {
        w->mutable_value()->set_enum_value(value);
      } else {
        w->mutable_value()->set_string_value(value);
      }
    };
    add("given_name", "Amina", false);
    add("sex", "female", true);
    add("age_band", "10_14", true);
    add("region", "northern", true);
    v1::FieldWrite* date = c.add_fields();
    date->set_field("registration_date");
    date->mutable_value()->mutable_date_value()->set_year(2026);
    date->mutable_value()->mutable_date_value()->set_month(11);
    date->mutable_value()->mutable_date_value()->set_day(2);
    v1::PushResponse response;
    grpc::Status s = PushChanges(d, {c}, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  v1::SignedTreeHead Head(const Credentials& who) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::SignedTreeHead head;
    grpc::Status s = Audit(who)->GetSignedTreeHead(&context, {}, &head);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return head;
  }

  grpc::Status Inclusion(const Credentials& who, const v1::GetInclusionProofRequest& request,
                         v1::InclusionProof* proof) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return Audit(who)->GetInclusionProof(&context, request, proof);
  }

  grpc::Status Consistency(const Credentials& who, uint64_t first, uint64_t second,
                           v1::ConsistencyProof* proof) {
    v1::GetConsistencyProofRequest request;
    request.set_first_size(first);
    request.set_second_size(second);
    grpc::ClientContext context;
    SetDeadline(&context);
    return Audit(who)->GetConsistencyProof(&context, request, proof);
  }

  // Entries [start, end) as GetEntries streams them.
  grpc::Status Entries(const Credentials& who, uint64_t start, uint64_t end,
                       std::vector<std::string>* out) {
    v1::GetEntriesRequest request;
    request.set_start(start);
    request.set_end(end);
    grpc::ClientContext context;
    SetDeadline(&context);
    auto reader = Audit(who)->GetEntries(&context, request);
    v1::AuditEntries chunk;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.first_index(), start + out->size());
      for (const std::string& e : chunk.entries()) out->push_back(e);
    }
    return reader->Finish();
  }

  // The verified checkpoint of a head, with the auditor's key.
  protocol::Checkpoint Open(const v1::SignedTreeHead& head) {
    absl::StatusOr<protocol::Checkpoint> cp = protocol::OpenCheckpoint(head.note(), *key_);
    EXPECT_THAT(cp, IsOk());
    if (!cp.ok()) return {};
    EXPECT_EQ(cp->size, head.tree_size());
    EXPECT_EQ(protocol::HashBytes(cp->root), head.root_hash());
    return *cp;
  }

  // Makes the log hold a few more entries: two staff, a device and
  // `batches` pushed batches.
  void Grow(int batches) {
    auditor_ = AddStaff("audra", v1::ROLE_AUDITOR, {});
    analyst_ = AddStaff("ana", v1::ROLE_ANALYST);
    device_ = Enrol();
    for (int i = 1; i <= batches; ++i) last_push_ = PushNewCase(device_);
  }

  std::unique_ptr<protocol::NoteVerifier> key_;
  Credentials auditor_, analyst_;
  Device device_;
  v1::PushResponse last_push_;
};

TEST_F(AuditServiceTest, FreshDeploymentLogsTheFirstAdministrator) {
  v1::SignedTreeHead head = Head(admin_);
  protocol::Checkpoint cp = Open(head);
  ASSERT_EQ(cp.size, 1u);
  std::vector<std::string> entries;
  grpc::Status s = Entries(admin_, 0, 0, &entries);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(entries.size(), 1u);
  absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(entries[0]);
  ASSERT_THAT(event, IsOk());
  const auto* added = std::get_if<protocol::StaffAdded>(&event->body);
  ASSERT_NE(added, nullptr) << protocol::KindName(protocol::KindOf(*event));
  EXPECT_EQ(added->staff_id, "admin");
  EXPECT_EQ(added->role, static_cast<uint8_t>(v1::ROLE_ADMINISTRATOR));
  EXPECT_EQ(added->actor, "fieldsync init");
  absl::StatusOr<crypto::CertificateSummary> cert =
      crypto::ParseCertificate(admin_.certificate_pem);
  ASSERT_THAT(cert, IsOk());
  EXPECT_EQ(added->certificate_serial, cert->serial_hex);

  // An export of it, as `fieldsync audit export` writes it, verifies
  // offline with the key from audit-log.pub, and shows the one event.
  std::string file(audit::kExportMagic);
  file += audit::ExportHeadRecord(head.note());
  file += audit::ExportEntryRecord(0, entries[0]);
  file += audit::ExportEndRecord(1, 1);
  std::istringstream in(file);
  audit::VerifyOptions options;
  options.key = key_.get();
  audit::VerifyReport report = audit::VerifyExport(in, options);
  EXPECT_TRUE(report.ok) << report.error << " at " << report.bad_record;
  EXPECT_EQ(report.entries, 1u);
  EXPECT_EQ(report.events_by_kind, (std::map<std::string, uint64_t>{{"staff-added", 1}}));
}

// Issuing an enrolment code is an administrative action in the log, just
// before the enrolment it allows; the code itself is nowhere in it.
TEST_F(AuditServiceTest, AnIssuedEnrolmentCodeIsLoggedBeforeTheEnrolment) {
  RegisterOfficer();
  const uint64_t before = Open(Head(admin_)).size;
  Device d = Enrol();
  protocol::Checkpoint cp = Open(Head(admin_));
  ASSERT_EQ(cp.size, before + 2);
  std::vector<std::string> entries;
  grpc::Status s = Entries(admin_, before, cp.size, &entries);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(entries.size(), 2u);

  absl::StatusOr<protocol::Event> issued = protocol::DecodeEvent(entries[0]);
  ASSERT_THAT(issued, IsOk());
  const auto* action = std::get_if<protocol::AdminAction>(&issued->body);
  ASSERT_NE(action, nullptr) << protocol::KindName(protocol::KindOf(*issued));
  EXPECT_EQ(action->action, "enrolment-code.issue");
  EXPECT_EQ(action->actor, "fieldsync://staff/admin");
  ASSERT_EQ(action->subject_ids.size(), 3u);
  EXPECT_EQ(action->subject_ids[0], "officer1");
  EXPECT_EQ(action->subject_ids[1], "northern");
  EXPECT_EQ(action->subject_ids[2].size(), 16u);  // the code id, never the code
  absl::StatusOr<protocol::Event> enrolled = protocol::DecodeEvent(entries[1]);
  ASSERT_THAT(enrolled, IsOk());
  const auto* device = std::get_if<protocol::DeviceEnrolled>(&enrolled->body);
  ASSERT_NE(device, nullptr) << protocol::KindName(protocol::KindOf(*enrolled));
  EXPECT_EQ(device->officer_id, "officer1");
}

TEST_F(AuditServiceTest, AuditorReadsHeadsProofsAndEntries) {
  Grow(3);
  v1::SignedTreeHead head = Head(auditor_);
  protocol::Checkpoint cp = Open(head);
  // init's administrator, two staff, one enrolment, three batches.
  ASSERT_GE(cp.size, 7u);

  std::vector<std::string> entries;
  grpc::Status s = Entries(auditor_, 0, cp.size, &entries);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(entries.size(), cp.size);
  std::vector<protocol::Hash> leaves;
  for (const std::string& e : entries) leaves.push_back(protocol::LeafHash(e));
  EXPECT_EQ(protocol::MemoryNodeSource::FromLeafHashes(leaves).Root(), cp.root);

  // Inclusion by index, for every leaf, against the head's root.
  for (uint64_t i = 0; i < cp.size; ++i) {
    v1::GetInclusionProofRequest request;
    request.set_leaf_index(i);
    request.set_tree_size(cp.size);
    v1::InclusionProof proof;
    s = Inclusion(auditor_, request, &proof);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(proof.leaf_index(), i);
    EXPECT_EQ(proof.tree_size(), cp.size);
    EXPECT_THAT(protocol::VerifyInclusion(protocol::HashBytes(leaves[i]), i, cp.size,
                                          Hashes(proof.hashes()), head.root_hash()),
                IsOk())
        << "leaf " << i;
  }
  // By leaf hash, at the latest head's size (tree_size 0).
  v1::GetInclusionProofRequest by_hash;
  by_hash.set_leaf_hash(std::string(protocol::HashBytes(leaves[2])));
  v1::InclusionProof proof;
  s = Inclusion(auditor_, by_hash, &proof);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(proof.leaf_index(), 2u);
  EXPECT_EQ(proof.tree_size(), cp.size);
  EXPECT_THAT(protocol::VerifyInclusion(protocol::HashBytes(leaves[2]), 2, cp.size,
                                        Hashes(proof.hashes()), head.root_hash()),
              IsOk());
  // A tampered proof does not verify.
  std::vector<std::string> bad = Hashes(proof.hashes());
  ASSERT_FALSE(bad.empty());
  bad[0][0] ^= 1;
  EXPECT_THAT(
      protocol::VerifyInclusion(protocol::HashBytes(leaves[2]), 2, cp.size, bad, head.root_hash()),
      Not(IsOk()));

  // Consistency from every smaller size to the head.
  for (uint64_t first = 1; first <= cp.size; ++first) {
    v1::ConsistencyProof c;
    s = Consistency(auditor_, first, cp.size, &c);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(c.first_size(), first);
    EXPECT_EQ(c.second_size(), cp.size);
    protocol::Hash root1 =
        protocol::MemoryNodeSource::FromLeafHashes(std::span(leaves).first(first)).Root();
    EXPECT_THAT(protocol::VerifyConsistency(first, cp.size, Hashes(c.hashes()),
                                            protocol::HashBytes(root1), head.root_hash()),
                IsOk())
        << first;
  }
  // second_size 0 means the latest head.
  v1::ConsistencyProof latest;
  s = Consistency(auditor_, 1, 0, &latest);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(latest.second_size(), cp.size);

  // A sub-range of entries.
  std::vector<std::string> middle;
  s = Entries(auditor_, 2, 5, &middle);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(middle, std::vector<std::string>(entries.begin() + 2, entries.begin() + 5));
}

TEST_F(AuditServiceTest, DevicesAndAnalystsAreRefused) {
  Grow(1);
  for (const Credentials* who : {&device_.tls, &analyst_}) {
    v1::SignedTreeHead head;
    grpc::ClientContext c1;
    SetDeadline(&c1);
    EXPECT_EQ(Audit(*who)->GetSignedTreeHead(&c1, {}, &head).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    v1::GetInclusionProofRequest request;
    request.set_leaf_index(0);
    v1::InclusionProof proof;
    EXPECT_EQ(Inclusion(*who, request, &proof).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    v1::ConsistencyProof c;
    EXPECT_EQ(Consistency(*who, 1, 2, &c).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    std::vector<std::string> entries;
    EXPECT_EQ(Entries(*who, 0, 1, &entries).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(entries.empty());
  }
}

TEST_F(AuditServiceTest, BadArgumentsAreRefusedWithAReason) {
  Grow(1);
  const uint64_t size = Open(Head(auditor_)).size;
  auto expect = [](const grpc::Status& s, grpc::StatusCode code, std::string_view words) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(words));
  };
  v1::InclusionProof proof;
  v1::GetInclusionProofRequest request;
  request.set_leaf_index(size);
  request.set_tree_size(size);
  expect(Inclusion(auditor_, request, &proof), grpc::StatusCode::INVALID_ARGUMENT,
         "is not in a tree of size");
  request.set_leaf_index(0);
  request.set_tree_size(size + 5);
  EXPECT_EQ(Inclusion(auditor_, request, &proof).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  v1::GetInclusionProofRequest neither;
  expect(Inclusion(auditor_, neither, &proof), grpc::StatusCode::INVALID_ARGUMENT, "leaf_");
  v1::GetInclusionProofRequest short_hash;
  short_hash.set_leaf_hash("abc");
  expect(Inclusion(auditor_, short_hash, &proof), grpc::StatusCode::INVALID_ARGUMENT, "32 bytes");
  v1::GetInclusionProofRequest unknown_hash;
  unknown_hash.set_leaf_hash(std::string(32, 'x'));
  EXPECT_EQ(Inclusion(auditor_, unknown_hash, &proof).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ConsistencyProof c;
  grpc::Status s = Consistency(auditor_, 0, size, &c);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(s.error_message().empty());
  s = Consistency(auditor_, size, size - 1, &c);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(s.error_message().empty());
  s = Consistency(auditor_, 1, size + 1, &c);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_FALSE(s.error_message().empty());

  std::vector<std::string> entries;
  expect(Entries(auditor_, 3, 2, &entries), grpc::StatusCode::INVALID_ARGUMENT, "start");
  expect(Entries(auditor_, 0, size + 1, &entries), grpc::StatusCode::OUT_OF_RANGE, "beyond");
  EXPECT_TRUE(entries.empty());
}

TEST_F(AuditServiceTest, PushAnswerCarriesAReceiptThatVerifies) {
  Grow(2);
  ASSERT_TRUE(last_push_.has_audit_receipt());
  const v1::AuditReceipt& r = last_push_.audit_receipt();
  protocol::Checkpoint cp = Open(r.head());
  EXPECT_THAT(
      protocol::VerifyInclusion(protocol::HashBytes(protocol::LeafHash(r.entry())), r.leaf_index(),
                                cp.size, Hashes(r.inclusion_proof()), r.head().root_hash()),
      IsOk());
  absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(r.entry());
  ASSERT_THAT(event, IsOk());
  const auto* batch = std::get_if<protocol::BatchAccepted>(&event->body);
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->device_id, device_.id);
  EXPECT_EQ(batch->sequence, 2u);
  EXPECT_EQ(batch->first_position, last_push_.first_position());
  EXPECT_EQ(batch->last_position, last_push_.last_position());
  // The same leaf is what AuditService proves.
  v1::GetInclusionProofRequest request;
  request.set_leaf_hash(std::string(protocol::HashBytes(protocol::LeafHash(r.entry()))));
  request.set_tree_size(cp.size);
  v1::InclusionProof proof;
  grpc::Status s = Inclusion(auditor_, request, &proof);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(proof.leaf_index(), r.leaf_index());
  EXPECT_EQ(Hashes(proof.hashes()), Hashes(r.inclusion_proof()));
}

}  // namespace
}  // namespace fieldsync::server
