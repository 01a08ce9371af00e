// Upgrading a store's sync state from layout 1 (a key per record header and
// per field state, each field state holding its value) to layout 2 (one
// value per record, values only in the case log; sync/record_codec.h), in
// place, at start, before anything commits (docs/OPERATIONS.md, "Upgrades").
//
// The state is a pure function of the log (sync/rebuild.h), so the upgrade
// rebuilds it: first into a scratch store, comparing every record, field,
// conflict and index entry with the stored layout-1 state (values compared
// as merge compares them) and every recorded outcome decided under the
// current rules with its replay; only when all agree does it replace the
// live state, rebuilt in place from the log. Stored batch answers are then
// kept in their compact form where the log rebuilds them exactly
// (sync/batch_answer.h). The case log, the audit log, keys, principals and
// counters are not touched. Each step is recorded in
// the metadata column family before it starts, so an interrupted upgrade
// resumes at its step at the next start.
#ifndef FIELDSYNC_SYNC_LAYOUT_UPGRADE_H_
#define FIELDSYNC_SYNC_LAYOUT_UPGRADE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/store.h"
#include "sync/schema.h"

namespace fieldsync::sync {

// The state layout this release writes, persisted as kLayoutName (decimal).
// A store without it that has a case log holds layout 1. Layout 3 is layout
// 2 with log entries and record states of format 3 (sync/log_codec.h,
// sync/record_codec.h), which a layout-2 release cannot read: a layout-2
// store is marked 3 at the first start (it reads as it is), so that an
// earlier release refuses the store instead of failing on its entries.
inline constexpr uint32_t kStateLayout = 3;
inline constexpr char kLayoutName[] = "sync.layout";
// The upgrade step under way: "verify" or "replace".
inline constexpr char kLayoutStepName[] = "sync.layout_step";

struct LayoutUpgradeOptions {
  // A directory the upgrade may create and remove for its scratch store.
  std::string scratch_dir;
  // Fault injection: called before each step ("verify", "replace", "mark")
  // starts; an error stops the upgrade there, as a crash would.
  std::function<absl::Status(std::string_view step)> before_step;
};

struct LayoutUpgrade {
  bool upgraded = false;
  uint64_t entries = 0;        // log entries replayed
  uint64_t records = 0;        // records compared
  uint64_t conflicts = 0;      // conflict records compared
  uint64_t batch_answers = 0;  // stored batch answers made compact
};

// Brings `store`'s state to kStateLayout (see the file comment); nothing
// for a store already there. A new store is marked. Errors: kDataLoss when
// the rebuilt state differs from the stored one (naming the case, record
// and field, never a value; the live state is left as it was), or an
// outcome does not replay; kUnavailable from storage.
absl::StatusOr<LayoutUpgrade> UpgradeStateLayout(const Schema& schema, storage::Store* store,
                                                 const LayoutUpgradeOptions& options);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_LAYOUT_UPGRADE_H_
