// Reading the canonical case log and the state for principals (DESIGN §5
// Pull, §6 conflicts): log entries after a cursor of the cases a scope
// reaches (read through the case indexes, sync/pull.h; the rule in
// sync/scope.h), with the sensitivity classes a role may read decrypted,
// in bounded chunks that carry the cursor to resume from; and the open
// conflicts of a region. Every call reads one storage snapshot, so a chunk
// never mixes states. Sealing a chunk to a device is server/'s job.
#ifndef FIELDSYNC_SYNC_CHANGE_FEED_H_
#define FIELDSYNC_SYNC_CHANGE_FEED_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/schema.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "storage/store.h"
#include "sync/field_sealer.h"
#include "sync/schema.h"
#include "sync/scope.h"

namespace fieldsync::sync {

struct FeedOptions {
  // Read entries with position > cursor.
  uint64_t cursor = 0;
  // Bounds per chunk. A single change larger than max_bytes is still sent
  // alone, so a chunk always progresses.
  size_t max_changes = 1000;
  size_t max_bytes = 1 << 20;
  // Unused: a read no longer scans the log for its scope (sync/pull.h).
  size_t max_scan = 50000;
};

// Thread-safe (reads only). Not owned: store, schema, sealer; they must
// outlive the feed.
class ChangeFeed {
 public:
  ChangeFeed(storage::Store* store, const Schema* schema, const FieldSealer* sealer)
      : store_(store), schema_(schema), sealer_(sealer) {}

  // One chunk after options.cursor, read by scope (a ScopedLogReader of
  // one chunk; a stream keeps one across chunks, sync/pull.h). next_cursor
  // covers every entry up to where the chunk stops (in scope or not);
  // resuming from it gives no gaps and no duplicates. caught_up when the
  // log had nothing of the scope after next_cursor. Errors: kDataLoss
  // (corrupt entry or a value that does not open), kUnavailable (storage).
  absl::StatusOr<v1::PulledChanges> Read(const ReadScope& scope, const FeedOptions& options) const;

  // Where the case `case_id` stands for `scope` now (sync/scope.h).
  absl::StatusOr<CaseReach> Reach(const ReadScope& scope, const Uuid& case_id) const;
  // The case of the conflict `id` (that of the log entry that made it),
  // canonical text; kNotFound (reason NOT_FOUND) when there is no such
  // entry. For ResolveConflict, which checks the case's scope first.
  absl::StatusOr<std::string> CaseOfConflict(const v1::ConflictId& id) const;

  // --- For readers of the log (sync/pull.h).
  // The log's last position in `snap` (0 when the log is empty).
  // `hint`: a position known to exist (0: none); the search starts there.
  absl::StatusOr<uint64_t> LastPosition(const storage::Snapshot* snap, uint64_t hint = 0) const;
  // Fills the empty *change with the entry at `position` as a reader of
  // the `readable` classes gets it: other classes, and protected values of
  // an erased case, withheld.
  absl::Status ToPulled(const v1::CaseLogEntry& entry, uint64_t position,
                        const absl::flat_hash_set<v1::Sensitivity>& readable,
                        v1::PulledChange* change) const;
  storage::Store* store() const { return store_; }
  const Schema& schema() const { return *schema_; }

  // Open conflicts of `region`, oldest first, with plaintext values of the
  // classes in `readable`. page_size 0 = 100, capped at 1000; page_token
  // from the previous response. kInvalidArgument for a bad page token.
  absl::StatusOr<v1::ListConflictsResponse> ListConflicts(
      std::string_view region, uint32_t page_size, std::string_view page_token,
      const absl::flat_hash_set<v1::Sensitivity>& readable) const;

  // The current plaintext value of one field: nullopt when the record or
  // field is absent or cleared. kNotFound if the case key was erased.
  absl::StatusOr<std::optional<v1::FieldValue>> ReadField(std::string_view case_id,
                                                          std::string_view record_id,
                                                          std::string_view field) const;

  // --- One case at a time, for supervisors (sync/case_reads.cc). Case ids
  // are canonical UUID text; kInvalidArgument when one is not a UUID.

  // Which cases ListCases returns: those of `regions` (required), and of
  // these only the ones matching every other condition that is set.
  struct CaseFilter {
    std::vector<std::string> regions;
    std::string officer_id;
    std::string status;  // "open", "closed" or "" for both
    bool has_conflicts = false;
  };
  // Case summaries ordered by region, officer, then case id; page_size 0 = 100,
  // capped at 1000; page_token from the previous response
  // (kInvalidArgument when it is not).
  absl::StatusOr<v1::ListCasesResponse> ListCases(const CaseFilter& filter, uint32_t page_size,
                                                  std::string_view page_token) const;
  // One case's summary; kNotFound when it does not exist.
  absl::StatusOr<v1::CaseSummary> SummarizeCase(std::string_view case_id) const;
  // Every record and field of a case, in plaintext where `readable` allows
  // (value_withheld otherwise, and for every protected value of an erased
  // case: summary.erased). kNotFound when the case does not exist.
  absl::StatusOr<v1::GetCaseResponse> GetCase(
      std::string_view case_id, const absl::flat_hash_set<v1::Sensitivity>& readable) const;
  // The case's log entries in position order, without values; page_size
  // and page_token as ListCases. kNotFound when the case does not exist.
  absl::StatusOr<v1::GetCaseHistoryResponse> CaseHistory(std::string_view case_id,
                                                         uint32_t page_size,
                                                         std::string_view page_token) const;
  // The conflict made by the entry at id.position on id.field, open or
  // closed, described as ListConflicts does (closed ones with the field's
  // current value and no losing values). kNotFound when there is none.
  absl::StatusOr<v1::Conflict> GetConflict(
      const v1::ConflictId& id, const absl::flat_hash_set<v1::Sensitivity>& readable) const;
  // Every open conflict of one case, oldest first.
  absl::StatusOr<v1::ListConflictsResponse> ListCaseConflicts(
      std::string_view case_id, const absl::flat_hash_set<v1::Sensitivity>& readable) const;

 private:
  absl::StatusOr<v1::CaseSummary> Summarize(const Uuid& case_id,
                                            const storage::Snapshot* snap) const;
  // Fills `c` from a stored conflict of case `case_id` in `region`, with
  // the field's current value and every losing value (in plaintext where
  // `readable` allows) and the version a resolution must name.
  absl::Status DescribeConflict(const v1::ConflictRecord& record, const Uuid& case_id,
                                std::string_view region,
                                const absl::flat_hash_set<v1::Sensitivity>& readable,
                                const storage::Snapshot* snap, v1::Conflict* c) const;
  absl::StatusOr<v1::FieldValue> Plaintext(const v1::StoredValue& value, std::string_view case_id,
                                           std::string_view record_id,
                                           std::string_view field) const;
  // The same into the empty *out (which may live on an arena).
  absl::Status PlaintextInto(const v1::StoredValue& value, std::string_view case_id,
                             std::string_view record_id, std::string_view field,
                             v1::FieldValue* out) const;

  storage::Store* store_;
  const Schema* schema_;
  const FieldSealer* sealer_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_CHANGE_FEED_H_
