#include "admin/officers.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

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

// Whether `officer_id` is an active officer (of `*region` when not null).
struct OfficerLookup {
  std::string shown_id;   // the id, or "(malformed id)": ids come from callers
  std::string why_not;    // "" when it is one; else "is revoked", ...
  v1::Principal officer;  // its entry, when registered
};
absl::StatusOr<OfficerLookup> LookUp(const PrincipalRegistry& registry, std::string_view officer_id,
                                     const std::string* region) {
  OfficerLookup out;
  if (!ValidateStaffId(officer_id).ok()) {
    out.shown_id = "(malformed id)";
    out.why_not = "is not a registered officer";
    return out;
  }
  out.shown_id = std::string(officer_id);
  absl::StatusOr<v1::Principal> officer =
      registry.Get(PrincipalName{v1::PRINCIPAL_KIND_OFFICER, out.shown_id});
  if (absl::IsNotFound(officer.status())) {
    out.why_not = "is not a registered officer";
    return out;
  }
  if (!officer.ok()) return officer.status();
  out.officer = *std::move(officer);
  if (out.officer.status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    out.why_not = "is revoked";
  } else if (region != nullptr && !HasRegion(out.officer, *region)) {
    out.why_not =
        absl::StrFormat("is an officer of region %s",
                        out.officer.regions().empty() ? "(none)" : out.officer.regions(0));
  }
  return out;
}

// The ids of the active officers (of `region` when given), in id order.
absl::StatusOr<std::vector<std::string>> ActiveOfficerIds(const PrincipalRegistry& registry,
                                                          const std::string* region) {
  ASSIGN_OR_RETURN(std::vector<v1::Principal> all, registry.List(v1::PRINCIPAL_KIND_OFFICER));
  std::vector<std::string> ids;
  for (const v1::Principal& p : all) {
    if (p.status() != v1::PRINCIPAL_STATUS_ACTIVE) continue;
    if (region != nullptr && !HasRegion(p, *region)) continue;
    ids.push_back(p.id());
  }
  return ids;
}

}  // namespace

absl::StatusOr<v1::Principal> ActiveOfficer(const PrincipalRegistry& registry,
                                            std::string_view officer_id) {
  ASSIGN_OR_RETURN(OfficerLookup lookup, LookUp(registry, officer_id, nullptr));
  if (lookup.why_not.empty()) return std::move(lookup.officer);
  ASSIGN_OR_RETURN(std::vector<std::string> active, ActiveOfficerIds(registry, nullptr));
  if (active.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "officer %s %s, and the deployment has no active officer: add one with fieldsync "
        "officer add",
        lookup.shown_id, lookup.why_not));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "officer %s %s; the active officers are: %s (add another with fieldsync officer add)",
      lookup.shown_id, lookup.why_not, NameOfficers(active)));
}

absl::Status CheckOfficerOfRegion(const PrincipalRegistry& registry, std::string_view officer_id,
                                  std::string_view region) {
  const std::string r(region);
  ASSIGN_OR_RETURN(OfficerLookup lookup, LookUp(registry, officer_id, &r));
  if (lookup.why_not.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> active, ActiveOfficerIds(registry, &r));
  // The region comes from the caller too.
  const std::string shown_region = absl::CHexEscape(r);
  if (active.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "officer %s %s, and region %s has no active officer: add one with fieldsync officer add",
        lookup.shown_id, lookup.why_not, shown_region));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("officer %s %s; the active officers of region %s are: %s", lookup.shown_id,
                      lookup.why_not, shown_region, NameOfficers(active)));
}

absl::StatusOr<std::vector<v1::Principal>> ListPrincipalsFor(
    const PrincipalRegistry& registry, const sync::Schema& schema, const v1::Principal& caller,
    const v1::ListPrincipalsRequest& request) {
  const std::string& region = request.region();
  if (!region.empty()) RETURN_IF_ERROR(schema.CheckRegion(region));
  const bool is_supervisor = caller.role() == v1::ROLE_SUPERVISOR;
  if (is_supervisor) {
    if (request.kind() != v1::PRINCIPAL_KIND_OFFICER) {
      return absl::PermissionDeniedError(
          "a supervisor lists officers only: ask for kind officer (PRINCIPAL_KIND_OFFICER)");
    }
    if (!region.empty() && !HasRegion(caller, region)) {
      return absl::PermissionDeniedError(
          absl::StrFormat("region %s is not one of yours (%s): ask for one of them or none", region,
                          absl::StrJoin(caller.regions(), ", ")));
    }
  } else if (caller.role() != v1::ROLE_ADMINISTRATOR) {
    return absl::PermissionDeniedError("only administrators and supervisors list principals");
  }
  ASSIGN_OR_RETURN(std::vector<v1::Principal> all, registry.List(request.kind()));
  std::vector<v1::Principal> out;
  for (v1::Principal& p : all) {
    if (p.status() == v1::PRINCIPAL_STATUS_REVOKED && !request.include_revoked()) continue;
    if (!region.empty() && !HasRegion(p, region)) continue;
    if (is_supervisor) {
      bool is_theirs = false;
      for (const std::string& r : p.regions()) is_theirs = is_theirs || HasRegion(caller, r);
      if (!is_theirs) continue;
    }
    out.push_back(std::move(p));
  }
  return out;
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
    protocol::AdminAction action;
    action.actor = actor;
    action.action = std::string(kAddOfficerAction);
    action.subject_ids = {name.id, std::string(region)};
    RETURN_IF_ERROR(session.Append(protocol::Event{now, std::move(action)}).status());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info("officer.add", {{"officer", name.id}, {"actor", actor}});
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
  std::vector<protocol::Event> events;
  RevokedOfficer out;
  if (officer.status() != v1::PRINCIPAL_STATUS_REVOKED) {
    officer.set_status(v1::PRINCIPAL_STATUS_REVOKED);
    officer.set_revoked_unix_micros(absl::ToUnixMicros(now));
    officer.set_changed_by(actor);
    RETURN_IF_ERROR(registry_->Put(officer, &batch));
    events.push_back(protocol::Event{
        now, protocol::AdminAction{actor, std::string(kRevokeOfficerAction), {name.id}}});
  }
  for (v1::Principal& device : devices) {
    if (device.officer_id() != name.id || device.status() == v1::PRINCIPAL_STATUS_REVOKED) {
      continue;
    }
    device.set_status(v1::PRINCIPAL_STATUS_REVOKED);
    device.set_revoked_unix_micros(absl::ToUnixMicros(now));
    device.set_changed_by(actor);
    RETURN_IF_ERROR(registry_->Put(device, &batch));
    events.push_back(protocol::Event{
        now, protocol::PrincipalRevoked{protocol::PrincipalKind::kDevice, device.id(), actor}});
    out.device_ids.push_back(device.id());
  }
  out.officer = std::move(officer);
  if (events.empty()) return out;  // already revoked, and so are its devices
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) RETURN_IF_ERROR(session.AppendAll(events).status());
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info("officer.revoke", {{"officer", name.id},
                               {"devices_revoked", static_cast<int>(out.device_ids.size())},
                               {"actor", actor}});
  for (const std::string& device : out.device_ids) {
    log::Info("device.revoke", {{"principal", PrincipalUri({v1::PRINCIPAL_KIND_DEVICE, device})},
                                {"officer", name.id},
                                {"actor", actor}});
  }
  return out;
}

namespace {

// Where an existing device or code places an officer, for the upgrade.
struct OfficerSighting {
  std::string region;
  absl::Time created;
  std::string source;  // "device <id>" or "enrolment code": ids only
};

// Every officer named by a device entry or an enrolment code, with the
// sightings of it, by officer id.
absl::StatusOr<std::map<std::string, std::vector<OfficerSighting>>> OfficerSightings(
    storage::Store* store, const PrincipalRegistry& registry) {
  std::map<std::string, std::vector<OfficerSighting>> out;
  ASSIGN_OR_RETURN(std::vector<v1::Principal> devices, registry.List(v1::PRINCIPAL_KIND_DEVICE));
  for (const v1::Principal& d : devices) {
    if (d.officer_id().empty()) continue;
    out[d.officer_id()].push_back({d.regions().empty() ? "" : d.regions(0),
                                   absl::FromUnixMicros(d.created_unix_micros()),
                                   absl::StrFormat("device %s", d.id())});
  }
  const std::string lower = storage::KeyBuilder().U8(storage::kEnrolmentCodeTag).Finish();
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(storage::Cf::kPrincipals, lower, storage::PrefixUpperBound(lower));
  for (; it->Valid(); it->Next()) {
    v1::EnrolmentCode code;
    if (!code.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a stored enrolment code does not parse");
    }
    if (code.officer_id().empty()) continue;
    out[code.officer_id()].push_back(
        {code.region(), absl::FromUnixMicros(code.created_unix_micros()), "enrolment code"});
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

}  // namespace

absl::StatusOr<OfficerUpgrade> RegisterOfficersOfExistingDevices(storage::Store* store,
                                                                 PrincipalRegistry* registry,
                                                                 const sync::Schema& schema,
                                                                 Clock* clock,
                                                                 audit::AuditLog* audit) {
  const std::string marker = storage::EncodeMetadataKey(kOfficersRegisteredName);
  absl::MutexLock lock(&registry->write_mutex());
  absl::StatusOr<std::string> done = store->Get(storage::Cf::kMetadata, marker);
  if (done.ok()) return OfficerUpgrade{};
  if (!absl::IsNotFound(done.status())) return done.status();

  ASSIGN_OR_RETURN(auto sightings, OfficerSightings(store, *registry));
  const absl::Time now = clock->Now();
  storage::WriteBatch batch;
  std::vector<protocol::Event> events;
  OfficerUpgrade out;
  out.ran = true;
  for (auto& [id, seen] : sightings) {
    absl::StatusOr<v1::Principal> existing =
        ValidateStaffId(id).ok() ? registry->Get(PrincipalName{v1::PRINCIPAL_KIND_OFFICER, id})
                                 : absl::InvalidArgumentError("not a staff id");
    if (existing.ok()) continue;
    if (absl::IsInvalidArgument(existing.status())) {
      log::Warn("officers.upgrade.skipped",
                {{"reason", "officer id is not a staff id"}, {"named_by", seen.front().source}});
      continue;
    }
    if (!absl::IsNotFound(existing.status())) return existing.status();
    // The most recent sighting wins; a stable sort keeps the scan order
    // among equal times.
    std::stable_sort(
        seen.begin(), seen.end(),
        [](const OfficerSighting& a, const OfficerSighting& b) { return a.created > b.created; });
    const OfficerSighting& latest = seen.front();
    std::set<std::string> others;
    for (const OfficerSighting& s : seen) {
      if (s.region != latest.region) others.insert(s.region);
    }
    if (!others.empty()) {
      log::Warn("officers.upgrade.regions_differ", {{"officer", id},
                                                    {"region", latest.region},
                                                    {"from", latest.source},
                                                    {"other_regions", absl::StrJoin(others, ",")}});
    }
    if (latest.region.empty()) {
      log::Warn("officers.upgrade.skipped", {{"officer", id}, {"reason", "no region"}});
      continue;
    }
    if (!schema.CheckRegion(latest.region).ok()) {
      log::Warn("officers.upgrade.unknown_region", {{"officer", id}, {"region", latest.region}});
    }
    v1::Principal p;
    p.set_id(id);
    p.set_kind(v1::PRINCIPAL_KIND_OFFICER);
    p.set_role(v1::ROLE_OFFICER);
    p.add_regions(latest.region);
    p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
    p.set_created_unix_micros(absl::ToUnixMicros(now));
    p.set_changed_by(std::string(kUpgradeActor));
    RETURN_IF_ERROR(registry->Put(p, &batch));
    events.push_back(protocol::Event{
        now, protocol::AdminAction{
                 std::string(kUpgradeActor), std::string(kAddOfficerAction), {id, latest.region}}});
    out.registered.push_back(id);
  }
  batch.Put(storage::Cf::kMetadata, marker, "1");
  audit::AuditSession session(audit, &batch);
  if (audit != nullptr && !events.empty()) {
    RETURN_IF_ERROR(session.AppendAll(events).status());
  }
  RETURN_IF_ERROR(store->Commit(&batch));
  session.Committed();
  return out;
}

}  // namespace fieldsync::admin
