// Warnings before certificates expire: fieldsyncd logs one
// certificate.expiring line (ids only) for each certificate that expires
// within certificate_warning_days (the CA, its own, each active staff
// member's and device's), at start and then once a day.
#ifndef FIELDSYNC_SERVER_CERTIFICATE_WATCH_H_
#define FIELDSYNC_SERVER_CERTIFICATE_WATCH_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "admin/certificates.h"
#include "admin/principals.h"
#include "common/clock.h"

namespace fieldsync::server {

// Thread-safe. Pointers are not owned and must outlive the watch.
class CertificateWatch {
 public:
  struct Options {
    admin::PrincipalRegistry* registry = nullptr;
    const admin::CertificateAuthorities* cas = nullptr;
    // Read at each check: a renewal replaces it.
    std::string server_certificate_file;
    Clock* clock = nullptr;
    absl::Duration warning = absl::Hours(24 * 30);
    // Between two checks of the background thread.
    absl::Duration interval = absl::Hours(24);
  };
  explicit CertificateWatch(Options options) : options_(std::move(options)) {}
  // Stops and joins the background thread, if started.
  ~CertificateWatch();

  // Logs certificate.expiring (warn) for each certificate expiring within
  // the warning period from now, and returns them, soonest first.
  // Errors: the registry's, or a certificate that does not parse.
  absl::StatusOr<std::vector<admin::CertificateExpiry>> CheckNow();

  // Runs CheckNow on a thread now and then every interval until
  // destruction. REQUIRES: called at most once.
  void Start();

 private:
  Options options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_CERTIFICATE_WATCH_H_
