// Reading and writing record states (sync/record_codec.h) with their
// values: the one place that knows a field's value lives in the log entry
// of its greatest write. The reconciler reads and writes through a
// StateView (read-your-writes over a commit group); readers outside a
// commit read the store at a snapshot.
#ifndef FIELDSYNC_SYNC_RECORD_STATE_H_
#define FIELDSYNC_SYNC_RECORD_STATE_H_

#include <optional>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "storage/store.h"
#include "sync/log_codec.h"
#include "sync/record_codec.h"
#include "sync/state_view.h"

namespace fieldsync::sync {

// Fills the value of each field of `state` (only those named in `only`,
// when it is not empty) from the entry of its greatest write, read with
// `read` (each entry once). kDataLoss when that entry is missing or does
// not write the field; the errors of `read`.
absl::Status FillValues(RecordState* state, const EntryReader& read,
                        std::span<const std::string_view> only = {});

// Reads the case log through `view` (its own entries first).
EntryReader ViewEntryReader(StateView* view);

// The record's state through `view`, values unset; nullopt when the record
// does not exist. kDataLoss when it does not decode.
absl::StatusOr<std::optional<RecordState>> LoadRecord(StateView* view, const Uuid& case_id,
                                                      const Uuid& record_id);

// Writes the record's state (values are not stored) through `view`.
void StoreRecord(StateView* view, const Uuid& case_id, const Uuid& record_id,
                 const RecordState& state);

// The record's state in `store` at `snap` (null: the latest), with every
// value (or those in `only`) filled from the store's log at the same
// snapshot; nullopt when the record does not exist.
absl::StatusOr<std::optional<RecordState>> ReadRecord(storage::Store* store,
                                                      const storage::Snapshot* snap,
                                                      const Uuid& case_id, const Uuid& record_id,
                                                      std::span<const std::string_view> only = {});

// The current value of one field of a record (cleared values included);
// nullopt when the record or the field has none.
absl::StatusOr<std::optional<v1::StoredValue>> ReadFieldValue(storage::Store* store,
                                                              const storage::Snapshot* snap,
                                                              const Uuid& case_id,
                                                              const Uuid& record_id,
                                                              std::string_view field);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_RECORD_STATE_H_
