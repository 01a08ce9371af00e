// AdminService.EraseCase and AdminService.RotateMasterKey through a real
// fieldsyncd (FieldsyncServer) on an ephemeral loopback port over real
// mutual TLS: the audit events they write, what a device pulls afterwards,
// the stored keys, and a restart from the data directory.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "admin/deployment.h"
#include "admin/master_key_rotation.h"
#include "audit/export.h"
#include "common/file_io.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "crypto/master_key.h"
#include "crypto/x25519.h"
#include "device/tablet.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/case_keys.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
#include "server/server.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::testing::HasSubstr;

using Credentials = ::fieldsync::testing::ClientCredentials;
using Device = ::fieldsync::testing::EnrolledDevice;
using ::fieldsync::testing::DetailOf;

std::string Id(int n) { return absl::StrFormat("00000000-0000-4000-8000-%012x", n); }

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

class KeyOperationsTest : public ::fieldsync::testing::ServerHarness {
 protected:
  KeyOperationsTest() : ServerHarness(20261128) {}

  // Every change the device pulls from its cursor (the start of the log at
  // its first pull) to the end.
  std::vector<v1::PulledChange> PullAll(Device& d) {
    std::vector<v1::PulledChanges> chunks;
    grpc::Status s = PullToTablet(d, &chunks);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<v1::PulledChange> out;
    for (const v1::PulledChanges& chunk : chunks) {
      for (const v1::PulledChange& c : chunk.changes()) out.push_back(c);
    }
    return out;
  }

  v1::RecordChange NewCase(const std::string& case_id, const std::string& name) {
    v1::RecordChange c;
    c.set_change_id(NewChangeId());
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
    add("given_name", Str(name));
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

  // A new given name for the case; PushChanges writes it on the version the
  // tablet last saw.
  v1::RecordChange SetName(const std::string& case_id, const std::string& name) {
    v1::RecordChange c;
    c.set_change_id(NewChangeId());
    c.set_case_id(case_id);
    c.set_record_id(case_id);
    c.set_record_type("case_registration");
    c.set_kind(v1::CHANGE_KIND_UPSERT);
    c.mutable_hlc()->set_wall_micros(absl::ToUnixMicros(clock_.Now()) + 1000);
    v1::FieldWrite* w = c.add_fields();
    w->set_field("given_name");
    *w->mutable_value() = Str(name);
    return c;
  }

  std::string NewChangeId() { return FormatUuid(NewUuid(random_)); }

  // Pushes a new case with `name` as its identifying given_name.
  void PushCase(Device& d, const std::string& case_id, const std::string& name) {
    v1::PushResponse response;
    grpc::Status s = PushChanges(d, {NewCase(case_id, name)}, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(response.results_size(), 1);
    ASSERT_EQ(response.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
  }

  grpc::Status Erase(const Credentials& who, const std::string& case_id, const std::string& confirm,
                     v1::EraseCaseResponse* response) {
    v1::EraseCaseRequest request;
    request.set_case_id(case_id);
    request.set_confirm_case_id(confirm);
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::AdminService::NewStub(Channel(&who))->EraseCase(&context, request, response);
  }

  grpc::Status Rotate(v1::RotateMasterKeyResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::AdminService::NewStub(Channel(&admin_))
        ->RotateMasterKey(&context, v1::RotateMasterKeyRequest(), response);
  }

  // Opens the stopped deployment's database (the server holds its lock
  // while running).
  std::unique_ptr<storage::Store> OpenStore() {
    storage::StoreOptions options;
    options.path = paths_->db;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Every entry of the stopped deployment's aggregates column family
  // (counters merged, case states), by key.
  std::map<std::string, std::string> AggregateEntries() {
    std::map<std::string, std::string> out;
    std::unique_ptr<storage::Store> store = OpenStore();
    if (store == nullptr) return out;
    std::unique_ptr<storage::Iterator> it = store->NewIterator(storage::Cf::kAggregates, "", "");
    for (; it->Valid(); it->Next()) out.emplace(std::string(it->key()), std::string(it->value()));
    EXPECT_THAT(it->status(), IsOk());
    return out;
  }

  static const v1::PulledChange* FindCase(const std::vector<v1::PulledChange>& changes,
                                          const std::string& case_id) {
    for (const auto& c : changes) {
      if (c.case_id() == case_id) return &c;
    }
    return nullptr;
  }

  static const v1::PulledField* FindField(const v1::PulledChange& c, const std::string& field) {
    for (const auto& f : c.fields()) {
      if (f.field() == field) return &f;
    }
    return nullptr;
  }
};

// --- EraseCase ------------------------------------------------------------

TEST_F(KeyOperationsTest, EraseRecordsCaseErasedAtTheReturnedLeaf) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");

  v1::EraseCaseResponse response;
  grpc::Status s = Erase(admin_, Id(1), Id(1), &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.case_id(), Id(1));
  EXPECT_GT(response.audit_tree_size(), response.audit_leaf_index());
  absl::StatusOr<protocol::Event> event = AuditEntry(response.audit_leaf_index());
  ASSERT_THAT(event, IsOk());
  const auto* erased = std::get_if<protocol::CaseErased>(&event->body);
  ASSERT_NE(erased, nullptr) << protocol::KindName(protocol::KindOf(*event));
  EXPECT_EQ(erased->actor, "fieldsync://staff/admin");
  EXPECT_EQ(erased->case_id, *ParseUuid(Id(1)));
}

TEST_F(KeyOperationsTest, ErasedCaseIsPulledWithEncryptedFieldsWithheldAndDimensionsKept) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  PushCase(d, Id(2), "Baraka");
  v1::EraseCaseResponse response;
  ASSERT_TRUE(Erase(admin_, Id(1), Id(1), &response).ok());

  std::vector<v1::PulledChange> pulled = PullAll(d);

  const v1::PulledChange* erased = FindCase(pulled, Id(1));
  ASSERT_NE(erased, nullptr);
  EXPECT_EQ(FindField(*erased, "given_name"), nullptr);
  EXPECT_GE(erased->withheld_fields(), 1u);
  const v1::PulledField* sex = FindField(*erased, "sex");
  ASSERT_NE(sex, nullptr);
  EXPECT_EQ(sex->value().enum_value(), "female");
  EXPECT_NE(FindField(*erased, "region"), nullptr);
  // The other case is untouched.
  const v1::PulledChange* kept = FindCase(pulled, Id(2));
  ASSERT_NE(kept, nullptr);
  const v1::PulledField* name = FindField(*kept, "given_name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->value().string_value(), "Baraka");
}

// Erasure destroys the case's key, not its DIMENSION values: the counters
// the case moved, and the values they were counted from, stay as they were.
TEST_F(KeyOperationsTest, ErasureLeavesTheAggregateCountersAsTheyWere) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  PushCase(d, Id(2), "Baraka");
  StopServer();
  const std::map<std::string, std::string> before = AggregateEntries();
  ASSERT_FALSE(before.empty());

  StartServer();
  v1::EraseCaseResponse response;
  ASSERT_TRUE(Erase(admin_, Id(1), Id(1), &response).ok());
  StopServer();

  EXPECT_EQ(AggregateEntries(), before);
}

TEST_F(KeyOperationsTest, ErasedCaseKeyIsReplacedByTheMarker) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  v1::EraseCaseResponse response;
  ASSERT_TRUE(Erase(admin_, Id(1), Id(1), &response).ok());
  StopServer();

  std::unique_ptr<storage::Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<crypto::MasterKeyRing> ring = crypto::MasterKeyRing::LoadFile(paths_->master_key);
  ASSERT_THAT(ring, IsOk());
  keys::CaseKeyStore keys(store.get(), &*ring);
  EXPECT_THAT(keys.State(*ParseUuid(Id(1))), IsOkAndHolds(keys::DekState::kErased));
  EXPECT_THAT(store->Get(storage::Cf::kKeys, storage::EncodeCaseDekKey(*ParseUuid(Id(1)))),
              IsOkAndHolds(std::string(1, '\0')));
  EXPECT_THAT(keys.GetDek(*ParseUuid(Id(1))),
              ::fieldsync::testing::StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(KeyOperationsTest, PushWritingAnErasedCasesEncryptedFieldIsRejectedWithAReason) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  v1::EraseCaseResponse erase;
  ASSERT_TRUE(Erase(admin_, Id(1), Id(1), &erase).ok());

  // One change to the erased case and one new case in the same batch.
  v1::PushResponse response;
  grpc::Status s = PushChanges(d, {SetName(Id(1), "Other"), NewCase(Id(3), "Joy")}, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).outcome(), v1::CHANGE_OUTCOME_REJECTED);
  EXPECT_EQ(response.results(0).reject_reason(), v1::REJECT_REASON_CASE_ERASED);
  EXPECT_THAT(response.results(0).detail(), HasSubstr("erased"));
  EXPECT_EQ(response.results(1).outcome(), v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(KeyOperationsTest, SecondEraseIsFailedPrecondition) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  v1::EraseCaseResponse first, second;
  ASSERT_TRUE(Erase(admin_, Id(1), Id(1), &first).ok());

  grpc::Status s = Erase(admin_, Id(1), Id(1), &second);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("already erased"));
}

TEST_F(KeyOperationsTest, EraseOfUnknownCaseIsNotFoundWithReason) {
  StartServer();
  v1::EraseCaseResponse response;

  grpc::Status s = Erase(admin_, Id(9), Id(9), &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(DetailOf(s).reason(), v1::SYNC_ERROR_REASON_NOT_FOUND);
  EXPECT_EQ(DetailOf(s).case_id(), Id(9));
}

TEST_F(KeyOperationsTest, EraseWithMismatchedConfirmIsInvalidArgumentAndErasesNothing) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  v1::EraseCaseResponse response;

  grpc::Status s = Erase(admin_, Id(1), Id(2), &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<v1::PulledChange> pulled = PullAll(d);
  const v1::PulledChange* c = FindCase(pulled, Id(1));
  ASSERT_NE(c, nullptr);
  EXPECT_NE(FindField(*c, "given_name"), nullptr);
}

TEST_F(KeyOperationsTest, EraseByNonAdministratorIsPermissionDenied) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  Credentials sam = AddStaff("sam", v1::ROLE_SUPERVISOR, {"northern"});
  v1::EraseCaseResponse response;

  grpc::Status s = Erase(sam, Id(1), Id(1), &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

// --- RotateAuditKey -------------------------------------------------------

class AuditKeyRotationTest : public KeyOperationsTest {
 protected:
  grpc::Status RotateAudit(const Credentials& who, v1::RotateAuditKeyResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::AdminService::NewStub(Channel(&who))
        ->RotateAuditKey(&context, v1::RotateAuditKeyRequest(), response);
  }
  static device::Tablet TabletOf(const Device& d) {
    absl::StatusOr<device::Tablet> t =
        device::Tablet::Create(d.enrolment, *crypto::Ed25519Signer::Create(d.signing.seed.span()),
                               *crypto::X25519PrivateKey::Create(d.receiving.private_key.span()));
    EXPECT_THAT(t, IsOk());
    return *std::move(t);
  }
  v1::PushResponse PushAndAnswer(Device& d, const std::string& case_id) {
    v1::PushResponse response;
    grpc::Status s = PushChanges(d, {NewCase(case_id, "Amina")}, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(response.has_audit_receipt());
    return response;
  }
  protocol::NoteVerifier KeyFile(const std::string& path) {
    absl::StatusOr<std::string> text = ReadFile(path);
    EXPECT_THAT(text, IsOk());
    std::string line = *text;
    while (!line.empty() && line.back() == '\n') line.pop_back();
    return *protocol::NoteVerifier::FromVerifierKey(line);
  }
  // The export `fieldsync audit export` writes, over AuditService.
  std::string Export() {
    auto stub = v1::AuditService::NewStub(Channel(&admin_));
    v1::SignedTreeHead head;
    v1::KeyTransitions transitions;
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      EXPECT_TRUE(stub->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head).ok());
    }
    {
      grpc::ClientContext context;
      SetDeadline(&context);
      EXPECT_TRUE(
          stub->GetKeyTransitions(&context, v1::GetKeyTransitionsRequest(), &transitions).ok());
    }
    std::string out(audit::kExportMagic);
    uint32_t heads = 0;
    for (const v1::AuditKeyTransition& t : transitions.transitions()) {
      out += audit::ExportHeadRecord(t.head().note());
      ++heads;
    }
    out += audit::ExportHeadRecord(head.note());
    ++heads;
    v1::GetEntriesRequest request;
    request.set_end(head.tree_size());
    grpc::ClientContext context;
    SetDeadline(&context);
    auto reader = stub->GetEntries(&context, request);
    v1::AuditEntries chunk;
    uint64_t next = 0;
    while (reader->Read(&chunk)) {
      for (const std::string& e : chunk.entries()) out += audit::ExportEntryRecord(next++, e);
    }
    EXPECT_TRUE(reader->Finish().ok());
    out += audit::ExportEndRecord(next, heads);
    return out;
  }
  audit::VerifyReport Verify(const std::string& file, const protocol::NoteVerifier& key) {
    std::istringstream in(file);
    audit::VerifyOptions options;
    options.key = &key;
    return audit::VerifyExport(in, options);
  }
};

TEST_F(AuditKeyRotationTest, RotationRecordsTheTransitionAndSignsItsHeadWithBothKeys) {
  StartServer();
  const protocol::NoteVerifier first = KeyFile(paths_->audit_public_key);
  v1::RotateAuditKeyResponse response;

  grpc::Status s = RotateAudit(admin_, &response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.old_version(), 1u);
  EXPECT_EQ(response.new_version(), 2u);
  EXPECT_EQ(response.verifier_key_file(), paths_->root + "/audit-log.v2.pub");
  const protocol::NoteVerifier next = KeyFile(response.verifier_key_file());
  EXPECT_EQ(next.VerifierKey(), response.verifier_key());
  EXPECT_THAT(protocol::OpenCheckpoint(response.transition_head().note(), first), IsOk());
  EXPECT_THAT(protocol::OpenCheckpoint(response.transition_head().note(), next), IsOk());
  EXPECT_GT(response.transition_head().tree_size(), response.audit_leaf_index());
  absl::StatusOr<protocol::Event> event = AuditEntry(response.audit_leaf_index());
  ASSERT_THAT(event, IsOk());
  const auto* rotated = std::get_if<protocol::KeyRotated>(&event->body);
  ASSERT_NE(rotated, nullptr);
  EXPECT_EQ(rotated->actor, "fieldsync://staff/admin");
  EXPECT_EQ(rotated->purpose, "audit-signing");
  EXPECT_EQ(rotated->old_version, 1u);
  EXPECT_EQ(rotated->new_version, 2u);
  EXPECT_EQ(rotated->new_public_key,
            std::string(next.public_key().begin(), next.public_key().end()));
  // The first key's file is never replaced.
  EXPECT_EQ(KeyFile(paths_->audit_public_key).VerifierKey(), first.VerifierKey());
}

TEST_F(AuditKeyRotationTest, OnlyAnAdministratorRotatesTheAuditKey) {
  StartServer();
  Credentials auditor = AddStaff("aud", v1::ROLE_AUDITOR, {});
  v1::RotateAuditKeyResponse response;

  grpc::Status s = RotateAudit(auditor, &response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuditKeyRotationTest, PushesBeforeAndAfterExportAndRestartAllVerifyAcrossTheRotation) {
  StartServer();
  const protocol::NoteVerifier first = KeyFile(paths_->audit_public_key);
  Device d = NewDevice();
  device::Tablet tablet = TabletOf(d);
  ASSERT_THAT(tablet.VerifyReceipt(PushAndAnswer(d, Id(1))), IsOk());

  v1::RotateAuditKeyResponse rotated;
  ASSERT_TRUE(RotateAudit(admin_, &rotated).ok());
  const protocol::NoteVerifier next = KeyFile(rotated.verifier_key_file());

  // The tablet enrolled under the first key follows the transition its
  // next receipt carries.
  v1::PushResponse after = PushAndAnswer(d, Id(2));
  ASSERT_EQ(after.audit_receipt().key_transitions_size(), 1);
  EXPECT_THAT(protocol::OpenCheckpoint(after.audit_receipt().head().note(), first),
              ::testing::Not(IsOk()));
  ASSERT_THAT(tablet.VerifyReceipt(after), IsOk());
  EXPECT_EQ(tablet.audit_key()->key_id(), next.key_id());
  // A tablet enrolled now is given the new key.
  Device late = NewDevice();
  EXPECT_EQ(late.enrolment.audit_public_key(),
            std::string(next.public_key().begin(), next.public_key().end()));
  device::Tablet late_tablet = TabletOf(late);
  EXPECT_THAT(late_tablet.VerifyReceipt(PushAndAnswer(late, Id(3))), IsOk());

  // The export spanning the rotation verifies with either key file.
  const std::string file = Export();
  audit::VerifyReport with_first = Verify(file, first);
  ASSERT_TRUE(with_first.ok) << with_first.bad_record << ": " << with_first.error;
  ASSERT_EQ(with_first.key_transitions.size(), 1u);
  EXPECT_EQ(with_first.key_transitions[0].entry, rotated.audit_leaf_index());
  EXPECT_EQ(with_first.final_key, next.VerifierKey());
  audit::VerifyReport with_next = Verify(file, next);
  EXPECT_TRUE(with_next.ok) << with_next.bad_record << ": " << with_next.error;

  // A restart keeps the new key: the head file written before counts, and
  // the tablet goes on verifying.
  StopServer();
  StartServer();
  v1::PushResponse restarted = PushAndAnswer(d, Id(4));
  EXPECT_THAT(protocol::OpenCheckpoint(restarted.audit_receipt().head().note(), next), IsOk());
  EXPECT_THAT(tablet.VerifyReceipt(restarted), IsOk());
  audit::VerifyReport again = Verify(Export(), first);
  EXPECT_TRUE(again.ok) << again.bad_record << ": " << again.error;
}

TEST_F(AuditKeyRotationTest, ATabletRefusesAForgedOrMissingTransition) {
  StartServer();
  Device d = NewDevice();
  ASSERT_TRUE(TabletOf(d).VerifyReceipt(PushAndAnswer(d, Id(1))).ok());
  v1::RotateAuditKeyResponse rotated;
  ASSERT_TRUE(RotateAudit(admin_, &rotated).ok());
  const v1::PushResponse after = PushAndAnswer(d, Id(2));

  // No transition: the head is signed by a key the tablet does not hold.
  v1::PushResponse missing = after;
  missing.mutable_audit_receipt()->clear_key_transitions();
  EXPECT_THAT(TabletOf(d).VerifyReceipt(missing).status(),
              ::fieldsync::testing::StatusIs(absl::StatusCode::kUnauthenticated));
  // A transition whose head lacks the old key's signature (someone holding
  // only the new key): the signature line of the old key removed.
  v1::PushResponse unsigned_by_old = after;
  std::string* note = unsigned_by_old.mutable_audit_receipt()
                          ->mutable_key_transitions(0)
                          ->mutable_head()
                          ->mutable_note();
  absl::StatusOr<protocol::SignedNote> parsed = protocol::ParseSignedNote(*note);
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->signatures.size(), 2u);
  parsed->signatures.erase(parsed->signatures.begin());
  *note = *protocol::FormatSignedNote(*parsed);
  EXPECT_THAT(TabletOf(d).VerifyReceipt(unsigned_by_old).status(),
              ::fieldsync::testing::StatusIs(absl::StatusCode::kUnauthenticated));
  // A transition entry tampered with (another new key): its proof fails.
  v1::PushResponse tampered = after;
  std::string* entry =
      tampered.mutable_audit_receipt()->mutable_key_transitions(0)->mutable_entry();
  (*entry)[entry->size() - 1] ^= 0x01;
  EXPECT_THAT(TabletOf(d).VerifyReceipt(tampered).status(),
              ::fieldsync::testing::StatusIs(absl::StatusCode::kUnauthenticated));
  // Truncated entry: not a KeyRotated.
  v1::PushResponse truncated = after;
  truncated.mutable_audit_receipt()->mutable_key_transitions(0)->mutable_entry()->resize(20);
  EXPECT_THAT(TabletOf(d).VerifyReceipt(truncated).status(),
              ::fieldsync::testing::StatusIs(absl::StatusCode::kUnauthenticated));
  // The genuine one verifies.
  EXPECT_THAT(TabletOf(d).VerifyReceipt(after), IsOk());
}

// --- RotateMasterKey ------------------------------------------------------

TEST_F(KeyOperationsTest, RotationRecordsKeyRotated) {
  StartServer();
  v1::RotateMasterKeyResponse response;

  grpc::Status s = Rotate(&response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.old_version(), 1u);
  EXPECT_EQ(response.new_version(), 2u);
  EXPECT_FALSE(response.resumed());
  EXPECT_EQ(response.server_keys_rewrapped(), 3u);  // CA, sealing, audit signing
  absl::StatusOr<protocol::Event> event = AuditEntry(response.audit_leaf_index());
  ASSERT_THAT(event, IsOk());
  const auto* rotated = std::get_if<protocol::KeyRotated>(&event->body);
  ASSERT_NE(rotated, nullptr) << protocol::KindName(protocol::KindOf(*event));
  EXPECT_EQ(rotated->actor, "fieldsync://staff/admin");
  EXPECT_EQ(rotated->purpose, "kek");
  EXPECT_EQ(rotated->old_version, 1u);
  EXPECT_EQ(rotated->new_version, 2u);
  EXPECT_EQ(rotated->new_public_key, "");
}

TEST_F(KeyOperationsTest, RotationRewrapsEveryCaseKeyAndTheRestartedServerStillDecrypts) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  PushCase(d, Id(2), "Baraka");
  PushCase(d, Id(3), "Chausiku");
  v1::EraseCaseResponse erase;
  ASSERT_TRUE(Erase(admin_, Id(3), Id(3), &erase).ok());

  v1::RotateMasterKeyResponse response;
  grpc::Status s = Rotate(&response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.rewrapped(), 2u);
  EXPECT_EQ(response.erased(), 1u);
  StopServer();
  {
    std::unique_ptr<storage::Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<crypto::MasterKeyRing> ring =
        crypto::MasterKeyRing::LoadFile(paths_->master_key);
    ASSERT_THAT(ring, IsOk());
    EXPECT_EQ(ring->current_version(), 2u);
    EXPECT_TRUE(ring->has_version(1));
    keys::CaseKeyStore keys(store.get(), &*ring);
    EXPECT_THAT(keys.WrappedVersion(*ParseUuid(Id(1))), IsOkAndHolds(2u));
    EXPECT_THAT(keys.WrappedVersion(*ParseUuid(Id(2))), IsOkAndHolds(2u));
    // Nothing is left unfinished.
    EXPECT_THAT(store->Get(storage::Cf::kMetadata,
                           storage::EncodeMetadataKey(admin::kPendingRotationMetadata)),
                ::fieldsync::testing::StatusIs(absl::StatusCode::kNotFound));
  }

  StartServer();  // server keys unwrap under version 2
  std::vector<v1::PulledChange> pulled = PullAll(d);
  const v1::PulledChange* c = FindCase(pulled, Id(1));
  ASSERT_NE(c, nullptr);
  const v1::PulledField* name = FindField(*c, "given_name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->value().string_value(), "Amina");
  // Pushes after the restart seal under the rewrapped case key.
  v1::PushResponse push;
  grpc::Status pushed = PushChanges(d, {SetName(Id(1), "Amina B")}, &push);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message();
  ASSERT_EQ(push.results_size(), 1);
  EXPECT_EQ(push.results(0).outcome(), v1::CHANGE_OUTCOME_APPLIED);
}

TEST_F(KeyOperationsTest, RotatedKeyFileStaysPrivateAndHoldsEveryVersion) {
  StartServer();
  v1::RotateMasterKeyResponse first, second;
  ASSERT_TRUE(Rotate(&first).ok());

  grpc::Status s = Rotate(&second);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(second.old_version(), 2u);
  EXPECT_EQ(second.new_version(), 3u);
  struct stat st;
  ASSERT_EQ(::stat(paths_->master_key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<crypto::MasterKeyRing> ring = crypto::MasterKeyRing::LoadFile(paths_->master_key);
  ASSERT_THAT(ring, IsOk());
  EXPECT_TRUE(ring->has_version(1));
  EXPECT_TRUE(ring->has_version(2));
  EXPECT_EQ(ring->current_version(), 3u);
  EXPECT_FALSE(std::filesystem::exists(paths_->master_key + ".tmp"));
}

TEST_F(KeyOperationsTest, RotationWithKeyCommandIsFailedPrecondition) {
  config_.set_master_key_command("cat " + paths_->master_key);
  StartServer();
  v1::RotateMasterKeyResponse response;

  grpc::Status s = Rotate(&response);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("master_key_command"));
}

TEST_F(KeyOperationsTest, InterruptedRotationIsResumedWithoutAnotherVersion) {
  StartServer();
  Device d = NewDevice();
  PushCase(d, Id(1), "Amina");
  StopServer();
  // A rotation that crashed right after recording itself: the key file does
  // not hold the new version yet.
  {
    std::unique_ptr<storage::Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    storage::WriteBatch batch;
    batch.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(admin::kPendingRotationMetadata),
              std::string("\0\0\0\1\0\0\0\2", 8));
    ASSERT_THAT(store->Commit(&batch), IsOk());
  }
  StartServer();
  v1::RotateMasterKeyResponse response;

  grpc::Status s = Rotate(&response);

  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.resumed());
  EXPECT_EQ(response.old_version(), 1u);
  EXPECT_EQ(response.new_version(), 2u);
  EXPECT_EQ(response.rewrapped(), 1u);
  v1::RotateMasterKeyResponse next;
  ASSERT_TRUE(Rotate(&next).ok());
  EXPECT_FALSE(next.resumed());
  EXPECT_EQ(next.new_version(), 3u);
}

// --- Erasure and rotations during pushes (ctest -R Concurren) ---------------

class KeyOperationsConcurrencyTest : public AuditKeyRotationTest {
 protected:
  static constexpr int kPushers = 8, kBatches = 10;
  // The new case of pusher `t`'s batch `b`.
  static std::string PushedCase(int t, int b) { return Id(0x1000 * (t + 1) + b); }

  struct PushRun {
    std::vector<std::vector<std::string>> errors;  // per pusher, failed calls
    int pushed = 0;                                // batches accepted
    int pushed_before = 0;                         // ... before `action` began
    int pushed_after = 0;                          // ... after it returned
  };

  // Starts kPushers tablets, each pushing kBatches new cases, runs `action`
  // once 2 * kPushers batches are in, and waits for every pusher.
  PushRun PushWhile(const std::function<void()>& action) {
    std::vector<Device> devices;
    for (int t = 0; t < kPushers; ++t) devices.push_back(NewDevice());
    std::atomic<int> pushed{0};
    std::atomic<bool> done{false};
    std::atomic<int> pushed_after{0};
    PushRun run;
    run.errors.resize(kPushers);
    std::vector<std::thread> threads;
    for (int t = 0; t < kPushers; ++t) {
      threads.emplace_back([&, t] {
        fieldsync::testing::SeededRandom rng(7000 + t);
        for (int b = 0; b < kBatches; ++b) {
          v1::PushResponse response;
          grpc::Status s =
              PushChanges(devices[t], {NewCase(PushedCase(t, b), "Baraka")}, &response, &rng);
          if (!s.ok()) {
            run.errors[t].push_back(
                absl::StrFormat("%d: %s", static_cast<int>(s.error_code()), s.error_message()));
            continue;
          }
          ++pushed;
          if (done.load()) ++pushed_after;
        }
      });
    }
    const absl::Time wait_until = absl::Now() + absl::Seconds(60);
    while (pushed.load() < 2 * kPushers && absl::Now() < wait_until) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    run.pushed_before = pushed.load();
    action();
    done = true;
    for (std::thread& th : threads) th.join();
    run.pushed = pushed.load();
    run.pushed_after = pushed_after.load();
    std::printf("%d pushes before the operation, %d after it returned\n", run.pushed_before,
                run.pushed_after);
    return run;
  }

  void ExpectEveryPushAccepted(const PushRun& run) {
    for (int t = 0; t < kPushers; ++t) EXPECT_THAT(run.errors[t], ::testing::IsEmpty()) << t;
    EXPECT_EQ(run.pushed, kPushers * kBatches);
    EXPECT_LT(run.pushed_before, kPushers * kBatches);  // the operation ran among the pushes
  }
};

// Issue 14: the erasure held the audit log's session across its forced
// compaction, so every commit group's append waited for it and the group
// failed UNAVAILABLE. Now its handle ends before the compaction: 8 tablets
// pushing all the while lose no batch, the case's key is gone and the log
// verifies.
TEST_F(KeyOperationsConcurrencyTest, EightPushersLoseNothingWhileACaseIsErased) {
  StartServer();
  const protocol::NoteVerifier key = KeyFile(paths_->audit_public_key);
  Device first = NewDevice();
  PushCase(first, Id(1), "Amina");
  grpc::Status erase_status;
  PushRun run = PushWhile([&] {
    v1::EraseCaseResponse erasure;
    erase_status = Erase(admin_, Id(1), Id(1), &erasure);
  });

  ASSERT_TRUE(erase_status.ok()) << erase_status.error_message();
  ExpectEveryPushAccepted(run);
  // The audit log verifies, with every batch and the erasure in it.
  audit::VerifyReport report = Verify(Export(), key);
  ASSERT_TRUE(report.ok) << report.error;
  EXPECT_EQ(report.events_by_kind["batch-accepted"], uint64_t{1 + kPushers * kBatches});
  EXPECT_EQ(report.events_by_kind["case-erased"], 1u);
  StopServer();
  // The erased case's key is gone from the store.
  std::unique_ptr<storage::Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<crypto::MasterKeyRing> ring = crypto::MasterKeyRing::LoadFile(paths_->master_key);
  ASSERT_THAT(ring, IsOk());
  keys::CaseKeyStore keys(store.get(), &*ring);
  EXPECT_THAT(keys.State(*ParseUuid(Id(1))), IsOkAndHolds(keys::DekState::kErased));
  EXPECT_THAT(keys.State(*ParseUuid(PushedCase(0, 0))), IsOkAndHolds(keys::DekState::kPresent));
}

// A master key rotation rewraps every case key while tablets create new
// ones: no push fails, every case key ends wrapped under the new version
// (none left under the old one), and after a restart every case decrypts.
TEST_F(KeyOperationsConcurrencyTest, EightPushersLoseNothingWhileTheMasterKeyRotates) {
  StartServer();
  const protocol::NoteVerifier key = KeyFile(paths_->audit_public_key);
  Device first = NewDevice();
  PushCase(first, Id(1), "Amina");
  grpc::Status rotate_status;
  v1::RotateMasterKeyResponse rotated;
  PushRun run = PushWhile([&] { rotate_status = Rotate(&rotated); });

  ASSERT_TRUE(rotate_status.ok()) << rotate_status.error_message();
  EXPECT_EQ(rotated.new_version(), 2u);
  ExpectEveryPushAccepted(run);
  audit::VerifyReport report = Verify(Export(), key);
  ASSERT_TRUE(report.ok) << report.error;
  EXPECT_EQ(report.events_by_kind["batch-accepted"], uint64_t{1 + kPushers * kBatches});
  StopServer();
  {
    std::unique_ptr<storage::Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<crypto::MasterKeyRing> ring =
        crypto::MasterKeyRing::LoadFile(paths_->master_key);
    ASSERT_THAT(ring, IsOk());
    keys::CaseKeyStore keys(store.get(), &*ring);
    EXPECT_THAT(keys.WrappedVersion(*ParseUuid(Id(1))), IsOkAndHolds(2u));
    for (int t = 0; t < kPushers; ++t) {
      for (int b = 0; b < kBatches; ++b) {
        EXPECT_THAT(keys.WrappedVersion(*ParseUuid(PushedCase(t, b))), IsOkAndHolds(2u))
            << PushedCase(t, b);
      }
    }
  }
  StartServer();  // the restarted server decrypts every case
  std::vector<v1::PulledChange> pulled = PullAll(first);
  for (const std::string& id : {Id(1), PushedCase(0, 0), PushedCase(kPushers - 1, kBatches - 1)}) {
    const v1::PulledChange* c = FindCase(pulled, id);
    ASSERT_NE(c, nullptr) << id;
    const v1::PulledField* name = FindField(*c, "given_name");
    ASSERT_NE(name, nullptr) << id;
    EXPECT_EQ(name->value().string_value(), id == Id(1) ? "Amina" : "Baraka");
  }
}

// An audit key rotation while tablets push: no push fails, every receipt
// verifies for a tablet that follows the transition, and the log verifies
// with the first key file.
TEST_F(KeyOperationsConcurrencyTest, EightPushersLoseNothingWhileTheAuditKeyRotates) {
  StartServer();
  const protocol::NoteVerifier first = KeyFile(paths_->audit_public_key);
  grpc::Status rotate_status;
  v1::RotateAuditKeyResponse rotated;
  PushRun run = PushWhile([&] { rotate_status = RotateAudit(admin_, &rotated); });

  ASSERT_TRUE(rotate_status.ok()) << rotate_status.error_message();
  ExpectEveryPushAccepted(run);
  audit::VerifyReport report = Verify(Export(), first);
  ASSERT_TRUE(report.ok) << report.bad_record << ": " << report.error;
  ASSERT_EQ(report.key_transitions.size(), 1u);
  EXPECT_EQ(report.events_by_kind["batch-accepted"], uint64_t{kPushers * kBatches});
  EXPECT_EQ(report.final_key, KeyFile(rotated.verifier_key_file()).VerifierKey());
}

}  // namespace
}  // namespace fieldsync::server
