// RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proof
// generation and proof verification, over SHA-256. Pure: no storage. Tree
// nodes are read through NodeSource so that a storage-backed log answers
// RootAt, InclusionProof and ConsistencyProof with O(log n) node reads.
#ifndef FIELDSYNC_PROTOCOL_MERKLE_H_
#define FIELDSYNC_PROTOCOL_MERKLE_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fieldsync::protocol {

using Hash = std::array<uint8_t, 32>;

// SHA-256(0x00 || entry): the RFC 9162 section 2.1.1 leaf hash.
Hash LeafHash(std::span<const uint8_t> entry);
Hash LeafHash(std::string_view entry);
// SHA-256(0x01 || left || right): the RFC 9162 section 2.1.1 interior node.
Hash NodeHash(const Hash& left, const Hash& right);
// SHA-256(""): the root of the empty tree.
Hash EmptyRoot();

// Converts untrusted bytes to a Hash. kInvalidArgument unless exactly 32.
absl::StatusOr<Hash> HashFromBytes(std::string_view bytes);
std::string_view HashBytes(const Hash& hash);  // views `hash`; no copy

// Identifies the complete subtree of 2^level leaves whose first leaf is
// index * 2^level. Level 0 nodes are leaf hashes. Such a node never changes
// once the tree has grown over its last leaf, so a log stores each exactly
// once, when the append that completes it happens.
struct NodeId {
  uint64_t level = 0;
  uint64_t index = 0;
  friend bool operator==(const NodeId&, const NodeId&) = default;
};

// A complete node created by an append, for the caller to persist.
struct StoredNode {
  NodeId id;
  Hash hash;
};

// Read access to the complete subtrees of a tree. Implementations: the
// in-memory MemoryNodeSource below; a storage-backed one keyed by
// (level, index). Thread-safety is the implementation's to state.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  // Returns the hash of complete subtree `id`. Errors are the source's:
  // kNotFound (or kDataLoss for a log that should hold it) when the node has
  // not been stored, kUnavailable for I/O.
  virtual absl::StatusOr<Hash> Node(NodeId id) = 0;
  // Sets hashes[i] to the hash of complete subtree ids[i], for every i, or
  // returns the first error as Node() would (hashes is then unspecified).
  // The proof functions below ask for all the nodes of one proof in one
  // call, so a storage-backed source can batch its reads. This default
  // calls Node() once per id. REQUIRES: ids.size() == hashes.size().
  virtual absl::Status Nodes(std::span<const NodeId> ids, std::span<Hash> hashes);
};

// Keeps the right frontier of an append-only tree: the roots of the
// complete subtrees that make up [0, size), largest first, O(log n) hashes.
// Appends in O(1) amortised hashing, reports the nodes each append
// completes, and computes the root in O(log n). Not thread-safe.
class CompactMerkleTree {
 public:
  CompactMerkleTree() = default;

  // Rebuilds the frontier of a tree of `size` leaves from `source` with
  // popcount(size) nodes read in one Nodes() call. Propagates the source's errors.
  static absl::StatusOr<CompactMerkleTree> Restore(NodeSource& source, uint64_t size);

  // Appends one leaf hash (see LeafHash). When `created` is not null,
  // appends to it every complete node this append produced: the leaf
  // (level 0) first, then each new parent, level ascending. Returns
  // kOutOfRange if the tree already has 2^64 - 1 leaves.
  absl::Status Append(const Hash& leaf_hash, std::vector<StoredNode>* created);

  uint64_t size() const { return size_; }
  // MTH of all leaves appended so far; EmptyRoot() when size() is 0.
  Hash Root() const;
  // The frontier, largest subtree first; frontier()[i] covers the i-th set
  // bit of size() counting from the most significant.
  std::span<const Hash> frontier() const { return frontier_; }

 private:
  uint64_t size_ = 0;
  std::vector<Hash> frontier_;
};

// All complete nodes of one tree, held in memory: for tests, the offline
// verifier and small logs. Not thread-safe.
class MemoryNodeSource final : public NodeSource {
 public:
  // Builds the source and the tree from leaf hashes in order.
  static MemoryNodeSource FromLeafHashes(std::span<const Hash> leaf_hashes);

  // Appends a leaf hash, storing every node it completes.
  void AppendLeaf(const Hash& leaf_hash);
  uint64_t size() const { return tree_.size(); }
  Hash Root() const { return tree_.Root(); }

  // kNotFound when `id` is not a complete subtree of the current tree.
  absl::StatusOr<Hash> Node(NodeId id) override;

 private:
  CompactMerkleTree tree_;
  std::vector<std::vector<Hash>> levels_;  // levels_[l][i] = node (l, i)
  std::vector<StoredNode> scratch_;
};

// Proof generation. Each returns exactly what RFC 9162 section 2.1 defines
// (MTH, PATH / inclusion_path, PROOF / consistency_path), hashes ordered
// leaf to root, using O(log n) nodes, all asked for in one Nodes() call:
// every subtree hash the proof needs is assembled from the complete
// subtrees covering its range.
// `source` must hold the complete nodes of a tree of at least `size` leaves;
// its errors are propagated.

// Nodes read: RootAt popcount(size); InclusionProof at most
// 2*ceil(log2(size)); ConsistencyProof at most 2*ceil(log2(size2)) + 1
// (one node per proof hash, plus the complete subtrees of the one hash
// that covers the incomplete right edge of the tree).

// MTH(D[0:size]); EmptyRoot() for size 0.
absl::StatusOr<Hash> RootAt(NodeSource& source, uint64_t size);
// PATH(index, D[0:size]). kInvalidArgument unless index < size.
absl::StatusOr<std::vector<Hash>> InclusionProof(NodeSource& source, uint64_t index, uint64_t size);
// PROOF(size1, D[0:size2]); empty when size1 == size2. kInvalidArgument
// unless 0 < size1 <= size2.
absl::StatusOr<std::vector<Hash>> ConsistencyProof(NodeSource& source, uint64_t size1,
                                                   uint64_t size2);

// The number of hashes in a correct proof. kInvalidArgument for sizes that
// have no proof (as above).
absl::StatusOr<size_t> InclusionProofLength(uint64_t index, uint64_t size);
absl::StatusOr<size_t> ConsistencyProofLength(uint64_t size1, uint64_t size2);

// Proof verification, RFC 9162 sections 2.1.3.2 and 2.1.4.2. Error scheme:
//   OK                 the proof binds the leaf / the two roots.
//   kInvalidArgument   malformed: index >= size; size1 > size2; size1 == 0;
//                      a hash that is not 32 bytes; a proof whose length is
//                      not the one the sizes determine; a non-empty proof
//                      for size1 == size2. No hashing is done.
//   kDataLoss          well-formed but the recomputed root does not match:
//                      the log or the data was altered (or the log forked,
//                      for two different roots of one size). Raise an alert.
absl::Status VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                             std::span<const Hash> proof, const Hash& root);
absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, std::span<const Hash> proof,
                               const Hash& root1, const Hash& root2);

// The same for untrusted byte strings (wire or file input): each hash is
// checked to be 32 bytes first (kInvalidArgument otherwise).
absl::Status VerifyInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                             std::span<const std::string> proof, std::string_view root);
absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, std::span<const std::string> proof,
                               std::string_view root1, std::string_view root2);

}  // namespace fieldsync::protocol

#endif  // FIELDSYNC_PROTOCOL_MERKLE_H_
