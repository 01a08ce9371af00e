#include "server/certificate_watch.h"

#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fieldsync::server {

CertificateWatch::~CertificateWatch() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::vector<admin::CertificateExpiry>> CertificateWatch::CheckNow() {
  const absl::Time now = options_.clock->Now();
  absl::StatusOr<std::string> server_pem = ReadFile(options_.server_certificate_file);
  ASSIGN_OR_RETURN(
      std::vector<admin::CertificateExpiry> all,
      admin::ListCertificateExpiries(*options_.registry, options_.cas->Get()->trust_bundle_pem,
                                     server_pem.ok() ? *server_pem : "", now));
  std::vector<admin::CertificateExpiry> expiring;
  for (admin::CertificateExpiry& e : all) {
    if (e.not_after - now > options_.warning) break;  // sorted: the rest are later
    // An earlier certificate that a renewal replaced expires as planned.
    if (e.is_previous) continue;
    log::Warn(
        "certificate.expiring",
        {{"kind", admin::CertificateKindName(e.kind)},
         {"id", e.principal_id.empty() ? std::string("-") : e.principal_id},
         {"serial", e.serial},
         {"not_after", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", e.not_after, absl::UTCTimeZone())},
         {"days_left", admin::DaysLeft(e.not_after, now)}});
    expiring.push_back(std::move(e));
  }
  return expiring;
}

void CertificateWatch::Start() {
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
      }
      absl::StatusOr<std::vector<admin::CertificateExpiry>> checked = CheckNow();
      if (!checked.ok()) {
        log::Error("certificate.check", {{"reason", checked.status().message()}});
      }
      absl::MutexLock lock(&mu_);
      // True once stopping: the destructor waits for this thread.
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval)) return;
    }
  });
}

}  // namespace fieldsync::server
