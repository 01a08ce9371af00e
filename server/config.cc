#include "server/config.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "server/listen_address.h"

namespace fieldsync::server {
namespace {

// Keeps the first parse error, which names the line, column and key.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = absl::StrFormat("line %d column %d: %s", line + 1, column + 1, message);
      line_ = line;
    }
  }
  int line() const { return line_; }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string first_;
  int line_ = -1;
};

// "key \"drain_timeout_seconds\": " for the key that starts 0-based line
// `line` of `text`, so that a type error names its key; "" if none.
std::string KeyOnLine(const std::string& text, int line) {
  size_t start = 0;
  for (int i = 0; i < line && start != std::string::npos; ++i) {
    start = text.find('\n', start);
    if (start != std::string::npos) ++start;
  }
  if (line < 0 || start == std::string::npos) return "";
  size_t end = start;
  while (end < text.size() && (text[end] == ' ' || text[end] == '\t')) ++end;
  size_t key_start = end;
  while (end < text.size() &&
         (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) {
    ++end;
  }
  if (end == key_start) return "";
  return absl::StrFormat("key \"%s\": ", text.substr(key_start, end - key_start));
}

}  // namespace

absl::StatusOr<v1::ServerConfig> ParseConfig(const std::string& text, const std::string& origin) {
  v1::ServerConfig config;
  absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(text);
  if (!trimmed.empty() && trimmed.front() == '{') {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(text, &config, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "config %s (JSON): %s; the keys are listed in proto/fieldsync/v1/config.proto", origin,
          std::string(status.message())));
    }
    return config;
  }
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config %s: %s%s; the keys are listed in proto/fieldsync/v1/config.proto",
                        origin, KeyOnLine(text, errors.line()), errors.first()));
  }
  return config;
}

absl::StatusOr<v1::ServerConfig> LoadConfigFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(
        absl::StrFormat("config file %s does not exist: check --config", path));
  }
  RETURN_IF_ERROR(text.status());
  return ParseConfig(*text, path);
}

void ApplyDefaults(const std::string& data_dir, v1::ServerConfig* config) {
  if (config->listen().empty()) config->set_listen("127.0.0.1:7443");
  if (config->log_level().empty()) config->set_log_level("info");
  if (config->log_format().empty()) config->set_log_format("text");
  if (config->master_key_file().empty() && config->master_key_command().empty()) {
    config->set_master_key_file(absl::StrCat(data_dir, "/master.key"));
  }
  if (config->tls_cert_file().empty()) config->set_tls_cert_file(data_dir + "/tls/server.crt");
  if (config->tls_key_file().empty()) config->set_tls_key_file(data_dir + "/tls/server.key");
  if (config->tls_ca_file().empty()) config->set_tls_ca_file(data_dir + "/tls/ca.crt");
  if (config->drain_timeout_seconds() == 0) config->set_drain_timeout_seconds(10);
  if (config->master_key_command_timeout_seconds() == 0) {
    config->set_master_key_command_timeout_seconds(30);
  }
  if (config->storage().block_cache_mib() == 0) config->mutable_storage()->set_block_cache_mib(64);
  if (config->storage().max_background_jobs() == 0) {
    config->mutable_storage()->set_max_background_jobs(2);
  }
  v1::SyncConfig* sync = config->mutable_sync();
  if (sync->max_batch_bytes() == 0) sync->set_max_batch_bytes(4 << 20);
  if (sync->max_batch_changes() == 0) sync->set_max_batch_changes(1000);
  if (sync->max_clock_skew_seconds() == 0) sync->set_max_clock_skew_seconds(300);
  if (sync->max_pull_chunk_changes() == 0) sync->set_max_pull_chunk_changes(2000);
  if (sync->max_pull_chunk_bytes() == 0) sync->set_max_pull_chunk_bytes(2 << 20);
  if (sync->min_pull_chunk_changes() == 0) sync->set_min_pull_chunk_changes(100);
  if (sync->pull_access_repeat_seconds() == 0) sync->set_pull_access_repeat_seconds(300);
  if (config->schema_file().empty()) config->set_schema_file(data_dir + "/schema.textproto");
  if (config->certificate_warning_days() == 0) config->set_certificate_warning_days(30);
  if (config->sealing_key_overlap_days() == 0) config->set_sealing_key_overlap_days(30);
  v1::LimitsConfig* limits = config->mutable_limits();
  if (limits->memory_quota_mib() == 0) limits->set_memory_quota_mib(96);
  if (limits->max_concurrent_unauthenticated_calls() == 0) {
    limits->set_max_concurrent_unauthenticated_calls(8);
  }
  if (limits->max_concurrent_calls_per_principal() == 0) {
    limits->set_max_concurrent_calls_per_principal(16);
  }
  if (limits->work_queue_bound() == 0) limits->set_work_queue_bound(256);
  if (limits->pulls_per_minute() == 0) limits->set_pulls_per_minute(60);
  if (limits->pull_burst() == 0) limits->set_pull_burst(10);
  if (limits->enrolment_free_failures() == 0) limits->set_enrolment_free_failures(3);
  if (limits->enrolment_lockout_failures() == 0) limits->set_enrolment_lockout_failures(10);
  if (limits->enrolment_lockout_seconds() == 0) limits->set_enrolment_lockout_seconds(900);
  if (limits->enrolment_attempts_per_minute() == 0) {
    limits->set_enrolment_attempts_per_minute(120);
  }
  if (limits->max_enroll_request_bytes() == 0) limits->set_max_enroll_request_bytes(65536);
}

absl::Status ValidateConfig(const v1::ServerConfig& config) {
  log::Level level;
  absl::Status s = log::ParseLevel(config.log_level(), &level);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("log_level: ", s.message()));
  log::Format format;
  s = log::ParseFormat(config.log_format(), &format);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("log_format: ", s.message()));
  absl::StatusOr<ListenAddress> listen = ParseListenAddress(config.listen());
  if (!listen.ok()) return listen.status();
  if (config.insecure_plaintext_loopback() && !listen->IsLoopback()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("insecure plaintext is only allowed on a loopback address, not %s: remove "
                        "--insecure-plaintext-loopback or listen on 127.0.0.1",
                        config.listen()));
  }
  if (!config.master_key_file().empty() && !config.master_key_command().empty()) {
    return absl::InvalidArgumentError(
        "master_key_file and master_key_command are both set: keep one");
  }
  for (const NumericBound& bound : NumericBounds()) {
    const uint64_t value = bound.get(config);
    if (value < bound.min || value > bound.max) {
      return absl::InvalidArgumentError(
          absl::StrFormat("config key %s is %d, outside the allowed range %d..%d%s", bound.key,
                          value, bound.min, bound.max, bound.unit));
    }
  }
  if (!config.audit_head_copy_file().empty() && (config.audit_head_copy_file().front() != '/' ||
                                                 config.audit_head_copy_file().back() == '/')) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "audit_head_copy_file %s must be an absolute path to a file, on another disk or mount "
        "than the data directory",
        config.audit_head_copy_file()));
  }
  return absl::OkStatus();
}

const std::vector<NumericBound>& NumericBounds() {
  // Each bound keeps the server working: below the minimum nothing useful
  // fits (a batch, a pull chunk), above the maximum a resource runs out or
  // a safety check stops protecting (a clock skew of years disables HLC
  // clamping; 100000 RocksDB threads abort the process). Documented in
  // config.proto and docs/OPERATIONS.md ("Configuration reference").
  static const std::vector<NumericBound>* bounds = new std::vector<NumericBound>{
      {"certificate_warning_days", 1, 365, " days",
       [](const v1::ServerConfig& c) -> uint64_t { return c.certificate_warning_days(); }},
      {"drain_timeout_seconds", 1, 3600, " seconds",
       [](const v1::ServerConfig& c) -> uint64_t { return c.drain_timeout_seconds(); }},
      {"master_key_command_timeout_seconds", 1, 600, " seconds",
       [](const v1::ServerConfig& c) -> uint64_t {
         return c.master_key_command_timeout_seconds();
       }},
      {"limits.enrolment_attempts_per_minute", 1, 60000, " attempts per minute",
       [](const v1::ServerConfig& c) -> uint64_t {
         return c.limits().enrolment_attempts_per_minute();
       }},
      {"limits.enrolment_free_failures", 1, 100, " failures",
       [](const v1::ServerConfig& c) -> uint64_t { return c.limits().enrolment_free_failures(); }},
      {"limits.enrolment_lockout_failures", 1, 1000, " failures",
       [](const v1::ServerConfig& c) -> uint64_t {
         return c.limits().enrolment_lockout_failures();
       }},
      {"limits.enrolment_lockout_seconds", 1, 86400, " seconds",
       [](const v1::ServerConfig& c) -> uint64_t {
         return c.limits().enrolment_lockout_seconds();
       }},
      {"limits.max_concurrent_calls_per_principal", 1, 1024, " calls",
       [](const v1::ServerConfig& c) -> uint64_t {
         return c.limits().max_concurrent_calls_per_principal();
       }},
      {"limits.max_concurrent_unauthenticated_calls", 1, 1024, " calls",
       [](const v1::ServerConfig& c) -> uint64_t {
         return c.limits().max_concurrent_unauthenticated_calls();
       }},
      {"limits.max_enroll_request_bytes", 4096, 1 << 20, " bytes (4 KiB..1 MiB)",
       [](const v1::ServerConfig& c) -> uint64_t { return c.limits().max_enroll_request_bytes(); }},
      {"limits.memory_quota_mib", 32, 65536, " MiB",
       [](const v1::ServerConfig& c) -> uint64_t { return c.limits().memory_quota_mib(); }},
      {"limits.pull_burst", 1, 1000, " pulls",
       [](const v1::ServerConfig& c) -> uint64_t { return c.limits().pull_burst(); }},
      {"limits.pulls_per_minute", 1, 60000, " pulls per minute",
       [](const v1::ServerConfig& c) -> uint64_t { return c.limits().pulls_per_minute(); }},
      {"limits.work_queue_bound", 1, 65536, " tasks",
       [](const v1::ServerConfig& c) -> uint64_t { return c.limits().work_queue_bound(); }},
      {"sealing_key_overlap_days", 1, 365, " days",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sealing_key_overlap_days(); }},
      {"storage.block_cache_mib", 8, 65536, " MiB",
       [](const v1::ServerConfig& c) -> uint64_t { return c.storage().block_cache_mib(); }},
      {"storage.max_background_jobs", 1, 64, " threads",
       [](const v1::ServerConfig& c) -> uint64_t { return c.storage().max_background_jobs(); }},
      {"sync.max_batch_bytes", 65536, uint64_t{64} << 20, " bytes (64 KiB..64 MiB)",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().max_batch_bytes(); }},
      {"sync.max_batch_changes", 1, 100000, " changes",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().max_batch_changes(); }},
      {"sync.max_clock_skew_seconds", 1, 86400, " seconds (at most one day)",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().max_clock_skew_seconds(); }},
      {"sync.max_pull_chunk_changes", 1, 10000, " changes",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().max_pull_chunk_changes(); }},
      {"sync.max_pull_chunk_bytes", 16384, 3 << 20, " bytes (16 KiB..3 MiB)",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().max_pull_chunk_bytes(); }},
      {"sync.min_pull_chunk_changes", 1, 10000, " changes",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().min_pull_chunk_changes(); }},
      {"sync.pull_access_repeat_seconds", 1, 3600, " seconds (at most one hour)",
       [](const v1::ServerConfig& c) -> uint64_t { return c.sync().pull_access_repeat_seconds(); }},
  };
  return *bounds;
}

}  // namespace fieldsync::server
