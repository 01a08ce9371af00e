// Pulling the case log by scope (DESIGN §5 Pull, PROTOCOL.md §6): a
// reader's chunks hold the log entries, after a cursor, of the cases its
// scope (sync/scope.h) reaches, in position order. The log itself is never
// scanned for them: the cases in scope come from the case index (by officer
// and region, storage/key_codec.h EncodeCaseScopeListKey) and each case's
// entries from its records and the case-entry index (sync/case_entries.h); their
// position streams are merged. A stream keeps that merge across its chunks,
// so a chunk costs about its own entries, not the reader's caseload.
//
// Every chunk is read from its own storage snapshot and is exact for it: a
// case is in the chunk only if the scope reaches it in that snapshot, and
// then with every one of its entries after the cursor up to the chunk's
// end. Between chunks the merge learns what changed from the log entries
// added since the previous snapshot (each change of a case's officer or
// region is such an entry, of its registration record), so a transfer, an
// assignment or a new case is seen by the next chunk.
#ifndef FIELDSYNC_SYNC_PULL_H_
#define FIELDSYNC_SYNC_PULL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/uuid.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "google/protobuf/arena.h"
#include "sync/case_entries.h"
#include "sync/change_feed.h"
#include "sync/scope.h"

namespace fieldsync::sync {

// Reads one scope's entries chunk by chunk. Not thread-safe (one caller at
// a time); `feed` is not owned and must outlive the reader.
class ScopedLogReader {
 public:
  struct Options {
    // Entries with position > cursor are read.
    uint64_t cursor = 0;
    // Only entries at or before this position (backfill); 0: no bound.
    uint64_t through = 0;
    // When set, only these cases (and only while the scope reaches them).
    std::optional<absl::flat_hash_set<Uuid>> only = std::nullopt;
    // More entries than this added to the log between two chunks make
    // the next chunk re-read the scope from the index instead of catching
    // up from the new entries.
    size_t max_catch_up = 20000;
  };

  ScopedLogReader(const ChangeFeed* feed, ReadScope scope, Options options);

  // The next chunk: at most max_changes changes and, unless it holds a
  // single change, at most max_bytes serialized. next_cursor covers every
  // entry up to where the chunk stops (in scope or not): resuming from it,
  // in this reader or a new one, gives no gaps and no duplicates.
  // caught_up when the snapshot had no entry of the scope after
  // next_cursor (then next_cursor is the snapshot's last position, or
  // `through`). Errors: kDataLoss (corrupt entry or index, a value that
  // does not open), kUnavailable (storage); the reader is then unusable.
  absl::StatusOr<v1::PulledChanges> Next(size_t max_changes, size_t max_bytes);
  // The same into *chunk (cleared first; it may live on an arena).
  absl::Status Next(size_t max_changes, size_t max_bytes, v1::PulledChanges* chunk);

  // Case streams read from the index since the reader was made (tests).
  uint64_t streams_seeded() const { return streams_seeded_; }

 private:
  // One case's positions after the cursor, read ahead from its entry index.
  struct Stream {
    std::vector<uint64_t> ahead;  // ascending, not yet sent
    size_t next = 0;              // first unsent in `ahead`
    bool more = false;            // the index may hold more after ahead.back()
    bool queued = false;          // its head is in heap_
  };
  using HeapItem = std::pair<uint64_t, Uuid>;  // (position, case)

  bool Member(const Uuid& case_id, const CaseOwner& owner) const;
  uint64_t Limit() const;  // last position this chunk may send
  // Re-reads the scope's cases at `snap` and seeds their streams.
  absl::Status Rebuild(const storage::Snapshot* snap);
  // Brings the merge from covered_ to `last` from the entries in between.
  absl::Status CatchUp(const storage::Snapshot* snap, uint64_t last);
  // Reads ahead `s`'s positions after `after`, up to Limit(), from the
  // current chunk's snapshot (entries_); queues its head when it has one.
  absl::Status Fill(const Uuid& case_id, Stream& s, uint64_t after);
  absl::Status NextOfAllCases(const storage::Snapshot* snap, uint64_t last, size_t max_changes,
                              size_t max_bytes, v1::PulledChanges* chunk);
  // Appends entry_ (at `position`) to *out unless it would take the chunk
  // over max_bytes (a first change always fits); false when it did not
  // fit or status_ failed.
  bool AddChange(uint64_t position, size_t max_bytes, size_t* bytes, v1::PulledChanges* out);

  const ChangeFeed* feed_;
  const ReadScope scope_;
  const Options options_;
  uint64_t cursor_;
  // The merge holds every in-scope entry up to this position (0: not built).
  uint64_t covered_ = 0;
  bool built_ = false;
  absl::flat_hash_map<Uuid, Stream> members_;
  std::priority_queue<HeapItem, std::vector<HeapItem>, std::greater<HeapItem>> heap_;
  // Reads cases' entry positions from the current chunk's snapshot.
  std::optional<CaseEntryReader> entries_;
  uint64_t streams_seeded_ = 0;
  v1::CaseLogEntry entry_;  // reused for every entry read
  absl::Status status_;     // AddChange's error
};

// One pull stream of a reader (PROTOCOL.md §6): first the backfill of
// newly assigned cases (their entries up to the request's cursor, in
// chunks that keep cursor == next_cursor == the request's cursor), then the
// entries after the cursor until caught up. Not thread-safe.
class PullStream {
 public:
  struct Request {
    uint64_t cursor = 0;
    // UUID text (either case) of cases in the scope.
    std::vector<std::string> backfill_case_ids;
    size_t max_changes = 500;
    size_t max_bytes = 1 << 20;
  };
  // A chunk's changes live on its own arena (one allocation pattern per
  // chunk instead of one per field), freed with it.
  struct Chunk {
    Chunk();
    uint64_t cursor = 0;  // where the chunk starts (PullChunk.cursor)
    std::unique_ptr<google::protobuf::Arena> arena;
    // On `arena`; next_cursor and caught_up set.
    v1::PulledChanges* changes = nullptr;
  };

  // Checks the request against the scope: kInvalidArgument (MALFORMED)
  // when a backfill id is not a UUID, kPermissionDenied (OUT_OF_SCOPE,
  // naming the case) when the scope does not reach one now; kUnavailable
  // from storage. `feed` is not owned and must outlive the stream.
  static absl::StatusOr<std::unique_ptr<PullStream>> Start(const ChangeFeed* feed,
                                                           const ReadScope& scope,
                                                           const Request& request);

  // The next chunk. REQUIRES: !done().
  absl::StatusOr<std::unique_ptr<Chunk>> Next();
  // The chunk with caught_up was returned.
  bool done() const { return done_; }

 private:
  PullStream(const ChangeFeed* feed, const ReadScope& scope, const Request& request,
             absl::flat_hash_set<Uuid> backfill);

  const Request request_;
  uint64_t main_cursor_;                       // where the next chunk after the backfill starts
  std::unique_ptr<ScopedLogReader> backfill_;  // null once finished or not asked for
  ScopedLogReader main_;
  bool done_ = false;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_PULL_H_
