#include "sync/scope.h"

#include <utility>

#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/key_codec.h"
#include "sync/reconcile.h"

namespace fieldsync::sync {
namespace {

// A clear field of the case's registration record as text; nullopt when
// absent or cleared.
absl::StatusOr<std::optional<std::string>> RegistrationField(storage::Store* store,
                                                             const Uuid& case_id,
                                                             std::string_view field,
                                                             const storage::Snapshot* snapshot) {
  absl::StatusOr<std::string> raw = store->Get(
      storage::Cf::kRecords, storage::EncodeFieldStateKey(case_id, case_id, field), snapshot);
  if (absl::IsNotFound(raw.status())) return std::optional<std::string>();
  if (!raw.ok()) return raw.status();
  v1::FieldState state;
  if (!state.ParseFromString(*raw)) return absl::DataLossError("field state does not parse");
  if (state.value().cleared()) return std::optional<std::string>();
  return std::optional<std::string>(DimensionString(state.value()));
}

}  // namespace

absl::flat_hash_set<v1::Sensitivity> ReadScope::AllClasses() {
  return {v1::SENSITIVITY_IDENTIFYING, v1::SENSITIVITY_SENSITIVE, v1::SENSITIVITY_DIMENSION,
          v1::SENSITIVITY_OPERATIONAL};
}

ReadScope ScopeOfPrincipal(const v1::Principal& principal) {
  ReadScope scope;
  if (principal.role() == v1::ROLE_DEVICE) {
    scope.officer_id = principal.officer_id();
  } else {
    scope.regions.insert(principal.regions().begin(), principal.regions().end());
  }
  scope.readable = ReadScope::AllClasses();
  return scope;
}

absl::StatusOr<CaseOwner> ReadCaseOwner(storage::Store* store, const Schema& schema,
                                        const Uuid& case_id, const storage::Snapshot* snapshot) {
  CaseOwner owner;
  ASSIGN_OR_RETURN(owner.region,
                   RegistrationField(store, case_id, schema.region_field(), snapshot));
  ASSIGN_OR_RETURN(owner.officer,
                   RegistrationField(store, case_id, schema.officer_field(), snapshot));
  return owner;
}

bool Reaches(const ReadScope& scope, const CaseOwner& owner) {
  if (scope.all_cases) return true;
  if (!scope.officer_id.empty() && owner.officer.has_value() &&
      *owner.officer == scope.officer_id) {
    return true;
  }
  return owner.region.has_value() && scope.regions.contains(*owner.region);
}

absl::StatusOr<CaseReach> ReachOfCase(storage::Store* store, const Schema& schema,
                                      const ReadScope& scope, const Uuid& case_id,
                                      const storage::Snapshot* snapshot) {
  ASSIGN_OR_RETURN(CaseOwner owner, ReadCaseOwner(store, schema, case_id, snapshot));
  if (owner.absent()) return CaseReach::kNoSuchCase;
  return Reaches(scope, owner) ? CaseReach::kInScope : CaseReach::kOutOfScope;
}

}  // namespace fieldsync::sync
