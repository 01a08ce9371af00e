// Rollback and fork detection at start (docs/OPERATIONS.md, "Restore
// drill"): fieldsyncd serves only when the store's audit tree extends
// every tree head the deployment published, or when an administrator
// accepted, for exactly the state they were shown, that it does not.
#ifndef FIELDSYNC_SERVER_AUDIT_ROLLBACK_H_
#define FIELDSYNC_SERVER_AUDIT_ROLLBACK_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "audit/log.h"

namespace fieldsync::server {

// Checks `log` (opened, nothing appended yet) against its published heads
// (AuditLog::UnextendedHeads). OK when the tree extends them all and
// `accept_size` is empty, or when `accept_size` is the tree's size and the
// acceptance was recorded (AuditLog::AcceptRollback, by `actor`). Else
// kFailedPrecondition with one line holding the tree's size, the head's
// size, where that head was published and the way forward (restore the
// newer store, or `fieldsyncd --data-dir DATA_DIR --accept-rollback SIZE`);
// also when `accept_size` is given with nothing to accept or another size.
// Storage and file errors propagate.
absl::Status CheckAuditRollback(audit::AuditLog* log, std::optional<uint64_t> accept_size,
                                const std::string& actor, const std::string& data_dir);

// The configured second copy of the head file must be an absolute path in
// an existing directory (kFailedPrecondition naming it otherwise); a path
// inside `data_dir` is accepted with a warning (it cannot catch a restore
// of the whole directory).
absl::Status CheckHeadCopyFile(const std::string& path, const std::string& data_dir);

// "local-operator:uid=N": the actor of an acceptance made at the console.
std::string LocalOperatorActor();

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_AUDIT_ROLLBACK_H_
