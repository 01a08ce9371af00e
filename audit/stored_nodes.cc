#include "audit/stored_nodes.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

namespace fieldsync::audit {

using protocol::Hash;
using protocol::HashFromBytes;
using protocol::NodeId;
using protocol::NodeSource;
using protocol::StoredNode;

namespace {

using storage::Cf;

absl::Status MissingNode(NodeId id) {
  return absl::DataLossError(absl::StrFormat(
      "audit tree node (level %d, index %d) is missing from the store", id.level, id.index));
}

absl::Status CheckLevel(NodeId id) {
  if (id.level > 63) return absl::InvalidArgumentError("audit node level above 63");
  return absl::OkStatus();
}

std::string NodeKey(NodeId id) {
  return storage::EncodeAuditNodeKey(static_cast<uint8_t>(id.level), id.index);
}

// The hash of node `id` from what the store answered for its key.
absl::StatusOr<Hash> ToHash(const absl::StatusOr<std::string>& value, NodeId id) {
  if (absl::IsNotFound(value.status())) return MissingNode(id);
  RETURN_IF_ERROR(value.status());
  absl::StatusOr<Hash> hash = HashFromBytes(*value);
  if (!hash.ok()) {
    return absl::DataLossError(absl::StrFormat(
        "audit tree node (level %d, index %d) is not 32 bytes", id.level, id.index));
  }
  return hash;
}

// The most node ids a proof asks for (merkle.h bounds them by 2 * 64 + 1):
// the misses of one Nodes() call are tracked on the stack up to this.
constexpr size_t kMaxStackMisses = 160;

}  // namespace

StoredNodeSource::StoredNodeSource(storage::Store* store, int cached_min_level,
                                   uint64_t recent_leaves)
    : store_(store), cached_min_level_(cached_min_level), recent_leaves_(recent_leaves) {
  if (cached_min_level < 0 || cached_min_level > kNoNodeCache) std::abort();  // a caller bug
}

uint64_t StoredNodeSource::Capacity(uint64_t level) const {
  if (level >= static_cast<uint64_t>(cached_min_level_)) return UINT64_MAX;
  return recent_leaves_ >> level;
}

absl::Status StoredNodeSource::LoadCache(uint64_t size) {
  std::vector<Level> levels(64);
  {
    // Keys are level byte | index big-endian: each level is one contiguous,
    // index-ordered run.
    std::unique_ptr<storage::Iterator> it =
        store_->NewIterator(Cf::kAuditNodes, /*lower=*/"", /*upper=*/"");
    for (uint64_t level = 0; level < 64 && (size >> level) > 0; ++level) {
      const uint64_t end = size >> level;
      Level& cached = levels[level];
      cached.first = end - std::min(end, Capacity(level));
      it->Seek(NodeKey({level, cached.first}));
      for (; it->Valid() && cached.first + cached.hashes.size() < end; it->Next()) {
        absl::StatusOr<storage::AuditNodeKey> key = storage::DecodeAuditNodeKey(it->key());
        const NodeId expected{level, cached.first + cached.hashes.size()};
        if (!key.ok() || key->level != level || key->index != expected.index) {
          return MissingNode(expected);
        }
        ASSIGN_OR_RETURN(Hash hash, ToHash(std::string(it->value()), expected));
        cached.hashes.push_back(hash);
      }
      RETURN_IF_ERROR(it->status());
      if (cached.first + cached.hashes.size() < end) {
        return MissingNode({level, cached.first + cached.hashes.size()});
      }
    }
  }
  absl::MutexLock lock(&mu_);
  for (uint64_t level = 0; level < 64; ++level) levels_[level] = std::move(levels[level]);
  return absl::OkStatus();
}

void StoredNodeSource::AddCommitted(std::span<const StoredNode> nodes) {
  absl::MutexLock lock(&mu_);
  for (const StoredNode& node : nodes) {
    if (node.id.level > 63) continue;
    Level& level = levels_[node.id.level];
    if (node.id.index != level.first + level.hashes.size()) continue;
    level.hashes.push_back(node.hash);
    if (level.hashes.size() > Capacity(node.id.level)) {
      level.hashes.pop_front();
      ++level.first;
    }
  }
}

bool StoredNodeSource::Cached(NodeId id, Hash* hash) const {
  if (id.level > 63) return false;
  const Level& level = levels_[id.level];
  if (id.index < level.first || id.index - level.first >= level.hashes.size()) return false;
  *hash = level.hashes[id.index - level.first];
  return true;
}

size_t StoredNodeSource::cached_nodes() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t count = 0;
  for (const Level& level : levels_) count += level.hashes.size();
  return count;
}

absl::StatusOr<Hash> StoredNodeSource::Node(NodeId id) {
  RETURN_IF_ERROR(CheckLevel(id));
  {
    absl::ReaderMutexLock lock(&mu_);
    Hash hash;
    if (Cached(id, &hash)) return hash;
  }
  return ToHash(store_->Get(Cf::kAuditNodes, NodeKey(id)), id);
}

absl::Status StoredNodeSource::Nodes(std::span<const NodeId> ids, std::span<Hash> hashes) {
  if (ids.size() > kMaxStackMisses) return NodeSource::Nodes(ids, hashes);
  for (const NodeId& id : ids) RETURN_IF_ERROR(CheckLevel(id));
  size_t misses[kMaxStackMisses];
  size_t miss_count = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!Cached(ids[i], &hashes[i])) misses[miss_count++] = i;
    }
  }
  if (miss_count == 0) return absl::OkStatus();
  if (miss_count == 1) {
    ASSIGN_OR_RETURN(hashes[misses[0]], Node(ids[misses[0]]));
    return absl::OkStatus();
  }
  std::string keys[kMaxStackMisses];  // 9 bytes each: no heap allocation
  std::string_view views[kMaxStackMisses];
  for (size_t j = 0; j < miss_count; ++j) {
    keys[j] = NodeKey(ids[misses[j]]);
    views[j] = keys[j];
  }
  std::vector<absl::StatusOr<std::string>> values =
      store_->MultiGet(Cf::kAuditNodes, std::span<const std::string_view>(views, miss_count));
  for (size_t j = 0; j < miss_count; ++j) {
    ASSIGN_OR_RETURN(hashes[misses[j]], ToHash(values[j], ids[misses[j]]));
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::audit
