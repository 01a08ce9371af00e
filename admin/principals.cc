#include "admin/principals.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {
namespace {

constexpr std::string_view kStaffPrefix = "fieldsync://staff/";
constexpr std::string_view kDevicePrefix = "fieldsync://device/";
constexpr std::string_view kOfficerPrefix = "fieldsync://officer/";

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

std::string PrincipalUri(const PrincipalName& name) {
  std::string_view prefix = kStaffPrefix;
  if (name.kind == v1::PRINCIPAL_KIND_DEVICE) prefix = kDevicePrefix;
  if (name.kind == v1::PRINCIPAL_KIND_OFFICER) prefix = kOfficerPrefix;
  return std::string(prefix) + name.id;
}

absl::StatusOr<PrincipalName> ParsePrincipalUri(std::string_view uri) {
  PrincipalName name;
  if (uri.starts_with(kStaffPrefix)) {
    name.kind = v1::PRINCIPAL_KIND_STAFF;
    name.id = std::string(uri.substr(kStaffPrefix.size()));
    RETURN_IF_ERROR(ValidateStaffId(name.id));
  } else if (uri.starts_with(kDevicePrefix)) {
    name.kind = v1::PRINCIPAL_KIND_DEVICE;
    name.id = std::string(uri.substr(kDevicePrefix.size()));
    RETURN_IF_ERROR(ValidateDeviceId(name.id));
  } else {
    return absl::InvalidArgumentError(
        "certificate names no fieldsync principal: its URI must be fieldsync://staff/<id> or "
        "fieldsync://device/<id>");
  }
  return name;
}

absl::Status ValidateStaffId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 40;
  for (size_t i = 0; ok && i < id.size(); ++i) {
    char c = id[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    ok = alnum || (i > 0 && (c == '.' || c == '_' || c == '-'));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        "staff id must be 1-40 characters of a-z, 0-9, '.', '_' or '-', starting with a "
        "letter or digit");
  }
  return absl::OkStatus();
}

absl::Status ValidateDeviceId(std::string_view id) {
  bool ok = id.size() == 36;
  for (size_t i = 0; ok && i < id.size(); ++i) {
    ok = (i == 8 || i == 13 || i == 18 || i == 23) ? id[i] == '-' : IsLowerHex(id[i]);
  }
  if (!ok) {
    return absl::InvalidArgumentError("device id must be a lowercase UUID (8-4-4-4-12 hex)");
  }
  return absl::OkStatus();
}

std::string_view RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_DEVICE:
      return "device";
    case v1::ROLE_SUPERVISOR:
      return "supervisor";
    case v1::ROLE_ANALYST:
      return "analyst";
    case v1::ROLE_AUDITOR:
      return "auditor";
    case v1::ROLE_ADMINISTRATOR:
      return "administrator";
    case v1::ROLE_OFFICER:
      return "officer";
    default:
      return "unspecified";
  }
}

absl::StatusOr<v1::Role> ParseRoleName(std::string_view name) {
  for (v1::Role r : {v1::ROLE_DEVICE, v1::ROLE_SUPERVISOR, v1::ROLE_ANALYST, v1::ROLE_AUDITOR,
                     v1::ROLE_ADMINISTRATOR}) {
    if (RoleName(r) == name) return r;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown role \"%s\": use supervisor, analyst, auditor or administrator", std::string(name)));
}

absl::StatusOr<v1::Principal> PrincipalRegistry::Get(const PrincipalName& name) const {
  std::string key =
      storage::EncodePrincipalKey(static_cast<storage::PrincipalKind>(name.kind), name.id);
  absl::StatusOr<std::string> value = store_->Get(storage::Cf::kPrincipals, key);
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(
        absl::StrFormat("principal %s is not registered", PrincipalUri(name)));
  }
  RETURN_IF_ERROR(value.status());
  v1::Principal principal;
  if (!principal.ParseFromString(*value)) {
    return absl::DataLossError(
        absl::StrFormat("registry entry of %s does not parse", PrincipalUri(name)));
  }
  return principal;
}

absl::Status PrincipalRegistry::Put(const v1::Principal& principal,
                                    storage::WriteBatch* batch) const {
  if (principal.kind() == v1::PRINCIPAL_KIND_STAFF ||
      principal.kind() == v1::PRINCIPAL_KIND_OFFICER) {
    RETURN_IF_ERROR(ValidateStaffId(principal.id()));
  } else if (principal.kind() == v1::PRINCIPAL_KIND_DEVICE) {
    RETURN_IF_ERROR(ValidateDeviceId(principal.id()));
  } else {
    return absl::InvalidArgumentError("principal kind must be staff, device or officer");
  }
  batch->Put(storage::Cf::kPrincipals,
             storage::EncodePrincipalKey(static_cast<storage::PrincipalKind>(principal.kind()),
                                         principal.id()),
             principal.SerializeAsString());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Principal>> PrincipalRegistry::List(v1::PrincipalKind kind) const {
  std::vector<v1::PrincipalKind> kinds;
  switch (kind) {
    case v1::PRINCIPAL_KIND_UNSPECIFIED:
      kinds = {v1::PRINCIPAL_KIND_DEVICE, v1::PRINCIPAL_KIND_STAFF, v1::PRINCIPAL_KIND_OFFICER};
      break;
    case v1::PRINCIPAL_KIND_DEVICE:
    case v1::PRINCIPAL_KIND_STAFF:
    case v1::PRINCIPAL_KIND_OFFICER:
      kinds = {kind};
      break;
    default:
      // Above all 3, whose keys are enrolment codes, not principals.
      return absl::InvalidArgumentError("principal kind must be device, staff or officer");
  }
  std::vector<v1::Principal> out;
  for (v1::PrincipalKind k : kinds) {
    const std::string lower = storage::PrincipalKindPrefix(static_cast<storage::PrincipalKind>(k));
    const std::string upper = storage::PrefixUpperBound(lower);
    std::unique_ptr<storage::Iterator> it =
        store_->NewIterator(storage::Cf::kPrincipals, lower, upper);
    for (; it->Valid(); it->Next()) {
      v1::Principal p;
      if (!p.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError("a principal registry entry does not parse");
      }
      out.push_back(std::move(p));
    }
    RETURN_IF_ERROR(it->status());
  }
  return out;
}

}  // namespace fieldsync::admin
