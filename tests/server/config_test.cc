#include "server/config.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/listen_address.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ConfigTest, ParsesTextForm) {
  absl::StatusOr<v1::ServerConfig> c =
      ParseConfig("listen: \"0.0.0.0:9000\"\nstorage { block_cache_mib: 128 }\n", "test");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->listen(), "0.0.0.0:9000");
  EXPECT_EQ(c->storage().block_cache_mib(), 128u);
}

TEST(ConfigTest, ParsesJsonForm) {
  absl::StatusOr<v1::ServerConfig> c =
      ParseConfig("{\"listen\": \"127.0.0.1:1\", \"logFormat\": \"json\"}", "test");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->log_format(), "json");
}

TEST(ConfigTest, UnknownTextKeyIsNamed) {
  EXPECT_THAT(ParseConfig("listen: \"a:1\"\nlisten_port: 7\n", "f.conf"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("listen_port"), HasSubstr("line 2"))));
}

TEST(ConfigTest, IllTypedTextKeyIsNamed) {
  EXPECT_THAT(ParseConfig("drain_timeout_seconds: \"soon\"\n", "f.conf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("drain_timeout_seconds")));
}

TEST(ConfigTest, UnknownJsonKeyIsNamed) {
  EXPECT_THAT(ParseConfig("{\"listenn\": \"a:1\"}", "f.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listenn")));
}

TEST(ConfigTest, DefaultsAreValid) {
  v1::ServerConfig c;
  ApplyDefaults("/srv/fs", &c);
  EXPECT_THAT(ValidateConfig(c), IsOk());
  EXPECT_EQ(c.listen(), "127.0.0.1:7443");
  EXPECT_EQ(c.master_key_file(), "/srv/fs/master.key");
  EXPECT_EQ(c.tls_cert_file(), "/srv/fs/tls/server.crt");
}

TEST(ConfigTest, PlaintextRefusedOffLoopback) {
  v1::ServerConfig c;
  c.set_listen("0.0.0.0:7443");
  c.set_insecure_plaintext_loopback(true);
  ApplyDefaults("/d", &c);
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("loopback")));
  c.set_listen("127.0.0.2:7443");
  EXPECT_THAT(ValidateConfig(c), IsOk());
  c.set_listen("[::1]:7443");
  EXPECT_THAT(ValidateConfig(c), IsOk());
}

TEST(ConfigTest, BadLogLevelIsNamed) {
  v1::ServerConfig c;
  c.set_log_level("verbose");
  ApplyDefaults("/d", &c);
  EXPECT_THAT(ValidateConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("log_level")));
}

TEST(ListenAddressTest, ParsesHostPortForms) {
  ASSERT_THAT(ParseListenAddress("127.0.0.1:7443"), IsOk());
  EXPECT_EQ(ParseListenAddress("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseListenAddress("[::1]:80")->ToString(), "[::1]:80");
  for (const char* bad : {"", "7443", "host:", ":80", "h:99999", "h:-1", "::1:80", "[::1]80",
                          "h:80x"}) {
    EXPECT_THAT(ParseListenAddress(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(ListenAddressTest, PortInUseIsReportedWithTheFix) {
  // Hold a port, then probe it.
  absl::StatusOr<ListenAddress> any = ParseListenAddress("127.0.0.1:0");
  ASSERT_THAT(any, IsOk());
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ListenAddress held{"127.0.0.1", ntohs(addr.sin_port)};
  EXPECT_THAT(ProbeListenAddress(held),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  close(fd);
}

}  // namespace
}  // namespace fieldsync::server
