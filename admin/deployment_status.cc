#include "admin/deployment_status.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_format.h"
#include "admin/certificates.h"
#include "common/status_macros.h"
#include "crypto/x509.h"
#include "protocol/checkpoint.h"

namespace fieldsync::admin {

uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (!it->is_regular_file(size_ec)) continue;
    const uintmax_t size = it->file_size(size_ec);
    if (!size_ec) total += size;
  }
  return total;
}

absl::StatusOr<v1::GetStatusResponse> CollectStatus(const StatusSources& sources,
                                                    absl::Duration window) {
  if (window == absl::ZeroDuration()) window = kDefaultActiveWindow;
  if (window < absl::ZeroDuration() || window > kMaxActiveWindow) {
    return absl::InvalidArgumentError("the connected-devices window is at most 7 days");
  }
  const absl::Time now = sources.clock->Now();
  v1::GetStatusResponse out;
  out.set_health("serving");
  out.set_version(sources.version);
  out.set_commit(sources.commit);
  out.set_build_type(sources.build_type);
  out.set_deployment_id(sources.deployment_id);
  out.set_started_unix_micros(absl::ToUnixMicros(sources.started));
  out.set_uptime_seconds(std::max<int64_t>(0, absl::ToInt64Seconds(now - sources.started)));
  out.set_store_bytes(DirectoryBytes(sources.db_path));
  out.set_audit_tree_size(sources.audit->size());
  absl::StatusOr<audit::SignedTreeHead> head = sources.audit->LatestSignedHead();
  if (head.ok()) {
    out.set_last_head_size(head->checkpoint.size);
    absl::StatusOr<absl::Time> signed_at = protocol::CheckpointTimestamp(head->checkpoint);
    if (signed_at.ok()) out.set_last_head_unix_micros(absl::ToUnixMicros(*signed_at));
  } else if (!absl::IsNotFound(head.status())) {
    return head.status();
  }
  out.set_active_window_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(window)));
  out.set_active_devices(static_cast<uint32_t>(sources.activity->CountSince(now - window)));
  ASSIGN_OR_RETURN(std::vector<v1::Principal> principals,
                   sources.registry->List(v1::PRINCIPAL_KIND_UNSPECIFIED));
  for (const v1::Principal& p : principals) {
    if (p.status() != v1::PRINCIPAL_STATUS_ACTIVE) continue;
    switch (p.kind()) {
      case v1::PRINCIPAL_KIND_STAFF:
        out.set_active_staff(out.active_staff() + 1);
        break;
      case v1::PRINCIPAL_KIND_OFFICER:
        out.set_active_officers(out.active_officers() + 1);
        break;
      case v1::PRINCIPAL_KIND_DEVICE:
        out.set_enrolled_devices(out.enrolled_devices() + 1);
        break;
      default:
        break;
    }
  }
  ASSIGN_OR_RETURN(std::vector<v1::ListedEnrolmentCode> codes,
                   sources.enrolment->ListOpenCodes(""));
  out.set_open_enrolment_codes(static_cast<uint32_t>(codes.size()));
  if (sources.enrolment_attempts != nullptr) {
    const EnrolmentAttemptCounts attempts = sources.enrolment_attempts->Counts();
    out.set_failed_enrolments(attempts.failed);
    out.set_refused_enrolments(attempts.refused);
    out.set_enrolment_lockouts(attempts.lockouts);
    out.set_locked_out_addresses(attempts.locked_out_now);
  }
  ASSIGN_OR_RETURN(std::vector<CertificateExpiry> expiries,
                   ListCertificateExpiries(*sources.registry, sources.cas->Get()->trust_bundle_pem,
                                           sources.server_certificate_pem, now));
  // Sorted soonest first: every CA and server entry, and the first client
  // certificate still in use.
  bool client_listed = false;
  for (const CertificateExpiry& e : expiries) {
    const bool client =
        e.kind == v1::CERTIFICATE_KIND_STAFF || e.kind == v1::CERTIFICATE_KIND_DEVICE;
    if (client && (client_listed || e.is_previous)) continue;
    client_listed = client_listed || client;
    v1::CertificateExpiry* c = out.add_certificates();
    c->set_kind(e.kind);
    c->set_principal_id(e.principal_id);
    c->set_serial(e.serial);
    c->set_not_after_unix_micros(absl::ToUnixMicros(e.not_after));
    c->set_days_left(DaysLeft(e.not_after, now));
    c->set_is_previous(e.is_previous);  // a CA being retired by a rotation
  }
  return out;
}

}  // namespace fieldsync::admin
