// The audit log in RocksDB (DESIGN §8): events appended into the caller's
// WriteBatch so that each commits atomically with the change it records;
// complete Merkle subtrees stored so that roots and proofs for any tree size
// cost O(log n) reads; signed tree heads stored durably before they are
// published, and never signed unless they extend the last one.
//
// Persisted, besides the keys in storage/key_codec.h:
//   metadata "audit/tree_size"    U64 big-endian: the committed leaf count,
//                                 written in every batch that appends (by
//                                 each Append, once by AppendAll)
//   metadata "audit/signed_head"  the last signed checkpoint note (text);
//                                 a commit's head (AuditSession::SignHead)
//                                 is written in that commit's batch
//   metadata "audit/abandoned_head/<size, 16 hex digits>-<root, 64 hex
//                                 digits>"  a published note that an
//                                 accepted rollback abandoned (text); written
//                                 in the batch of its RollbackAccepted event
//   metadata "audit/key_transition/<new key version, 8 hex digits>"
//                                 U64 big-endian leaf index of the KeyRotated
//                                 ("audit-signing") event || the transition
//                                 head's note (signed by the old and the new
//                                 key); written in the batch of that event.
//                                 Versions are consecutive from 2.
//   head file, head copy file     copies of the last note outside the
//   (AuditLogOptions)             database
#ifndef FIELDSYNC_AUDIT_LOG_H_
#define FIELDSYNC_AUDIT_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "audit/stored_nodes.h"
#include "common/clock.h"
#include "protocol/checkpoint.h"
#include "protocol/events.h"
#include "protocol/merkle.h"
#include "storage/store.h"

namespace fieldsync::audit {

inline constexpr std::string_view kTreeSizeMetadata = "audit/tree_size";
inline constexpr std::string_view kSignedHeadMetadata = "audit/signed_head";
inline constexpr std::string_view kAbandonedHeadMetadataPrefix = "audit/abandoned_head/";
inline constexpr std::string_view kKeyTransitionMetadataPrefix = "audit/key_transition/";

struct AuditLogOptions {
  storage::Store* store = nullptr;  // not owned; must outlive the log
  const Clock* clock = nullptr;     // not owned; timestamps of heads
  // Signs tree heads; its key name is the log's origin. Not owned; null
  // means SignTreeHead fails with kFailedPrecondition (read-only tools).
  // RotateSigningKey replaces it while the log runs.
  const protocol::NoteSigner* signer = nullptr;
  // The verifier keys of the log's earlier signing keys (before
  // rotations): a published head signed by one of them (a head file
  // written before a rotation) is still the log's own.
  std::vector<protocol::NoteVerifier> former_keys;
  // A file outside the database that mirrors the last signed head, so that
  // a database restored from an old backup (whose own copy of the head is
  // old too) is still caught. "" disables the mirror.
  std::string head_file;
  // A second mirror, kept elsewhere (another disk or host mount), so that
  // restoring a whole older data directory, head file included, is still
  // caught. Written after head_file; "" disables it.
  std::string head_copy_file;
  // MaybeSignTreeHead signs at most this often (0: whenever the tree grew).
  absl::Duration head_interval = absl::ZeroDuration();
  // The head files get a commit's head (AuditSession::SignHead) at most
  // this often; a head not written then waits for the next commit's or for
  // WriteHeadFilesIfBehind (0: every head). The store's copy, committed
  // with the leaves, is the durable one. Heads signed by SignTreeHead,
  // rotations and rollbacks are always written.
  absl::Duration head_file_interval = absl::ZeroDuration();
  // Tree nodes of this level and above (covering >= 2^level leaves), and
  // the lower nodes of the newest leaves (stored_nodes.h), are kept in
  // memory, loaded at Open and added as appends commit, so that a proof
  // reads only its nodes below this level from the store (in one MultiGet).
  // Memory: about size / 2^(level - 6) bytes (level 6: 10 MB at 10 million
  // leaves; each level lower doubles it, each level higher halves it and
  // costs one more store read per proof). kNoNodeCache (64): whole levels
  // are not cached.
  int cached_node_min_level = 6;
  // Below that level, the nodes over this many of the newest leaves are
  // cached too (64 bytes per leaf), for proofs at recent tree sizes.
  uint64_t cached_recent_leaves = kDefaultRecentLeavesCached;
};

struct SignedTreeHead {
  protocol::Checkpoint checkpoint;
  std::string note;  // the signed note text, as published
};

// A published signed head that the committed tree does not extend.
struct UnextendedHead {
  std::string where;  // "the store", a head file's path, or both joined by " and "
  protocol::Checkpoint checkpoint;
  std::string note;
  // True when the tree is smaller than the head (restored from an older
  // backup); false when it is as large or larger but its history differs
  // (a fork: an older copy restored and then written to).
  bool is_rollback = false;
  std::string reason;  // "the tree is smaller", "same size, different root", ...
};

// A rotation of the log's signing key: the KeyRotated ("audit-signing")
// event at `leaf_index` and the transition head, the first head covering
// it, signed by the key before and the new key, with the event's
// inclusion proof under that head.
struct KeyTransition {
  uint32_t new_version = 0;
  uint64_t leaf_index = 0;
  std::string entry;
  SignedTreeHead head;
  std::vector<protocol::Hash> inclusion_proof;
};

// What a device keeps for a committed batch: a signed head and the
// inclusion proof of the batch's event (its entry bytes) under that head.
struct Receipt {
  SignedTreeHead head;
  uint64_t leaf_index = 0;
  std::string entry;
  std::vector<protocol::Hash> inclusion_proof;
  // Every key transition of the log, oldest first, so that a device that
  // knows an earlier key can follow them to the key that signed `head`.
  std::vector<KeyTransition> key_transitions;
};

// A stored key-transition record (metadata kKeyTransitionMetadataPrefix).
struct StoredKeyTransition {
  uint32_t new_version = 0;
  uint64_t leaf_index = 0;
  std::string note;
};
// Every key-transition record of `store`, oldest first (for tools that
// read a store without opening its log: backup verify). kDataLoss for a
// truncated record; storage errors propagate.
absl::StatusOr<std::vector<StoredKeyTransition>> ReadKeyTransitionRecords(storage::Store& store);

class AuditSession;

// The log. Thread-safe. Appends go through an AuditSession, the explicit
// handle of one commit: its first Append opens the log's session (waiting
// while another handle's session is open), the caller commits the handle's
// batch, then calls Committed() if Store::Commit succeeded; the handle's
// destructor (or Abort()) drops the leaves otherwise. Only committed
// leaves are visible to size(), proofs and heads. A handle must be ended
// before its owner does anything slow that is not part of the commit
// (CaseErasure ends it before compacting): every other appender waits
// for it.
class AuditLog {
 public:
  // Opens the log of `options.store`: reads the committed size, loads the
  // node cache (one range scan of the cached levels), rebuilds the frontier
  // with popcount(size) node reads, then loads the last signed head.
  // kDataLoss if the stored tree is inconsistent (a node or the last leaf
  // missing, a leaf beyond the size).
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const AuditLogOptions& options);

  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // A handle for appends that commit with `batch` (which must outlive
  // it); nothing is opened until its first Append.
  AuditSession Begin(storage::WriteBatch* batch);

  // Committed tree size and root.
  uint64_t size() const;
  protocol::Hash root() const;

  // Proofs over the committed tree; sizes must be <= size() (else
  // kOutOfRange). Other errors as protocol/merkle.h, and storage errors.
  absl::StatusOr<protocol::Hash> RootAt(uint64_t tree_size);
  absl::StatusOr<std::vector<protocol::Hash>> InclusionProof(uint64_t index, uint64_t tree_size);
  absl::StatusOr<std::vector<protocol::Hash>> ConsistencyProof(uint64_t size1, uint64_t size2);
  // The leaf index of `leaf_hash` (the latest if it repeats); kNotFound.
  absl::StatusOr<uint64_t> IndexOfLeafHash(const protocol::Hash& leaf_hash);
  // The leaf index of a device batch's BatchAccepted event; kNotFound.
  absl::StatusOr<uint64_t> IndexOfBatch(std::string_view device_id, const Uuid& batch_id);
  // Calls `fn(index, entry)` for committed leaves in [begin, end), in order,
  // stopping at the first non-OK status it returns (which is returned).
  // kOutOfRange if end > size(); kDataLoss if a leaf is missing.
  absl::Status ReadEntries(uint64_t begin, uint64_t end,
                           const std::function<absl::Status(uint64_t, std::string_view)>& fn);

  // Signs a head for the committed tree, stores it (metadata, synced, then
  // the head file) and only then returns it. Refuses, with
  // kFailedPrecondition and an error log line, when the tree does not
  // provably extend the last signed head (smaller, or a different root at
  // that head's size): the store was restored from an old backup or
  // altered; an operator must restore the newer store or investigate.
  // Also kFailedPrecondition without a signer; storage errors propagate.
  absl::StatusOr<SignedTreeHead> SignTreeHead();
  // The last signed head if it covers the whole committed tree, or it is
  // younger than head_interval; else SignTreeHead() (errors as there).
  absl::StatusOr<SignedTreeHead> MaybeSignTreeHead();
  // The last signed head; kNotFound if none.
  absl::StatusOr<SignedTreeHead> LatestSignedHead() const;
  // Writes the newest committed head to the head files if
  // head_file_interval held it back (at shutdown, and now and then when
  // commits stop). A failed write is logged (audit.head.file) and
  // retried by the next head.
  void WriteHeadFilesIfBehind();

  // The published heads (the store's, the head file's and the copy's,
  // duplicates merged; heads an accepted rollback abandoned left out)
  // that the committed tree does not extend, largest first; empty when it
  // extends them all (what the server requires before it serves).
  // kFailedPrecondition if a published head does not open with the log's
  // key or there is no signer; storage and file errors propagate.
  absl::StatusOr<std::vector<UnextendedHead>> UnextendedHeads();
  // An administrator's acceptance that the log continues from the
  // committed tree although it does not extend UnextendedHeads():
  // appends a RollbackAccepted event (by `actor`, recording the committed
  // size and root and every unextended head's note), keeps each such note
  // in the store's metadata (so that it is never reported again), then
  // signs and stores a head for the new tree (store, head file, copy) and
  // returns it. kFailedPrecondition, with nothing written, when
  // `expected_size` is not the committed size (the operator accepted
  // another state than this one) or no head is unextended (nothing to
  // accept). REQUIRES: called before anything else appends (at start).
  absl::StatusOr<SignedTreeHead> AcceptRollback(uint64_t expected_size, std::string_view actor);

  // Rotates the signing key (docs/AUDIT.md §9): appends `event` (a
  // KeyRotated with purpose "audit-signing", new_version and the new
  // public key) to `batch`, which the caller filled with the new key's
  // storage; signs the head of the tree with that event with the current
  // key and `next`; stores it (as the last head and as the transition
  // record) in the same commit; then signs every later head with `next`
  // only. Signing waits meanwhile; appends go on. Errors, with nothing
  // committed: kInvalidArgument (another key name, a key id the log
  // already used: generate another key; an event of another purpose);
  // kFailedPrecondition (no signer; the tree does not extend the last
  // head, as SignTreeHead); storage and append errors. A head file that
  // cannot be written after the commit is logged (audit.head.file), not
  // returned: the rotation holds and the next head rewrites the files.
  absl::StatusOr<KeyTransition> RotateSigningKey(std::unique_ptr<protocol::NoteSigner> next,
                                                 const protocol::KeyRotated& event,
                                                 storage::WriteBatch* batch);
  // Every key transition, oldest first.
  std::vector<KeyTransition> KeyTransitions() const;
  // The verifier key of the signing key in force; kFailedPrecondition
  // without a signer.
  absl::StatusOr<protocol::NoteVerifier> CurrentKey() const;
  // `checkpoint` (origin set here) signed with the key in force, for a
  // head of an earlier size that is not stored as the log's head (a
  // backup's). kAborted when a key transition lies at or after its size
  // (the key in force at that size no longer signs: retry);
  // kFailedPrecondition without a signer.
  absl::StatusOr<SignedTreeHead> SignDetachedHead(protocol::Checkpoint checkpoint);

  // The receipt of leaf `index` (committed): the latest signed head if it
  // covers the leaf, else a newly signed one, and the inclusion proof.
  absl::StatusOr<Receipt> ReceiptForLeaf(uint64_t index);
  // The receipt of a device batch's event (IndexOfBatch, then as above).
  absl::StatusOr<Receipt> ReceiptForBatch(std::string_view device_id, const Uuid& batch_id);

 private:
  explicit AuditLog(const AuditLogOptions& options);
  // Why the tree of `size` and `root` does not extend `last`; nullopt if it
  // does. Storage errors propagate.
  absl::StatusOr<std::optional<std::string>> WhyNotExtends(const protocol::Checkpoint& last,
                                                           uint64_t size,
                                                           const protocol::Hash& root);
  // WhyNotExtends as a status: kFailedPrecondition (and an error log line).
  absl::Status CheckExtends(const protocol::Checkpoint& last, uint64_t size,
                            const protocol::Hash& root);
  // The published heads, opened, duplicates merged, abandoned ones left out.
  struct PublishedHead {
    std::string where;
    protocol::Checkpoint checkpoint;
    std::string note;
  };
  absl::StatusOr<std::vector<PublishedHead>> LoadPublishedHeads()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  // Opens a note with the key in force or an earlier one.
  absl::StatusOr<protocol::Checkpoint> OpenWithAnyKey(std::string_view note) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  // The last head a new head of (size, root) must extend, after checking
  // that it does (the published heads before this process's first
  // signature, then the one it signed last); nullopt if none.
  absl::StatusOr<std::optional<protocol::Checkpoint>> CheckExtendsLast(uint64_t size,
                                                                       const protocol::Hash& root)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  // A checkpoint of (size, root), timestamped now but never before `last`.
  protocol::Checkpoint NewCheckpoint(uint64_t size, const protocol::Hash& root,
                                     const std::optional<protocol::Checkpoint>& last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  // Loads the stored key transitions (at Open).
  absl::Status LoadKeyTransitions();
  absl::StatusOr<bool> IsAbandoned(const protocol::Checkpoint& head);
  absl::Status StoreHead(const std::string& note);
  // Writes `note` to the head files unless they were written less than
  // head_file_interval ago (then keeps it for later); `force` writes it.
  void WriteHeadFilesAtInterval(const std::string& note, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  // Waits (releasing sign_mu_) while a session's head awaits its commit.
  void AwaitNoSessionHeadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  // The handle API (AuditSession::SignHead): signs the head of the tree
  // with session `id`'s leaves and puts it into `batch` as the stored head;
  // true if signed, false when there is nothing to sign or another
  // signature is in progress. Errors as SignTreeHead.
  absl::StatusOr<bool> SignSessionHead(uint64_t id, storage::WriteBatch* batch)
      ABSL_LOCKS_EXCLUDED(sign_mu_);
  absl::StatusOr<bool> SignSessionHeadLocked(uint64_t id, storage::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  absl::Status WriteHeadFiles(const std::string& note);
  absl::StatusOr<SignedTreeHead> SignTreeHeadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_);
  absl::StatusOr<std::vector<UnextendedHead>> UnextendedHeadsOf(
      const std::vector<PublishedHead>& heads, uint64_t size, const protocol::Hash& root);
  friend class AuditSession;
  // The handle API (AuditSession): appends `events` (encoded into
  // `entries`, hashed into `leaves`) to `batch` in the session *id, opening
  // one (a new id) if *id is 0; ends session `id`.
  absl::StatusOr<uint64_t> AppendInSession(uint64_t* id, std::span<const protocol::Event> events,
                                           std::span<const std::string> entries,
                                           std::span<const protocol::Hash> leaves,
                                           storage::WriteBatch* batch);
  // `has_session_head`: SignSessionHead signed a head for it, which
  // becomes the latest head if the session committed.
  void EndSession(uint64_t id, bool committed, bool has_session_head);
  void EndSessionLocked(uint64_t id, bool committed, const SignedTreeHead* head)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens a session for handle *id unless it has the open one (the wait).
  absl::Status JoinSessionLocked(uint64_t* id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds one leaf's keys (all but the tree size) to the session's batch.
  absl::StatusOr<uint64_t> AppendLeafLocked(const protocol::Event& event, std::string_view entry,
                                            const protocol::Hash& leaf, storage::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the session's tree size (metadata kTreeSizeMetadata).
  void PutTreeSizeLocked(storage::WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  AuditLogOptions options_;
  StoredNodeSource nodes_;

  mutable absl::Mutex mu_;
  absl::CondVar session_done_;
  protocol::CompactMerkleTree committed_ ABSL_GUARDED_BY(mu_);
  // The open session: its handle's id (0: none) and the tree with its
  // leaves appended. Ids are never reused.
  uint64_t session_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_session_id_ ABSL_GUARDED_BY(mu_) = 0;
  protocol::CompactMerkleTree pending_ ABSL_GUARDED_BY(mu_);
  std::vector<protocol::StoredNode> created_ ABSL_GUARDED_BY(mu_);  // Append's scratch
  // The open session's new nodes, for nodes_'s cache once it commits.
  std::vector<protocol::StoredNode> pending_cached_ ABSL_GUARDED_BY(mu_);
  std::optional<SignedTreeHead> latest_head_ ABSL_GUARDED_BY(mu_);
  std::vector<KeyTransition> transitions_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex sign_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one signer at a time
  // The head this process last signed (stored before it was set).
  std::optional<protocol::Checkpoint> signed_since_open_ ABSL_GUARDED_BY(sign_mu_);
  // The key in force (options_.signer, or one RotateSigningKey installed
  // and owns), and the verifier keys of the earlier ones, oldest first.
  const protocol::NoteSigner* signer_ ABSL_GUARDED_BY(sign_mu_);
  std::vector<std::unique_ptr<protocol::NoteSigner>> owned_signers_ ABSL_GUARDED_BY(sign_mu_);
  std::vector<protocol::NoteVerifier> former_keys_ ABSL_GUARDED_BY(sign_mu_);
  // A session's head, signed and waiting for its commit (id 0: none).
  uint64_t session_head_id_ ABSL_GUARDED_BY(sign_mu_) = 0;
  std::optional<SignedTreeHead> session_head_ ABSL_GUARDED_BY(sign_mu_);
  // When the head files were last written, and the newest committed note
  // they do not hold yet (head_file_interval).
  std::optional<absl::Time> last_head_file_write_ ABSL_GUARDED_BY(sign_mu_);
  std::optional<std::string> unwritten_head_note_ ABSL_GUARDED_BY(sign_mu_);
};

// The explicit handle of one commit's appends (AuditLog::Begin). Not
// thread-safe; movable. Ends the session at scope exit: dropped unless
// Committed() was called after a successful Store::Commit.
//   storage::WriteBatch batch;
//   AuditSession session(log, &batch);    // or log->Begin(&batch)
//   ASSIGN_OR_RETURN(uint64_t index, session.Append(event));
//   RETURN_IF_ERROR(store->Commit(&batch));
//   session.Committed();                  // before anything slow
class AuditSession {
 public:
  // `log` may be null (no audit log: Append fails with kFailedPrecondition,
  // Committed and Abort are no-ops). `batch` must outlive the handle.
  AuditSession(AuditLog* log, storage::WriteBatch* batch) : log_(log), batch_(batch) {}
  ~AuditSession() { Abort(); }
  AuditSession(AuditSession&& other) noexcept
      : log_(std::exchange(other.log_, nullptr)),
        batch_(other.batch_),
        id_(std::exchange(other.id_, 0)),
        has_head_(std::exchange(other.has_head_, false)) {}
  AuditSession& operator=(AuditSession&&) = delete;
  AuditSession(const AuditSession&) = delete;
  AuditSession& operator=(const AuditSession&) = delete;

  // Adds `event` to the batch as the next leaf (entry, its nodes, the leaf
  // hash index, the batch index for a BatchAccepted, the tree size) and
  // returns its leaf index. The first Append opens the log's session,
  // waiting up to 10 s for another handle's to end. Errors:
  // kInvalidArgument (event not encodable; nothing added), kUnavailable
  // (another session stayed open; nothing was added), kOutOfRange (tree
  // full), kFailedPrecondition (no log, or the handle was ended).
  absl::StatusOr<uint64_t> Append(const protocol::Event& event);
  // Appends `events` in order as Append would and returns the leaf index
  // of the first; the tree size is written once rather than per event.
  // Errors as Append, and kInvalidArgument for an empty span; nothing is
  // added unless every event encodes. On kOutOfRange the batch holds the
  // events before the full tree: end the handle without Committed().
  absl::StatusOr<uint64_t> AppendAll(std::span<const protocol::Event> events);
  // Signs the head of the tree with this handle's leaves and puts it into
  // the batch as the log's stored head, so that it is durable with the
  // leaves it covers and costs no write of its own. Once Committed(), it is
  // the latest head (receipts of these leaves use it) and the head files
  // get it (head_file_interval). Does nothing without appends or a signer,
  // or while another signature or a key rotation runs (receipts then sign
  // one as before). Errors, with nothing added: kFailedPrecondition (the
  // tree does not extend the last head, as SignTreeHead; the handle was
  // ended); storage errors. REQUIRES: no Append after it.
  absl::Status SignHead();
  // The batch was committed: its leaves become the committed tree. Ends
  // the handle (later Appends fail).
  void Committed();
  // Drops the handle's leaves (the batch was not, or will not be,
  // committed) and ends it. Idempotent.
  void Abort();
  // Whether an Append opened the log's session and it is not ended.
  bool holds_session() const { return id_ != 0; }

 private:
  AuditLog* log_;
  storage::WriteBatch* batch_;
  uint64_t id_ = 0;        // the log's session id once the first Append opened it
  bool has_head_ = false;  // SignHead signed a head for this session
};

}  // namespace fieldsync::audit

#endif  // FIELDSYNC_AUDIT_LOG_H_
