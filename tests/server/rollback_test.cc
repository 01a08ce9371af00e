// Rollback and fork detection at start (server/audit_rollback.h), through
// a real fieldsyncd (FieldsyncServer) over real mutual TLS on a real
// RocksDB store: a store restored from an older copy under a newer
// published head is refused with both sizes; `--accept-rollback SIZE` is
// audited, signs a new head and is needed once; a fork and a whole
// restored data directory (caught by the configured copy) are refused; a
// device whose enrolment the restore lost is told to re-enrol.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "admin/deployment.h"
#include "audit/export.h"
#include "common/file_io.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
#include "server/config.h"
#include "server/server.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

using Credentials = ::fieldsync::testing::ClientCredentials;
using ::fieldsync::testing::EnrolledDevice;

// The SyncErrorDetail reason of a refused call (PROTOCOL.md §8).
v1::SyncErrorReason ReasonOf(const grpc::Status& s) {
  return ::fieldsync::testing::DetailOf(s).reason();
}

void CopyTree(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::remove_all(to, ec);
  fs::copy(from, to, fs::copy_options::recursive, ec);
  ASSERT_FALSE(ec) << ec.message();
}

class RollbackTest : public ::fieldsync::testing::ServerHarness {
 protected:
  RollbackTest() : ServerHarness(20261202) { call_timeout_ = absl::Seconds(60); }

  void SetUp() override {
    ServerHarness::SetUp();
    data_dir_ = paths_->root;
    absl::StatusOr<protocol::NoteVerifier> key = protocol::NoteVerifier::FromVerifierKey(
        std::string(absl::StripTrailingAsciiWhitespace(*ReadFile(paths_->audit_public_key))));
    ASSERT_THAT(key, IsOk());
    key_ = std::make_unique<protocol::NoteVerifier>(*std::move(key));
  }

  void TearDown() override { Stop(); }

  // Starts fieldsyncd with head_copy_file_ as its audit head copy and, if
  // given, --accept-rollback `accept`.
  absl::StatusOr<std::unique_ptr<FieldsyncServer>> TryStart(
      std::optional<uint64_t> accept = std::nullopt) {
    config_.set_audit_head_copy_file(head_copy_file_);
    ServerOptions options = Options();
    EXPECT_THAT(ValidateConfig(options.config), IsOk());
    options.accept_rollback_size = accept;
    return FieldsyncServer::Start(options);
  }

  void Start(std::optional<uint64_t> accept = std::nullopt) {
    absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = TryStart(accept);
    ASSERT_THAT(s, IsOk());
    server_ = *std::move(s);
  }

  void Stop() {
    if (server_ != nullptr) {
      EXPECT_THAT(server_->Shutdown(), IsOk());
    }
    server_.reset();
  }

  // One audited administrator action (an officer registered).
  void AddOfficer(const std::string& id) {
    grpc::Status s = CallAddOfficer(id, "northern");
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The server's signed head for its whole tree (signed now if needed).
  v1::SignedTreeHead Head() {
    v1::SignedTreeHead head;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = v1::AuditService::NewStub(Channel(&admin_))
                         ->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return head;
  }

  // `n` audited actions, then a published head; returns its size.
  uint64_t GrowAndPublish(const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) AddOfficer(absl::StrFormat("%s%d", prefix, i));
    return Head().tree_size();
  }

  // An export of the whole log as `fieldsync audit export` writes it.
  std::string Export() {
    v1::SignedTreeHead head = Head();
    std::string out(audit::kExportMagic);
    out += audit::ExportHeadRecord(head.note());
    v1::GetEntriesRequest request;
    request.set_end(head.tree_size());
    grpc::ClientContext context;
    SetDeadline(&context);
    auto reader = v1::AuditService::NewStub(Channel(&admin_))->GetEntries(&context, request);
    v1::AuditEntries chunk;
    uint64_t next = 0;
    while (reader->Read(&chunk)) {
      for (const std::string& entry : chunk.entries()) {
        out += audit::ExportEntryRecord(next++, entry);
      }
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    out += audit::ExportEndRecord(next, 1);
    return out;
  }

  audit::VerifyReport VerifyExport(const std::string& file,
                                   std::optional<std::string> trusted = std::nullopt) {
    std::istringstream in(file);
    audit::VerifyOptions options;
    options.key = key_.get();
    options.trusted_head = trusted;
    return audit::VerifyExport(in, options);
  }

  std::vector<protocol::Event> Events(const std::string& file) {
    std::vector<protocol::Event> events;
    // Entry records follow the magic and the one head record.
    size_t at = audit::kExportMagic.size();
    while (at + 5 <= file.size()) {
      const uint8_t type = static_cast<uint8_t>(file[at]);
      uint32_t len = 0;
      for (int i = 1; i <= 4; ++i) len = (len << 8) | static_cast<uint8_t>(file[at + i]);
      if (type == 2) {
        absl::StatusOr<protocol::Event> e =
            protocol::DecodeEvent(file.substr(at + 5 + 40, len - 40));
        EXPECT_THAT(e, IsOk());
        if (e.ok()) events.push_back(*e);
      }
      at += 5 + len;
    }
    return events;
  }

  std::string Db() const { return data_dir_ + "/db"; }
  std::string HeadFile() const { return data_dir_ + "/audit-head.note"; }

  std::string data_dir_;
  std::string head_copy_file_;
  std::unique_ptr<protocol::NoteVerifier> key_;
};

TEST_F(RollbackTest, OlderStoreUnderNewerHeadRefusesToStartNamingBothSizes) {
  Start();
  const uint64_t old_size = GrowAndPublish("a", 2);
  Stop();
  CopyTree(Db(), dir_.Sub("db.old"));
  Start();
  const uint64_t new_size = GrowAndPublish("b", 3);
  Stop();
  ASSERT_GT(new_size, old_size);
  CopyTree(dir_.Sub("db.old"), Db());

  absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = TryStart();

  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          AllOf(HasSubstr(absl::StrFormat("audit tree (size %d)", old_size)),
                                HasSubstr(absl::StrFormat("size %d, in", new_size)),
                                HasSubstr(HeadFile()), HasSubstr("Restore the newer store"),
                                HasSubstr(absl::StrFormat("--accept-rollback %d", old_size)))));
  if (!s.ok()) {
    EXPECT_EQ(std::string(s.status().message()).find('\n'), std::string::npos);
  }
  // Refused before anything was written: the same refusal again.
  EXPECT_THAT(TryStart(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr(absl::StrFormat("(size %d)", old_size))));
}

TEST_F(RollbackTest, AcceptedRollbackIsAuditedSignsANewHeadAndIsNeededOnce) {
  Start();
  const uint64_t old_size = GrowAndPublish("a", 2);
  Stop();
  CopyTree(Db(), dir_.Sub("db.old"));
  Start();
  const v1::SignedTreeHead abandoned = [&] {
    GrowAndPublish("b", 3);
    return Head();
  }();
  Stop();
  CopyTree(dir_.Sub("db.old"), Db());

  Start(old_size);

  // The acceptance is the entry at the store's size, by the local
  // operator, naming the continued tree and the abandoned head.
  const std::string file = Export();
  std::vector<protocol::Event> events = Events(file);
  ASSERT_GT(events.size(), old_size);
  const auto* accepted = std::get_if<protocol::RollbackAccepted>(&events[old_size].body);
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->continued_size, old_size);
  EXPECT_THAT(accepted->actor, HasSubstr("local-operator:uid="));
  ASSERT_EQ(accepted->abandoned_heads.size(), 1u);
  EXPECT_EQ(accepted->abandoned_heads[0], abandoned.note());
  // A new head covers it, and the head file holds that head.
  const v1::SignedTreeHead head = Head();
  EXPECT_EQ(head.tree_size(), old_size + 1);
  EXPECT_EQ(*ReadFile(HeadFile()), head.note());
  // The export verifies and reports the rollback.
  audit::VerifyReport report = VerifyExport(file);
  ASSERT_TRUE(report.ok) << report.error;
  EXPECT_EQ(report.events_by_kind["rollback-accepted"], 1u);
  ASSERT_EQ(report.rollbacks.size(), 1u);
  EXPECT_EQ(report.rollbacks[0].entry, old_size);
  EXPECT_EQ(report.rollbacks[0].continued_size, old_size);
  EXPECT_EQ(report.rollbacks[0].abandoned_sizes, std::vector<uint64_t>{abandoned.tree_size()});
  // A head saved before the rollback is not extended, and the verifier
  // says which entry accepted that.
  audit::VerifyReport saved = VerifyExport(file, abandoned.note());
  EXPECT_FALSE(saved.ok);
  EXPECT_THAT(saved.error, HasSubstr(absl::StrFormat("accepted at entry %d", old_size)));

  // The log goes on, and restarts need no flag.
  GrowAndPublish("c", 2);
  Stop();
  Start();
  const uint64_t later = GrowAndPublish("d", 1);
  EXPECT_GT(later, head.tree_size());
  audit::VerifyReport after = VerifyExport(Export(), head.note());
  EXPECT_TRUE(after.ok) << after.error;
  // The flag left on is refused: there is nothing to accept any more.
  Stop();
  EXPECT_THAT(TryStart(later),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no rollback to accept")));
}

TEST_F(RollbackTest, AcceptanceOfAnotherSizeIsRefusedAndChangesNothing) {
  Start();
  const uint64_t old_size = GrowAndPublish("a", 2);
  Stop();
  CopyTree(Db(), dir_.Sub("db.old"));
  Start();
  const uint64_t new_size = GrowAndPublish("b", 2);
  Stop();
  CopyTree(dir_.Sub("db.old"), Db());
  const std::string head_before = *ReadFile(HeadFile());

  EXPECT_THAT(
      TryStart(new_size),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr(absl::StrFormat("--accept-rollback %d does not match", new_size)),
                     HasSubstr(absl::StrFormat("audit tree size %d", old_size)))));
  EXPECT_THAT(TryStart(old_size - 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing was accepted")));

  EXPECT_EQ(*ReadFile(HeadFile()), head_before);
  EXPECT_THAT(TryStart(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr(absl::StrFormat("(size %d)", old_size))));
}

TEST_F(RollbackTest, ForkedStoreUnderAHeadOfTheOtherBranchIsRefused) {
  Start();
  GrowAndPublish("a", 1);
  Stop();
  CopyTree(data_dir_, dir_.Sub("snapshot"));
  // Branch one goes on and publishes a head.
  Start();
  const uint64_t branch_one = GrowAndPublish("b", 2);
  Stop();
  const std::string branch_one_head = *ReadFile(HeadFile());
  // The whole older directory is restored and written to: branch two,
  // at least as large, with another history.
  CopyTree(dir_.Sub("snapshot"), data_dir_);
  Start();
  const uint64_t branch_two = GrowAndPublish("c", 3);
  Stop();
  ASSERT_GE(branch_two, branch_one);
  // Branch one's head comes back (e.g. a head file copied from the other
  // machine).
  {
    std::ofstream out(HeadFile(), std::ios::binary | std::ios::trunc);
    out << branch_one_head;
  }

  absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = TryStart();

  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kFailedPrecondition,
                  AllOf(HasSubstr(absl::StrFormat("audit tree (size %d)", branch_two)),
                        HasSubstr(absl::StrFormat("size %d, in", branch_one)), HasSubstr("forked"),
                        HasSubstr(absl::StrFormat("--accept-rollback %d", branch_two)))));
  // Accepting the fork records the other branch's head as abandoned.
  Start(branch_two);
  std::vector<protocol::Event> events = Events(Export());
  ASSERT_GT(events.size(), branch_two);
  const auto* accepted = std::get_if<protocol::RollbackAccepted>(&events[branch_two].body);
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->abandoned_heads, std::vector<std::string>{branch_one_head});
}

TEST_F(RollbackTest, HeadCopyElsewhereCatchesARestoreOfTheWholeDataDirectory) {
  fs::create_directories(dir_.Sub("elsewhere"));
  head_copy_file_ = dir_.Sub("elsewhere/audit-head.note");
  Start();
  const uint64_t old_size = GrowAndPublish("a", 2);
  Stop();
  CopyTree(data_dir_, dir_.Sub("snapshot"));
  Start();
  const uint64_t new_size = GrowAndPublish("b", 2);
  Stop();
  EXPECT_EQ(*ReadFile(head_copy_file_), *ReadFile(HeadFile()));
  // The whole directory, its head file included, from the older copy.
  CopyTree(dir_.Sub("snapshot"), data_dir_);

  absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = TryStart();

  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kFailedPrecondition,
                  AllOf(HasSubstr(absl::StrFormat("audit tree (size %d)", old_size)),
                        HasSubstr(absl::StrFormat("size %d, in %s", new_size, head_copy_file_)))));
  Start(old_size);
  EXPECT_EQ(*ReadFile(head_copy_file_), Head().note());
}

TEST_F(RollbackTest, HeadCopyInAMissingDirectoryIsRefused) {
  head_copy_file_ = dir_.Sub("not-mounted/audit-head.note");

  EXPECT_THAT(TryStart(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   AllOf(HasSubstr("audit_head_copy_file"),
                                         HasSubstr("does not exist or is not mounted"))));
}

TEST_F(RollbackTest, RelativeHeadCopyIsAConfigError) {
  v1::ServerConfig config;
  config.set_audit_head_copy_file("backups/audit-head.note");
  ApplyDefaults(data_dir_, &config);

  EXPECT_THAT(ValidateConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be an absolute path")));
}

TEST_F(RollbackTest, DeviceWhoseEnrolmentTheRestoreLostIsToldToReEnrol) {
  Start();
  AddOfficer("officer1");
  Stop();
  CopyTree(Db(), dir_.Sub("db.old"));
  Start();
  const std::string code = EnrolmentCode();
  EnrolledDevice tablet;
  {
    grpc::Status s = Enroll(code, &tablet);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const uint64_t new_size = Head().tree_size();
  Stop();
  CopyTree(dir_.Sub("db.old"), Db());
  absl::StatusOr<std::unique_ptr<FieldsyncServer>> refused = TryStart();
  ASSERT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr(absl::StrFormat("size %d", new_size))));
  // The administrator accepts the restored state; the tablet comes back.
  std::vector<std::string> words = absl::StrSplit(std::string(refused.status().message()), ' ');
  uint64_t size = 0;
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "--accept-rollback") {
      ASSERT_TRUE(absl::SimpleAtoi(words[i + 1], &size));
    }
  }
  Start(size);
  const Credentials device = tablet.tls;

  v1::PullRequest pull;
  grpc::ClientContext context;
  SetDeadline(&context);
  auto reader = v1::SyncService::NewStub(Channel(&device))->Pull(&context, pull);
  v1::PullChunk chunk;
  while (reader->Read(&chunk)) {
  }
  grpc::Status s = reader->Finish();

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ReasonOf(s), v1::SYNC_ERROR_REASON_NOT_ENROLLED);
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr("re-enrol"), HasSubstr("new enrolment code"), Not(HasSubstr(code))));
}

}  // namespace
}  // namespace fieldsync::server
