// What AdminService.GetStatus answers: the state of a serving deployment
// at a glance, from the parts that hold it. gRPC-free; server/ adapts it.
#ifndef FIELDSYNC_ADMIN_DEPLOYMENT_STATUS_H_
#define FIELDSYNC_ADMIN_DEPLOYMENT_STATUS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "admin/device_activity.h"
#include "admin/enrolment.h"
#include "admin/principals.h"
#include "audit/log.h"
#include "common/clock.h"
#include "fieldsync/v1/admin.pb.h"

namespace fieldsync::admin {

// The longest window GetStatus counts connected devices over.
inline constexpr absl::Duration kMaxActiveWindow = absl::Hours(24 * 7);

// Pointers are not owned and must outlive the reporter's calls.
struct StatusSources {
  // The server's build (common/build_info.h), given by the server so that
  // admin/ does not link the build's commit.
  std::string version;
  std::string commit;
  std::string build_type;
  std::string deployment_id;
  std::string db_path;  // DATA_DIR/db
  audit::AuditLog* audit = nullptr;
  const PrincipalRegistry* registry = nullptr;
  const DeviceEnrolment* enrolment = nullptr;
  // Enrolment attempts (failed, refused, lockouts); null: none counted.
  const EnrolmentAttempts* enrolment_attempts = nullptr;
  const DeviceActivity* activity = nullptr;
  // The server's TLS certificate ("" when serving without TLS) and the CAs.
  std::string server_certificate_pem;
  const CertificateAuthorities* cas = nullptr;
  Clock* clock = nullptr;
  absl::Time started;
};

// Collects the status (health "serving"). `window` is the connected
// devices' window: zero means kDefaultActiveWindow. kInvalidArgument: a
// window over kMaxActiveWindow. kUnavailable / kDataLoss from storage.
absl::StatusOr<v1::GetStatusResponse> CollectStatus(const StatusSources& sources,
                                                    absl::Duration window);

// Bytes of the regular files under `dir` (recursively); files that vanish
// while it counts (RocksDB compacting) are skipped. 0 if `dir` is missing.
uint64_t DirectoryBytes(const std::string& dir);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_DEPLOYMENT_STATUS_H_
