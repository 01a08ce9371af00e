#include "protocol/merkle.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/hash.h"

namespace fieldsync::protocol {
namespace {

// RFC 9162 domain separation prefixes (section 2.1.1).
constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

// A range of leaves [begin, end) whose subtree hash MTH(D[begin:end]) a
// proof needs. Every range the RFC recursion produces starts at a multiple
// of a power of two that is at least its length, so it is the union of the
// complete subtrees given by the set bits of its length, largest first.
struct Range {
  uint64_t begin;
  uint64_t end;
};

// The largest power of two strictly less than n. REQUIRES: n > 1.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

// Calls visit(range) for each range of PATH(index, D[0:size]), root to
// leaf (the reverse of the proof's order). REQUIRES: index < size.
template <typename Visit>
void WalkInclusion(uint64_t index, uint64_t size, Visit visit) {
  uint64_t begin = 0;
  uint64_t end = size;
  while (end - begin > 1) {
    const uint64_t k = SplitPoint(end - begin);
    if (index < begin + k) {
      visit(Range{begin + k, end});
      end = begin + k;
    } else {
      visit(Range{begin, begin + k});
      begin += k;
    }
  }
}

// Calls visit(range) for each range of PROOF(size1, D[0:size2]) =
// SUBPROOF(size1, D[0:size2], true), root to leaf. `size1` stays an
// absolute leaf count: SUBPROOF's (m - k, D[k:n]) step keeps begin + m.
// REQUIRES: 0 < size1 <= size2.
template <typename Visit>
void WalkConsistency(uint64_t size1, uint64_t size2, Visit visit) {
  uint64_t begin = 0;
  uint64_t end = size2;
  bool is_original = true;  // the RFC's flag b
  while (size1 != end) {
    const uint64_t k = SplitPoint(end - begin);
    if (size1 <= begin + k) {
      visit(Range{begin + k, end});
      end = begin + k;
    } else {
      visit(Range{begin, begin + k});
      begin += k;
      is_original = false;
    }
  }
  if (!is_original) visit(Range{begin, end});
}

// Appends to `ids` the complete subtrees that cover `range`, largest
// first: one per set bit of its length.
absl::Status CoverRange(Range range, std::vector<NodeId>* ids) {
  const uint64_t length = range.end - range.begin;
  uint64_t position = range.begin;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((length & width) == 0) continue;
    if (position % width != 0) {
      return absl::InternalError(absl::StrFormat(
          "merkle: range [%d, %d) is not aligned; this is a bug", range.begin, range.end));
    }
    ids->push_back({static_cast<uint64_t>(level), position >> level});
    position += width;
  }
  return absl::OkStatus();
}

// MTH of a range from the hashes of its covering subtrees (CoverRange's
// order), folded right to left as the RFC's MTH recursion does.
Hash FoldRange(std::span<const Hash> nodes) {
  if (nodes.empty()) return EmptyRoot();
  Hash hash = nodes.back();
  for (size_t i = nodes.size() - 1; i-- > 0;) hash = NodeHash(nodes[i], hash);
  return hash;
}

// The hashes of the ranges a Walk function visits, in the order visited:
// every node of every range is read in one Nodes() call.
template <typename Walk>
absl::StatusOr<std::vector<Hash>> HashRanges(NodeSource& source, Walk walk) {
  absl::Status status;
  std::vector<NodeId> ids;
  ids.reserve(130);
  std::vector<uint8_t> counts;  // nodes per range; at most 64
  counts.reserve(65);
  walk([&](Range range) {
    const size_t before = ids.size();
    if (status.ok()) status = CoverRange(range, &ids);
    counts.push_back(static_cast<uint8_t>(ids.size() - before));
  });
  RETURN_IF_ERROR(status);
  std::vector<Hash> nodes(ids.size());
  RETURN_IF_ERROR(source.Nodes(ids, nodes));
  std::vector<Hash> hashes;
  hashes.reserve(counts.size());
  size_t next = 0;
  for (uint8_t count : counts) {
    hashes.push_back(FoldRange(std::span<const Hash>(nodes).subspan(next, count)));
    next += count;
  }
  return hashes;
}

// The proof whose ranges a Walk function visits (root to leaf), leaf to
// root.
template <typename Walk>
absl::StatusOr<std::vector<Hash>> ProofOfRanges(NodeSource& source, Walk walk) {
  ASSIGN_OR_RETURN(std::vector<Hash> proof, HashRanges(source, walk));
  std::reverse(proof.begin(), proof.end());
  return proof;
}

absl::Status CheckInclusionArgs(uint64_t index, uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("merkle: leaf index %d is not below tree size %d", index, size));
  }
  return absl::OkStatus();
}

absl::Status CheckConsistencyArgs(uint64_t size1, uint64_t size2) {
  if (size1 > size2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("merkle: size1 %d is larger than size2 %d", size1, size2));
  }
  if (size1 == 0) {
    return absl::InvalidArgumentError(
        "merkle: no consistency proof exists from the empty tree (RFC 9162 needs size1 > 0)");
  }
  return absl::OkStatus();
}

absl::Status CheckProofLength(size_t got, size_t want) {
  if (got != want) {
    return absl::InvalidArgumentError(
        absl::StrFormat("merkle: proof has %d hashes; these sizes need %d", got, want));
  }
  return absl::OkStatus();
}

absl::Status Mismatch(std::string_view what) {
  return absl::DataLossError(absl::StrFormat("merkle: %s proof does not match the root", what));
}

absl::StatusOr<std::vector<Hash>> HashesFromBytes(std::span<const std::string> items) {
  std::vector<Hash> hashes;
  hashes.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    absl::StatusOr<Hash> hash = HashFromBytes(items[i]);
    if (!hash.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("merkle: proof hash %d is %d bytes, not 32", i, items[i].size()));
    }
    hashes.push_back(*hash);
  }
  return hashes;
}

}  // namespace

Hash LeafHash(std::span<const uint8_t> entry) {
  // Most entries are small events: hash them from the stack with the
  // one-shot call (no context allocation); stream the rare large one.
  uint8_t buffer[512];
  if (entry.size() < sizeof(buffer)) {
    buffer[0] = kLeafPrefix;
    if (!entry.empty()) std::memcpy(buffer + 1, entry.data(), entry.size());
    return crypto::Sha256(std::span<const uint8_t>(buffer, entry.size() + 1));
  }
  crypto::Sha256Hasher hasher;
  hasher.Update(std::span<const uint8_t>(&kLeafPrefix, 1));
  hasher.Update(entry);
  return hasher.Finish();
}

Hash LeafHash(std::string_view entry) {
  return LeafHash(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(entry.data()), entry.size()));
}

Hash NodeHash(const Hash& left, const Hash& right) {
  uint8_t buffer[1 + 2 * sizeof(Hash)];
  buffer[0] = kNodePrefix;
  std::memcpy(buffer + 1, left.data(), left.size());
  std::memcpy(buffer + 1 + left.size(), right.data(), right.size());
  return crypto::Sha256(buffer);
}

Hash EmptyRoot() { return crypto::Sha256(std::span<const uint8_t>()); }

absl::StatusOr<Hash> HashFromBytes(std::string_view bytes) {
  Hash hash;
  if (bytes.size() != hash.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("merkle: a hash is %d bytes, not 32", bytes.size()));
  }
  std::memcpy(hash.data(), bytes.data(), hash.size());
  return hash;
}

std::string_view HashBytes(const Hash& hash) {
  return std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size());
}

// --- CompactMerkleTree ---

absl::StatusOr<CompactMerkleTree> CompactMerkleTree::Restore(NodeSource& source, uint64_t size) {
  // The frontier is the cover of [0, size).
  std::vector<NodeId> ids;
  RETURN_IF_ERROR(CoverRange({0, size}, &ids));
  CompactMerkleTree tree;
  tree.frontier_.resize(ids.size());
  RETURN_IF_ERROR(source.Nodes(ids, tree.frontier_));
  tree.size_ = size;
  return tree;
}

absl::Status CompactMerkleTree::Append(const Hash& leaf_hash, std::vector<StoredNode>* created) {
  if (size_ == UINT64_MAX) return absl::OutOfRangeError("merkle: the tree is full");
  const uint64_t index = size_;
  if (created != nullptr) created->push_back({{0, index}, leaf_hash});
  frontier_.push_back(leaf_hash);
  // Each trailing one bit of the old size is a complete subtree of the same
  // width as the one just finished on its right: merge them, one level up.
  uint64_t level = 0;
  for (uint64_t bits = index; (bits & 1) != 0; bits >>= 1) {
    Hash parent = NodeHash(frontier_[frontier_.size() - 2], frontier_.back());
    frontier_.pop_back();
    frontier_.back() = parent;
    ++level;
    if (created != nullptr) created->push_back({{level, index >> level}, parent});
  }
  ++size_;
  return absl::OkStatus();
}

Hash CompactMerkleTree::Root() const {
  if (frontier_.empty()) return EmptyRoot();
  Hash hash = frontier_.back();
  for (size_t i = frontier_.size() - 1; i-- > 0;) hash = NodeHash(frontier_[i], hash);
  return hash;
}

// --- NodeSource ---

absl::Status NodeSource::Nodes(std::span<const NodeId> ids, std::span<Hash> hashes) {
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSIGN_OR_RETURN(hashes[i], Node(ids[i]));
  }
  return absl::OkStatus();
}

// --- MemoryNodeSource ---

MemoryNodeSource MemoryNodeSource::FromLeafHashes(std::span<const Hash> leaf_hashes) {
  MemoryNodeSource source;
  for (const Hash& leaf_hash : leaf_hashes) source.AppendLeaf(leaf_hash);
  return source;
}

void MemoryNodeSource::AppendLeaf(const Hash& leaf_hash) {
  scratch_.clear();
  // A memory tree cannot hold 2^64 - 1 leaves, so Append cannot fail here.
  (void)tree_.Append(leaf_hash, &scratch_);
  for (const StoredNode& node : scratch_) {
    if (levels_.size() <= node.id.level) levels_.resize(node.id.level + 1);
    levels_[node.id.level].push_back(node.hash);
  }
}

absl::StatusOr<Hash> MemoryNodeSource::Node(NodeId id) {
  if (id.level >= levels_.size() || id.index >= levels_[id.level].size()) {
    return absl::NotFoundError(
        absl::StrFormat("merkle: node (level %d, index %d) is not stored", id.level, id.index));
  }
  return levels_[id.level][id.index];
}

// --- Proof generation ---

absl::StatusOr<Hash> RootAt(NodeSource& source, uint64_t size) {
  ASSIGN_OR_RETURN(std::vector<Hash> root, HashRanges(source, [&](auto visit) {
                     visit(Range{0, size});
                   }));
  return root[0];
}

absl::StatusOr<std::vector<Hash>> InclusionProof(NodeSource& source, uint64_t index,
                                                 uint64_t size) {
  RETURN_IF_ERROR(CheckInclusionArgs(index, size));
  return ProofOfRanges(source, [&](auto visit) { WalkInclusion(index, size, visit); });
}

absl::StatusOr<std::vector<Hash>> ConsistencyProof(NodeSource& source, uint64_t size1,
                                                   uint64_t size2) {
  RETURN_IF_ERROR(CheckConsistencyArgs(size1, size2));
  return ProofOfRanges(source, [&](auto visit) { WalkConsistency(size1, size2, visit); });
}

absl::StatusOr<size_t> InclusionProofLength(uint64_t index, uint64_t size) {
  RETURN_IF_ERROR(CheckInclusionArgs(index, size));
  size_t length = 0;
  WalkInclusion(index, size, [&](Range) { ++length; });
  return length;
}

absl::StatusOr<size_t> ConsistencyProofLength(uint64_t size1, uint64_t size2) {
  RETURN_IF_ERROR(CheckConsistencyArgs(size1, size2));
  size_t length = 0;
  WalkConsistency(size1, size2, [&](Range) { ++length; });
  return length;
}

// --- Verification ---

absl::Status VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                             std::span<const Hash> proof, const Hash& root) {
  ASSIGN_OR_RETURN(size_t want, InclusionProofLength(index, size));
  RETURN_IF_ERROR(CheckProofLength(proof.size(), want));
  // RFC 9162 section 2.1.3.2, step for step.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) return Mismatch("inclusion");
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0 || r != root) return Mismatch("inclusion");
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, std::span<const Hash> proof,
                               const Hash& root1, const Hash& root2) {
  RETURN_IF_ERROR(CheckConsistencyArgs(size1, size2));
  if (size1 == size2) {
    if (!proof.empty()) return CheckProofLength(proof.size(), 0);
    if (root1 != root2) {
      return absl::DataLossError("merkle: two different roots for one tree size (the log forked)");
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(size_t want, ConsistencyProofLength(size1, size2));
  RETURN_IF_ERROR(CheckProofLength(proof.size(), want));
  // RFC 9162 section 2.1.4.2, step for step. When size1 is a power of two
  // the proof omits root1, which the verifier already has: prepend it.
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(size1)) path.push_back(root1);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = size1 - 1;
  uint64_t sn = size2 - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return Mismatch("consistency");
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (fr != root1 || sr != root2 || sn != 0) return Mismatch("consistency");
  return absl::OkStatus();
}

absl::Status VerifyInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                             std::span<const std::string> proof, std::string_view root) {
  ASSIGN_OR_RETURN(Hash leaf, HashFromBytes(leaf_hash));
  ASSIGN_OR_RETURN(Hash want_root, HashFromBytes(root));
  ASSIGN_OR_RETURN(std::vector<Hash> path, HashesFromBytes(proof));
  return VerifyInclusion(leaf, index, size, path, want_root);
}

absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, std::span<const std::string> proof,
                               std::string_view root1, std::string_view root2) {
  ASSIGN_OR_RETURN(Hash first, HashFromBytes(root1));
  ASSIGN_OR_RETURN(Hash second, HashFromBytes(root2));
  ASSIGN_OR_RETURN(std::vector<Hash> path, HashesFromBytes(proof));
  return VerifyConsistency(size1, size2, path, first, second);
}

}  // namespace fieldsync::protocol
