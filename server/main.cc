// fieldsyncd: the fieldsync server.
//
//   fieldsyncd --data-dir DIR [--listen HOST:PORT] [--config FILE]
//              [--log-level LEVEL] [--log-format text|json]
//              [--insecure-plaintext-loopback] [--accept-rollback SIZE]
//              [--accept-schema-change]
//   fieldsyncd --version
//
// Operator mistakes end the process with one line on standard error that
// names the problem and the fix, and exit status 1 (2 for bad usage).
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "admin/address_file.h"
#include "common/build_info.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "crypto/system_random.h"
#include "server/config.h"
#include "server/server.h"

namespace {

constexpr char kUsage[] =
    "usage: fieldsyncd --data-dir DIR [--listen HOST:PORT] [--config FILE]\n"
    "                  [--log-level debug|info|warn|error] [--log-format text|json]\n"
    "                  [--insecure-plaintext-loopback] [--accept-rollback SIZE]\n"
    "                  [--accept-schema-change]\n"
    "       fieldsyncd --version\n"
    "\n"
    "Serves a fieldsync deployment made by `fieldsync init --data-dir DIR`.\n"
    "Without --config, reads DIR/fieldsyncd.conf if present, else uses defaults.\n"
    "Flags override the config file. Once listening it writes the address to\n"
    "dial to DIR/fieldsyncd.address (which `fieldsync --data-dir DIR` uses);\n"
    "stops cleanly on SIGTERM or SIGINT and then removes that file.\n"
    "--version prints the version, the git commit and the build type.\n"
    "\n"
    "Refuses to start when the store's audit log does not extend the last signed\n"
    "tree head the deployment published (DIR/audit-head.note, audit_head_copy_file):\n"
    "the store was restored from an older backup, or forked. Restore the newer\n"
    "store, or, as an administrator:\n"
    "  --accept-rollback SIZE   accept that state, SIZE being the store's audit tree\n"
    "                           size the refusal printed (another size is refused);\n"
    "                           records a rollback-accepted audit event, signs a new\n"
    "                           head and serves. Later starts need no flag.\n"
    "\n"
    "  --accept-schema-change   start although the schema file changes the schema in\n"
    "                           a way the store cannot take (a field in use removed,\n"
    "                           ...), recording the acceptance in the audit log; use\n"
    "                           it once, after `fieldsync schema check`\n"
    "                           (docs/OPERATIONS.md, Schema upgrades).\n";

#ifdef FIELDSYNC_JEMALLOC
// jemalloc's options (read at its first allocation; MALLOC_CONF in the
// environment adds to them; docs/OPERATIONS.md, "Memory"):
//  - two arenas rather than four per core: the peak RSS of 32 pushing
//    devices 170 MiB rather than 250 MiB at the same throughput
//    (docs/BENCHMARKS.md, "Allocator and memory");
//  - freed pages returned to the system about 1 s after they were freed,
//    by jemalloc's own thread (so also when the server is idle), and
//    allocations over 256 KiB (messages being received) as soon as they
//    are freed: a flood of large calls without a certificate peaked at
//    336 MiB with jemalloc's defaults, about 200 MiB with these
//    (tests/tools/limits_cli_test.sh bounds it at 256 MiB); no cost in
//    throughput was measurable.
extern "C" {
// NOLINTNEXTLINE: the name jemalloc looks for.
const char* malloc_conf =
    "narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,"
    "oversize_threshold:262144";
}
#endif

int Fail(absl::string_view message, int code = 1) {
  std::cerr << "fieldsyncd: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil checks every Mutex acquisition for lock-order cycles;
  // that is a debugging aid, not something to pay for on every push.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#ifndef FIELDSYNC_JEMALLOC
  // Without jemalloc (sanitizer builds): glibc gives each thread that
  // contends for the heap an arena of its own (up to 8 per core), each
  // keeping freed memory; two bound it. MALLOC_ARENA_MAX wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
#endif
  std::string data_dir, listen, config_path, log_level, log_format;
  bool plaintext = false;
  std::optional<uint64_t> accept_rollback;
  bool accept_schema_change = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version") {
      std::cout << fieldsync::VersionLine("fieldsyncd") << "\n";
      return 0;
    } else if (arg == "--data-dir") {
      if (!value(&data_dir)) return Fail("--data-dir needs a directory", 2);
    } else if (arg == "--listen") {
      if (!value(&listen)) return Fail("--listen needs HOST:PORT", 2);
    } else if (arg == "--config") {
      if (!value(&config_path)) return Fail("--config needs a file", 2);
    } else if (arg == "--log-level") {
      if (!value(&log_level)) return Fail("--log-level needs a level", 2);
    } else if (arg == "--log-format") {
      if (!value(&log_format)) return Fail("--log-format needs text or json", 2);
    } else if (arg == "--insecure-plaintext-loopback") {
      plaintext = true;
    } else if (arg == "--accept-rollback") {
      std::string size;
      uint64_t n = 0;
      if (!value(&size) || !absl::SimpleAtoi(size, &n) || size.empty() || size[0] == '-' ||
          size[0] == '+') {
        return Fail(
            "--accept-rollback needs SIZE, the store's audit tree size that fieldsyncd printed "
            "when it refused to start",
            2);
      }
      accept_rollback = n;
    } else if (arg == "--accept-schema-change") {
      accept_schema_change = true;
    } else {
      return Fail(
          absl::StrCat("unknown argument \"", std::string(arg), "\"; see fieldsyncd --help"), 2);
    }
  }
  if (data_dir.empty()) return Fail("--data-dir is required; see fieldsyncd --help", 2);

  fieldsync::v1::ServerConfig config;
  if (!config_path.empty()) {
    auto loaded = fieldsync::server::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(loaded.status().message());
    config = *std::move(loaded);
  } else {
    std::string default_path = data_dir + "/fieldsyncd.conf";
    auto loaded = fieldsync::server::LoadConfigFile(default_path);
    if (loaded.ok()) {
      config = *std::move(loaded);
    } else if (!absl::IsNotFound(loaded.status())) {
      return Fail(loaded.status().message());
    }
  }
  if (!listen.empty()) config.set_listen(listen);
  if (!log_level.empty()) config.set_log_level(log_level);
  if (!log_format.empty()) config.set_log_format(log_format);
  if (plaintext) config.set_insecure_plaintext_loopback(true);
  fieldsync::server::ApplyDefaults(data_dir, &config);
  if (absl::Status s = fieldsync::server::ValidateConfig(config); !s.ok()) {
    return Fail(s.message());
  }
  fieldsync::log::Level level;
  fieldsync::log::Format format;
  (void)fieldsync::log::ParseLevel(config.log_level(), &level);
  (void)fieldsync::log::ParseFormat(config.log_format(), &format);
  fieldsync::log::Configure(level, format);

  // Block the stop signals in every thread (gRPC's and RocksDB's threads
  // inherit this mask), then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  fieldsync::server::ServerOptions options;
  options.data_dir = data_dir;
  options.config = config;
  options.config_file = config_path;
  options.accept_rollback_size = accept_rollback;
  options.accept_schema_change = accept_schema_change;
  options.clock = fieldsync::RealClock::Get();
  options.random = fieldsync::crypto::SystemRandom::Get();
  auto server = fieldsync::server::FieldsyncServer::Start(options);
  if (!server.ok()) return Fail(server.status().message());
  const int pid = static_cast<int>(getpid());
  if (absl::Status s = fieldsync::admin::WriteAddressFile(
          data_dir, {fieldsync::admin::DialableAddress((*server)->address()), pid});
      !s.ok()) {
    (void)(*server)->Shutdown();
    return Fail(absl::StrCat(s.message(), "; the data directory must be writable by fieldsyncd"));
  }
  std::cout << "fieldsyncd: serving deployment " << (*server)->deployment_id() << " on "
            << (*server)->address() << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  fieldsync::log::Info("signal", {{"signal", strsignal(signal_number)}});
  absl::Status s = (*server)->Shutdown();
  server->reset();
  if (absl::Status removed = fieldsync::admin::RemoveAddressFile(data_dir, pid); !removed.ok()) {
    fieldsync::log::Warn("address_file", {{"reason", removed.message()}});
  }
  if (!s.ok()) return Fail(s.message());
  return 0;
}
