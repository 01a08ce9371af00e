// AdminService.CreateBackup through a real fieldsyncd (FieldsyncServer) on
// an ephemeral loopback port over real mutual TLS, while devices push;
// admin::VerifyBackup against tampered backups and wrong keys; and
// admin::RestoreBackup into a new directory that a second FieldsyncServer
// then serves.
#include "admin/backup.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "admin/deployment.h"
#include "admin/server_keys.h"
#include "common/file_io.h"
#include "common/proto_text.h"
#include "crypto/master_key.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/audit.grpc.pb.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
#include "server/config.h"
#include "server/server.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/log_codec.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace fs = std::filesystem;

using Credentials = ::fieldsync::testing::ClientCredentials;
using Device = ::fieldsync::testing::EnrolledDevice;

std::string CaseId(int device, int n) {
  return absl::StrFormat("00000000-0000-4000-8%03x-%012x", device, n);
}

v1::FieldValue Enum(std::string_view s) {
  v1::FieldValue v;
  v.set_enum_value(std::string(s));
  return v;
}

// A new case in region northern, registered by a device.
v1::RecordChange NewCase(const std::string& case_id, absl::Time now) {
  v1::RecordChange c;
  c.set_change_id(case_id);
  c.set_case_id(case_id);
  c.set_record_id(case_id);
  c.set_record_type("case_registration");
  c.set_kind(v1::CHANGE_KIND_UPSERT);
  c.mutable_hlc()->set_wall_micros(absl::ToUnixMicros(now));
  auto add = [&](const char* f, v1::FieldValue v) {
    v1::FieldWrite* w = c.add_fields();
    w->set_field(f);
    *w->mutable_value() = std::move(v);
  };
  v1::FieldValue name;
  name.set_string_value("SYNTHETIC");
  add("given_name", name);
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

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

class BackupTest : public ::fieldsync::testing::ServerHarness {
 protected:
  // Backups of a busy store take their time on a loaded machine.
  BackupTest() : ServerHarness(20261202) { call_timeout_ = absl::Seconds(60); }

  void SetUp() override {
    ServerHarness::SetUp();
    key_ = Key(paths_->audit_public_key);
  }

  static std::unique_ptr<protocol::NoteVerifier> Key(const std::string& path) {
    absl::StatusOr<std::string> text = ReadFile(path);
    EXPECT_THAT(text, IsOk());
    absl::StatusOr<protocol::NoteVerifier> key = protocol::NoteVerifier::FromVerifierKey(
        std::string(absl::StripTrailingAsciiWhitespace(*text)));
    EXPECT_THAT(key, IsOk());
    return std::make_unique<protocol::NoteVerifier>(*std::move(key));
  }

  // Starts a FieldsyncServer on `data_dir` as fieldsyncd does: its config
  // file when it has one, then the defaults.
  std::unique_ptr<FieldsyncServer> Start(const std::string& data_dir) {
    ServerOptions options;
    options.data_dir = data_dir;
    absl::StatusOr<v1::ServerConfig> file = LoadConfigFile(data_dir + "/fieldsyncd.conf");
    if (file.ok()) options.config = *std::move(file);
    options.config.set_listen("127.0.0.1:0");
    options.config.set_drain_timeout_seconds(2);
    ApplyDefaults(options.data_dir, &options.config);
    options.clock = &clock_;
    options.random = &random_;
    absl::StatusOr<std::unique_ptr<FieldsyncServer>> s = FieldsyncServer::Start(options);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? *std::move(s) : nullptr;
  }

  void StartServer() {
    server_ = Start(paths_->root);
    ASSERT_NE(server_, nullptr);
  }

  grpc::Status CreateBackup(const std::string& out_dir, v1::CreateBackupResponse* response,
                            const Credentials* caller = nullptr) {
    v1::CreateBackupRequest request;
    request.set_out_dir(out_dir);
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::AdminService::NewStub(Channel(caller != nullptr ? caller : &admin_))
        ->CreateBackup(&context, request, response);
  }

  // A backup at dir_/name, made by the running server.
  std::string Backup(const std::string& name) {
    v1::CreateBackupResponse response;
    grpc::Status s = CreateBackup(dir_.Sub(name), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return dir_.Sub(name);
  }

  // Pushes one batch (sequence `sequence`) registering case `case_id`.
  grpc::Status PushCase(const Device& d, grpc::Channel* channel, uint64_t sequence,
                        const std::string& case_id) {
    v1::PushRequest request;
    *request.mutable_batch() = Seal(d, {NewCase(case_id, clock_.Now())}, sequence, case_id);
    v1::PushResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    return v1::SyncService::NewStub(std::shared_ptr<grpc::Channel>(channel, [](auto*) {}))
        ->Push(&context, request, &response);
  }

  // The case ids of every entry of the case log of the store at `db`.
  static std::set<std::string> CaseLogCases(const std::string& db) {
    storage::StoreOptions options;
    options.path = db;
    options.read_only = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    EXPECT_THAT(store, IsOk());
    std::set<std::string> cases;
    if (!store.ok()) return cases;
    std::unique_ptr<storage::Iterator> it = (*store)->NewIterator(storage::Cf::kCaseLog, "", "");
    for (; it->Valid(); it->Next()) {
      v1::CaseLogEntry entry;
      absl::StatusOr<uint64_t> position = storage::DecodeCaseLogKey(it->key());
      EXPECT_THAT(position, IsOk());
      if (!position.ok()) continue;
      EXPECT_THAT(sync::DecodeLogEntry(it->value(), *position, (*store)->names(), &entry), IsOk());
      cases.insert(entry.case_id());
    }
    EXPECT_THAT(it->status(), IsOk());
    return cases;
  }

  admin::BackupReport Verify(const std::string& backup) {
    return admin::VerifyBackup(backup, *key_);
  }

  // The name of the first failed check ("" when the backup verifies).
  std::string FailedCheck(const std::string& backup) {
    admin::BackupReport r = Verify(backup);
    return r.ok ? "" : r.checks.back().name;
  }

  absl::StatusOr<admin::RestoredDeployment> Restore(const std::string& backup,
                                                    const std::string& target,
                                                    const std::string& master_key_file) {
    admin::RestoreOptions options;
    options.backup_dir = backup;
    options.data_dir = target;
    options.master_key_file = master_key_file;
    return admin::RestoreBackup(options);
  }

  std::unique_ptr<protocol::NoteVerifier> key_;
};

TEST_F(BackupTest, BackupWhileDevicesPushHoldsEveryBatchAcknowledgedBeforeIt) {
  StartServer();
  constexpr int kDevices = 4;
  std::vector<Device> devices;
  for (int i = 0; i < kDevices; ++i) devices.push_back(NewDevice());
  absl::Mutex mu;
  std::vector<std::string> acknowledged;  // guarded by mu
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> pushers;
  for (int i = 0; i < kDevices; ++i) {
    pushers.emplace_back([&, i] {
      std::shared_ptr<grpc::Channel> channel = Channel(&devices[i].tls);
      for (int n = 1; n <= 400 && !stop.load(); ++n) {
        const std::string case_id = CaseId(i, n);
        grpc::Status s = PushCase(devices[i], channel.get(), n, case_id);
        if (!s.ok()) {
          ++failures;
          return;
        }
        absl::MutexLock lock(&mu);
        acknowledged.push_back(case_id);
      }
    });
  }
  auto acked = [&] {
    absl::MutexLock lock(&mu);
    return acknowledged;
  };
  const bool started = mu.LockWhenWithTimeout(
      absl::Condition(
          +[](std::vector<std::string>* a) { return a->size() >= 3 * kDevices; }, &acknowledged),
      absl::Seconds(60));
  mu.Unlock();
  ASSERT_TRUE(started) << "pushes did not start";

  const std::vector<std::string> before = acked();
  v1::CreateBackupResponse response;
  grpc::Status backed_up = CreateBackup(dir_.Sub("backup"), &response);
  const size_t during = acked().size();
  stop = true;
  for (std::thread& t : pushers) t.join();

  ASSERT_TRUE(backed_up.ok()) << backed_up.error_message();
  EXPECT_EQ(failures.load(), 0);
  RecordProperty("acknowledged_before_backup", static_cast<int>(before.size()));
  RecordProperty("acknowledged_when_backup_returned", static_cast<int>(during));
  std::set<std::string> in_backup = CaseLogCases(dir_.Sub("backup/db"));
  for (const std::string& id : before) EXPECT_EQ(in_backup.count(id), 1u) << id;
  EXPECT_LE(in_backup.size(), acked().size());
  admin::BackupReport report = Verify(dir_.Sub("backup"));
  EXPECT_TRUE(report.ok) << report.Failure();
  EXPECT_EQ(report.head.size, response.tree_size());
  EXPECT_EQ(response.head().tree_size(), response.tree_size());
}

TEST_F(BackupTest, BackupIsAuditedAndHoldsNoMasterKey) {
  StartServer();
  v1::CreateBackupResponse response;
  grpc::Status s = CreateBackup(dir_.Sub("backup"), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::GetEntriesRequest request;
  request.set_start(response.audit_leaf_index());
  request.set_end(response.audit_leaf_index() + 1);
  grpc::ClientContext context;
  SetDeadline(&context);
  // A head covering the event first, then the entry.
  {
    v1::GetSignedTreeHeadRequest head_request;
    v1::SignedTreeHead head;
    grpc::ClientContext head_context;
    SetDeadline(&head_context);
    ASSERT_TRUE(v1::AuditService::NewStub(Channel(&admin_))
                    ->GetSignedTreeHead(&head_context, head_request, &head)
                    .ok());
  }
  auto reader = v1::AuditService::NewStub(Channel(&admin_))->GetEntries(&context, request);
  v1::AuditEntries chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  ASSERT_EQ(chunk.entries_size(), 1);
  absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(chunk.entries(0));
  ASSERT_THAT(event, IsOk());
  const auto* action = std::get_if<protocol::AdminAction>(&event->body);
  ASSERT_NE(action, nullptr);
  EXPECT_EQ(action->actor, "fieldsync://staff/admin");
  EXPECT_EQ(action->action, "backup.create");
  EXPECT_THAT(action->subject_ids,
              ::testing::ElementsAre(absl::StrFormat("tree_size=%d", response.tree_size()),
                                     ::testing::StartsWith("root=")));
  EXPECT_EQ(response.audit_leaf_index(), response.tree_size()) << "recorded after the checkpoint";
  EXPECT_THAT(response.files(), ::testing::Not(::testing::Contains("master.key")));
  const std::string master = *ReadFile(paths_->master_key);
  for (const auto& e : fs::recursive_directory_iterator(dir_.Sub("backup"))) {
    if (!e.is_regular_file()) continue;
    EXPECT_THAT(*ReadFile(e.path().string()), ::testing::Not(HasSubstr(master))) << e.path();
  }
  EXPECT_EQ(fs::status(dir_.Sub("backup")).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(BackupTest, CreateRefusesAnExistingRelativeOrInDatabaseDirectory) {
  StartServer();
  fs::create_directory(dir_.Sub("full"));
  Write(dir_.Sub("full/x"), "x");
  v1::CreateBackupResponse response;

  EXPECT_EQ(CreateBackup(dir_.Sub("full"), &response).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(CreateBackup("relative/backup", &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CreateBackup(paths_->db + "/backup", &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CreateBackup(dir_.Sub("missing/backup"), &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(*ReadFile(dir_.Sub("full/x")), "x");
  fs::create_directory(dir_.Sub("empty"));
  EXPECT_TRUE(CreateBackup(dir_.Sub("empty"), &response).ok());
}

TEST_F(BackupTest, DirectoryWithAControlOrBidiCharacterIsRefusedAndNothingIsMade) {
  StartServer();
  v1::CreateBackupResponse response;

  for (const std::string& name :
       {std::string("back\nup"), std::string("back\u202Eup"), std::string("back\x1b[2Jup")}) {
    grpc::Status s = CreateBackup(dir_.Sub(name), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("out_dir"));
    EXPECT_FALSE(fs::exists(dir_.Sub(name)));
  }
}

TEST_F(BackupTest, OnlyAdministratorsBackUp) {
  StartServer();
  Credentials auditor = AddStaff("aud", v1::ROLE_AUDITOR, {});
  v1::CreateBackupResponse response;

  grpc::Status s = CreateBackup(dir_.Sub("backup"), &response, &auditor);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(fs::exists(dir_.Sub("backup")));
}

TEST_F(BackupTest, RestoredDeploymentServesItsAdministratorAndItsCases) {
  StartServer();
  Credentials supervisor = AddStaff("sup", v1::ROLE_SUPERVISOR);
  Device device = NewDevice();
  std::shared_ptr<grpc::Channel> channel = Channel(&device.tls);
  for (int n = 1; n <= 3; ++n) {
    ASSERT_TRUE(PushCase(device, channel.get(), n, CaseId(0, n)).ok());
  }
  const std::string backup = Backup("backup");
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();

  absl::StatusOr<admin::RestoredDeployment> restored =
      Restore(backup, dir_.Sub("restored"), paths_->master_key);
  ASSERT_THAT(restored, IsOk());
  EXPECT_TRUE(restored->is_master_key_installed);
  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("restored/master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.Sub("restored/tls/server.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.Sub("restored").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::unique_ptr<FieldsyncServer> again = Start(dir_.Sub("restored"));
  ASSERT_NE(again, nullptr);

  Credentials restored_admin{*ReadFile(dir_.Sub("restored/admin/admin.crt")),
                             *ReadFile(dir_.Sub("restored/admin/admin.key"))};
  v1::WhoAmIResponse who;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = v1::AdminService::NewStub(Channel(&restored_admin, *again))
                         ->WhoAmI(&context, v1::WhoAmIRequest(), &who);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(who.principal_uri(), "fieldsync://staff/admin");
  v1::ListCasesRequest list;
  list.set_region("northern");
  v1::ListCasesResponse cases;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s =
        v1::CaseService::NewStub(Channel(&supervisor, *again))->ListCases(&context, list, &cases);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  std::set<std::string> ids;
  for (const v1::CaseSummary& c : cases.cases()) ids.insert(c.case_id());
  EXPECT_EQ(ids, (std::set<std::string>{CaseId(0, 1), CaseId(0, 2), CaseId(0, 3)}));
  // The restored log signs heads that extend the backup's.
  v1::SignedTreeHead head;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status s = v1::AuditService::NewStub(Channel(&restored_admin, *again))
                         ->GetSignedTreeHead(&context, v1::GetSignedTreeHeadRequest(), &head);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_GE(head.tree_size(), restored->report.head.size);
  ASSERT_THAT(again->Shutdown(), IsOk());
}

TEST_F(BackupTest, RestoreWithoutAMasterKeyLeavesItToTheOperator) {
  StartServer();
  const std::string backup = Backup("backup");
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();

  absl::StatusOr<admin::RestoredDeployment> restored = Restore(backup, dir_.Sub("restored"), "");

  ASSERT_THAT(restored, IsOk());
  EXPECT_FALSE(restored->is_master_key_installed);
  EXPECT_EQ(restored->master_key_path, dir_.Sub("restored/master.key"));
  EXPECT_FALSE(fs::exists(dir_.Sub("restored/master.key")));
  ASSERT_THAT(WriteNewFile(dir_.Sub("restored/master.key"), *ReadFile(paths_->master_key), 0600),
              IsOk());
  std::unique_ptr<FieldsyncServer> again = Start(dir_.Sub("restored"));
  ASSERT_NE(again, nullptr);
  EXPECT_THAT(again->Shutdown(), IsOk());
}

TEST_F(BackupTest, ConfigPathsOutsideTheDataDirectoryAreResetToTheRestoredCopies) {
  fs::create_directory(dir_.Sub("etc"));
  fs::copy_file(paths_->schema, dir_.Sub("etc/schema.textproto"));
  fs::copy_file(paths_->master_key, dir_.Sub("etc/master.key"));
  ::chmod(dir_.Sub("etc/master.key").c_str(), 0600);
  fs::remove(paths_->config);
  Write(paths_->config,
        absl::StrFormat("schema_file: \"%s\"\nmaster_key_file: \"%s\"\n",
                        dir_.Sub("etc/schema.textproto"), dir_.Sub("etc/master.key")));
  StartServer();
  const std::string backup = Backup("backup");
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();
  fs::remove_all(dir_.Sub("etc"));

  absl::StatusOr<admin::RestoredDeployment> restored =
      Restore(backup, dir_.Sub("restored"), paths_->master_key);

  ASSERT_THAT(restored, IsOk());
  EXPECT_THAT(restored->config_keys_reset,
              ::testing::UnorderedElementsAre("schema_file", "master_key_file"));
  v1::ServerConfig config;
  ASSERT_THAT(ParseTextOrJson(*ReadFile(dir_.Sub("restored/fieldsyncd.conf")), "config", &config),
              IsOk());
  EXPECT_THAT(config.schema_file(), IsEmpty());
  EXPECT_THAT(config.master_key_file(), IsEmpty());
  std::unique_ptr<FieldsyncServer> again = Start(dir_.Sub("restored"));
  ASSERT_NE(again, nullptr);
  EXPECT_THAT(again->Shutdown(), IsOk());
}

TEST_F(BackupTest, VerifyRefusesAFlippedByteInTheHeadsSignature) {
  StartServer();
  const std::string backup = Backup("backup");
  std::string note = *ReadFile(backup + "/tree-head.note");
  const size_t sig = note.rfind(' ') + 10;  // inside the signature's base64
  note[sig] = note[sig] == 'A' ? 'B' : 'A';
  Write(backup + "/tree-head.note", note);

  admin::BackupReport report = Verify(backup);

  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.checks.back().name, "tree head");
  EXPECT_THAT(report.Failure(), HasSubstr("does not verify with the key"));
}

TEST_F(BackupTest, VerifyRefusesEveryFlippedByteOfTheHead) {
  StartServer();
  const std::string backup = Backup("backup");
  const std::string note = *ReadFile(backup + "/tree-head.note");
  const admin::BackupReport good = Verify(backup);
  ASSERT_TRUE(good.ok) << good.Failure();

  for (size_t i = 0; i < note.size(); ++i) {
    std::string flipped = note;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    Write(backup + "/tree-head.note", flipped);
    admin::BackupReport r = Verify(backup);
    if (r.ok) {
      EXPECT_EQ(r.head, good.head) << "byte " << i;  // the same head, differently written
    } else {
      EXPECT_EQ(r.checks.back().name, "tree head") << "byte " << i;
    }
  }
}

TEST_F(BackupTest, VerifyRefusesTheHeadOfAnotherBackup) {
  StartServer();
  const std::string first = Backup("first");
  AddStaff("aud", v1::ROLE_AUDITOR, {});  // the tree grows
  const std::string second = Backup("second");
  const uint64_t first_size = Verify(first).head.size;
  fs::remove(second + "/tree-head.note");
  fs::copy_file(first + "/tree-head.note", second + "/tree-head.note");

  admin::BackupReport report = Verify(second);

  EXPECT_FALSE(report.ok);
  EXPECT_THAT(report.Failure(), HasSubstr("the head is for tree size"));
  // With the manifest agreeing, the stored tree still gives it away.
  std::string manifest = *ReadFile(second + "/MANIFEST.textproto");
  v1::BackupManifest m;
  ASSERT_THAT(ParseTextOrJson(manifest, "manifest", &m), IsOk());
  const std::string from = absl::StrFormat("audit_tree_size: %d", m.audit_tree_size());
  manifest.replace(manifest.find(from), from.size(),
                   absl::StrFormat("audit_tree_size: %d", first_size));
  Write(second + "/MANIFEST.textproto", manifest);
  report = Verify(second);
  EXPECT_EQ(report.checks.back().name, "audit tree");
  EXPECT_THAT(report.Failure(), HasSubstr("leaves but the head is for size"));
}

TEST_F(BackupTest, VerifyRefusesAHeadWhoseRootIsNotTheStoredTrees) {
  StartServer();
  const std::string backup = Backup("backup");
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();
  // Signed with the deployment's own audit key, for the right size.
  storage::StoreOptions options;
  options.path = paths_->db;
  options.read_only = true;
  std::unique_ptr<storage::Store> store = *storage::Store::Open(options);
  absl::StatusOr<admin::ServerKeys> keys =
      admin::LoadServerKeys(*store, *crypto::MasterKeyRing::LoadFile(paths_->master_key));
  ASSERT_THAT(keys, IsOk());
  absl::StatusOr<protocol::NoteSigner> signer =
      protocol::NoteSigner::Create(keys->audit_origin, keys->audit_signing_seed.span());
  ASSERT_THAT(signer, IsOk());
  admin::BackupReport good = Verify(backup);
  protocol::Checkpoint forged = good.head;
  forged.root[0] ^= 0x01;
  Write(backup + "/tree-head.note", *protocol::SignCheckpoint(forged, *signer));

  admin::BackupReport report = Verify(backup);

  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.checks.back().name, "audit tree");
  EXPECT_THAT(report.Failure(), HasSubstr("another root than the head"));
}

TEST_F(BackupTest, VerifyRefusesAnAlteredAuditEntry) {
  StartServer();
  const std::string backup = Backup("backup");
  {
    storage::StoreOptions options;
    options.path = backup + "/db";
    std::unique_ptr<storage::Store> store = *storage::Store::Open(options);
    std::string entry = *store->Get(storage::Cf::kAuditLeaves, storage::EncodeAuditLeafKey(0));
    entry.back() = static_cast<char>(entry.back() ^ 0x01);
    storage::WriteBatch batch;
    batch.Put(storage::Cf::kAuditLeaves, storage::EncodeAuditLeafKey(0), entry);
    ASSERT_THAT(store->Commit(&batch), IsOk());
  }

  admin::BackupReport report = Verify(backup);

  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.checks.back().name, "audit log");
}

TEST_F(BackupTest, VerifyRefusesTheKeyOfAnotherLog) {
  StartServer();
  const std::string backup = Backup("backup");
  admin::InitOptions other;
  other.data_dir = dir_.Sub("other");
  other.clock = &clock_;
  other.random = &random_;
  ASSERT_THAT(admin::InitDeployment(other), IsOk());

  admin::BackupReport report =
      admin::VerifyBackup(backup, *Key(admin::DeploymentPaths(other.data_dir).audit_public_key));

  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.checks.back().name, "tree head");
  EXPECT_THAT(report.Failure(), HasSubstr("the key of another log"));
}

TEST_F(BackupTest, VerifyRefusesAChangedFileAndAMasterKeyInTheBackup) {
  StartServer();
  const std::string backup = Backup("backup");
  std::string schema = *ReadFile(backup + "/files/schema.textproto");
  schema[10] = static_cast<char>(schema[10] ^ 0x01);
  Write(backup + "/files/schema.textproto", schema);
  EXPECT_THAT(Verify(backup).Failure(), HasSubstr("schema.textproto differs"));
  schema[10] = static_cast<char>(schema[10] ^ 0x01);
  Write(backup + "/files/schema.textproto", schema);
  ASSERT_TRUE(Verify(backup).ok);

  fs::copy_file(paths_->master_key, backup + "/files/master.key");

  EXPECT_THAT(Verify(backup).Failure(), HasSubstr("holds a master.key"));
}

TEST_F(BackupTest, EveryFlippedByteOfTheManifestIsRefusedOrChangesNothing) {
  StartServer();
  const std::string backup = Backup("backup");
  const std::string manifest = *ReadFile(backup + "/MANIFEST.textproto");
  v1::BackupManifest original;
  ASSERT_THAT(ParseTextOrJson(manifest, "manifest", &original), IsOk());

  for (size_t i = 0; i < manifest.size(); ++i) {
    std::string flipped = manifest;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    Write(backup + "/MANIFEST.textproto", flipped);
    admin::BackupReport r = Verify(backup);
    if (r.ok) {
      // Only who asked for the backup is not checked against anything.
      r.manifest.clear_created_by();
      v1::BackupManifest expected = original;
      expected.clear_created_by();
      EXPECT_EQ(r.manifest.SerializeAsString(), expected.SerializeAsString()) << "byte " << i;
    }
  }
}

TEST_F(BackupTest, TruncatedManifestsAreRefused) {
  StartServer();
  const std::string backup = Backup("backup");
  const std::string manifest = *ReadFile(backup + "/MANIFEST.textproto");

  for (size_t n = 0; n + 1 < manifest.size(); n += 7) {
    Write(backup + "/MANIFEST.textproto", manifest.substr(0, n));
    admin::BackupReport r = Verify(backup);
    EXPECT_FALSE(r.ok) << n;
    EXPECT_EQ(r.checks.back().name, "manifest") << n;
  }
}

TEST_F(BackupTest, RestoreRefusesANonEmptyTargetAndChangesNothing) {
  StartServer();
  const std::string backup = Backup("backup");
  fs::create_directory(dir_.Sub("target"));
  Write(dir_.Sub("target/keep"), "keep");

  EXPECT_THAT(Restore(backup, dir_.Sub("target"), paths_->master_key),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(Restore(backup, paths_->root, paths_->master_key),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(*ReadFile(dir_.Sub("target/keep")), "keep");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.Sub("target")), fs::directory_iterator()), 1);
}

TEST_F(BackupTest, RestoreRefusesABackupWithoutAManifest) {
  StartServer();
  const std::string backup = Backup("backup");
  fs::remove(backup + "/MANIFEST.textproto");

  absl::StatusOr<admin::RestoredDeployment> r =
      Restore(backup, dir_.Sub("restored"), paths_->master_key);

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(r.status().message(), HasSubstr("not a fieldsync backup"));
  EXPECT_FALSE(fs::exists(dir_.Sub("restored")));
}

TEST_F(BackupTest, RestoreRefusesATruncatedOrMalformedManifest) {
  StartServer();
  const std::string backup = Backup("backup");
  const std::string manifest = *ReadFile(backup + "/MANIFEST.textproto");

  for (const std::string& bad :
       {manifest.substr(0, manifest.size() / 2), std::string("\x00\xff garbage", 10),
        absl::StrCat(manifest, "files { name: \"../../etc/passwd\" sha256: \"",
                     std::string(64, 'a'), "\" }\n"),
        absl::StrCat(manifest, "files { name: \"master.key\" sha256: \"", std::string(64, 'a'),
                     "\" }\n")}) {
    Write(backup + "/MANIFEST.textproto", bad);
    absl::StatusOr<admin::RestoredDeployment> r =
        Restore(backup, dir_.Sub("restored"), paths_->master_key);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss));
    EXPECT_THAT(r.status().message(), HasSubstr("manifest"));
    EXPECT_FALSE(fs::exists(dir_.Sub("restored")));
  }
}

TEST_F(BackupTest, RestoreRefusesAnotherDeploymentsMasterKeyAndLeavesNothing) {
  StartServer();
  const std::string backup = Backup("backup");
  admin::InitOptions other;
  other.data_dir = dir_.Sub("other");
  other.clock = &clock_;
  other.random = &random_;
  ASSERT_THAT(admin::InitDeployment(other), IsOk());

  absl::StatusOr<admin::RestoredDeployment> r =
      Restore(backup, dir_.Sub("restored"), admin::DeploymentPaths(other.data_dir).master_key);

  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr("does not open this backup's keys"));
  EXPECT_FALSE(fs::exists(dir_.Sub("restored")));
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_THAT(e.path().filename().string(), ::testing::Not(HasSubstr(".restore-")));
  }
}

}  // namespace
}  // namespace fieldsync::server
