// A read-your-writes view of the store for one commit group: reads go to an
// in-memory overlay of the group's own writes first and then to the store;
// writes go to the overlay and to the group's storage::WriteBatch. What a
// read finds in the store (or that it found nothing) joins the overlay too,
// so a key read again in the same group is not read from the store again.
// A value is held once: a store read or a serialized message is moved into
// the overlay, and GetProto parses it in place; only the WriteBatch gets a
// copy. Used by the ingest committer and by RebuildStateFromLog.
#ifndef FIELDSYNC_SYNC_STATE_VIEW_H_
#define FIELDSYNC_SYNC_STATE_VIEW_H_

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/keyed_sums.h"
#include "storage/store.h"

namespace fieldsync::sync {

// Not thread-safe: one committer uses it at a time. The store must not be
// written by anyone else for the column families read through it while it
// lives (sync's committer is the only writer of records, case_index,
// conflicts, batches and case_log).
class StateView {
 public:
  // `store` and `batch` are not owned and must outlive the view.
  StateView(storage::Store* store, storage::WriteBatch* batch) : store_(store), batch_(batch) {}

  // The value at `key`, nullopt when absent. kDataLoss / kUnavailable from
  // the store.
  absl::StatusOr<std::optional<std::string>> Get(storage::Cf cf, std::string_view key);

  // Parses the value at `key` into *msg; false when absent. kDataLoss when
  // it does not parse.
  template <typename Message>
  absl::StatusOr<bool> GetProto(storage::Cf cf, std::string_view key, Message* msg) {
    absl::StatusOr<const std::optional<std::string>*> v = Find(cf, key);
    if (!v.ok()) return v.status();
    if (!(*v)->has_value()) return false;
    if (!msg->ParseFromString(***v)) return CorruptValue(cf, key);
    return true;
  }

  // Reads the keys of `cf` that the overlay does not hold yet with one
  // store MultiGet, so that the Gets that follow find them in the overlay.
  // kDataLoss / kUnavailable from the store (nothing is added then).
  absl::Status Prefetch(storage::Cf cf, std::span<const std::string> keys);

  void Put(storage::Cf cf, std::string_view key, std::string value);
  template <typename Message>
  void PutProto(storage::Cf cf, std::string_view key, const Message& msg) {
    Put(cf, key, msg.SerializeAsString());
  }
  void Delete(storage::Cf cf, std::string_view key);

  // Adds `delta` to `member`'s sum under `key`, a keyed-sums key
  // (storage/keyed_sums.h), summed with the rest of the group's: FlushSums
  // writes one Merge operand per key. Reads through the view do not see
  // these sums (nothing reads such a key while a group is built).
  void AddToSum(storage::Cf cf, std::string_view key, std::string_view member, int64_t delta);
  // Writes the sums added since the last flush to the batch, one Merge
  // operand per key, and forgets them. A key whose deltas cancel still gets
  // its (empty) operand, so that which keys the store holds does not depend
  // on how changes were grouped into batches. Call before the batch is
  // committed.
  void FlushSums();

  // Every live key with `prefix` and its value, in key order, merging the
  // store and the overlay.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(storage::Cf cf,
                                                                        std::string_view prefix);

  // The store read through (its name dictionary encodes and decodes what
  // the view holds).
  storage::Store* store() const { return store_; }
  storage::WriteBatch* batch() const { return batch_; }

  // Forgets the overlay and any unflushed sums (after the batch was
  // committed or dropped).
  void ResetOverlay() {
    overlay_.clear();
    sums_.clear();
  }

 private:
  static absl::Status CorruptValue(storage::Cf cf, std::string_view key);
  // The overlay's entry for `key`, read from the store into the overlay
  // first if absent. The pointer is valid until the overlay changes.
  absl::StatusOr<const std::optional<std::string>*> Find(storage::Cf cf, std::string_view key);

  storage::Store* store_;
  storage::WriteBatch* batch_;
  // Orders (column family, key) pairs, and finds them by a string_view key
  // without copying it.
  struct KeyLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      if (a.first != b.first) return a.first < b.first;
      return std::string_view(a.second) < std::string_view(b.second);
    }
  };
  // nullopt marks a deletion, or a key the store does not hold.
  std::map<std::pair<storage::Cf, std::string>, std::optional<std::string>, KeyLess> overlay_;
  // The group's keyed sums not yet flushed, by (column family, key).
  std::map<std::pair<storage::Cf, std::string>, storage::KeyedSums, KeyLess> sums_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_STATE_VIEW_H_
