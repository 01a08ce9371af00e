#include "server/config.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/listen_address.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::AllOf;
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
  EXPECT_THAT(ValidateConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loopback")));
  c.set_listen("127.0.0.2:7443");
  EXPECT_THAT(ValidateConfig(c), IsOk());
  c.set_listen("[::1]:7443");
  EXPECT_THAT(ValidateConfig(c), IsOk());
}

TEST(ConfigTest, CertificateWarningDaysDefaultsTo30AndIsBounded) {
  v1::ServerConfig c;
  ApplyDefaults("/d", &c);
  EXPECT_EQ(c.certificate_warning_days(), 30u);
  c.set_certificate_warning_days(365);
  EXPECT_THAT(ValidateConfig(c), IsOk());
  c.set_certificate_warning_days(366);
  EXPECT_THAT(
      ValidateConfig(c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("certificate_warning_days is 366, outside the allowed range 1..365")));
}

TEST(ConfigTest, SealingKeyOverlapDaysDefaultsTo30AndIsBounded) {
  v1::ServerConfig c;
  ApplyDefaults("/d", &c);
  EXPECT_EQ(c.sealing_key_overlap_days(), 30u);
  c.set_sealing_key_overlap_days(366);
  EXPECT_THAT(
      ValidateConfig(c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("sealing_key_overlap_days is 366, outside the allowed range 1..365")));
}

TEST(ConfigTest, BadLogLevelIsNamed) {
  v1::ServerConfig c;
  c.set_log_level("verbose");
  ApplyDefaults("/d", &c);
  EXPECT_THAT(ValidateConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("log_level")));
}

// One numeric key's range, written out here independently of
// NumericBounds(), as the config file spells it.
struct BoundCase {
  std::string key;  // "storage.max_background_jobs"
  uint64_t min;
  uint64_t max;
};

const std::vector<BoundCase>& BoundCases() {
  static const auto* cases = new std::vector<BoundCase>{
      {"certificate_warning_days", 1, 365},           {"drain_timeout_seconds", 1, 3600},
      {"master_key_command_timeout_seconds", 1, 600}, {"sealing_key_overlap_days", 1, 365},
      {"storage.block_cache_mib", 8, 65536},          {"storage.max_background_jobs", 1, 64},
      {"sync.max_batch_bytes", 65536, 67108864},      {"sync.max_batch_changes", 1, 100000},
      {"sync.max_clock_skew_seconds", 1, 86400},      {"sync.max_pull_chunk_changes", 1, 10000},
      {"sync.max_pull_chunk_bytes", 16384, 3145728},  {"sync.min_pull_chunk_changes", 1, 10000},
      {"sync.pull_access_repeat_seconds", 1, 3600},
      {"limits.memory_quota_mib", 32, 65536},
      {"limits.max_concurrent_unauthenticated_calls", 1, 1024},
      {"limits.max_concurrent_calls_per_principal", 1, 1024},
      {"limits.work_queue_bound", 1, 65536},
      {"limits.pulls_per_minute", 1, 60000},
      {"limits.pull_burst", 1, 1000},
      {"limits.enrolment_free_failures", 1, 100},
      {"limits.enrolment_lockout_failures", 1, 1000},
      {"limits.enrolment_lockout_seconds", 1, 86400},
      {"limits.enrolment_attempts_per_minute", 1, 60000},
      {"limits.max_enroll_request_bytes", 4096, 1048576},
  };
  return *cases;
}

// "storage { max_background_jobs: 7 }" for key "storage.max_background_jobs".
std::string ConfigText(const std::string& key, uint64_t value) {
  size_t dot = key.find('.');
  if (dot == std::string::npos) return absl::StrCat(key, ": ", value, "\n");
  return absl::StrCat(key.substr(0, dot), " { ", key.substr(dot + 1), ": ", value, " }\n");
}

// The config file `text` after defaults, validated.
absl::Status Validate(const std::string& text) {
  absl::StatusOr<v1::ServerConfig> c = ParseConfig(text, "test.conf");
  if (!c.ok()) return c.status();
  ApplyDefaults("/d", &*c);
  return ValidateConfig(*c);
}

TEST(ConfigBoundsTest, EveryBoundAcceptsItsEdges) {
  for (const BoundCase& b : BoundCases()) {
    EXPECT_THAT(Validate(ConfigText(b.key, b.min)), IsOk()) << b.key << " = " << b.min;
    EXPECT_THAT(Validate(ConfigText(b.key, b.max)), IsOk()) << b.key << " = " << b.max;
  }
}

TEST(ConfigBoundsTest, PastEitherEdgeIsRefusedNamingKeyValueAndRange) {
  for (const BoundCase& b : BoundCases()) {
    const std::string range = absl::StrCat(b.min, "..", b.max);
    EXPECT_THAT(Validate(ConfigText(b.key, b.max + 1)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(b.key), HasSubstr(absl::StrCat(" is ", b.max + 1)),
                               HasSubstr(range))))
        << b.key;
    if (b.min > 1) {  // 0 means "the default", so only a minimum above 1 can be undershot.
      EXPECT_THAT(
          Validate(ConfigText(b.key, b.min - 1)),
          StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(b.key), HasSubstr(range))))
          << b.key;
    }
  }
}

TEST(ConfigBoundsTest, ZeroMeansTheDefaultWhichIsInRange) {
  for (const BoundCase& b : BoundCases()) {
    EXPECT_THAT(Validate(ConfigText(b.key, 0)), IsOk()) << b.key;
  }
}

TEST(ConfigBoundsTest, TheReportedCasesAreRefused) {
  EXPECT_THAT(Validate("storage { max_background_jobs: 100000 }\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "config key storage.max_background_jobs is 100000, outside the allowed "
                       "range 1..64 threads"));
  EXPECT_THAT(Validate("sync { max_clock_skew_seconds: 4294967295 }\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sync.max_clock_skew_seconds is 4294967295")));
  EXPECT_THAT(Validate("{\"sync\": {\"maxBatchBytes\": \"18446744073709551615\"}}"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sync.max_batch_bytes is 18446744073709551615")));
}

// Walks ServerConfig's descriptor: every integer field, nested messages
// included, must have a bound (and a case above), so that a key added
// later cannot go unchecked.
void CollectNumericKeys(const google::protobuf::Descriptor* d, const std::string& prefix,
                        std::set<std::string>* out) {
  using FD = google::protobuf::FieldDescriptor;
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
      CollectNumericKeys(f->message_type(), prefix + f->name() + ".", out);
    } else if (f->cpp_type() == FD::CPPTYPE_UINT32 || f->cpp_type() == FD::CPPTYPE_UINT64 ||
               f->cpp_type() == FD::CPPTYPE_INT32 || f->cpp_type() == FD::CPPTYPE_INT64 ||
               f->cpp_type() == FD::CPPTYPE_DOUBLE || f->cpp_type() == FD::CPPTYPE_FLOAT) {
      out->insert(prefix + f->name());
    }
  }
}

TEST(ConfigBoundsTest, EveryNumericKeyIsBoundedAndTested) {
  std::set<std::string> numeric;
  CollectNumericKeys(v1::ServerConfig::descriptor(), "", &numeric);
  std::set<std::string> bounded, tested;
  for (const NumericBound& b : NumericBounds()) bounded.insert(b.key);
  for (const BoundCase& b : BoundCases()) tested.insert(b.key);
  EXPECT_EQ(bounded, numeric);
  EXPECT_EQ(tested, numeric);
}

TEST(ListenAddressTest, ParsesHostPortForms) {
  ASSERT_THAT(ParseListenAddress("127.0.0.1:7443"), IsOk());
  EXPECT_EQ(ParseListenAddress("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseListenAddress("[::1]:80")->ToString(), "[::1]:80");
  for (const char* bad :
       {"", "7443", "host:", ":80", "h:99999", "h:-1", "::1:80", "[::1]80", "h:80x"}) {
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
