// A case's log entries by position (storage/key_codec.h, Cf::kCaseIndex):
// the entry that created each of the case's records is that record state's
// created_position; every other entry of the case has a key in the
// case-entry index. A pull by scope (sync/pull.h) and a case's history
// (ChangeFeed::CaseHistory) read them through here.
#ifndef FIELDSYNC_SYNC_CASE_ENTRIES_H_
#define FIELDSYNC_SYNC_CASE_ENTRIES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "common/uuid.h"
#include "storage/store.h"

namespace fieldsync::sync {

// Reads entry positions of cases from one snapshot of `store` (null: the
// latest), reusing its iterators from case to case. Not thread-safe.
class CaseEntryReader {
 public:
  CaseEntryReader(storage::Store* store, const storage::Snapshot* snapshot);

  // Up to `max` positions of `case_id`'s entries in (after, through]
  // (through 0: no bound), ascending, into *out (replaced); *more is set
  // when the case has further entries in that range. kDataLoss for a
  // malformed index key or record state; kUnavailable from storage.
  absl::Status Read(const Uuid& case_id, uint64_t after, uint64_t through, size_t max,
                    std::vector<uint64_t>* out, bool* more);

 private:
  std::unique_ptr<storage::Iterator> records_;
  std::unique_ptr<storage::Iterator> entries_;
  std::vector<uint64_t> created_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_CASE_ENTRIES_H_
