#include "sync/scope.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "common/status_macros.h"
#include "fieldsync/v1/records.pb.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "sync/reconcile.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

constexpr size_t kIdBytes = std::tuple_size_v<Uuid>;

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
  const std::string_view only[] = {schema.region_field(), schema.officer_field()};
  ASSIGN_OR_RETURN(std::optional<RecordState> registration,
                   ReadRecord(store, snapshot, case_id, case_id, only));
  if (!registration.has_value()) return owner;
  auto text = [&](std::string_view field) {
    const v1::FieldState* s = registration->Find(field);
    return s == nullptr || s->value().cleared()
               ? std::optional<std::string>()
               : std::optional<std::string>(DimensionString(s->value()));
  };
  owner.region = text(schema.region_field());
  owner.officer = text(schema.officer_field());
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

absl::StatusOr<std::vector<std::string>> CaseIndexPrefixes(
    storage::Store* store, const storage::Snapshot* snapshot, std::string_view officer_id,
    const absl::flat_hash_set<std::string>& regions) {
  std::vector<std::string> prefixes;
  for (const std::string& region : regions) {
    prefixes.push_back(storage::CaseScopeListRegionPrefix(region));
  }
  if (!officer_id.empty()) {
    // Each region present in the index, by seeking past the one before.
    const std::string all = storage::CaseScopeListPrefix();
    std::unique_ptr<storage::Iterator> it =
        store->NewIterator(storage::Cf::kCaseIndex, all, storage::PrefixUpperBound(all), snapshot);
    while (it->Valid()) {
      ASSIGN_OR_RETURN(storage::CaseScopeListKey key, storage::DecodeCaseScopeListKey(it->key()));
      if (!regions.contains(key.region)) {
        prefixes.push_back(storage::EncodeCaseScopeListKey(key.region, officer_id));
      }
      it->Seek(storage::PrefixUpperBound(storage::CaseScopeListRegionPrefix(key.region)));
    }
    RETURN_IF_ERROR(it->status());
  }
  std::sort(prefixes.begin(), prefixes.end());
  return prefixes;
}

absl::Status ForEachListedCase(
    storage::Store* store, const storage::Snapshot* snapshot, std::string_view prefix,
    std::string_view after,
    absl::FunctionRef<absl::StatusOr<bool>(const Uuid& case_id, std::string_view position)> fn) {
  // Resume at the list that `after` names (a position is its list's key and
  // a 16-byte id).
  std::string start(prefix);
  if (after > std::string_view(start)) {
    const std::string_view list =
        after.size() > kIdBytes ? after.substr(0, after.size() - kIdBytes) : after;
    if (list > std::string_view(start)) start = std::string(list);
  }
  std::unique_ptr<storage::Iterator> it = store->NewIterator(
      storage::Cf::kCaseIndex, start, storage::PrefixUpperBound(prefix), snapshot);
  std::string position;
  bool stopped = false;
  for (; it->Valid() && !stopped; it->Next()) {
    RETURN_IF_ERROR(storage::DecodeCaseScopeListKey(it->key()).status());
    const std::string_view key = it->key();
    RETURN_IF_ERROR(storage::ForEachKeyedSum(
        it->value(), [&](std::string_view member, int64_t sum) -> absl::Status {
          if (stopped) return absl::OkStatus();
          if (member.size() != kIdBytes) {
            return absl::DataLossError("malformed case scope list: a member is not a case id");
          }
          if (sum <= 0) return absl::OkStatus();  // not listed
          position.assign(key);
          position.append(member);
          if (!after.empty() && std::string_view(position) <= after) return absl::OkStatus();
          Uuid id;
          std::memcpy(id.data(), member.data(), id.size());
          ASSIGN_OR_RETURN(const bool go_on, fn(id, position));
          stopped = !go_on;
          return absl::OkStatus();
        }));
  }
  return it->status();
}

}  // namespace fieldsync::sync
