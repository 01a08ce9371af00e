#include "admin/staff.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fieldsync::admin {

absl::StatusOr<IssuedStaff> StaffAdmin::Add(const NewStaff& request, const std::string& actor) {
  RETURN_IF_ERROR(ValidateStaffId(request.id));
  switch (request.role) {
    case v1::ROLE_SUPERVISOR:
    case v1::ROLE_ANALYST:
      if (request.regions.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat("role %s needs at least one region",
                                                          std::string(RoleName(request.role))));
      }
      break;
    case v1::ROLE_AUDITOR:
    case v1::ROLE_ADMINISTRATOR:
      if (!request.regions.empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("role %s reaches the whole deployment: give no region",
                            std::string(RoleName(request.role))));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "staff role must be supervisor, analyst, auditor or administrator (devices enrol "
          "with a code)");
  }
  for (const std::string& region : request.regions) RETURN_IF_ERROR(schema_->CheckRegion(region));
  absl::StatusOr<crypto::VerifiedCsr> csr = crypto::VerifyCsr(request.csr_pem);
  if (!csr.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("CSR refused: %s", csr.status().message()));
  }

  PrincipalName name{v1::PRINCIPAL_KIND_STAFF, request.id};
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&registry_->write_mutex());
  absl::StatusOr<v1::Principal> existing = registry_->Get(name);
  if (existing.ok()) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "staff id %s is already registered (ids are never reused): choose another", request.id));
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();

  std::shared_ptr<const CertificateAuthorities::State> cas = cas_->Get();
  ASSIGN_OR_RETURN(
      crypto::IssuedCertificate cert,
      crypto::IssueClientCertificate(cas->issuer, csr->public_key_pem, PrincipalUri(name), now,
                                     crypto::kClientValidity));
  IssuedStaff out;
  v1::Principal& p = out.principal;
  p.set_id(request.id);
  p.set_kind(v1::PRINCIPAL_KIND_STAFF);
  p.set_role(request.role);
  for (const std::string& region : request.regions) p.add_regions(region);
  p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  p.set_created_unix_micros(absl::ToUnixMicros(now));
  p.set_certificate_serial(cert.serial_hex);
  p.set_certificate_not_after_unix_micros(absl::ToUnixMicros(cert.not_after));
  p.set_ca_generation(cas->generation);
  p.set_changed_by(actor);
  storage::WriteBatch batch;
  RETURN_IF_ERROR(registry_->Put(p, &batch));
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    protocol::StaffAdded event;
    event.staff_id = request.id;
    event.role = static_cast<uint8_t>(request.role);
    event.regions = request.regions;
    event.certificate_serial = cert.serial_hex;
    event.actor = actor;
    RETURN_IF_ERROR(session.Append(protocol::Event{now, std::move(event)}).status());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info("staff.add", {{"staff", request.id},
                          {"role", RoleName(request.role)},
                          {"certificate_serial", cert.serial_hex},
                          {"actor", actor}});
  out.certificate_pem = std::move(cert.certificate_pem);
  return out;
}

absl::StatusOr<v1::Principal> StaffAdmin::Revoke(const PrincipalName& name,
                                                 const std::string& actor) {
  if (name.kind != v1::PRINCIPAL_KIND_STAFF && name.kind != v1::PRINCIPAL_KIND_DEVICE) {
    return absl::InvalidArgumentError("only a staff or device principal is revoked here");
  }
  if (PrincipalUri(name) == actor) {
    return absl::FailedPreconditionError(
        "a principal cannot revoke itself: ask another administrator");
  }
  absl::MutexLock lock(&registry_->write_mutex());
  ASSIGN_OR_RETURN(v1::Principal p, registry_->Get(name));
  if (p.status() == v1::PRINCIPAL_STATUS_REVOKED) return p;
  const absl::Time now = clock_->Now();
  p.set_status(v1::PRINCIPAL_STATUS_REVOKED);
  p.set_revoked_unix_micros(absl::ToUnixMicros(now));
  p.set_changed_by(actor);
  storage::WriteBatch batch;
  RETURN_IF_ERROR(registry_->Put(p, &batch));
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    protocol::PrincipalRevoked event;
    event.principal_kind = name.kind == v1::PRINCIPAL_KIND_DEVICE ? protocol::PrincipalKind::kDevice
                                                                  : protocol::PrincipalKind::kStaff;
    event.principal_id = name.id;
    event.actor = actor;
    RETURN_IF_ERROR(session.Append(protocol::Event{now, std::move(event)}).status());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info(name.kind == v1::PRINCIPAL_KIND_DEVICE ? "device.revoke" : "staff.revoke",
            {{"principal", PrincipalUri(name)}, {"actor", actor}});
  return p;
}

absl::StatusOr<UpdatedStaff> StaffAdmin::UpdateRegions(std::string_view id,
                                                       const std::vector<std::string>& regions,
                                                       const std::string& actor) {
  absl::Status id_ok = ValidateStaffId(id);
  if (!id_ok.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("staff id: %s", std::string(id_ok.message())));
  }
  if (regions.empty()) {
    return absl::InvalidArgumentError(
        "give at least one region (a supervisor or analyst reaches only its regions)");
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    RETURN_IF_ERROR(schema_->CheckRegion(regions[i]));
    if (std::find(regions.begin(), regions.begin() + i, regions[i]) != regions.begin() + i) {
      return absl::InvalidArgumentError(absl::StrFormat("region %s is given twice", regions[i]));
    }
  }
  const PrincipalName name{v1::PRINCIPAL_KIND_STAFF, std::string(id)};
  absl::MutexLock lock(&registry_->write_mutex());
  absl::StatusOr<v1::Principal> found = registry_->Get(name);
  if (absl::IsNotFound(found.status())) {
    ASSIGN_OR_RETURN(std::vector<v1::Principal> staff, registry_->List(v1::PRINCIPAL_KIND_STAFF));
    std::vector<std::string> known;
    for (const v1::Principal& p : staff) {
      const bool has_regions = p.role() == v1::ROLE_SUPERVISOR || p.role() == v1::ROLE_ANALYST;
      if (has_regions && p.status() == v1::PRINCIPAL_STATUS_ACTIVE) known.push_back(p.id());
    }
    return absl::NotFoundError(
        absl::StrFormat("no staff member %s; the active supervisors and analysts are: %s", name.id,
                        known.empty() ? std::string("(none)") : absl::StrJoin(known, ", ")));
  }
  RETURN_IF_ERROR(found.status());
  v1::Principal p = *std::move(found);
  if (p.status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "staff member %s is revoked: its regions no longer matter (ids are never reused)",
        name.id));
  }
  if (p.role() != v1::ROLE_SUPERVISOR && p.role() != v1::ROLE_ANALYST) {
    return absl::FailedPreconditionError(
        absl::StrFormat("staff member %s is an %s, who reaches the whole deployment: only "
                        "supervisors and analysts have regions",
                        name.id, std::string(RoleName(p.role()))));
  }
  UpdatedStaff out;
  out.previous_regions.assign(p.regions().begin(), p.regions().end());
  const absl::Time now = clock_->Now();
  p.clear_regions();
  for (const std::string& r : regions) p.add_regions(r);
  p.set_changed_by(actor);
  storage::WriteBatch batch;
  RETURN_IF_ERROR(registry_->Put(p, &batch));
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    protocol::AdminAction action;
    action.actor = actor;
    action.action = std::string(kUpdateStaffAction);
    action.subject_ids.push_back(name.id);
    action.subject_ids.insert(action.subject_ids.end(), regions.begin(), regions.end());
    ASSIGN_OR_RETURN(out.audit_leaf_index, session.Append(protocol::Event{now, std::move(action)}));
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info("staff.update",
            {{"staff", name.id}, {"regions", static_cast<int>(regions.size())}, {"actor", actor}});
  out.principal = std::move(p);
  return out;
}

}  // namespace fieldsync::admin
