// The schema check at fieldsyncd's start (docs/OPERATIONS.md, "Schema
// upgrades"): compares the configured schema with the one the store was
// last served under (sync/schema_compat.h), refuses an incompatible change
// unless the operator accepts it, and records and audits what it lets
// through.
#ifndef FIELDSYNC_ADMIN_SCHEMA_UPGRADE_H_
#define FIELDSYNC_ADMIN_SCHEMA_UPGRADE_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "audit/log.h"
#include "storage/store.h"
#include "sync/schema.h"
#include "sync/schema_compat.h"

namespace fieldsync::admin {

// AdminAction names (docs/AUDIT.md).
inline constexpr std::string_view kSchemaChangedAction = "schema.changed";
inline constexpr std::string_view kSchemaChangeAcceptedAction = "schema.change-accepted";

struct SchemaStartOptions {
  storage::Store* store = nullptr;       // not owned
  audit::AuditLog* audit = nullptr;      // not owned; null: nothing audited (tools)
  const sync::Schema* schema = nullptr;  // the configured schema; not owned
  // The operator's --accept-schema-change: accept an incompatible change.
  bool accept_change = false;
  absl::Time now;
};

// Checks the configured schema against the store (CheckSchemaUpgrade) and
// acts on the verdict, before anything else commits:
//   first record  records the schema; log line "schema.recorded".
//   unchanged     nothing.
//   compatible    records it, audited as AdminAction "schema.changed" by
//                 kUpgradeActor (subjects "from=ID@V", "to=ID@V",
//                 "sha256=DIGEST", then each change's name), in one commit;
//                 log line "schema.changed".
//   incompatible  with accept_change: as compatible, with the action
//                 "schema.change-accepted" and the incompatible changes'
//                 names as the subjects after the digest; log line
//                 "schema.change-accepted" (warning). Without it:
//                 kFailedPrecondition, the verdict's RefusalLine.
//   version error kFailedPrecondition with the RefusalLine; accept_change
//                 does not override it.
// Returns the verdict. Errors from the scan and the commit as
// CheckSchemaUpgrade and Store::Commit.
// REQUIRES: nothing else writes the store meanwhile (run before serving).
absl::StatusOr<sync::SchemaVerdict> CheckSchemaAtStart(const SchemaStartOptions& options);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_SCHEMA_UPGRADE_H_
