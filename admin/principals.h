// The principal registry: who may call fieldsyncd, with which role and over
// which regions. Backed by the "principals" column family.
#ifndef FIELDSYNC_ADMIN_PRINCIPALS_H_
#define FIELDSYNC_ADMIN_PRINCIPALS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fieldsync/v1/admin.pb.h"
#include "storage/store.h"

namespace fieldsync::admin {

// A principal's name as its certificate carries it in a URI SAN:
// fieldsync://staff/<id> or fieldsync://device/<id>. Officers have no
// certificate: their kind never comes from ParsePrincipalUri.
struct PrincipalName {
  v1::PrincipalKind kind = v1::PRINCIPAL_KIND_UNSPECIFIED;
  std::string id;
};

// Returns the URI of `name`. An officer's, fieldsync://officer/<id>, names
// it in messages and the registry only: no certificate carries it.
std::string PrincipalUri(const PrincipalName& name);
// Parses a certificate's URI; kInvalidArgument unless it is
// fieldsync://staff/<id> with a valid staff id or fieldsync://device/<uuid>
// (so never an officer).
absl::StatusOr<PrincipalName> ParsePrincipalUri(std::string_view uri);

// Staff ids: 1-40 characters of [a-z0-9._-], starting with a letter or
// digit. kInvalidArgument naming the rule otherwise.
absl::Status ValidateStaffId(std::string_view id);
// Devices: a UUID in canonical lowercase text form.
absl::Status ValidateDeviceId(std::string_view id);

// Human names: "device", "supervisor", "analyst", "auditor", "administrator",
// "officer".
std::string_view RoleName(v1::Role role);
// Parses a role name; kInvalidArgument listing the valid names otherwise.
absl::StatusOr<v1::Role> ParseRoleName(std::string_view name);

// Reads and writes registry entries. Thread-safe; `store` is not owned and
// must outlive the registry. One registry serves every writer of a store.
class PrincipalRegistry {
 public:
  explicit PrincipalRegistry(storage::Store* store) : store_(store) {}

  // The registry entry of `name`; kNotFound if none.
  absl::StatusOr<v1::Principal> Get(const PrincipalName& name) const;

  // Adds the write of `principal` to `batch` (committed by the caller, with
  // whatever else the same change must do atomically).
  // kInvalidArgument if its id or kind is malformed (officers: staff id
  // syntax).
  absl::Status Put(const v1::Principal& principal, storage::WriteBatch* batch) const;

  // Every principal of `kind` (all kinds if unspecified), ordered by kind
  // then id. kInvalidArgument for a value that is not a PrincipalKind.
  absl::StatusOr<std::vector<v1::Principal>> List(v1::PrincipalKind kind) const;

  // Held by every writer of the registry (staff, officers, enrolment codes
  // and devices) from the reads its change depends on until the change
  // commits, so that, e.g., no device is enrolled for an officer that is
  // being revoked.
  absl::Mutex& write_mutex() const ABSL_LOCK_RETURNED(write_mu_) { return write_mu_; }

 private:
  storage::Store* store_;
  mutable absl::Mutex write_mu_;
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_PRINCIPALS_H_
