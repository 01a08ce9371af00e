// When each device last synced (pushed or pulled): kept in memory for the
// "connected devices" of AdminService.GetStatus, and written beside the
// registry (Cf::kPrincipals, storage/key_codec.h EncodeDeviceLastSyncKey)
// for `fieldsync staff list`, cheaply: at most one commit per flush
// interval for all devices together, never a write per push.
#ifndef FIELDSYNC_ADMIN_DEVICE_ACTIVITY_H_
#define FIELDSYNC_ADMIN_DEVICE_ACTIVITY_H_

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "storage/store.h"

namespace fieldsync::admin {

// The default window of GetStatus's connected devices.
inline constexpr absl::Duration kDefaultActiveWindow = absl::Minutes(15);
// How often recorded times reach the store (and so how stale, at most, a
// listed last sync is after a crash).
inline constexpr absl::Duration kLastSyncFlushInterval = absl::Minutes(1);

// Thread-safe. `store` and `clock` are not owned and must outlive it.
// Memory: one entry per device that synced since the server started; only
// authenticated devices are recorded, so it is bounded by the registry.
class DeviceActivity {
 public:
  DeviceActivity(storage::Store* store, Clock* clock,
                 absl::Duration flush_interval = kLastSyncFlushInterval)
      : store_(store), clock_(clock), flush_interval_(flush_interval) {}

  // Notes that `device_id` synced now. When the last flush is older than
  // the flush interval, writes every time noted since then in one commit
  // (on the caller's thread, without holding the lock other calls take). A failed write is logged
  // and retried at the next flush: it never fails the device's call.
  void Record(std::string_view device_id);

  // Writes the times noted since the last flush (at shutdown). Storage
  // errors propagate; the times are kept for the next try.
  absl::Status Flush();

  // Distinct devices that synced at or after `since`, as noted in memory
  // since the server started.
  int CountSince(absl::Time since) const;

  // Every device's last sync: the stored times, newer ones noted in memory
  // over them. kDataLoss if a stored entry does not parse; kUnavailable
  // from storage.
  absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> LastSyncs() const;

 private:
  // Moves the times noted since the last flush out, and starts the next
  // flush interval.
  absl::flat_hash_map<std::string, absl::Time> TakeUnflushedLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `due`; on failure puts its times back for the next flush
  // (unless newer ones were noted). Called without mu_ held.
  absl::Status Write(absl::flat_hash_map<std::string, absl::Time> due) ABSL_LOCKS_EXCLUDED(mu_);

  storage::Store* store_;
  Clock* clock_;
  const absl::Duration flush_interval_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> last_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> unflushed_ ABSL_GUARDED_BY(mu_);
  absl::Time last_flush_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_DEVICE_ACTIVITY_H_
