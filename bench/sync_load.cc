// The sync load generator (issue targets in docs/BENCHMARKS.md, "Sync"):
// a real fieldsyncd (its own process, synced WAL) on a fresh deployment,
// real enrolled devices over mutual TLS, sealed and signed batches made
// before the timed phase so that the generator's cryptography does not
// compete with the server for the cores.
//
//   sync_load_bench [--devices 1,8,32] [--changes 200000] [--batch 100]
//                   [--pull] [--edit] [--connected 1000 --connected-seconds 60
//                    --connected-interval 5 --connected-batch 20]
//                   [--fieldsyncd PATH] [--fieldsync PATH] [--work DIR] [--keep]
//                   [--trace FILE]
//
// Push scenarios: N devices (one officer each, regions round-robin) push
// --changes changes in batches of --batch, each device's batches back to
// back on its own connection, opened before the timed phase (the
// handshakes are reported apart as connect_s). Every change registers a
// new case with 19 fields, 8 of them encrypted at rest (IDENTIFYING).
// Reported: accepted changes/s, p50/p99 push latency (and the p99 without
// each device's first push: those arrive at once at a freshly started
// server), the server's CPU seconds and peak RSS, the generator's own CPU
// seconds in the timed phase (generator_cpu_s: it shares the cores),
// and the bare ceiling: the same number of synced RocksDB writes carrying
// the same bytes as the server's commit groups (from its ingest.summary
// log line), written back to back by one thread to a fresh store. What the
// commit groups write per canonical log entry: bytes_per_change and
// keys_per_change (their write batches' WriteBatch::ByteSize and Count).
//
// --edit: the push scenarios time one-field edits instead: each device
// first registers as many cases as it will edit (untimed, on a server
// process of its own), then, on a new server process over the same data
// directory, pushes one edit per case with the base version the
// registration's answer gave: every other edit rewrites an encrypted field
// (caregiver_phone), the others a clear dimension (priority).
//
// --trace FILE: every timed push of the push scenarios, one CSV line each
// (devices, device, push, start_ms from the timed phase's start,
// latency_ms): where a run's p99 comes from (the first wave, a slow
// second).
//
// --pull: after the first scenario, a second device of the first officer
// pulls everything that officer's cases hold, from cursor 0, one stream
// after another until caught up; the chunks are opened after the timed
// phase (to check the count), so the figure is the server's delivery rate.
//
// --connected M: M devices connect and each pushes a batch of
// --connected-batch changes every --connected-interval seconds (jittered)
// for --connected-seconds, all over their own TLS connections; reported:
// pushes, errors by code, latency, connections still READY at the end and
// the server's peak RSS.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "admin/deployment.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/system_random.h"
#include "device/tablet.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/sync.grpc.pb.h"
#include "protocol/sealed_batch.h"
#include "storage/column_families.h"
#include "storage/store.h"
#include "sync/schema.h"
#include "tools/client.h"
#include "tools/enrol_device.h"

namespace fieldsync::bench {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::vector<int> devices = {1, 8, 32};
  int changes = 200000;
  int batch = 100;
  bool pull = false;
  bool edit = false;
  int connected = 0;
  int connected_seconds = 60;
  int connected_interval = 5;
  int connected_batch = 20;
  std::string fieldsyncd;
  std::string fieldsync;
  std::string work;
  bool keep = false;
  std::string trace;
};

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "sync_load_bench: " << what << "\n";
  std::exit(1);
}

void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(absl::StrFormat("%s: %s", what, s.ToString()));
}

// --- the server process ------------------------------------------------------

double ClockTicks() { return static_cast<double>(sysconf(_SC_CLK_TCK)); }

// User + system CPU seconds of `pid` so far.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the parenthesized command name; utime and stime are the
  // 14th and 15th fields of the line.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f = absl::StrSplit(text.substr(close + 2), ' ');
  double utime = 0, stime = 0;
  if (f.size() > 12 && absl::SimpleAtod(f[11], &utime) && absl::SimpleAtod(f[12], &stime)) {
    return (utime + stime) / ClockTicks();
  }
  return 0;
}

// Peak resident set size of `pid` in MiB (VmHWM).
double PeakRssMib(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) {
      double kb = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits.push_back(c);
      }
      if (absl::SimpleAtod(digits, &kb)) return kb / 1024.0;
    }
  }
  return 0;
}

int RunAndWait(const std::vector<std::string>& argv, const std::string& output) {
  pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

class ServerProcess {
 public:
  ServerProcess(const Options& options, const std::string& data_dir, const std::string& logs)
      : out_path_(logs + "/fieldsyncd.out"), log_path_(logs + "/fieldsyncd.log") {
    const pid_t bench = getpid();
    pid_ = fork();
    if (pid_ < 0) Die("fork failed");
    if (pid_ == 0) {
      // The server stops with the bench, also when the bench stops on an
      // error (Die skips destructors) or is killed.
      if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != bench) _exit(126);
      int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (out >= 0) dup2(out, 1);
      if (err >= 0) dup2(err, 2);
      execl(options.fieldsyncd.c_str(), options.fieldsyncd.c_str(), "--data-dir", data_dir.c_str(),
            "--listen", "127.0.0.1:0", static_cast<char*>(nullptr));
      _exit(127);
    }
    // "fieldsyncd serving ... on 127.0.0.1:PORT" on standard output.
    for (int i = 0; i < 300 && address_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      absl::StatusOr<std::string> out = ReadFile(out_path_);
      if (!out.ok()) continue;
      const size_t at = out->find(" on 127.0.0.1:");
      if (at == std::string::npos) continue;
      size_t end = out->find('\n', at);
      address_ = out->substr(at + 4, end == std::string::npos ? std::string::npos : end - at - 4);
    }
    if (address_.empty()) Die("fieldsyncd did not start; see " + log_path_);
  }

  ~ServerProcess() {
    if (pid_ > 0) Stop();
  }

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, wait (SIGKILL after 60 s, reported); returns the server's log.
  std::string Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 600 && !exited; ++i) {
      exited = waitpid(pid_, &status, WNOHANG) == pid_;
      if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) {
      std::cerr << "fieldsyncd did not exit within 60 s of SIGTERM; killed\n";
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    absl::StatusOr<std::string> log = ReadFile(log_path_);
    return log.ok() ? *log : "";
  }

 private:
  std::string out_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::string address_;
};

// The ingest.summary line's counters.
struct IngestSummary {
  uint64_t groups = 0;
  uint64_t units = 0;
  uint64_t log_entries = 0;
  uint64_t write_ops = 0;
  uint64_t write_bytes = 0;
  uint64_t commit_micros = 0;
  uint64_t write_micros = 0;
};

IngestSummary ParseSummary(const std::string& log) {
  IngestSummary s;
  const size_t at = log.find("event=ingest.summary");
  if (at == std::string::npos) Die("the server log has no ingest.summary line");
  const std::string line = log.substr(at, log.find('\n', at) - at);
  for (absl::string_view kv : absl::StrSplit(line, ' ')) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    uint64_t v = 0;
    if (!absl::SimpleAtoi(p.second, &v)) continue;
    if (p.first == "groups") s.groups = v;
    if (p.first == "units") s.units = v;
    if (p.first == "log_entries") s.log_entries = v;
    if (p.first == "write_ops") s.write_ops = v;
    if (p.first == "write_bytes") s.write_bytes = v;
    if (p.first == "commit_micros") s.commit_micros = v;
    if (p.first == "write_micros") s.write_micros = v;
  }
  return s;
}

// --- deployment and devices --------------------------------------------------

struct Deployment {
  std::string dir;
  std::string data_dir;
  std::unique_ptr<sync::Schema> schema;
  std::vector<std::string> regions;
};

Deployment MakeDeployment(const Options& options, const std::string& name) {
  Deployment d;
  d.dir = options.work + "/" + name;
  fs::remove_all(d.dir);
  fs::create_directories(d.dir);
  d.data_dir = d.dir + "/data";
  if (RunAndWait({options.fieldsync, "init", "--data-dir", d.data_dir}, d.dir + "/init.out") != 0) {
    Die("fieldsync init failed; see " + d.dir + "/init.out");
  }
  if (options.connected > 0) {
    // Enrolling a whole fleet at once is past the default rate of
    // enrolment attempts (limits.enrolment_attempts_per_minute), as it
    // would be for an operator doing so: raise it for this deployment.
    std::ofstream conf(d.data_dir + "/fieldsyncd.conf");
    conf << "limits { enrolment_attempts_per_minute: 60000 }\n";
    if (!conf) Die("cannot write " + d.data_dir + "/fieldsyncd.conf");
  }
  admin::DeploymentPaths paths(d.data_dir);
  absl::StatusOr<v1::Schema> proto = sync::LoadSchemaFile(paths.schema);
  Check(proto.status(), "schema");
  absl::StatusOr<std::unique_ptr<sync::Schema>> schema = sync::Schema::Create(*std::move(proto));
  Check(schema.status(), "schema");
  d.schema = *std::move(schema);
  const v1::FieldDef* region =
      d.schema->FindField(d.schema->registration_type().name(), d.schema->region_field());
  if (region == nullptr) Die("the schema has no region field");
  for (const std::string& r : region->enum_values()) {
    if (r != "unknown") d.regions.push_back(r);
  }
  return d;
}

tools::Connection AdminConnection(const Deployment& d, const std::string& server) {
  tools::Args args;
  args.options.emplace("--data-dir", d.data_dir);
  args.options.emplace("--server", server);
  absl::StatusOr<tools::Connection> c = tools::Connect(args);
  Check(c.status(), "admin connection");
  return *c;
}

std::string CaPem(const Deployment& d) {
  absl::StatusOr<std::string> pem = ReadFile(admin::DeploymentPaths(d.data_dir).admin_ca_cert);
  Check(pem.status(), "CA certificate");
  return *pem;
}

struct Device {
  tools::EnrolledDevice enrolled;
  std::string region;
  std::vector<v1::PushRequest> batches;     // sealed ahead, in sequence order
  std::vector<v1::BatchPayload> payloads;   // what `batches` hold (--edit)
  std::vector<v1::PushResponse> responses;  // PushAll's answers, in order
};

Device Enrol(const Deployment& d, const tools::Connection& admin, const std::string& ca_pem,
             int officer, Random& random) {
  Device device;
  device.region = d.regions[officer % d.regions.size()];
  tools::EnrolDeviceRequest request;
  request.officer_id = absl::StrFormat("load-officer-%d", officer);
  request.region = device.region;
  {
    // Enrolment codes are issued only for registered officers.
    v1::AddOfficerRequest add;
    add.set_id(request.officer_id);
    add.set_region(device.region);
    v1::AddOfficerResponse added;
    grpc::ClientContext context;
    context.set_deadline(tools::Deadline());
    grpc::Status s = v1::AdminService::NewStub(admin.channel)->AddOfficer(&context, add, &added);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      Check(absl::UnavailableError(s.error_message()), "register officer");
    }
  }
  request.label = absl::StrFormat("load generator %d", officer);
  absl::StatusOr<tools::EnrolledDevice> enrolled =
      tools::EnrolDevice(admin, ca_pem, request, random);
  Check(enrolled.status(), "enrol");
  device.enrolled = *std::move(enrolled);
  return device;
}

// Field values for a new case's registration: 19 fields, the 8 IDENTIFYING
// ones encrypted at rest. Synthetic values only.
class ContentMaker {
 public:
  ContentMaker(const sync::Schema& schema, uint64_t seed) : schema_(schema), state_(seed) {}

  v1::RecordChange Registration(const std::string& region, absl::Time at, Random& ids) {
    static const std::vector<std::string> kNames = {"Amina",  "Grace", "Joseph", "David",
                                                    "Fatima", "Peter", "Halima", "Moses"};
    static const std::vector<std::string> kFamilies = {"Okello", "Mensah", "Banda", "Phiri",
                                                       "Kamara", "Diallo", "Abdi",  "Mutua"};
    const std::string type = schema_.registration_type().name();
    const std::string case_id = FormatUuid(NewUuid(ids));
    v1::RecordChange c;
    c.set_change_id(FormatUuid(NewUuid(ids)));
    c.set_case_id(case_id);
    c.set_record_id(case_id);
    c.set_record_type(type);
    c.set_kind(v1::CHANGE_KIND_UPSERT);
    c.mutable_hlc()->set_wall_micros(absl::ToUnixMicros(at));
    auto put = [&](const std::string& field, v1::FieldValue value) {
      if (schema_.FindField(type, field) == nullptr) return;
      v1::FieldWrite* w = c.add_fields();
      w->set_field(field);
      *w->mutable_value() = std::move(value);
    };
    auto str = [](std::string s) {
      v1::FieldValue v;
      v.set_string_value(std::move(s));
      return v;
    };
    auto enm = [&](const std::string& field) {
      v1::FieldValue v;
      const v1::FieldDef* def = schema_.FindField(type, field);
      if (def == nullptr || def->enum_values().empty()) return v;
      std::vector<std::string> allowed;
      for (const std::string& e : def->enum_values()) {
        if (e == "unknown") continue;
        if (field == "district" && !e.starts_with(region + "_")) continue;
        allowed.push_back(e);
      }
      v.set_enum_value(allowed.empty() ? def->enum_values(0) : Pick(allowed));
      return v;
    };
    auto date = [&](int days_ago) {
      const absl::CivilDay d = absl::ToCivilDay(at, absl::UTCTimeZone()) - days_ago;
      v1::FieldValue v;
      v.mutable_date_value()->set_year(static_cast<int32_t>(d.year()));
      v.mutable_date_value()->set_month(d.month());
      v.mutable_date_value()->set_day(d.day());
      return v;
    };
    // Encrypted (IDENTIFYING): 8.
    put("given_name", str(Pick(kNames)));
    put("family_name", str(Pick(kFamilies)));
    v1::FieldValue other;
    other.mutable_string_list_value()->add_values(Pick(kNames));
    put("other_names", other);
    put("date_of_birth", date(365 * static_cast<int>(Next() % 18) + 30));
    put("caregiver_name", str(Pick(kNames) + " " + Pick(kFamilies)));
    put("caregiver_phone",
        str(absl::StrFormat("+999 7%02d %03d %03d", Next() % 100, Next() % 1000, Next() % 1000)));
    put("village", str(Pick(kFamilies) + " Hill"));
    v1::FieldValue gps;
    gps.mutable_geopoint_value()->set_latitude(-1.0 + static_cast<double>(Next() % 40000) / 1e4);
    gps.mutable_geopoint_value()->set_longitude(30.0 + static_cast<double>(Next() % 40000) / 1e4);
    gps.mutable_geopoint_value()->set_accuracy_m(10);
    put("gps_location", gps);
    // In clear (DIMENSION, OPERATIONAL): 11.
    put("sex", enm("sex"));
    put("age_band", enm("age_band"));
    put("nationality", enm("nationality"));
    v1::FieldValue languages;
    languages.mutable_string_list_value()->add_values("Swahili");
    put("languages", languages);
    v1::FieldValue disability;
    disability.set_bool_value(Next() % 10 == 0);
    put("has_disability", disability);
    put("caregiver_relationship", enm("caregiver_relationship"));
    put("care_arrangement", enm("care_arrangement"));
    v1::FieldValue r;
    r.set_enum_value(region);
    put("region", r);
    put("district", enm("district"));
    put("registration_date", date(static_cast<int>(Next() % 30)));
    put("priority", enm("priority"));
    return c;
  }

 private:
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  const std::string& Pick(const std::vector<std::string>& v) { return v[Next() % v.size()]; }

  const sync::Schema& schema_;
  uint64_t state_;
};

// Seals `payload` as `device`'s batch `sequence` and queues it.
void SealOne(Device& device, const v1::BatchPayload& payload, uint64_t sequence, Random& random) {
  protocol::BatchSealParams params = device.enrolled.tablet->SealParams(NewUuid(random), sequence);
  params.compression = v1::PAYLOAD_COMPRESSION_ZSTD;
  absl::StatusOr<v1::SealedBatch> sealed = protocol::SealBatch(payload, params, random);
  Check(sealed.status(), "seal");
  v1::PushRequest request;
  *request.mutable_batch() = *std::move(sealed);
  device.batches.push_back(std::move(request));
  device.payloads.push_back(payload);
}

// Seals `count` batches of `size` new cases for `device`, sequences 1..count.
void SealAhead(Device& device, const sync::Schema& schema, int count, int size, uint64_t seed,
               Random& random) {
  ContentMaker content(schema, seed);
  absl::Time at = absl::Now() - absl::Hours(1);
  device.batches.reserve(static_cast<size_t>(count));
  for (int b = 0; b < count; ++b) {
    v1::BatchPayload payload;
    for (int i = 0; i < size; ++i) {
      at += absl::Microseconds(1);
      *payload.add_changes() = content.Registration(device.region, at, random);
    }
    SealOne(device, payload, static_cast<uint64_t>(b) + 1, random);
  }
}

// One-field edits of the cases `device` registered (its payloads and the
// answers to them, in order), one per case, sealed as the batches after
// them: even cases get a new caregiver_phone (encrypted), odd ones a new
// priority (clear), each with the base version the answer gave.
void SealEditsAhead(Device& device, int size, Random& random) {
  std::vector<v1::RecordChange> edits;
  uint64_t n = 0;
  for (size_t b = 0; b < device.payloads.size() && b < device.responses.size(); ++b) {
    const v1::BatchPayload& payload = device.payloads[b];
    const v1::PushResponse& response = device.responses[b];
    for (int i = 0; i < payload.changes_size() && i < response.results_size(); ++i, ++n) {
      const v1::RecordChange& made = payload.changes(i);
      const v1::ChangeResult& result = response.results(i);
      if (result.outcome() != v1::CHANGE_OUTCOME_APPLIED) continue;
      const std::string field = n % 2 == 0 ? "caregiver_phone" : "priority";
      v1::RecordChange e;
      e.set_change_id(FormatUuid(NewUuid(random)));
      e.set_case_id(made.case_id());
      e.set_record_id(made.record_id());
      e.set_record_type(made.record_type());
      e.set_kind(v1::CHANGE_KIND_UPSERT);
      e.mutable_hlc()->set_wall_micros(made.hlc().wall_micros() + 1000000);
      v1::FieldWrite* w = e.add_fields();
      w->set_field(field);
      for (const v1::FieldResult& f : result.fields()) {
        if (f.field() == field) w->set_base_version(f.version());
      }
      if (field == "priority") {
        std::string current;
        for (const v1::FieldWrite& f : made.fields()) {
          if (f.field() == field) current = f.value().enum_value();
        }
        w->mutable_value()->set_enum_value(current == "high" ? "low" : "high");
      } else {
        w->mutable_value()->set_string_value(absl::StrFormat("+999 6%09d", n));
      }
      edits.push_back(std::move(e));
    }
  }
  uint64_t sequence = device.batches.size();
  device.batches.clear();
  device.payloads.clear();
  for (size_t at = 0; at < edits.size(); at += static_cast<size_t>(size)) {
    v1::BatchPayload payload;
    for (size_t i = at; i < edits.size() && i < at + static_cast<size_t>(size); ++i) {
      *payload.add_changes() = std::move(edits[i]);
    }
    SealOne(device, payload, ++sequence, random);
  }
  device.responses.clear();
}

// --- measuring ---------------------------------------------------------------

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// The bare ceiling: `summary.groups` synced commits, one after another,
// each carrying write_ops / groups puts and write_bytes / groups bytes, to
// a fresh store with the server's defaults. Returns seconds.
double BareSeconds(const IngestSummary& summary, const std::string& dir, Random& random) {
  if (summary.groups == 0) return 0;
  fs::remove_all(dir);
  storage::StoreOptions options;
  options.path = dir;
  options.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
  Check(store.status(), "bare store");
  const uint64_t ops = std::max<uint64_t>(1, summary.write_ops / summary.groups);
  const uint64_t bytes = summary.write_bytes / summary.groups;
  // Each put: a 24-byte random key and the rest of its share as value.
  const uint64_t value_size = bytes / ops > 40 ? bytes / ops - 40 : 1;
  std::string value(value_size, 'v');
  std::string key(24, '\0');
  const absl::Time start = absl::Now();
  for (uint64_t g = 0; g < summary.groups; ++g) {
    storage::WriteBatch batch;
    for (uint64_t i = 0; i < ops; ++i) {
      random.Fill(std::span<uint8_t>(reinterpret_cast<uint8_t*>(key.data()), key.size()));
      random.Fill(std::span<uint8_t>(reinterpret_cast<uint8_t*>(value.data()),
                                     std::min<size_t>(value.size(), 16)));
      batch.Put(storage::Cf::kRecords, key, value);
    }
    Check((*store)->Commit(&batch), "bare commit");
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  Check((*store)->Close(), "bare close");
  fs::remove_all(dir);
  return seconds;
}

struct PushFigures {
  std::string workload = "new";
  int devices = 0;
  uint64_t changes = 0;
  uint64_t applied = 0;
  uint64_t failed_pushes = 0;
  double seconds = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  // Of every push but each device's first (those arrive together at a
  // freshly started server).
  double p99_after_first_ms = 0;
  double server_cpu_s = 0;
  // The generator's own CPU in the timed phase (it shares the cores).
  double generator_cpu_s = 0;
  double peak_rss_mib = 0;
  IngestSummary summary;
  double bare_seconds = 0;
  double connect_seconds = 0;  // ConnectAll's, before the timed phase
};

struct Connected {
  int devices = 0;
  double seconds = 0;
};

// Opens every device's mutual-TLS connection, one after another (a tablet
// connects once and then pushes over it, so the timed phases measure
// pushes on open connections and the handshakes are reported apart).
Connected ConnectAll(std::vector<Device>& devices) {
  Connected out;
  const absl::Time start = absl::Now();
  for (Device& dev : devices) {
    if (dev.enrolled.channel->WaitForConnected(
            absl::ToChronoTime(absl::Now() + absl::Seconds(30)))) {
      ++out.devices;
    }
  }
  out.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return out;
}

// Pushes every device's batches back to back, one thread per device.
// `keep_answers`: each answer is kept in its device's `responses` (the
// edits are made from them); otherwise each device reads its answers into
// one message it reuses, so that the generator does not grow its heap
// (page faults, malloc) for the 1,900 field results of every answer on the
// cores the server runs on.
// `trace`: when set, each push's line (see --trace) is written to it.
void PushAll(std::vector<Device>& devices, PushFigures* figures, bool keep_answers = false,
             std::ostream* trace = nullptr) {
  std::vector<std::vector<double>> latencies(devices.size());
  std::vector<std::vector<double>> starts(devices.size());
  std::atomic<uint64_t> applied{0}, changes{0}, failed{0};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < devices.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = v1::SyncService::NewStub(devices[i].enrolled.channel);
      Device& dev = devices[i];
      dev.responses.assign(keep_answers ? dev.batches.size() : 1, v1::PushResponse());
      latencies[i].reserve(dev.batches.size());
      starts[i].reserve(dev.batches.size());
      for (size_t b = 0; b < dev.batches.size(); ++b) {
        v1::PushResponse& response = dev.responses[keep_answers ? b : 0];
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        const absl::Time sent = absl::Now();
        grpc::Status s = stub->Push(&context, dev.batches[b], &response);
        latencies[i].push_back(absl::ToDoubleMilliseconds(absl::Now() - sent));
        starts[i].push_back(absl::ToDoubleMilliseconds(sent - start));
        if (!s.ok()) {
          if (failed.fetch_add(1) == 0) {
            std::cerr << "push failed: " << s.error_code() << " " << s.error_message() << "\n";
          }
          continue;
        }
        changes += static_cast<uint64_t>(response.results_size());
        for (const v1::ChangeResult& r : response.results()) {
          if (r.outcome() == v1::CHANGE_OUTCOME_APPLIED) ++applied;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  figures->seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (size_t i = 0; trace != nullptr && i < devices.size(); ++i) {
    for (size_t b = 0; b < latencies[i].size(); ++b) {
      *trace << absl::StrFormat("%d,%d,%d,%.1f,%.1f\n", devices.size(), i, b + 1, starts[i][b],
                                latencies[i][b]);
    }
  }
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  figures->p50_ms = Percentile(all, 0.50);
  figures->p99_ms = Percentile(all, 0.99);
  std::vector<double> later;
  for (const auto& l : latencies) {
    if (l.size() > 1) later.insert(later.end(), l.begin() + 1, l.end());
  }
  figures->p99_after_first_ms = Percentile(later, 0.99);
  figures->applied = applied;
  figures->changes = changes;
  figures->failed_pushes = failed;
}

struct PullFigures {
  uint64_t changes = 0;
  uint64_t chunks = 0;
  uint64_t streams = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  double server_cpu_s = 0;
};

PullFigures PullEverything(Device& reader, pid_t server) {
  PullFigures f;
  std::vector<v1::PullChunk> chunks;
  auto stub = v1::SyncService::NewStub(reader.enrolled.channel);
  uint64_t cursor = 0;
  bool caught_up = false;
  const double cpu0 = CpuSeconds(server);
  const absl::Time start = absl::Now();
  while (!caught_up && f.streams < 10000) {
    v1::PullRequest request;
    request.set_cursor(cursor);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(600));
    std::unique_ptr<grpc::ClientReader<v1::PullChunk>> stream = stub->Pull(&context, request);
    v1::PullChunk chunk;
    while (stream->Read(&chunk)) {
      cursor = chunk.next_cursor();
      caught_up = chunk.caught_up();
      f.bytes += chunk.ByteSizeLong();
      chunks.push_back(std::move(chunk));
    }
    grpc::Status s = stream->Finish();
    if (!s.ok()) Die("pull: " + s.error_message());
    ++f.streams;
  }
  f.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  f.server_cpu_s = CpuSeconds(server) - cpu0;
  f.chunks = chunks.size();
  // Open every chunk with the device's key (outside the timed phase) to
  // count what was delivered and to check it is well formed.
  for (const v1::PullChunk& c : chunks) {
    absl::StatusOr<v1::PulledChanges> opened = reader.enrolled.tablet->TakePullChunk(c);
    Check(opened.status(), "open pull chunk");
    f.changes += static_cast<uint64_t>(opened->changes_size());
  }
  return f;
}

// `total` per canonical log entry the server wrote.
double PerChange(uint64_t total, const IngestSummary& s) {
  return s.log_entries > 0 ? static_cast<double>(total) / static_cast<double>(s.log_entries) : 0;
}

// The share of `seconds` that `micros` of one thread's time is.
double Share(uint64_t micros, double seconds) {
  return seconds > 0 ? static_cast<double>(micros) / 1e6 / seconds : 0;
}

void PrintPush(const PushFigures& f) {
  const double rate = f.seconds > 0 ? static_cast<double>(f.applied) / f.seconds : 0;
  const double bare_rate = f.bare_seconds > 0 ? static_cast<double>(f.applied) / f.bare_seconds : 0;
  std::cout << absl::StrFormat(
      "push workload=%s devices=%d changes=%d applied=%d failed_pushes=%d seconds=%.2f "
      "changes_per_s=%.0f p50_ms=%.1f p99_ms=%.1f server_cpu_s=%.1f server_cpu_per_wall=%.2f "
      "peak_rss_mib=%.0f groups=%d units_per_group=%.2f write_bytes_per_group=%d "
      "bytes_per_change=%.0f keys_per_change=%.2f "
      "bare_seconds=%.2f bare_changes_per_s=%.0f ratio=%.2f connect_s=%.2f "
      "p99_after_first_ms=%.1f committing_share=%.2f synced_write_share=%.2f "
      "generator_cpu_s=%.1f\n",
      f.workload, f.devices, f.changes, f.applied, f.failed_pushes, f.seconds, rate, f.p50_ms,
      f.p99_ms, f.server_cpu_s, f.seconds > 0 ? f.server_cpu_s / f.seconds : 0, f.peak_rss_mib,
      f.summary.groups,
      f.summary.groups ? static_cast<double>(f.summary.units) / f.summary.groups : 0,
      f.summary.groups ? f.summary.write_bytes / f.summary.groups : 0,
      PerChange(f.summary.write_bytes, f.summary), PerChange(f.summary.write_ops, f.summary),
      f.bare_seconds, bare_rate, bare_rate > 0 ? rate / bare_rate : 0, f.connect_seconds,
      f.p99_after_first_ms, Share(f.summary.commit_micros, f.seconds),
      Share(f.summary.write_micros, f.seconds), f.generator_cpu_s);
}

// `trace`: --trace's file, or null.
void RunPushScenario(const Options& options, int n, bool pull, std::ostream* trace,
                     Random& random) {
  Deployment d = MakeDeployment(options, absl::StrFormat("push-%d", n));
  auto server = std::make_unique<ServerProcess>(options, d.data_dir, d.dir);
  tools::Connection admin = AdminConnection(d, server->address());
  const std::string ca = CaPem(d);
  std::vector<Device> devices;
  for (int i = 0; i < n; ++i) devices.push_back(Enrol(d, admin, ca, i, random));
  const int per_device =
      std::max(1, (options.changes + n * options.batch - 1) / (n * options.batch));
  for (int i = 0; i < n; ++i) {
    SealAhead(devices[i], *d.schema, per_device, options.batch, 1000 + static_cast<uint64_t>(i),
              random);
  }
  PushFigures figures;
  figures.devices = n;
  if (options.edit) {
    // Register the cases on a server process of their own, so that the
    // timed process's ingest.summary counts the edits alone.
    PushFigures setup;
    PushAll(devices, &setup, /*keep_answers=*/true);
    if (setup.failed_pushes > 0) Die("registering the cases to edit failed");
    server->Stop();
    for (Device& device : devices) SealEditsAhead(device, options.batch, random);
    server = std::make_unique<ServerProcess>(options, d.data_dir, d.dir);
    admin = AdminConnection(d, server->address());
    for (Device& device : devices) {
      device.enrolled.channel =
          tools::DeviceChannel(server->address(), ca, device.enrolled.certificate_pem,
                               device.enrolled.tls_private_key_pem);
    }
    figures.workload = "edit";
  }
  const Connected connected = ConnectAll(devices);
  if (connected.devices != n) Die("a device could not connect");
  figures.connect_seconds = connected.seconds;
  const double cpu0 = CpuSeconds(server->pid());
  const double own_cpu0 = CpuSeconds(getpid());
  PushAll(devices, &figures, /*keep_answers=*/false, trace);
  figures.server_cpu_s = CpuSeconds(server->pid()) - cpu0;
  figures.generator_cpu_s = CpuSeconds(getpid()) - own_cpu0;
  if (pull) {
    Device reader = Enrol(d, admin, ca, 0, random);
    PullFigures p = PullEverything(reader, server->pid());
    std::cout << absl::StrFormat(
        "pull changes=%d chunks=%d streams=%d mib=%.1f seconds=%.2f changes_per_s=%.0f "
        "server_cpu_s=%.1f\n",
        p.changes, p.chunks, p.streams, static_cast<double>(p.bytes) / (1 << 20), p.seconds,
        p.seconds > 0 ? static_cast<double>(p.changes) / p.seconds : 0, p.server_cpu_s);
  }
  figures.peak_rss_mib = PeakRssMib(server->pid());
  devices.clear();
  figures.summary = ParseSummary(server->Stop());
  figures.bare_seconds = BareSeconds(figures.summary, d.dir + "/bare", random);
  PrintPush(figures);
  if (!options.keep) fs::remove_all(d.dir);
}

// --- many connected devices --------------------------------------------------

void RunConnectedScenario(const Options& options, Random& random) {
  const int m = options.connected;
  Deployment d = MakeDeployment(options, absl::StrFormat("connected-%d", m));
  ServerProcess server(options, d.data_dir, d.dir);
  tools::Connection admin = AdminConnection(d, server.address());
  const std::string ca = CaPem(d);
  const int rounds =
      std::max(1, options.connected_seconds / std::max(1, options.connected_interval));
  std::vector<Device> devices;
  devices.reserve(static_cast<size_t>(m));
  const absl::Time enrol_start = absl::Now();
  for (int i = 0; i < m; ++i) {
    devices.push_back(Enrol(d, admin, ca, i, random));
    SealAhead(devices.back(), *d.schema, rounds, options.connected_batch,
              5000 + static_cast<uint64_t>(i), random);
  }
  std::cout << absl::StrFormat("connected: enrolled and sealed for %d devices in %.1f s\n", m,
                               absl::ToDoubleSeconds(absl::Now() - enrol_start));
  // The scenario is of connected devices: each opens its mutual-TLS
  // connection before the timed schedule starts; the handshakes are timed
  // on their own.
  const Connected connected = ConnectAll(devices);
  std::cout << absl::StrFormat("connected: %d of %d devices connected in %.1f s\n",
                               connected.devices, m, connected.seconds);

  // Every device's next push is due at start + its offset + k * interval
  // (the offsets spread the devices over one interval); a scheduler thread
  // sends due pushes with the callback API, so one thread serves all M.
  struct Slot {
    absl::Time due;
    int device;
    bool operator>(const Slot& o) const { return due > o.due; }
  };
  std::mutex mu;
  std::condition_variable cv;
  std::priority_queue<Slot, std::vector<Slot>, std::greater<Slot>> due;
  std::vector<size_t> next(static_cast<size_t>(m), 0);
  std::vector<std::unique_ptr<v1::SyncService::Stub>> stubs;
  for (Device& dev : devices) stubs.push_back(v1::SyncService::NewStub(dev.enrolled.channel));
  std::vector<double> latencies;
  std::map<int, int> errors;
  uint64_t pushes = 0, changes = 0;
  int in_flight = 0;
  int remaining = m * rounds;
  const absl::Duration interval = absl::Seconds(options.connected_interval);
  const double cpu0 = CpuSeconds(server.pid());
  const absl::Time start = absl::Now();
  for (int i = 0; i < m; ++i) {
    due.push(Slot{start + interval * (static_cast<double>(i) / m), i});
  }
  struct Call {
    grpc::ClientContext context;
    v1::PushResponse response;
    absl::Time sent;
  };
  std::unique_lock<std::mutex> lock(mu);
  while (remaining > 0) {
    if (due.empty() || due.top().due > absl::Now()) {
      if (due.empty()) {
        cv.wait(lock);
      } else {
        cv.wait_for(lock, absl::ToChronoNanoseconds(due.top().due - absl::Now()));
      }
      continue;
    }
    const Slot slot = due.top();
    due.pop();
    const int i = slot.device;
    auto call = std::make_shared<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    call->sent = absl::Now();
    ++in_flight;
    const v1::PushRequest& request = devices[static_cast<size_t>(i)].batches[next[i]++];
    stubs[static_cast<size_t>(i)]->async()->Push(
        &call->context, &request, &call->response, [&, call, i](grpc::Status s) {
          std::lock_guard<std::mutex> guard(mu);
          latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - call->sent));
          --in_flight;
          --remaining;
          if (s.ok()) {
            ++pushes;
            changes += static_cast<uint64_t>(call->response.results_size());
          } else {
            ++errors[s.error_code()];
          }
          if (next[i] < devices[static_cast<size_t>(i)].batches.size()) {
            due.push(Slot{call->sent + interval, i});
          }
          cv.notify_all();
        });
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  lock.unlock();
  int ready = 0;
  for (const Device& dev : devices) {
    if (dev.enrolled.channel->GetState(false) == GRPC_CHANNEL_READY) ++ready;
  }
  const double cpu = CpuSeconds(server.pid()) - cpu0;
  const double rss = PeakRssMib(server.pid());
  std::string error_text;
  for (const auto& [code, count] : errors) error_text += absl::StrFormat(" code%d=%d", code, count);
  std::cout << absl::StrFormat(
      "connected devices=%d ready_at_end=%d pushes=%d changes=%d errors=%d%s seconds=%.1f "
      "changes_per_s=%.0f p50_ms=%.1f p99_ms=%.1f server_cpu_s=%.1f peak_rss_mib=%.0f\n",
      m, ready, pushes, changes, m * rounds - static_cast<int>(pushes), error_text, seconds,
      static_cast<double>(changes) / seconds, Percentile(latencies, 0.5),
      Percentile(latencies, 0.99), cpu, rss);
  devices.clear();
  server.Stop();
  if (!options.keep) fs::remove_all(d.dir);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  const fs::path self = fs::read_symlink("/proc/self/exe").parent_path();
  o.fieldsyncd = (self / "../server/fieldsyncd").lexically_normal().string();
  o.fieldsync = (self / "../tools/fieldsync").lexically_normal().string();
  o.work = (fs::temp_directory_path() / absl::StrFormat("fieldsync-load-%d", getpid())).string();
  auto number = [&](int i) {
    int v = 0;
    if (i + 1 >= argc || !absl::SimpleAtoi(argv[i + 1], &v) || v < 0) {
      Die(absl::StrFormat("%s needs a number", argv[i]));
    }
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--devices" && i + 1 < argc) {
      o.devices.clear();
      for (absl::string_view p : absl::StrSplit(argv[++i], ',')) {
        int v = 0;
        if (!absl::SimpleAtoi(p, &v) || v <= 0) Die("--devices takes a list like 1,8,32");
        o.devices.push_back(v);
      }
    } else if (a == "--changes") {
      o.changes = number(i++);
    } else if (a == "--batch") {
      o.batch = number(i++);
    } else if (a == "--pull") {
      o.pull = true;
    } else if (a == "--edit") {
      o.edit = true;
    } else if (a == "--connected") {
      o.connected = number(i++);
    } else if (a == "--connected-seconds") {
      o.connected_seconds = number(i++);
    } else if (a == "--connected-interval") {
      o.connected_interval = number(i++);
    } else if (a == "--connected-batch") {
      o.connected_batch = number(i++);
    } else if (a == "--fieldsyncd" && i + 1 < argc) {
      o.fieldsyncd = argv[++i];
    } else if (a == "--fieldsync" && i + 1 < argc) {
      o.fieldsync = argv[++i];
    } else if (a == "--work" && i + 1 < argc) {
      o.work = argv[++i];
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--trace" && i + 1 < argc) {
      o.trace = argv[++i];
    } else {
      Die("unknown option " + a + " (see the comment at the top of bench/sync_load.cc)");
    }
  }
  return o;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) {
  using namespace fieldsync::bench;
  Options options = ParseOptions(argc, argv);
  // Many devices mean many connections: allow as many descriptors as the
  // hard limit does.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  // Opened before any setup, so that a path it cannot write stops the run
  // at once; runs append to it, the header written once.
  std::ofstream trace;
  if (!options.trace.empty()) {
    trace.open(options.trace, std::ios::app);
    if (!trace) Die("cannot write the trace to " + options.trace);
    if (trace.tellp() == 0) trace << "devices,device,push,start_ms,latency_ms\n";
  }
  fs::create_directories(options.work);
  fieldsync::Random& random = *fieldsync::crypto::SystemRandom::Get();
  std::cout << absl::StrFormat("machine: %d cores; work dir %s\n",
                               std::thread::hardware_concurrency(), options.work);
  bool first = true;
  for (int n : options.devices) {
    RunPushScenario(options, n, options.pull && first, trace.is_open() ? &trace : nullptr, random);
    first = false;
  }
  if (options.connected > 0) RunConnectedScenario(options, random);
  if (!options.keep) fs::remove_all(options.work);
  return 0;
}
