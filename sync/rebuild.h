// Recomputing the materialized state from the canonical case log (DESIGN
// §6): the state (column families records, case_index, conflicts) is a pure
// function of the log, so replaying the log into an empty store gives the
// same bytes. Used to verify a store, and to rebuild state after a restore.
#ifndef FIELDSYNC_SYNC_REBUILD_H_
#define FIELDSYNC_SYNC_REBUILD_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "storage/store.h"
#include "sync/schema.h"

namespace fieldsync::sync {

// Replays every entry of `source`'s case log, in position order, through the
// same Reconciler the ingest committer uses, writing the resulting state
// into `target`'s records, case_index and conflicts column families (which
// must be empty), committing every `entries_per_commit` entries. Encrypted
// values are copied as stored, never re-encrypted. Returns the number of
// entries replayed. Errors: kDataLoss when an entry does not parse, a
// position is missing, or a recomputed outcome differs from the recorded
// one (the log or the code changed); kUnavailable from storage.
// `source` and `target` may be the same store only if its state column
// families were emptied first.
absl::StatusOr<uint64_t> RebuildStateFromLog(const Schema& schema, storage::Store* source,
                                             storage::Store* target,
                                             size_t entries_per_commit = 1000);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_REBUILD_H_
