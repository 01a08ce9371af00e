// Recording reads of case data (CaseAccess, docs/AUDIT.md §1) so that a
// client cannot flood the permanent audit log by re-reading: a pull chunk's
// read is written durably before the chunk leaves the server, unless a
// CaseAccess written within the repeat window already covers every change
// it carries (same principal and access; each change covered by an entry
// that names its case and whose range holds its log position); reads
// recorded at the same time by
// several streams share one synced commit, and a read that an entry still
// being committed covers waits for that entry instead of adding one.
#ifndef FIELDSYNC_AUDIT_ACCESS_LEDGER_H_
#define FIELDSYNC_AUDIT_ACCESS_LEDGER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "audit/log.h"
#include "common/clock.h"
#include "protocol/events.h"
#include "storage/store.h"

namespace fieldsync::audit {

// One read to record: a chunk's changes, as (log position, case).
struct AccessRead {
  protocol::PrincipalKind principal_kind = protocol::PrincipalKind::kDevice;
  std::string principal_id;
  protocol::AccessKind access = protocol::AccessKind::kDevicePull;
  // The event's log range (a pull chunk's cursor and next_cursor).
  uint64_t from_position = 0;
  uint64_t to_position = 0;
  std::vector<std::pair<uint64_t, Uuid>> changes;
};

struct AccessLedgerOptions {
  // A read is not recorded again when an entry written this recently
  // covers it. Zero: every read with changes is written.
  absl::Duration repeat_window = absl::Minutes(5);
  // Memory bounds: the newest entries kept per principal and access, and
  // the principals kept (least recently recording dropped first). A
  // dropped entry only means that a repeat is written again.
  size_t max_entries_per_principal = 512;
  size_t max_principals = 4096;
  // And the case ids kept over all entries (16 bytes each, about 40 MiB
  // with the sets' overhead at the default): beyond it the least recently
  // recording principals are dropped.
  size_t max_cases = size_t{1} << 20;
};

// What Record did.
enum class AccessRecorded {
  kNothingToRecord,  // no changes
  kCovered,          // an entry written within the window covers the read
  kWritten,          // this read's entry (or one it waited for) was committed
};

// Thread-safe. Not owned: log, store and clock must outlive it.
class AccessLedger {
 public:
  AccessLedger(AuditLog* log, storage::Store* store, const Clock* clock,
               AccessLedgerOptions options = {});
  AccessLedger(const AccessLedger&) = delete;
  AccessLedger& operator=(const AccessLedger&) = delete;

  // Returns once `read` is covered by a committed CaseAccess entry: one
  // written within the repeat window, one another caller is committing
  // (waited for), or a new one (read's range and cases), committed with
  // every other new entry queued meanwhile in one synced write. On error
  // (kUnavailable: the log or the store failed) nothing is recorded for
  // the read: its data must not be sent.
  absl::StatusOr<AccessRecorded> Record(const AccessRead& read);

  // Entries this ledger committed and synced writes it made (for tests).
  uint64_t entries_written() const;
  uint64_t commits() const;

 private:
  struct Entry {
    uint64_t first_position = 0;  // of the changes the entry covers
    uint64_t last_position = 0;
    absl::flat_hash_set<Uuid> cases;
    absl::Time at;
  };
  struct Pending {
    Entry entry;
    protocol::Event event;
    bool done = false;
    absl::Status status;
  };
  struct Principal {
    std::deque<Entry> committed;                      // oldest first
    std::vector<std::shared_ptr<Pending>> in_flight;  // queued or committing
    std::list<std::string>::iterator lru;
  };

  // Whether `entry` names `case_id` and its range holds `position`.
  static bool Covers(const Entry& entry, uint64_t position, const Uuid& case_id);
  static std::string KeyOf(const AccessRead& read);
  Principal& PrincipalOf(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the least recent principals (not `keep`, none with an entry
  // being committed) while over max_principals or max_cases.
  void Evict(const std::string& keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops principal p's oldest committed entry.
  void DropOldest(Principal& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits the queue, in groups, until it is empty (the leader's loop).
  void CommitQueued() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  AuditLog* log_;
  storage::Store* store_;
  const Clock* clock_;
  const AccessLedgerOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Principal> principals_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  std::vector<std::pair<std::string, std::shared_ptr<Pending>>> queue_ ABSL_GUARDED_BY(mu_);
  bool committing_ ABSL_GUARDED_BY(mu_) = false;
  size_t cases_kept_ ABSL_GUARDED_BY(mu_) = 0;  // over every committed entry kept
  uint64_t entries_written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::audit

#endif  // FIELDSYNC_AUDIT_ACCESS_LEDGER_H_
