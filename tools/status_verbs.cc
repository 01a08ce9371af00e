#include "tools/status_verbs.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "admin/certificates.h"
#include "common/build_info.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tools/case_format.h"
#include "tools/client.h"

namespace fieldsync::tools {
namespace {

constexpr char kHelp[] =
    "usage: fieldsync --data-dir DIR status [--window 15m] [--json]\n"
    "\n"
    "Asks the running fieldsyncd (administrators only) how it is: health, its\n"
    "version, commit and build type, uptime, the size of its store on disk, the\n"
    "audit log's size, the last signed tree head (size and time), the devices\n"
    "connected (tablets that pushed or pulled within --window, default 15m, at\n"
    "most 7d), the active principals and open enrolment codes, failed and refused\n"
    "enrolment attempts and locked-out addresses since the server started, and the\n"
    "expiry of the server and CA certificates (staff and device certificates last\n"
    "one year from issue and are not listed). Without --server it finds the server through\n"
    "DIR/fieldsyncd.address; when none runs it says so in one line and exits 1.\n"
    "--json prints one object.\n";

std::string Ago(absl::Time then, absl::Time now) {
  if (then > now) return "just now";
  return HumanDuration(now - then) + " ago";
}

std::string Expiry(int64_t not_after_micros, absl::Time now) {
  const absl::Time t = absl::FromUnixMicros(not_after_micros);
  const std::string when = UtcTime(not_after_micros);
  if (t <= now) return when + " (EXPIRED)";
  const int64_t days = absl::ToInt64Hours(t - now) / 24;
  return absl::StrFormat("%s (in %d days)%s", when, days, days < 30 ? "  RENEW SOON" : "");
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text) {
  absl::Duration d;
  if (!text.empty() && text.back() == 'd') {
    int days = 0;
    if (absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) && days > 0 && days <= 3650) {
      return absl::Hours(24) * days;
    }
  } else if (absl::ParseDuration(text, &d) && d > absl::ZeroDuration()) {
    return d;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("\"%s\" is not a duration like 90s, 15m, 24h or 7d", text));
}

std::string HumanDuration(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrFormat("%ds", s);
  const int64_t days = s / 86400, hours = s % 86400 / 3600, minutes = s % 3600 / 60;
  if (days > 0) return absl::StrFormat("%dd %dh", days, hours);
  if (hours > 0) return absl::StrFormat("%dh %dm", hours, minutes);
  return absl::StrFormat("%dm", minutes);
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrFormat("%d B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, units[unit]);
}

int Status(const Args& args, std::string* error) {
  if (args.help) {
    std::cout << kHelp;
    return 0;
  }
  if (absl::Status s = CheckOptions(
          args, {"--data-dir", "--server", "--cert", "--key", "--ca", "--window", "--json"});
      !s.ok()) {
    *error = std::string(s.message());
    return 2;
  }
  if (args.words.size() != 1) {
    *error = "status takes options only; see fieldsync status --help";
    return 2;
  }
  v1::GetStatusRequest request;
  if (args.Has("--window")) {
    absl::StatusOr<absl::Duration> window = ParseDurationFlag(args.Get("--window"));
    if (!window.ok() || *window > absl::Hours(24 * 7)) {
      *error = "--window must be a duration like 15m, 1h or 7d (at most 7d)";
      return 2;
    }
    request.set_active_window_seconds(
        static_cast<uint32_t>(std::max<int64_t>(1, absl::ToInt64Seconds(*window))));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) {
    *error = std::string(conn.status().message());
    return 1;
  }
  v1::GetStatusResponse r;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::Status s = v1::AdminService::NewStub(conn->channel)->GetStatus(&context, request, &r);
  if (!s.ok()) {
    *error = DescribeRpcError(s, conn->server);
    return 1;
  }
  const absl::Time now = absl::Now();
  if (args.Has("--json")) {
    nlohmann::json certs = nlohmann::json::array();
    for (const v1::CertificateExpiry& c : r.certificates()) {
      certs.push_back({{"kind", std::string(admin::CertificateKindName(c.kind()))},
                       {"principal_id", c.principal_id()},
                       {"serial", c.serial()},
                       {"not_after", JsonTime(c.not_after_unix_micros())},
                       {"previous", c.is_previous()}});
    }
    nlohmann::json out = {
        {"server", conn->server},
        {"health", r.health()},
        {"version", r.version()},
        {"commit", r.commit()},
        {"build_type", r.build_type()},
        {"client_version", std::string(BuildVersion())},
        {"client_commit", std::string(BuildCommit())},
        {"deployment", r.deployment_id()},
        {"started", JsonTime(r.started_unix_micros())},
        {"uptime_seconds", r.uptime_seconds()},
        {"store_bytes", r.store_bytes()},
        {"audit_tree_size", r.audit_tree_size()},
        {"last_head",
         {{"size", r.last_head_size()}, {"signed", JsonTime(r.last_head_unix_micros())}}},
        {"active_devices", r.active_devices()},
        {"active_window_seconds", r.active_window_seconds()},
        {"enrolled_devices", r.enrolled_devices()},
        {"active_staff", r.active_staff()},
        {"active_officers", r.active_officers()},
        {"open_enrolment_codes", r.open_enrolment_codes()},
        {"enrolment_attempts",
         {{"failed", r.failed_enrolments()},
          {"refused", r.refused_enrolments()},
          {"lockouts", r.enrolment_lockouts()},
          {"locked_out_addresses", r.locked_out_addresses()}}},
        {"certificates", certs}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat("fieldsyncd at %s: %s\n", conn->server, r.health());
  std::string version =
      absl::StrFormat("%s (commit %s, %s build)", r.version(), r.commit(), r.build_type());
  if (r.version() != BuildVersion() || r.commit() != BuildCommit()) {
    absl::StrAppendFormat(&version, "; this fieldsync is %s (commit %s)",
                          std::string(BuildVersion()), std::string(BuildCommit()));
  }
  std::cout << "version:           " << version << "\n"
            << "deployment:        " << r.deployment_id() << "\n"
            << "up since:          " << UtcTime(r.started_unix_micros()) << " UTC ("
            << HumanDuration(absl::Seconds(r.uptime_seconds())) << ")\n"
            << "store on disk:     " << HumanBytes(r.store_bytes()) << "\n"
            << "audit log:         " << r.audit_tree_size() << " entries\n";
  if (r.last_head_unix_micros() == 0) {
    std::cout << "last signed head:  none yet\n";
  } else {
    std::cout << absl::StrFormat("last signed head:  size %d, signed %s UTC (%s)\n",
                                 r.last_head_size(), UtcTime(r.last_head_unix_micros()),
                                 Ago(absl::FromUnixMicros(r.last_head_unix_micros()), now));
  }
  std::cout << absl::StrFormat(
                   "devices:           %d connected (pushed or pulled in the last %s) of %d "
                   "enrolled\n",
                   r.active_devices(), HumanDuration(absl::Seconds(r.active_window_seconds())),
                   r.enrolled_devices())
            << absl::StrFormat(
                   "principals:        %d staff, %d officers active; %d open enrolment codes\n",
                   r.active_staff(), r.active_officers(), r.open_enrolment_codes())
            << absl::StrFormat(
                   "enrolment:         %d failed attempts, %d refused by the limits, %d "
                   "lockouts (%d addresses locked out now)\n",
                   r.failed_enrolments(), r.refused_enrolments(), r.enrolment_lockouts(),
                   r.locked_out_addresses());
  bool first = true;
  for (const v1::CertificateExpiry& c : r.certificates()) {
    std::cout << (first ? "certificates:      " : "                   ")
              << absl::StrFormat("%-6s %s expires %s%s\n", admin::CertificateKindName(c.kind()),
                                 c.principal_id(), Expiry(c.not_after_unix_micros(), now),
                                 c.is_previous() ? " (being retired by a CA rotation)" : "");
    first = false;
  }
  std::cout << "                   (every certificate: fieldsync certs status)\n";
  return 0;
}

}  // namespace fieldsync::tools
