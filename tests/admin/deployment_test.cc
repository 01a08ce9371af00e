#include "admin/deployment.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>

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
  for (const std::string& f : {paths.master_key, paths.config, paths.ca_cert, paths.server_cert,
                               paths.server_key, paths.admin_cert, paths.admin_key,
                               paths.audit_public_key}) {
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
  std::string sealing(reinterpret_cast<const char*>(keys.sealing_private_key.data()),
                      keys.sealing_private_key.size());
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

TEST(PrincipalUriTest, RoundTripsAndRejectsMalformed) {
  auto staff = ParsePrincipalUri("fieldsync://staff/maria.k");
  ASSERT_THAT(staff, IsOk());
  EXPECT_EQ(staff->kind, v1::PRINCIPAL_KIND_STAFF);
  EXPECT_EQ(PrincipalUri(*staff), "fieldsync://staff/maria.k");
  EXPECT_THAT(ParsePrincipalUri("fieldsync://device/0f8fad5b-d9cb-469f-a165-70867728950e"),
              IsOk());
  for (const char* bad : {"", "fieldsync://staff/", "fieldsync://staff/Maria",
                          "fieldsync://staff/../admin", "fieldsync://device/not-a-uuid",
                          "https://staff/admin", "fieldsync://staff/a b"}) {
    EXPECT_THAT(ParsePrincipalUri(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

}  // namespace
}  // namespace fieldsync::admin
