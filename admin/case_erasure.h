// Erasing a case (crypto-shredding, DESIGN §7): the administrator's
// operation behind AdminService.EraseCase. gRPC-free; server/admin_service.cc
// adapts it.
#ifndef FIELDSYNC_ADMIN_CASE_ERASURE_H_
#define FIELDSYNC_ADMIN_CASE_ERASURE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "audit/log.h"
#include "common/clock.h"
#include "keys/case_keys.h"
#include "storage/store.h"

namespace fieldsync::admin {

struct ErasedCase {
  std::string case_id;  // canonical UUID text
  uint64_t audit_leaf_index = 0;
  uint64_t audit_tree_size = 0;
};

// Thread-safe: erasures are serialized. Pointers are not owned and must
// outlive this object.
class CaseErasure {
 public:
  // `audit` must not be null: an erasure is never unrecorded.
  CaseErasure(storage::Store* store, keys::CaseKeyStore* keys, audit::AuditLog* audit, Clock* clock)
      : store_(store), keys_(keys), audit_(audit), clock_(clock) {}

  // Erases the case: its wrapped data key becomes the erasure marker and a
  // CaseErased{actor, case_id} event is appended, both in one atomic
  // commit; then the key's range is compacted so that no database file
  // holds the wrapped key (keys/case_keys.h CaseKeyStore::Erase). Every
  // identifying and sensitive field of the case is unreadable from then
  // on (pulls withhold them); dimension fields and the case log stay.
  // Returns the event's leaf index and the tree size after it. Errors:
  //   kInvalidArgument - case_id is not a UUID, or confirm_case_id does not
  //     name the same case;
  //   kNotFound - no case with that id (no registration record), carrying
  //     a SyncErrorDetail with reason NOT_FOUND and the case id;
  //   kFailedPrecondition - the case is already erased (its key's range is
  //     compacted again first, which finishes an erasure whose compaction
  //     failed);
  //   kUnavailable - the audit log is busy or storage failed: nothing was
  //     erased, retry;
  //   a CompactRange error - the erasure and its event are committed but
  //     the wrapped key may still be in a database file until the next
  //     compaction: run the erasure again.
  absl::StatusOr<ErasedCase> Erase(std::string_view case_id, std::string_view confirm_case_id,
                                   const std::string& actor);

 private:
  storage::Store* store_;
  keys::CaseKeyStore* keys_;
  audit::AuditLog* audit_;
  Clock* clock_;
  absl::Mutex mu_;  // one erasure at a time: "already erased" is exact
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_CASE_ERASURE_H_
