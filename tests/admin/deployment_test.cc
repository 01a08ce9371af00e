#include "admin/deployment.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_format.h"
#include "admin/principals.h"
#include "admin/server_keys.h"
#include "common/file_io.h"
#include "crypto/master_key.h"
#include "crypto/x509.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::admin {
namespace {

namespace fs = std::filesystem;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Every file under `root` with its bytes.
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) out[entry.path().string()] = *ReadFile(entry.path().string());
  }
  return out;
}

class DeploymentTest : public ::testing::Test {
 protected:
  InitOptions Options() {
    InitOptions o;
    o.data_dir = dir_.Sub("dep");
    o.hosts = {"fieldsync.example.org", "10.1.2.3"};
    o.clock = &clock_;
    o.random = &random_;
    return o;
  }
  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SimulatedClock clock_{absl::Now()};
  fieldsync::testing::SeededRandom random_{42};
};

TEST_F(DeploymentTest, InitCreatesACompleteDeployment) {
  absl::StatusOr<DeploymentInfo> info = InitDeployment(Options());
  ASSERT_THAT(info, IsOk());
  DeploymentPaths paths(Options().data_dir);
  EXPECT_THAT(CheckDeployment(paths.root), IsOk());
  for (const std::string& f :
       {paths.master_key, paths.config, paths.ca_cert, paths.server_cert, paths.server_key,
        paths.admin_cert, paths.admin_key, paths.audit_public_key}) {
    EXPECT_TRUE(fs::exists(f)) << f;
  }
  struct stat st;
  for (const std::string& secret : {paths.master_key, paths.server_key, paths.admin_key}) {
    ASSERT_EQ(stat(secret.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << secret;
  }
  auto server = crypto::ParseCertificate(*ReadFile(paths.server_cert));
  ASSERT_THAT(server, IsOk());
  EXPECT_THAT(server->dns_names, ::testing::Contains("fieldsync.example.org"));
  EXPECT_THAT(server->dns_names, ::testing::Contains("localhost"));
  auto admin = crypto::ParseCertificate(*ReadFile(paths.admin_cert));
  ASSERT_THAT(admin, IsOk());
  EXPECT_THAT(admin->uris, ::testing::ElementsAre("fieldsync://staff/admin"));
  EXPECT_THAT(crypto::VerifyCertificateChain(*ReadFile(paths.ca_cert), *ReadFile(paths.admin_cert),
                                             clock_.Now()),
              IsOk());
  EXPECT_THAT(*ReadFile(paths.audit_public_key), HasSubstr(info->audit_origin + "+"));
}

TEST_F(DeploymentTest, RegistryHoldsTheAdministrator) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  storage::StoreOptions so;
  so.path = DeploymentPaths(Options().data_dir).db;
  auto store = storage::Store::Open(so);
  ASSERT_THAT(store, IsOk());
  PrincipalRegistry registry(store->get());
  absl::StatusOr<v1::Principal> admin = registry.Get({v1::PRINCIPAL_KIND_STAFF, "admin"});
  ASSERT_THAT(admin, IsOk());
  EXPECT_EQ(admin->role(), v1::ROLE_ADMINISTRATOR);
  EXPECT_EQ(admin->status(), v1::PRINCIPAL_STATUS_ACTIVE);
}

TEST_F(DeploymentTest, SecondInitRefusesAndChangesNothing) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  std::map<std::string, std::string> before = Snapshot(Options().data_dir);
  EXPECT_THAT(InitDeployment(Options()),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("never touches")));
  EXPECT_EQ(Snapshot(Options().data_dir), before);
  // No staging directory is left beside it either.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(DeploymentTest, InitIntoEmptyDirectoryWorks) {
  fs::create_directories(Options().data_dir);
  EXPECT_THAT(InitDeployment(Options()), IsOk());
}

TEST_F(DeploymentTest, InitFillsAnExistingDirectoryInPlaceKeepingItAndMakingIt0700) {
  const std::string dir = Options().data_dir;
  fs::create_directories(dir);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  struct stat before, after;
  ASSERT_EQ(::stat(dir.c_str(), &before), 0);
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  ASSERT_EQ(::stat(dir.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode & 07777, 0700u);
  EXPECT_THAT(CheckDeployment(dir), IsOk());
  EXPECT_THAT(CheckModes(dir, {}), IsOk());
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(".init-")) << entry.path();
  }
  // Nothing was made next to it either.
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".init-"), std::string::npos);
  }
}

TEST_F(DeploymentTest, InitInPlaceNeedsNoWriteAccessToTheParent) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes any directory";
  fs::create_directories(dir_.Sub("ro/dep"));
  ASSERT_EQ(::chmod(dir_.Sub("ro").c_str(), 0555), 0);
  InitOptions o = Options();
  o.data_dir = dir_.Sub("ro/dep");
  absl::StatusOr<DeploymentInfo> info = InitDeployment(o);
  ::chmod(dir_.Sub("ro").c_str(), 0755);
  ASSERT_THAT(info, IsOk());
  EXPECT_THAT(CheckDeployment(o.data_dir), IsOk());
}

TEST_F(DeploymentTest, AFailedInitInPlaceLeavesTheDirectoryEmpty) {
  fs::create_directories(Options().data_dir);
  InitOptions o = Options();
  o.admin_id = "not a valid id!";
  EXPECT_THAT(InitDeployment(o), ::testing::Not(IsOk()));
  ASSERT_TRUE(fs::is_directory(o.data_dir));
  EXPECT_TRUE(fs::is_empty(o.data_dir));
}

TEST_F(DeploymentTest, InitUnderMissingParentFails) {
  InitOptions o = Options();
  o.data_dir = dir_.Sub("no/such/parent/dep");
  EXPECT_THAT(InitDeployment(o), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(DeploymentTest, ServerKeysAreStoredOnlyWrapped) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  DeploymentPaths paths(Options().data_dir);
  auto master = crypto::MasterKeyRing::LoadFile(paths.master_key);
  ASSERT_THAT(master, IsOk());
  ServerKeys keys;
  {
    storage::StoreOptions so;
    so.path = paths.db;
    auto store = storage::Store::Open(so);
    ASSERT_THAT(store, IsOk());
    auto loaded = LoadServerKeys(**store, *master);
    ASSERT_THAT(loaded, IsOk());
    keys = *std::move(loaded);
  }
  // No file of the deployment holds a private key in clear.
  std::string audit_seed(reinterpret_cast<const char*>(keys.audit_signing_seed.data()),
                         keys.audit_signing_seed.size());
  ASSERT_EQ(keys.sealing_keys.size(), 1u);
  std::string sealing(reinterpret_cast<const char*>(keys.sealing_keys[0].private_key.data()),
                      keys.sealing_keys[0].private_key.size());
  ASSERT_EQ(audit_seed.size(), 32u);
  for (const auto& [path, bytes] : Snapshot(paths.root)) {
    EXPECT_EQ(bytes.find(audit_seed), std::string::npos) << path;
    EXPECT_EQ(bytes.find(sealing), std::string::npos) << path;
    EXPECT_EQ(bytes.find(keys.ca.private_key_pem), std::string::npos) << path;
  }
}

TEST_F(DeploymentTest, CheckDeploymentExplainsWhatIsWrong) {
  EXPECT_THAT(CheckDeployment(dir_.Sub("missing")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fieldsync init")));
  fs::create_directories(dir_.Sub("empty"));
  EXPECT_THAT(CheckDeployment(dir_.Sub("empty")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fieldsync init")));
  fs::create_directories(dir_.Sub("foreign"));
  ASSERT_THAT(WriteNewFile(dir_.Sub("foreign/DEPLOYMENT"), "something else\n", 0644), IsOk());
  EXPECT_THAT(CheckDeployment(dir_.Sub("foreign")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// --- Modes checked at start -----------------------------------------------

TEST_F(DeploymentTest, ANewDeploymentPassesTheModeChecks) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  struct stat st;
  ASSERT_EQ(::stat(Options().data_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_THAT(CheckModes(Options().data_dir, {}), IsOk());
}

TEST_F(DeploymentTest, AnOpenDataDirectoryIsRefusedWithTheFix) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  const std::string dir = Options().data_dir;
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  EXPECT_THAT(CheckModes(dir, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "data directory " + dir +
                           " has mode 0777: group and other users may change or replace the "
                           "deployment's files; run: chmod 700 " +
                           dir));
  ASSERT_EQ(::chmod(dir.c_str(), 0750), 0);
  EXPECT_THAT(CheckModes(dir, {}), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            AllOf(HasSubstr("mode 0750"), HasSubstr("list or read"),
                                                  HasSubstr("chmod 700 " + dir))));
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  EXPECT_THAT(CheckModes(dir, {}), IsOk());
}

TEST_F(DeploymentTest, EachReadableSecretIsRefusedNamingFileModeAndFix) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  const DeploymentPaths paths(Options().data_dir);
  // The known secrets, and any other key file left in the directory.
  ASSERT_THAT(WriteNewFile(paths.root + "/master.key.tmp", "x", 0600), IsOk());
  ASSERT_THAT(WriteNewFile(paths.root + "/tls/old-server.key", "x", 0600), IsOk());
  for (const std::string& secret :
       {paths.server_key, paths.master_key, paths.admin_key, paths.root + "/master.key.tmp",
        paths.root + "/tls/old-server.key"}) {
    for (mode_t mode : {0644, 0640, 0604, 0620, 0660}) {
      ASSERT_EQ(::chmod(secret.c_str(), mode), 0);
      EXPECT_THAT(CheckModes(paths.root, {}),
                  StatusIs(absl::StatusCode::kFailedPrecondition,
                           AllOf(HasSubstr("secret file " + secret),
                                 HasSubstr(absl::StrFormat("mode %04o", mode)),
                                 HasSubstr("run: chmod 600 " + secret))))
          << secret << " " << mode;
    }
    ASSERT_EQ(::chmod(secret.c_str(), 0400), 0);  // stricter than 0600 is fine
    EXPECT_THAT(CheckModes(paths.root, {}), IsOk()) << secret;
  }
  EXPECT_THAT(CheckModes(paths.root, {}), IsOk());
}

TEST_F(DeploymentTest, SecretsNamedByTheConfigAreCheckedWhereverTheyAre) {
  ASSERT_THAT(InitDeployment(Options()), IsOk());
  fs::create_directories(dir_.Sub("etc"));
  const std::string key = dir_.Sub("etc/master.key");
  ASSERT_THAT(WriteNewFile(key, "x", 0644), IsOk());
  EXPECT_THAT(CheckModes(Options().data_dir, {"", key, dir_.Sub("etc/absent.key")}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "secret file " + key +
                           " has mode 0644: group or other users may read it; "
                           "run: chmod 600 " +
                           key));
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  EXPECT_THAT(CheckModes(Options().data_dir, {"", key}), IsOk());
}

// --- Master key placement ---------------------------------------------------

TEST_F(DeploymentTest, InitWritesTheMasterKeyOutsideAndPointsTheConfigAtIt) {
  fs::create_directories(dir_.Sub("etc"));
  InitOptions o = Options();
  o.master_key_file = dir_.Sub("etc/master.key");
  ASSERT_THAT(InitDeployment(o), IsOk());
  const DeploymentPaths paths(o.data_dir);
  EXPECT_FALSE(fs::exists(paths.master_key));
  struct stat st;
  ASSERT_EQ(::stat(o.master_key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_THAT(*ReadFile(paths.config),
              HasSubstr("master_key_file: \"" + o.master_key_file + "\"\n"));
  // The key there opens the deployment's keys; nothing else is left next to it.
  absl::StatusOr<crypto::MasterKeyRing> ring = crypto::MasterKeyRing::LoadFile(o.master_key_file);
  ASSERT_THAT(ring, IsOk());
  storage::StoreOptions store_options;
  store_options.path = paths.db;
  store_options.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(store_options);
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT(LoadServerKeys(**store, *ring), IsOk());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.Sub("etc")), fs::directory_iterator()), 1);
  EXPECT_THAT(CheckModes(o.data_dir, {o.master_key_file}), IsOk());
}

TEST_F(DeploymentTest, InitNeverOverwritesAKeyFile) {
  fs::create_directories(dir_.Sub("etc"));
  ASSERT_THAT(WriteNewFile(dir_.Sub("etc/master.key"), "precious", 0600), IsOk());
  InitOptions o = Options();
  o.master_key_file = dir_.Sub("etc/master.key");
  EXPECT_THAT(InitDeployment(o),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("never overwrites a key")));
  EXPECT_EQ(*ReadFile(dir_.Sub("etc/master.key")), "precious");
  EXPECT_FALSE(fs::exists(o.data_dir));
}

TEST_F(DeploymentTest, InitRefusesAKeyFileInAMissingDirectoryOrInsideTheDataDirectory) {
  InitOptions o = Options();
  o.master_key_file = dir_.Sub("nowhere/master.key");
  EXPECT_THAT(InitDeployment(o), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          HasSubstr("does not exist: create it first")));
  o.master_key_file = o.data_dir + "/keys/../master.key";
  EXPECT_THAT(InitDeployment(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("inside the data directory")));
  EXPECT_FALSE(fs::exists(o.data_dir));
  EXPECT_FALSE(fs::exists(dir_.Sub("nowhere")));
}

TEST_F(DeploymentTest, AFailedInitLeavesNoKeyFileBehind) {
  fs::create_directories(dir_.Sub("etc"));
  InitOptions o = Options();
  o.master_key_file = dir_.Sub("etc/master.key");
  o.admin_id = "not a valid id!";  // fails after the key is written
  EXPECT_THAT(InitDeployment(o), ::testing::Not(IsOk()));
  EXPECT_TRUE(fs::is_empty(dir_.Sub("etc")));
  EXPECT_FALSE(fs::exists(o.data_dir));
}

TEST(IsInsideTest, ComparesNormalisedPaths) {
  EXPECT_TRUE(IsInside("/var/lib/fieldsync", "/var/lib/fieldsync/master.key"));
  EXPECT_TRUE(IsInside("/var/lib/fieldsync/", "/var/lib/fieldsync/tls/../master.key"));
  EXPECT_FALSE(IsInside("/var/lib/fieldsync", "/etc/fieldsync/master.key"));
  EXPECT_FALSE(IsInside("/var/lib/fieldsync", "/var/lib/fieldsync-other/master.key"));
  EXPECT_FALSE(IsInside("/var/lib/fieldsync", "/var/lib/fieldsync/../master.key"));
  EXPECT_FALSE(IsInside("/var/lib/fieldsync", "/var/lib/fieldsync"));
}

TEST(PrincipalUriTest, RoundTripsAndRejectsMalformed) {
  auto staff = ParsePrincipalUri("fieldsync://staff/maria.k");
  ASSERT_THAT(staff, IsOk());
  EXPECT_EQ(staff->kind, v1::PRINCIPAL_KIND_STAFF);
  EXPECT_EQ(PrincipalUri(*staff), "fieldsync://staff/maria.k");
  EXPECT_THAT(ParsePrincipalUri("fieldsync://device/0f8fad5b-d9cb-469f-a165-70867728950e"), IsOk());
  for (const char* bad :
       {"", "fieldsync://staff/", "fieldsync://staff/Maria", "fieldsync://staff/../admin",
        "fieldsync://device/not-a-uuid", "https://staff/admin", "fieldsync://staff/a b"}) {
    EXPECT_THAT(ParsePrincipalUri(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

}  // namespace
}  // namespace fieldsync::admin
