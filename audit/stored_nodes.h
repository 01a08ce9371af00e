// The audit tree's complete subtrees as stored in RocksDB (Cf::kAuditNodes,
// key storage::EncodeAuditNodeKey(level, index), value the 32-byte hash),
// with the tree's upper levels also held in memory, so that a proof reads
// only its few lower-level nodes from the store, in one MultiGet.
#ifndef FIELDSYNC_AUDIT_STORED_NODES_H_
#define FIELDSYNC_AUDIT_STORED_NODES_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "protocol/merkle.h"
#include "storage/store.h"

namespace fieldsync::audit {

// A cached_min_level that caches no level whole.
inline constexpr int kNoNodeCache = 64;
// Below cached_min_level, the nodes of the newest leaves are cached too
// (about 2 * 32 bytes per leaf: 256 KiB for this default): proofs for
// recent tree sizes need the small subtrees of the tree's right edge.
inline constexpr uint64_t kDefaultRecentLeavesCached = 4096;

// Reads complete subtrees from Cf::kAuditNodes. Nodes of level >=
// cached_min_level (those covering at least 2^cached_min_level leaves), and
// lower nodes over the newest `recent_leaves` leaves, are answered
// from memory once LoadCache or AddCommitted put them there; every other
// node, and any node the cache lacks, is read from the store. A complete
// node never changes, so a cached one never goes stale. The whole levels
// hold about 2 * size / 2^cached_min_level hashes of 32 bytes (level 6:
// size bytes, 10 MB at 10 million leaves; each level up halves it).
// Thread-safe: readers share the cache under a reader lock; AddCommitted
// and LoadCache take it exclusively.
class StoredNodeSource final : public protocol::NodeSource {
 public:
  // `store` is not owned and must outlive this. REQUIRES: 0 <=
  // cached_min_level <= kNoNodeCache.
  explicit StoredNodeSource(storage::Store* store, int cached_min_level = kNoNodeCache,
                            uint64_t recent_leaves = kDefaultRecentLeavesCached);

  StoredNodeSource(const StoredNodeSource&) = delete;
  StoredNodeSource& operator=(const StoredNodeSource&) = delete;

  // Fills the cache from the stored tree of `size` leaves (replacing what
  // it held): one range scan per level.
  // kDataLoss if one of their nodes is missing or not 32 bytes (the cache
  // is then left as it was); storage errors propagate.
  absl::Status LoadCache(uint64_t size);

  // Adds to the cache `nodes`, which a batch just committed to the store
  // (every node it created, in creation order), dropping lower-level nodes
  // that fall out of the recent window. Each level's nodes join in index
  // order: a node that does not directly follow the cached ones of its
  // level (which only a caller bug would produce) is not cached, and stays
  // readable from the store.
  void AddCommitted(std::span<const protocol::StoredNode> nodes);

  // kDataLoss for a node that should exist but is absent or malformed,
  // kInvalidArgument for a level above 63, storage errors as the Store's.
  absl::StatusOr<protocol::Hash> Node(protocol::NodeId id) override;
  // The cached nodes from memory, the rest in one Store::MultiGet. Errors
  // as Node().
  absl::Status Nodes(std::span<const protocol::NodeId> ids,
                     std::span<protocol::Hash> hashes) override;

  int cached_min_level() const { return cached_min_level_; }
  // How many nodes the cache holds.
  size_t cached_nodes() const;

 private:
  // True and *hash set when `id` is cached.
  bool Cached(protocol::NodeId id, protocol::Hash* hash) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  storage::Store* const store_;
  const int cached_min_level_;
  const uint64_t recent_leaves_;

  // The cached nodes of one level: nodes (l, first) .. (l, first +
  // hashes.size() - 1). A deque: growing it never copies (and never stalls
  // readers behind a large reallocation).
  struct Level {
    uint64_t first = 0;
    std::deque<protocol::Hash> hashes;
  };
  // How many nodes of `level` the cache keeps: all, or a recent window.
  uint64_t Capacity(uint64_t level) const;

  mutable absl::Mutex mu_;
  Level levels_[64] ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::audit

#endif  // FIELDSYNC_AUDIT_STORED_NODES_H_
