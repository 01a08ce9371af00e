// The one rule of which cases a principal may read (DESIGN §5, PROTOCOL.md
// §2.2): a device reaches the cases whose officer field holds its officer,
// anyone else the cases whose region field is one of their regions;
// administrators' tools reach every case. A case's officer and region are
// its registration record's current values, so a transfer or reassignment
// moves the case (with its whole history) from one scope to another.
//
// Pulls (sync/pull.h), the case reads of CaseService and a backfill's check
// all decide through Reaches(); the case index's scope lists
// (storage/key_codec.h EncodeCaseScopeListKey) list the same cases by region
// and officer, kept in step with the same fields by the reconciler.
#ifndef FIELDSYNC_SYNC_SCOPE_H_
#define FIELDSYNC_SYNC_SCOPE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "fieldsync/v1/admin.pb.h"
#include "fieldsync/v1/schema.pb.h"
#include "storage/store.h"
#include "sync/schema.h"

namespace fieldsync::sync {

// Which cases and fields a reader reaches: every case (all_cases), or the
// cases assigned to officer_id, or those of any of `regions` (either
// condition suffices).
struct ReadScope {
  bool all_cases = false;                    // administrators' tools
  std::string officer_id;                    // devices: cases assigned to it
  absl::flat_hash_set<std::string> regions;  // supervisors: their regions
  // Sensitivity classes whose values the reader gets; other fields are
  // withheld (counted in PulledChange.withheld_fields).
  absl::flat_hash_set<v1::Sensitivity> readable;

  // Every class: devices and supervisors.
  static absl::flat_hash_set<v1::Sensitivity> AllClasses();
};

// The scope of an authenticated principal: a device's officer's cases, a
// supervisor's (any other role's) regions' cases; every class.
ReadScope ScopeOfPrincipal(const v1::Principal& principal);

// What the scope rule looks at: the case's current region and officer,
// nullopt when the field is absent or cleared.
struct CaseOwner {
  std::optional<std::string> region;
  std::optional<std::string> officer;
  // Neither field is set: no such case (or one never registered).
  bool absent() const { return !region.has_value() && !officer.has_value(); }
};

// Reads the owner fields of `case_id` at `snapshot` (null: the latest).
// kDataLoss when a field state does not parse; kUnavailable from storage.
absl::StatusOr<CaseOwner> ReadCaseOwner(storage::Store* store, const Schema& schema,
                                        const Uuid& case_id, const storage::Snapshot* snapshot);

// The scope rule: whether `scope` reaches a case owned as `owner`.
bool Reaches(const ReadScope& scope, const CaseOwner& owner);

// Where a case stands for a reader.
enum class CaseReach { kNoSuchCase, kOutOfScope, kInScope };
absl::StatusOr<CaseReach> ReachOfCase(storage::Store* store, const Schema& schema,
                                      const ReadScope& scope, const Uuid& case_id,
                                      const storage::Snapshot* snapshot);

// The case-index prefixes (storage/key_codec.h CaseScopeListRegionPrefix,
// and EncodeCaseScopeListKey for one list) under which the cases assigned
// to `officer_id` (unless empty) or of any of `regions` are listed, in key
// order and not overlapping: one per region, and the officer's list under
// each other region the index holds, read at `snapshot` (null: the latest).
absl::StatusOr<std::vector<std::string>> CaseIndexPrefixes(
    storage::Store* store, const storage::Snapshot* snapshot, std::string_view officer_id,
    const absl::flat_hash_set<std::string>& regions);

// Calls `fn` with each case listed under `prefix` (one of
// CaseIndexPrefixes) and its position in the listing, its scope list's key
// followed by its 16-byte id (positions grow from call to call), starting
// after the position `after` ("": from the first); stops when `fn` returns
// false or an error, and returns that error. Read at `snapshot` (null: the
// latest). kDataLoss on a malformed scope list.
absl::Status ForEachListedCase(
    storage::Store* store, const storage::Snapshot* snapshot, std::string_view prefix,
    std::string_view after,
    absl::FunctionRef<absl::StatusOr<bool>(const Uuid& case_id, std::string_view position)> fn);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_SCOPE_H_
