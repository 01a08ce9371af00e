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

}  // namespace fieldsync::admin
