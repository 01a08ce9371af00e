#include "audit/log.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

namespace fieldsync::audit {

using protocol::BatchAccepted;
using protocol::Checkpoint;
using protocol::CheckpointTimestamp;
using protocol::CompactMerkleTree;
using protocol::EmptyRoot;
using protocol::EncodeEvent;
using protocol::Event;
using protocol::Hash;
using protocol::HashBytes;
using protocol::kAuditSigningPurpose;
using protocol::KeyRotated;
using protocol::LeafHash;
using protocol::NoteSigner;
using protocol::NoteVerifier;
using protocol::OpenCheckpoint;
using protocol::ParseCheckpointNote;
using protocol::RollbackAccepted;
using protocol::SignCheckpoint;
using protocol::SignCheckpointWithAll;
using protocol::StoredNode;
using protocol::TimestampExtension;
using protocol::VerifyConsistency;

namespace {

using storage::Cf;

std::string EncodeU64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (56 - 8 * i));
  return out;
}

absl::StatusOr<uint64_t> DecodeU64(std::string_view v, std::string_view what) {
  if (v.size() != 8) {
    return absl::DataLossError(absl::StrFormat("%s is not 8 bytes", std::string(what)));
  }
  uint64_t out = 0;
  for (char c : v) out = (out << 8) | static_cast<uint8_t>(c);
  return out;
}

// How long Append waits for another caller's session before giving up.
constexpr absl::Duration kSessionWait = absl::Seconds(10);

}  // namespace

AuditLog::AuditLog(const AuditLogOptions& options)
    : options_(options),
      nodes_(options.store, options.cached_node_min_level, options.cached_recent_leaves),
      signer_(options.signer),
      former_keys_(options.former_keys) {}

namespace {
std::string KeyTransitionName(uint32_t version) {
  return absl::StrCat(std::string(kKeyTransitionMetadataPrefix), absl::StrFormat("%08x", version));
}
}  // namespace

absl::StatusOr<std::vector<StoredKeyTransition>> ReadKeyTransitionRecords(storage::Store& store) {
  std::vector<StoredKeyTransition> out;
  // Versions are consecutive from 2: the first missing one ends the list.
  for (uint32_t version = 2;; ++version) {
    absl::StatusOr<std::string> v =
        store.Get(Cf::kMetadata, storage::EncodeMetadataKey(KeyTransitionName(version)));
    if (absl::IsNotFound(v.status())) break;
    RETURN_IF_ERROR(v.status());
    if (v->size() < 8) {
      return absl::DataLossError(
          absl::StrFormat("the audit key transition record of version %d is truncated", version));
    }
    StoredKeyTransition t;
    t.new_version = version;
    ASSIGN_OR_RETURN(t.leaf_index, DecodeU64(std::string_view(*v).substr(0, 8), "leaf index"));
    t.note = v->substr(8);
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status AuditLog::LoadKeyTransitions() {
  ASSIGN_OR_RETURN(std::vector<StoredKeyTransition> records,
                   ReadKeyTransitionRecords(*options_.store));
  std::vector<KeyTransition> loaded;
  for (StoredKeyTransition& record : records) {
    KeyTransition t;
    t.new_version = record.new_version;
    t.leaf_index = record.leaf_index;
    t.head.note = std::move(record.note);
    absl::StatusOr<Checkpoint> cp = ParseCheckpointNote(t.head.note);
    if (!cp.ok() || cp->size <= t.leaf_index || cp->size > size()) {
      return absl::DataLossError(absl::StrFormat(
          "the audit key transition record of version %d is damaged", t.new_version));
    }
    t.head.checkpoint = *std::move(cp);
    ASSIGN_OR_RETURN(
        t.entry, options_.store->Get(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(t.leaf_index)));
    ASSIGN_OR_RETURN(t.inclusion_proof,
                     protocol::InclusionProof(nodes_, t.leaf_index, t.head.checkpoint.size));
    loaded.push_back(std::move(t));
  }
  absl::MutexLock lock(&mu_);
  transitions_ = std::move(loaded);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const AuditLogOptions& options) {
  if (options.store == nullptr || options.clock == nullptr) {
    return absl::InvalidArgumentError("AuditLog needs a store and a clock");
  }
  if (options.cached_node_min_level < 0 || options.cached_node_min_level > kNoNodeCache) {
    return absl::InvalidArgumentError("AuditLog cached_node_min_level must be in [0, 64]");
  }
  std::unique_ptr<AuditLog> log(new AuditLog(options));
  storage::Store* store = options.store;
  uint64_t size = 0;
  absl::StatusOr<std::string> stored =
      store->Get(Cf::kMetadata, storage::EncodeMetadataKey(kTreeSizeMetadata));
  if (stored.ok()) {
    ASSIGN_OR_RETURN(size, DecodeU64(*stored, "audit tree size"));
  } else if (!absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  // The size and the leaves are written in the same batches: a leaf at
  // `size` or none at size - 1 means the store was altered.
  if (size > 0) {
    absl::StatusOr<std::string> last =
        store->Get(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(size - 1));
    if (absl::IsNotFound(last.status())) {
      return absl::DataLossError(
          absl::StrFormat("audit leaf %d (the last of the stored size) is missing", size - 1));
    }
    RETURN_IF_ERROR(last.status());
  }
  std::unique_ptr<storage::Iterator> beyond =
      store->NewIterator(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(size),
                         storage::PrefixUpperBound(storage::AuditLeafKeyPrefix()));
  if (beyond->Valid()) {
    return absl::DataLossError(
        absl::StrFormat("audit leaves exist beyond the stored tree size %d", size));
  }
  RETURN_IF_ERROR(beyond->status());
  beyond.reset();
  RETURN_IF_ERROR(log->nodes_.LoadCache(size));
  ASSIGN_OR_RETURN(CompactMerkleTree tree, CompactMerkleTree::Restore(log->nodes_, size));

  std::string note;
  absl::StatusOr<std::string> head =
      store->Get(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata));
  std::optional<SignedTreeHead> latest;
  if (head.ok()) {
    absl::StatusOr<Checkpoint> cp;
    if (options.signer != nullptr) {
      absl::MutexLock sign_lock(&log->sign_mu_);
      cp = log->OpenWithAnyKey(*head);
    } else {
      cp = ParseCheckpointNote(*head);
    }
    if (!cp.ok()) {
      return absl::DataLossError(
          absl::StrFormat("the stored signed tree head does not open: %s", cp.status().message()));
    }
    latest = SignedTreeHead{*std::move(cp), *std::move(head)};
  } else if (!absl::IsNotFound(head.status())) {
    return head.status();
  }
  {
    absl::MutexLock lock(&log->mu_);
    log->committed_ = std::move(tree);
    log->latest_head_ = std::move(latest);
  }
  RETURN_IF_ERROR(log->LoadKeyTransitions());
  return log;
}

absl::Status AuditLog::JoinSessionLocked(uint64_t* id) {
  if (*id != 0) {
    if (session_id_ != *id) {
      return absl::FailedPreconditionError("this audit session was already ended");
    }
    return absl::OkStatus();
  }
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return session_id_ == 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&idle), kSessionWait)) {
    return absl::UnavailableError(
        "the audit log is busy with another commit that did not finish: retry");
  }
  session_id_ = ++last_session_id_;
  *id = session_id_;
  pending_ = committed_;
  pending_cached_.clear();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> AuditLog::AppendLeafLocked(const Event& event, std::string_view entry,
                                                    const Hash& leaf, storage::WriteBatch* batch) {
  const uint64_t index = pending_.size();
  created_.clear();  // reused: no allocation per leaf
  RETURN_IF_ERROR(pending_.Append(leaf, &created_));
  batch->Put(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(index), entry);
  for (const StoredNode& node : created_) {
    batch->Put(Cf::kAuditNodes,
               storage::EncodeAuditNodeKey(static_cast<uint8_t>(node.id.level), node.id.index),
               HashBytes(node.hash));
    pending_cached_.push_back(node);
  }
  batch->Put(Cf::kAuditLeaves, storage::EncodeAuditLeafByHashKey(leaf), EncodeU64(index));
  if (const auto* b = std::get_if<BatchAccepted>(&event.body)) {
    batch->Put(Cf::kAuditLeaves, storage::EncodeAuditBatchLeafKey(b->device_id, b->batch_id),
               EncodeU64(index));
  }
  return index;
}

void AuditLog::PutTreeSizeLocked(storage::WriteBatch* batch) {
  batch->Put(Cf::kMetadata, storage::EncodeMetadataKey(kTreeSizeMetadata),
             EncodeU64(pending_.size()));
}

AuditSession AuditLog::Begin(storage::WriteBatch* batch) { return AuditSession(this, batch); }

absl::StatusOr<uint64_t> AuditLog::AppendInSession(uint64_t* id, std::span<const Event> events,
                                                   std::span<const std::string> entries,
                                                   std::span<const Hash> leaves,
                                                   storage::WriteBatch* batch) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(JoinSessionLocked(id));
  const uint64_t first = pending_.size();
  for (size_t i = 0; i < events.size(); ++i) {
    RETURN_IF_ERROR(AppendLeafLocked(events[i], entries[i], leaves[i], batch).status());
  }
  PutTreeSizeLocked(batch);
  return first;
}

void AuditLog::EndSession(uint64_t id, bool committed, bool has_session_head) {
  if (!has_session_head) {
    absl::MutexLock lock(&mu_);
    EndSessionLocked(id, committed, nullptr);
    return;
  }
  absl::MutexLock sign_lock(&sign_mu_);
  std::optional<SignedTreeHead> head;
  if (session_head_id_ == id) head = std::move(session_head_);
  session_head_.reset();
  session_head_id_ = 0;  // lets waiting signers go on (AwaitNoSessionHeadLocked)
  const bool published = committed && head.has_value();
  {
    absl::MutexLock lock(&mu_);
    EndSessionLocked(id, committed, published ? &*head : nullptr);
  }
  if (!published) return;
  signed_since_open_ = head->checkpoint;
  WriteHeadFilesAtInterval(head->note, /*force=*/false);
}

void AuditLog::EndSessionLocked(uint64_t id, bool committed, const SignedTreeHead* head) {
  if (id == 0 || session_id_ != id) return;
  if (committed) {
    // The batch is in the store: cache its nodes before readers can ask
    // for the new size (a reader that misses the cache would still find
    // them in the store).
    nodes_.AddCommitted(pending_cached_);
    committed_ = std::move(pending_);
    // Committed with the leaves it covers: readers see both at once.
    if (head != nullptr) latest_head_ = *head;
  }
  pending_ = CompactMerkleTree();
  pending_cached_.clear();
  session_id_ = 0;
}

absl::StatusOr<bool> AuditLog::SignSessionHead(uint64_t id, storage::WriteBatch* batch) {
  // Another signature or a key rotation in progress: no head for this
  // commit (receipts sign one afterwards, as they would without a session
  // head), rather than a wait inside the commit step.
  if (!sign_mu_.TryLock()) return false;
  absl::StatusOr<bool> signed_head = SignSessionHeadLocked(id, batch);
  sign_mu_.Unlock();
  return signed_head;
}

absl::StatusOr<bool> AuditLog::SignSessionHeadLocked(uint64_t id, storage::WriteBatch* batch) {
  if (signer_ == nullptr || session_head_id_ != 0) return false;
  uint64_t committed_size = 0, size = 0;
  Hash committed_root, root;
  {
    absl::MutexLock lock(&mu_);
    if (id == 0 || session_id_ != id) {
      return absl::FailedPreconditionError("this audit session was already ended");
    }
    committed_size = committed_.size();
    committed_root = committed_.Root();
    size = pending_.size();
    root = pending_.Root();
  }
  if (size == committed_size) return false;
  // The committed tree must extend the last head; the session's tree
  // extends the committed one by its appends.
  ASSIGN_OR_RETURN(std::optional<Checkpoint> last,
                   CheckExtendsLast(committed_size, committed_root));
  Checkpoint cp = NewCheckpoint(size, root, last);
  ASSIGN_OR_RETURN(std::string note, SignCheckpoint(cp, *signer_));
  batch->Put(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata), note);
  session_head_ = SignedTreeHead{std::move(cp), std::move(note)};
  session_head_id_ = id;
  return true;
}

void AuditLog::AwaitNoSessionHeadLocked() {
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_) { return session_head_id_ == 0; };
  sign_mu_.Await(absl::Condition(&idle));
}

void AuditLog::WriteHeadFilesAtInterval(const std::string& note, bool force) {
  const absl::Time now = options_.clock->Now();
  if (!force && options_.head_file_interval > absl::ZeroDuration() &&
      last_head_file_write_.has_value() &&
      now - *last_head_file_write_ < options_.head_file_interval) {
    unwritten_head_note_ = note;
    return;
  }
  unwritten_head_note_.reset();
  last_head_file_write_ = now;
  if (absl::Status s = WriteHeadFiles(note); !s.ok()) {
    // The head is durable in the store; the next head written retries.
    log::Error("audit.head.file", {{"reason", s.message()}});
  }
}

void AuditLog::WriteHeadFilesIfBehind() {
  absl::MutexLock sign_lock(&sign_mu_);
  if (!unwritten_head_note_.has_value()) return;
  const std::string note = *std::move(unwritten_head_note_);
  WriteHeadFilesAtInterval(note, /*force=*/true);
}

absl::StatusOr<uint64_t> AuditSession::Append(const Event& event) {
  return AppendAll(std::span<const Event>(&event, 1));
}

absl::StatusOr<uint64_t> AuditSession::AppendAll(std::span<const Event> events) {
  if (log_ == nullptr) {
    return absl::FailedPreconditionError("no audit log, or this audit session was ended");
  }
  if (events.empty()) return absl::InvalidArgumentError("AppendAll needs at least one event");
  // Encode and hash every event before touching the batch or the session.
  std::vector<std::string> entries;
  std::vector<Hash> leaves;
  entries.reserve(events.size());
  leaves.reserve(events.size());
  for (const Event& event : events) {
    ASSIGN_OR_RETURN(entries.emplace_back(), EncodeEvent(event));
    leaves.push_back(LeafHash(entries.back()));
  }
  return log_->AppendInSession(&id_, events, entries, leaves, batch_);
}

absl::Status AuditSession::SignHead() {
  if (log_ == nullptr || id_ == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(bool signed_head, log_->SignSessionHead(id_, batch_));
  has_head_ = has_head_ || signed_head;
  return absl::OkStatus();
}

void AuditSession::Committed() {
  if (log_ != nullptr) log_->EndSession(id_, /*committed=*/true, has_head_);
  log_ = nullptr;
  id_ = 0;
  has_head_ = false;
}

void AuditSession::Abort() {
  if (log_ != nullptr) log_->EndSession(id_, /*committed=*/false, has_head_);
  log_ = nullptr;
  id_ = 0;
  has_head_ = false;
}

uint64_t AuditLog::size() const {
  absl::MutexLock lock(&mu_);
  return committed_.size();
}

Hash AuditLog::root() const {
  absl::MutexLock lock(&mu_);
  return committed_.Root();
}

namespace {
absl::Status CheckSize(uint64_t asked, uint64_t size) {
  if (asked > size) {
    return absl::OutOfRangeError(
        absl::StrFormat("tree size %d is beyond the log's size %d", asked, size));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<Hash> AuditLog::RootAt(uint64_t tree_size) {
  RETURN_IF_ERROR(CheckSize(tree_size, size()));
  return protocol::RootAt(nodes_, tree_size);
}

absl::StatusOr<std::vector<Hash>> AuditLog::InclusionProof(uint64_t index, uint64_t tree_size) {
  RETURN_IF_ERROR(CheckSize(tree_size, size()));
  return protocol::InclusionProof(nodes_, index, tree_size);
}

absl::StatusOr<std::vector<Hash>> AuditLog::ConsistencyProof(uint64_t size1, uint64_t size2) {
  RETURN_IF_ERROR(CheckSize(size2, size()));
  return protocol::ConsistencyProof(nodes_, size1, size2);
}

absl::StatusOr<uint64_t> AuditLog::IndexOfLeafHash(const Hash& leaf_hash) {
  absl::StatusOr<std::string> v =
      options_.store->Get(Cf::kAuditLeaves, storage::EncodeAuditLeafByHashKey(leaf_hash));
  if (absl::IsNotFound(v.status())) {
    return absl::NotFoundError("no audit entry has this leaf hash");
  }
  RETURN_IF_ERROR(v.status());
  ASSIGN_OR_RETURN(uint64_t index, DecodeU64(*v, "audit leaf index"));
  // A leaf of an aborted session is never stored, but a later session may
  // still be pending: only committed leaves count.
  if (index >= size()) return absl::NotFoundError("no committed audit entry has this leaf hash");
  return index;
}

absl::StatusOr<uint64_t> AuditLog::IndexOfBatch(std::string_view device_id, const Uuid& batch_id) {
  absl::StatusOr<std::string> v =
      options_.store->Get(Cf::kAuditLeaves, storage::EncodeAuditBatchLeafKey(device_id, batch_id));
  if (absl::IsNotFound(v.status())) {
    return absl::NotFoundError("no audit entry for this batch");
  }
  RETURN_IF_ERROR(v.status());
  return DecodeU64(*v, "audit leaf index");
}

absl::Status AuditLog::ReadEntries(
    uint64_t begin, uint64_t end,
    const std::function<absl::Status(uint64_t, std::string_view)>& fn) {
  RETURN_IF_ERROR(CheckSize(end, size()));
  if (begin >= end) return absl::OkStatus();
  std::unique_ptr<storage::Iterator> it = options_.store->NewIterator(
      Cf::kAuditLeaves, storage::EncodeAuditLeafKey(begin), storage::EncodeAuditLeafKey(end));
  uint64_t expected = begin;
  for (; it->Valid(); it->Next(), ++expected) {
    ASSIGN_OR_RETURN(uint64_t index, storage::DecodeAuditLeafKey(it->key()));
    if (index != expected) {
      return absl::DataLossError(absl::StrFormat("audit leaf %d is missing", expected));
    }
    RETURN_IF_ERROR(fn(index, it->value()));
  }
  RETURN_IF_ERROR(it->status());
  if (expected != end) {
    return absl::DataLossError(absl::StrFormat("audit leaf %d is missing", expected));
  }
  return absl::OkStatus();
}

namespace {

std::string AbandonedHeadName(const Checkpoint& head) {
  return absl::StrCat(std::string(kAbandonedHeadMetadataPrefix),
                      absl::StrFormat("%016x-", head.size),
                      absl::BytesToHexString(std::string(HashBytes(head.root))));
}

// Writes `note` to `path` whole: a temporary file, synced, renamed over the
// old one, then the directory synced.
absl::Status WriteHeadFile(const std::string& path, const std::string& note) {
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  RETURN_IF_ERROR(WriteNewFile(tmp, note, 0644));
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("cannot rename %s to %s: %s", tmp, path, ec.message()));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

}  // namespace

absl::StatusOr<bool> AuditLog::IsAbandoned(const Checkpoint& head) {
  absl::StatusOr<std::string> v =
      options_.store->Get(Cf::kMetadata, storage::EncodeMetadataKey(AbandonedHeadName(head)));
  if (absl::IsNotFound(v.status())) return false;
  RETURN_IF_ERROR(v.status());
  return true;
}

absl::StatusOr<std::vector<AuditLog::PublishedHead>> AuditLog::LoadPublishedHeads() {
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("this audit log has no signing key");
  }
  std::vector<PublishedHead> heads;
  auto consider = [&](const std::string& where, const std::string& text)
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sign_mu_) -> absl::Status {
    absl::StatusOr<Checkpoint> cp = OpenWithAnyKey(text);
    if (!cp.ok()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the last signed tree head in %s does not open with this log's key (%s): an "
          "operator must find out why before the log signs again",
          where, cp.status().message()));
    }
    for (PublishedHead& h : heads) {
      if (h.checkpoint.size == cp->size && h.checkpoint.root == cp->root) {
        h.where = absl::StrCat(h.where, " and ", where);
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(bool abandoned, IsAbandoned(*cp));
    if (!abandoned) heads.push_back(PublishedHead{where, *std::move(cp), text});
    return absl::OkStatus();
  };
  absl::StatusOr<std::string> stored =
      options_.store->Get(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata));
  if (stored.ok()) {
    RETURN_IF_ERROR(consider("the store", *stored));
  } else if (!absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  for (const std::string& path : {options_.head_file, options_.head_copy_file}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> file = ReadFile(path);
    if (file.ok()) {
      RETURN_IF_ERROR(consider(path, *file));
    } else if (!absl::IsNotFound(file.status())) {
      return file.status();
    }
  }
  std::sort(heads.begin(), heads.end(), [](const PublishedHead& a, const PublishedHead& b) {
    return a.checkpoint.size > b.checkpoint.size;
  });
  return heads;
}

absl::StatusOr<std::optional<std::string>> AuditLog::WhyNotExtends(const Checkpoint& last,
                                                                   uint64_t size,
                                                                   const Hash& root) {
  if (last.size > size) return "the tree is smaller";
  if (last.size == size) {
    if (last.root == root) return std::nullopt;
    return "same size, different root";
  }
  if (last.size == 0) {
    if (last.root == EmptyRoot()) return std::nullopt;
    return "bad empty root";
  }
  ASSIGN_OR_RETURN(std::vector<Hash> proof, protocol::ConsistencyProof(nodes_, last.size, size));
  if (!VerifyConsistency(last.size, size, proof, last.root, root).ok()) {
    return "the consistency proof does not verify";
  }
  return std::nullopt;
}

absl::Status AuditLog::CheckExtends(const Checkpoint& last, uint64_t size, const Hash& root) {
  ASSIGN_OR_RETURN(std::optional<std::string> why, WhyNotExtends(last, size, root));
  if (!why.has_value()) return absl::OkStatus();
  log::Error("audit.head.refused",
             {{"tree_size", size}, {"last_signed_size", last.size}, {"reason", *why}});
  return absl::FailedPreconditionError(absl::StrFormat(
      "the audit tree (size %d) does not extend the last signed tree head (size %d): %s. "
      "The store was restored from an older backup or altered; no head is signed until an "
      "operator restores the newer store or accepts the rollback (see docs/AUDIT.md)",
      size, last.size, *why));
}

absl::StatusOr<std::vector<UnextendedHead>> AuditLog::UnextendedHeadsOf(
    const std::vector<PublishedHead>& heads, uint64_t size, const Hash& root) {
  std::vector<UnextendedHead> out;
  for (const PublishedHead& head : heads) {
    ASSIGN_OR_RETURN(std::optional<std::string> why, WhyNotExtends(head.checkpoint, size, root));
    if (!why.has_value()) continue;
    out.push_back(UnextendedHead{head.where, head.checkpoint, head.note,
                                 head.checkpoint.size > size, *std::move(why)});
  }
  return out;
}

absl::StatusOr<Checkpoint> AuditLog::OpenWithAnyKey(std::string_view note) const {
  absl::StatusOr<Checkpoint> cp = OpenCheckpoint(note, signer_->verifier());
  // Newest first: a head from before the last rotation is the likeliest.
  for (auto it = former_keys_.rbegin(); !cp.ok() && it != former_keys_.rend(); ++it) {
    absl::StatusOr<Checkpoint> former = OpenCheckpoint(note, *it);
    if (former.ok()) cp = std::move(former);
  }
  return cp;
}

absl::StatusOr<std::vector<UnextendedHead>> AuditLog::UnextendedHeads() {
  std::vector<PublishedHead> heads;
  {
    absl::MutexLock sign_lock(&sign_mu_);
    ASSIGN_OR_RETURN(heads, LoadPublishedHeads());
  }
  return UnextendedHeadsOf(heads, size(), root());
}

absl::StatusOr<SignedTreeHead> AuditLog::AcceptRollback(uint64_t expected_size,
                                                        std::string_view actor) {
  absl::MutexLock sign_lock(&sign_mu_);
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("this audit log has no signing key");
  }
  const uint64_t tree_size = size();
  const Hash tree_root = root();
  if (expected_size != tree_size) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the audit tree has size %d, not the %d accepted: nothing was changed",
                        tree_size, expected_size));
  }
  ASSIGN_OR_RETURN(std::vector<PublishedHead> heads, LoadPublishedHeads());
  ASSIGN_OR_RETURN(std::vector<UnextendedHead> unextended,
                   UnextendedHeadsOf(heads, tree_size, tree_root));
  if (unextended.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the audit tree (size %d) extends every published tree head: there is no rollback to "
        "accept",
        tree_size));
  }
  RollbackAccepted accepted;
  accepted.actor = std::string(actor);
  accepted.continued_size = tree_size;
  accepted.continued_root = tree_root;
  storage::WriteBatch batch;
  for (const UnextendedHead& head : unextended) {
    accepted.abandoned_heads.push_back(head.note);
    batch.Put(Cf::kMetadata, storage::EncodeMetadataKey(AbandonedHeadName(head.checkpoint)),
              head.note);
  }
  {
    AuditSession session(this, &batch);
    ASSIGN_OR_RETURN(uint64_t index,
                     session.Append(Event{options_.clock->Now(), std::move(accepted)}));
    RETURN_IF_ERROR(options_.store->Commit(&batch));
    session.Committed();
    const UnextendedHead& largest = unextended.front();
    log::Warn("audit.rollback.accepted", {{"entry", index},
                                          {"continued_size", tree_size},
                                          {"abandoned_size", largest.checkpoint.size},
                                          {"abandoned_heads", unextended.size()},
                                          {"actor", std::string(actor)}});
  }
  return SignTreeHeadLocked();
}

absl::Status AuditLog::StoreHead(const std::string& note) {
  storage::WriteBatch batch;
  batch.Put(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata), note);
  RETURN_IF_ERROR(options_.store->Commit(&batch));
  return WriteHeadFiles(note);
}

absl::Status AuditLog::WriteHeadFiles(const std::string& note) {
  for (const std::string& path : {options_.head_file, options_.head_copy_file}) {
    if (!path.empty()) RETURN_IF_ERROR(WriteHeadFile(path, note));
  }
  return absl::OkStatus();
}

absl::StatusOr<SignedTreeHead> AuditLog::SignTreeHead() {
  absl::MutexLock sign_lock(&sign_mu_);
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("this audit log has no signing key");
  }
  return SignTreeHeadLocked();
}

absl::StatusOr<std::optional<Checkpoint>> AuditLog::CheckExtendsLast(uint64_t size,
                                                                     const Hash& root) {
  // The published copies (store, head file, copy) are read and verified
  // before this process's first signature, and the tree must extend each;
  // after that the head it last signed is the last head (the process is
  // the store's only writer, by RocksDB's lock), which spares the Ed25519
  // verifications per head.
  std::optional<Checkpoint> last;
  if (signed_since_open_.has_value()) {
    last = signed_since_open_;
    RETURN_IF_ERROR(CheckExtends(*last, size, root));
  } else {
    ASSIGN_OR_RETURN(std::vector<PublishedHead> heads, LoadPublishedHeads());
    for (const PublishedHead& head : heads) {
      RETURN_IF_ERROR(CheckExtends(head.checkpoint, size, root));
    }
    if (!heads.empty()) last = heads.front().checkpoint;
  }
  return last;
}

Checkpoint AuditLog::NewCheckpoint(uint64_t size, const Hash& root,
                                   const std::optional<Checkpoint>& last) {
  Checkpoint cp;
  cp.origin = signer_->verifier().key_name();
  cp.size = size;
  cp.root = root;
  absl::Time now = options_.clock->Now();
  if (last.has_value()) {
    // Timestamps never go backwards, even if the clock does.
    absl::StatusOr<absl::Time> last_time = CheckpointTimestamp(*last);
    if (last_time.ok() && *last_time > now) now = *last_time;
  }
  cp.extensions.push_back(TimestampExtension(now));
  return cp;
}

absl::StatusOr<KeyTransition> AuditLog::RotateSigningKey(std::unique_ptr<NoteSigner> next,
                                                         const KeyRotated& event,
                                                         storage::WriteBatch* batch) {
  absl::MutexLock sign_lock(&sign_mu_);
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("this audit log has no signing key");
  }
  // A commit's head that waits for its commit would otherwise wait for
  // this lock while this waits for that commit's session.
  AwaitNoSessionHeadLocked();
  if (next == nullptr || event.purpose != kAuditSigningPurpose ||
      event.new_public_key.size() != next->verifier().public_key().size() ||
      !std::equal(event.new_public_key.begin(), event.new_public_key.end(),
                  next->verifier().public_key().begin(),
                  [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; })) {
    return absl::InvalidArgumentError(
        "a signing key rotation needs an audit-signing KeyRotated event naming the new key");
  }
  if (next->verifier().key_name() != signer_->verifier().key_name()) {
    return absl::InvalidArgumentError("the new signing key has another name than the log's origin");
  }
  // Signature lines are told apart by key id: the new key's must be new.
  bool is_used = next->verifier().key_id() == signer_->verifier().key_id();
  for (const NoteVerifier& former : former_keys_) {
    is_used = is_used || former.key_id() == next->verifier().key_id();
  }
  if (is_used) {
    return absl::InvalidArgumentError(
        "the new signing key's key id is one the log used before: generate another key");
  }
  uint64_t index = 0;
  uint64_t size = 0;
  Hash root;
  SignedTreeHead head;
  // The committed tree must extend the last head (its nodes are stored,
  // so the consistency proof can be read); the tree with the event, one
  // leaf more, then does too.
  ASSIGN_OR_RETURN(std::optional<Checkpoint> last, CheckExtendsLast(this->size(), this->root()));
  {
    AuditSession session(this, batch);
    ASSIGN_OR_RETURN(index, session.Append(Event{options_.clock->Now(), event}));
    {
      absl::MutexLock lock(&mu_);
      size = pending_.size();
      root = pending_.Root();
    }
    // The transition head is the head of the tree with the event, signed
    // before the commit and committed with it: there is no moment at which
    // the new key is in force and the transition unsigned.
    head.checkpoint = NewCheckpoint(size, root, last);
    const NoteSigner* both[] = {signer_, next.get()};
    ASSIGN_OR_RETURN(head.note, SignCheckpointWithAll(head.checkpoint, both));
    batch->Put(Cf::kMetadata, storage::EncodeMetadataKey(kSignedHeadMetadata), head.note);
    batch->Put(Cf::kMetadata, storage::EncodeMetadataKey(KeyTransitionName(event.new_version)),
               EncodeU64(index) + head.note);
    RETURN_IF_ERROR(options_.store->Commit(batch));
    session.Committed();
  }
  former_keys_.push_back(signer_->verifier());
  owned_signers_.push_back(std::move(next));
  signer_ = owned_signers_.back().get();
  signed_since_open_ = head.checkpoint;
  KeyTransition transition;
  transition.new_version = event.new_version;
  transition.leaf_index = index;
  transition.head = head;
  ASSIGN_OR_RETURN(transition.entry,
                   options_.store->Get(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(index)));
  ASSIGN_OR_RETURN(transition.inclusion_proof, protocol::InclusionProof(nodes_, index, size));
  {
    absl::MutexLock lock(&mu_);
    latest_head_ = head;
    transitions_.push_back(transition);
  }
  log::Info("audit.key.rotated", {{"old_version", event.old_version},
                                  {"new_version", event.new_version},
                                  {"entry", index},
                                  {"transition_head_size", size}});
  unwritten_head_note_.reset();
  last_head_file_write_ = options_.clock->Now();
  if (absl::Status s = WriteHeadFiles(head.note); !s.ok()) {
    // The rotation holds (committed, in the store's head); the next head
    // signed rewrites the files.
    log::Error("audit.head.file", {{"reason", s.message()}, {"transition_head_size", size}});
  }
  return transition;
}

std::vector<KeyTransition> AuditLog::KeyTransitions() const {
  absl::MutexLock lock(&mu_);
  return transitions_;
}

absl::StatusOr<NoteVerifier> AuditLog::CurrentKey() const {
  absl::MutexLock sign_lock(&sign_mu_);
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("this audit log has no signing key");
  }
  return signer_->verifier();
}

absl::StatusOr<SignedTreeHead> AuditLog::SignDetachedHead(Checkpoint checkpoint) {
  absl::MutexLock sign_lock(&sign_mu_);
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("this audit log has no signing key");
  }
  {
    absl::MutexLock lock(&mu_);
    for (const KeyTransition& t : transitions_) {
      if (t.leaf_index >= checkpoint.size) {
        return absl::AbortedError(
            "the audit signing key was rotated after this tree size: the key in force at that "
            "size no longer signs; retry");
      }
    }
  }
  checkpoint.origin = signer_->verifier().key_name();
  ASSIGN_OR_RETURN(std::string note, SignCheckpoint(checkpoint, *signer_));
  return SignedTreeHead{std::move(checkpoint), std::move(note)};
}

absl::StatusOr<SignedTreeHead> AuditLog::SignTreeHeadLocked() {
  // A commit's head signed and not yet committed is newer than the
  // committed tree: wait for it, so that heads stay in order of size.
  AwaitNoSessionHeadLocked();
  uint64_t size;
  Hash root;
  {
    absl::MutexLock lock(&mu_);
    size = committed_.size();
    root = committed_.Root();
  }
  ASSIGN_OR_RETURN(std::optional<Checkpoint> last, CheckExtendsLast(size, root));
  Checkpoint cp = NewCheckpoint(size, root, last);
  ASSIGN_OR_RETURN(std::string note, SignCheckpoint(cp, *signer_));
  RETURN_IF_ERROR(StoreHead(note));
  unwritten_head_note_.reset();
  last_head_file_write_ = options_.clock->Now();
  signed_since_open_ = cp;
  SignedTreeHead head{std::move(cp), std::move(note)};
  absl::MutexLock lock(&mu_);
  latest_head_ = head;
  return head;
}

absl::StatusOr<SignedTreeHead> AuditLog::MaybeSignTreeHead() {
  {
    absl::MutexLock lock(&mu_);
    if (latest_head_.has_value()) {
      if (latest_head_->checkpoint.size == committed_.size()) return *latest_head_;
      absl::StatusOr<absl::Time> t = CheckpointTimestamp(latest_head_->checkpoint);
      if (options_.head_interval > absl::ZeroDuration() && t.ok() &&
          options_.clock->Now() - *t < options_.head_interval) {
        return *latest_head_;
      }
    }
  }
  return SignTreeHead();
}

absl::StatusOr<SignedTreeHead> AuditLog::LatestSignedHead() const {
  absl::MutexLock lock(&mu_);
  if (!latest_head_.has_value()) return absl::NotFoundError("no tree head has been signed yet");
  return *latest_head_;
}

absl::StatusOr<Receipt> AuditLog::ReceiptForLeaf(uint64_t index) {
  if (index >= size()) {
    return absl::OutOfRangeError(absl::StrFormat("audit leaf %d is not committed", index));
  }
  absl::StatusOr<SignedTreeHead> head = LatestSignedHead();
  if (!head.ok() || head->checkpoint.size <= index) {
    ASSIGN_OR_RETURN(head, SignTreeHead());
  }
  Receipt receipt;
  receipt.leaf_index = index;
  receipt.key_transitions = KeyTransitions();
  ASSIGN_OR_RETURN(receipt.inclusion_proof,
                   protocol::InclusionProof(nodes_, index, head->checkpoint.size));
  ASSIGN_OR_RETURN(receipt.entry,
                   options_.store->Get(Cf::kAuditLeaves, storage::EncodeAuditLeafKey(index)));
  receipt.head = *std::move(head);
  return receipt;
}

absl::StatusOr<Receipt> AuditLog::ReceiptForBatch(std::string_view device_id,
                                                  const Uuid& batch_id) {
  ASSIGN_OR_RETURN(uint64_t index, IndexOfBatch(device_id, batch_id));
  return ReceiptForLeaf(index);
}

}  // namespace fieldsync::audit
