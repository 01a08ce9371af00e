#include "admin/officers.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace fieldsync::admin {
namespace {

// Error messages name at most this many officers.
constexpr size_t kMaxNamedOfficers = 20;

bool HasRegion(const v1::Principal& p, std::string_view region) {
  for (const std::string& r : p.regions()) {
    if (r == region) return true;
  }
  return false;
}

// "a, b, c" or, past kMaxNamedOfficers, "a, ..., t and 7 more".
std::string NameOfficers(const std::vector<std::string>& ids) {
  if (ids.size() <= kMaxNamedOfficers) return absl::StrJoin(ids, ", ");
  std::vector<std::string> named(ids.begin(), ids.begin() + kMaxNamedOfficers);
  return absl::StrFormat("%s and %d more", absl::StrJoin(named, ", "),
                         ids.size() - kMaxNamedOfficers);
}

}  // namespace

absl::Status CheckOfficerOfRegion(const PrincipalRegistry& registry, std::string_view officer_id,
                                  std::string_view region) {
  // Ids and regions come from callers: echoed only when well formed.
  const bool is_well_formed = ValidateStaffId(officer_id).ok();
  const std::string shown_id = is_well_formed ? std::string(officer_id) : "(malformed id)";
  const std::string r = absl::CHexEscape(absl::string_view(region.data(), region.size()));
  absl::StatusOr<v1::Principal> officer = absl::NotFoundError("");
  if (is_well_formed) {
    officer = registry.Get(PrincipalName{v1::PRINCIPAL_KIND_OFFICER, std::string(officer_id)});
    if (!officer.ok() && !absl::IsNotFound(officer.status())) return officer.status();
  }
  std::string why;
  if (!officer.ok()) {
    why = "is not a registered officer";
  } else if (officer->status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    why = "is revoked";
  } else if (!HasRegion(*officer, region)) {
    why = absl::StrFormat("is an officer of region %s",
                          officer->regions().empty() ? "(none)" : officer->regions(0));
  } else {
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::vector<v1::Principal> all, registry.List(v1::PRINCIPAL_KIND_OFFICER));
  std::vector<std::string> active;
  for (const v1::Principal& p : all) {
    if (p.status() == v1::PRINCIPAL_STATUS_ACTIVE && HasRegion(p, region)) active.push_back(p.id());
  }
  if (active.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "officer %s %s, and region %s has no active officer: add one with fieldsync officer add",
        shown_id, why, r));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("officer %s %s; the active officers of region %s are: %s", shown_id, why, r,
                      NameOfficers(active)));
}

absl::StatusOr<v1::Principal> OfficerAdmin::Add(std::string_view id, std::string_view region,
                                                const std::string& actor) {
  absl::Status id_ok = ValidateStaffId(id);
  if (!id_ok.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("officer id: %s", std::string(id_ok.message())));
  }
  RETURN_IF_ERROR(schema_->CheckRegion(region));
  const PrincipalName name{v1::PRINCIPAL_KIND_OFFICER, std::string(id)};
  absl::MutexLock lock(&registry_->write_mutex());
  absl::StatusOr<v1::Principal> existing = registry_->Get(name);
  if (existing.ok()) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "officer %s is already registered%s (ids are never reused): choose another id", name.id,
        existing->status() == v1::PRINCIPAL_STATUS_REVOKED ? " and revoked" : ""));
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();

  const absl::Time now = clock_->Now();
  v1::Principal p;
  p.set_id(name.id);
  p.set_kind(v1::PRINCIPAL_KIND_OFFICER);
  p.set_role(v1::ROLE_OFFICER);
  p.add_regions(std::string(region));
  p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  p.set_created_unix_micros(absl::ToUnixMicros(now));
  p.set_changed_by(actor);
  storage::WriteBatch batch;
  RETURN_IF_ERROR(registry_->Put(p, &batch));
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    audit::AdminAction action;
    action.actor = actor;
    action.action = std::string(kAddOfficerAction);
    action.subject_ids = {name.id, std::string(region)};
    RETURN_IF_ERROR(audit_->Append(audit::Event{now, std::move(action)}, &batch).status());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  return p;
}

absl::StatusOr<RevokedOfficer> OfficerAdmin::Revoke(std::string_view id, const std::string& actor) {
  if (!ValidateStaffId(id).ok()) {
    return absl::NotFoundError("no officer has that id: officer ids are staff ids");
  }
  const PrincipalName name{v1::PRINCIPAL_KIND_OFFICER, std::string(id)};
  absl::MutexLock lock(&registry_->write_mutex());
  ASSIGN_OR_RETURN(v1::Principal officer, registry_->Get(name));
  // Under the write mutex no device can be enrolled for the officer until
  // this commits (DeviceEnrolment::Enroll checks the officer under it).
  ASSIGN_OR_RETURN(std::vector<v1::Principal> devices, registry_->List(v1::PRINCIPAL_KIND_DEVICE));
  const absl::Time now = clock_->Now();
  storage::WriteBatch batch;
  std::vector<audit::Event> events;
  RevokedOfficer out;
  if (officer.status() != v1::PRINCIPAL_STATUS_REVOKED) {
    officer.set_status(v1::PRINCIPAL_STATUS_REVOKED);
    officer.set_revoked_unix_micros(absl::ToUnixMicros(now));
    officer.set_changed_by(actor);
    RETURN_IF_ERROR(registry_->Put(officer, &batch));
    events.push_back(
        audit::Event{now, audit::AdminAction{actor, std::string(kRevokeOfficerAction), {name.id}}});
  }
  for (v1::Principal& device : devices) {
    if (device.officer_id() != name.id || device.status() == v1::PRINCIPAL_STATUS_REVOKED) {
      continue;
    }
    device.set_status(v1::PRINCIPAL_STATUS_REVOKED);
    device.set_revoked_unix_micros(absl::ToUnixMicros(now));
    device.set_changed_by(actor);
    RETURN_IF_ERROR(registry_->Put(device, &batch));
    events.push_back(audit::Event{
        now, audit::PrincipalRevoked{audit::PrincipalKind::kDevice, device.id(), actor}});
    out.device_ids.push_back(device.id());
  }
  out.officer = std::move(officer);
  if (events.empty()) return out;  // already revoked, and so are its devices
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) RETURN_IF_ERROR(audit_->AppendAll(events, &batch).status());
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  return out;
}

}  // namespace fieldsync::admin
