#include "audit/export.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <iterator>
#include <limits>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "crypto/ed25519.h"
#include "protocol/events.h"

namespace fieldsync::audit {

using protocol::BatchAccepted;
using protocol::BatchSignedMessageOf;
using protocol::CaseChange;
using protocol::Checkpoint;
using protocol::CompactMerkleTree;
using protocol::DecodeEvent;
using protocol::DeviceEnrolled;
using protocol::EmptyRoot;
using protocol::Event;
using protocol::Hash;
using protocol::HashBytes;
using protocol::HasSignatureLineOf;
using protocol::kAuditSigningPurpose;
using protocol::KeyRotated;
using protocol::KindName;
using protocol::KindOf;
using protocol::LeafHash;
using protocol::NoteVerifier;
using protocol::OpenCheckpoint;
using protocol::ParseCheckpoint;
using protocol::ParseCheckpointNote;
using protocol::PrincipalKind;
using protocol::PrincipalRevoked;
using protocol::RollbackAccepted;

namespace {

void PutInt(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetInt(std::string_view in, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
  return v;
}

std::string Record(ExportRecord type, std::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  out.push_back(static_cast<char>(type));
  PutInt(&out, payload.size(), 4);
  out.append(payload);
  return out;
}

constexpr uint64_t kProgressEvery = 1 << 16;

// One device signature to check: the rebuilt signed message (no heap copy
// of the event), the signature and the key the enrolment entry recorded.
struct SignatureJob {
  uint64_t index;
  std::string message;
  std::array<uint8_t, 64> signature;
  std::array<uint8_t, 32> key;
};

// Checks device signatures while the reading thread goes on parsing and
// hashing. With `threads` >= 2, that many workers take chunks of jobs from
// a bounded queue, and the reading thread checks a chunk itself instead of
// waiting when the queue is full; with 1, each chunk is checked inline.
// Wait() returns once every added job is checked. The first failure is the
// smallest bad index added so far. Used by one reading thread.
class SignatureChecker {
 public:
  static constexpr size_t kChunk = 256;

  explicit SignatureChecker(int threads) : threads_(std::max(1, threads)) {
    if (threads_ < 2) return;
    for (int t = 0; t < threads_; ++t) workers_.emplace_back([this] { Work(); });
  }
  ~SignatureChecker() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : workers_) t.join();
  }
  SignatureChecker(const SignatureChecker&) = delete;
  SignatureChecker& operator=(const SignatureChecker&) = delete;

  void Add(SignatureJob job) {
    current_.push_back(std::move(job));
    ++added_;
    if (current_.size() >= kChunk) Submit();
  }

  // True once some checked signature failed (Wait() names it).
  bool AnyBad() const { return bad_seen_.load(std::memory_order_relaxed); }
  uint64_t added() const { return added_; }

  // Waits until every added job is checked; the smallest bad index, if any.
  std::optional<uint64_t> Wait() {
    Submit();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](SignatureChecker* c)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) { return c->queue_.empty() && c->busy_ == 0; },
        this));
    if (first_bad_ == kNone) return std::nullopt;
    return first_bad_;
  }

 private:
  static constexpr uint64_t kNone = std::numeric_limits<uint64_t>::max();

  // Hands the current chunk to the workers (or checks it here).
  void Submit() {
    if (current_.empty()) return;
    std::vector<SignatureJob> chunk;
    chunk.swap(current_);
    current_.reserve(kChunk);
    if (workers_.empty()) return Check(chunk);
    {
      absl::MutexLock lock(&mu_);
      if (queue_.size() < 2 * workers_.size()) {
        queue_.push_back(std::move(chunk));
        return;
      }
    }
    Check(chunk);  // the workers are behind: help rather than wait
  }

  void Check(const std::vector<SignatureJob>& chunk) {
    uint64_t bad = kNone;
    for (const SignatureJob& j : chunk) {
      const auto* m = reinterpret_cast<const uint8_t*>(j.message.data());
      if (!crypto::Ed25519Verify(j.key, std::span<const uint8_t>(m, j.message.size()), j.signature)
               .ok()) {
        bad = std::min(bad, j.index);
      }
    }
    if (bad == kNone) return;
    bad_seen_.store(true, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    first_bad_ = std::min(first_bad_, bad);
  }

  void Work() {
    for (;;) {
      std::vector<SignatureJob> chunk;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](SignatureChecker* c)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) { return c->stop_ || !c->queue_.empty(); },
            this));
        if (queue_.empty()) return;  // stopping
        chunk = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
      }
      Check(chunk);
      absl::MutexLock lock(&mu_);
      --busy_;
    }
  }

  const int threads_;
  std::vector<SignatureJob> current_;  // reading thread only
  uint64_t added_ = 0;                 // reading thread only
  std::atomic<bool> bad_seen_{false};
  absl::Mutex mu_;
  std::deque<std::vector<SignatureJob>> queue_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t first_bad_ ABSL_GUARDED_BY(mu_) = kNone;
  std::vector<std::thread> workers_;
};

struct HeadRef {
  Checkpoint checkpoint;
  std::string label;   // "tree head #2 (size 40)" or "trusted head (size 40)"
  std::string record;  // "tree head #2" or "trusted head"
  std::string note;    // the signed note (empty for a trusted head line)
  bool is_trusted = false;
};

// True iff `note` carries a valid signature by `key` (and is a checkpoint
// of the key's log).
bool Signs(const NoteVerifier& key, std::string_view note) {
  return OpenCheckpoint(note, key).ok();
}

// A key transition read from the entries and not yet covered by a head.
struct PendingTransition {
  uint64_t entry = 0;
  NoteVerifier next;
  uint32_t old_version = 0;
  uint32_t new_version = 0;
  // The transition that announces the key file's key when that key is a
  // later one (the keys before it are unknown: their signatures are not
  // checked).
  bool is_anchor = false;
};

struct DeviceState {
  std::array<uint8_t, 32> key;
  std::optional<uint64_t> revoked_at;
  uint64_t last_sequence = 0;
};

class Verifier {
 public:
  Verifier(std::istream& in, const VerifyOptions& options) : in_(in), options_(options) {}

  VerifyReport Run() {
    if (options_.key == nullptr) return Failed("options", "no verifier key given");
    std::string magic(kExportMagic.size(), '\0');
    if (!in_.read(magic.data(), magic.size()) || magic != kExportMagic) {
      return Failed("file header", "not a fieldsync audit export (v1)");
    }
    bytes_ = magic.size();
    if (!ReadAll()) return report_;
    report_.ok = true;
    return report_;
  }

 private:
  VerifyReport Failed(std::string record, std::string why) {
    Fail(std::nullopt, std::move(record), std::move(why));
    return report_;
  }

  // Records the failure (unless one is recorded) and returns false.
  bool Fail(std::optional<uint64_t> entry, std::string record, std::string why) {
    if (!report_.error.empty()) return false;
    report_.ok = false;
    report_.bad_entry = entry;
    report_.bad_record = std::move(record);
    report_.error = std::move(why);
    return false;
  }

  // As Fail, but a device signature of an earlier entry that does not
  // verify is the first failure and is reported instead.
  bool FailEntry(uint64_t index, std::string why) {
    if (!FlushSignatures()) return false;
    return Fail(index, absl::StrFormat("entry %d", index), std::move(why));
  }

  // Reads one record. Returns false at the end of the input (*eof) or on a
  // truncated record (reported).
  bool ReadRecord(uint8_t* type, std::string* payload, bool* eof) {
    *eof = false;
    char header[5];
    in_.read(header, 5);
    if (in_.gcount() == 0) {
      *eof = true;
      return false;
    }
    if (in_.gcount() != 5) return FailTruncated();
    *type = static_cast<uint8_t>(header[0]);
    uint64_t length = GetInt(std::string_view(header, 5), 1, 4);
    if (length > kMaxExportRecord) {
      return Fail(NextEntry(), RecordName(),
                  absl::StrFormat("record of %d bytes is too long", length));
    }
    payload->resize(length);
    in_.read(payload->data(), static_cast<std::streamsize>(length));
    if (static_cast<uint64_t>(in_.gcount()) != length) return FailTruncated();
    bytes_ += 5 + length;
    return true;
  }

  std::optional<uint64_t> NextEntry() const {
    return in_entries_ ? std::optional<uint64_t>(tree_.size()) : std::nullopt;
  }
  std::string RecordName() const {
    return in_entries_ ? absl::StrFormat("entry %d", tree_.size())
                       : absl::StrFormat("record %d", heads_.size() + 1);
  }
  bool FailTruncated() {
    if (!FlushSignatures()) return false;
    return Fail(NextEntry(), RecordName(), "the file is truncated (it ends inside a record)");
  }

  bool ReadAll() {
    uint8_t type = 0;
    std::string payload;
    bool eof = false;
    while (ReadRecord(&type, &payload, &eof)) {
      switch (static_cast<ExportRecord>(type)) {
        case ExportRecord::kHead:
          if (in_entries_) {
            return FailEntry(tree_.size(), "a tree head record follows the entries");
          }
          if (!AddHead(payload)) return false;
          break;
        case ExportRecord::kEntry:
          if (!in_entries_ && !StartEntries()) return false;
          if (!Entry(payload)) return false;
          break;
        case ExportRecord::kEnd:
          if (!in_entries_ && !StartEntries()) return false;
          return End(payload);
        default:
          return Fail(NextEntry(), RecordName(), absl::StrFormat("unknown record type %d", type));
      }
    }
    if (!report_.error.empty()) return false;
    if (!FlushSignatures()) return false;
    return Fail(NextEntry(), RecordName(),
                absl::StrFormat("the file is truncated: it ends after %d entries without its "
                                "end record",
                                tree_.size()));
  }

  // A head's signature is checked when the entries reach its size, with
  // the key in force there (docs/AUDIT.md §9); here only its form.
  bool AddHead(std::string_view note) {
    std::string record = absl::StrFormat("tree head #%d", heads_.size() + 1);
    absl::StatusOr<Checkpoint> cp = ParseCheckpointNote(note);
    if (!cp.ok()) {
      return Fail(std::nullopt, record,
                  absl::StrFormat("malformed signed tree head (%s)", cp.status().message()));
    }
    if (cp->origin != options_.key->key_name()) {
      return Fail(std::nullopt, record,
                  absl::StrFormat("not signed by the key in your key file: the head is of log "
                                  "\"%s\", your key's is \"%s\"",
                                  cp->origin, options_.key->key_name()));
    }
    heads_.push_back(
        HeadRef{*cp, absl::StrFormat("%s (size %d)", record, cp->size), record, std::string(note)});
    report_.heads = heads_.size();
    return true;
  }

  // After the heads: adds the trusted head, decides which key is in force
  // at the start, and indexes the heads by size.
  bool StartEntries() {
    in_entries_ = true;
    std::vector<HeadRef> all = heads_;
    if (options_.trusted_head.has_value()) {
      absl::StatusOr<TrustedHead> trusted =
          ParseTrustedHeadForm(*options_.trusted_head, *options_.key);
      if (!trusted.ok()) {
        return Fail(std::nullopt, "trusted head",
                    absl::StrFormat("your saved head is refused (%s)", trusted.status().message()));
      }
      trusted_ = HeadRef{trusted->checkpoint,
                         absl::StrFormat("trusted head (size %d)", trusted->checkpoint.size),
                         "trusted head", trusted->note, true};
      all.push_back(*trusted_);
    }
    if (all.empty()) return Fail(std::nullopt, "file", "the export holds no signed tree head");
    // The key file's key is the key in force at the start unless the
    // smallest head is signed by other keys only: then it must be a later
    // key, announced by a key transition in the entries.
    key_ = *options_.key;
    const HeadRef* first = nullptr;
    for (const HeadRef& head : heads_) {
      if (first == nullptr || head.checkpoint.size < first->checkpoint.size) first = &head;
    }
    if (first != nullptr && !Signs(*options_.key, first->note) &&
        !HasSignatureLineOf(first->note, *options_.key)) {
      key_.reset();
      first_unsigned_ = first->label;
      first_unsigned_record_ = first->record;
    }
    for (const HeadRef& head : all) {
      targets_.emplace(head.checkpoint.size, head);
      max_head_size_ = std::max(max_head_size_, head.checkpoint.size);
    }
    return CheckHeadsAt(0);
  }

  // The signature of `head` by the key in force at its size; a head that
  // covers a pending key transition must be signed by the key before it
  // and by the key it announces, and puts that key in force.
  bool CheckHeadKey(const HeadRef& head) {
    if (head.note.empty()) return true;  // a head line the auditor wrote down
    if (head.is_trusted) {
      // The auditor's own copy: any key of the chain guards it against
      // alteration.
      if (!key_.has_value() || Signs(*key_, head.note) ||
          (pending_.has_value() && Signs(pending_->next, head.note))) {
        return true;
      }
      for (const FormerKey& k : former_keys_) {
        if (Signs(k.key, head.note)) return true;
      }
      if (!FlushSignatures()) return false;
      return Fail(std::nullopt, head.record,
                  "your saved head is refused (a saved signed head that does not verify with "
                  "the key file or a key the log announced: it was altered)");
    }
    if (!key_.has_value() &&
        !(pending_.has_value() && pending_->is_anchor && head.checkpoint.size > pending_->entry)) {
      ++report_.unchecked_heads;  // signed by a key before the key file's
      return true;
    }
    if (pending_.has_value() && head.checkpoint.size > pending_->entry) {
      const bool old_ok = pending_->is_anchor || Signs(*key_, head.note);
      const bool new_ok = Signs(pending_->next, head.note);
      if (!old_ok) {
        if (!FlushSignatures()) return false;
        return Fail(pending_->entry, head.record,
                    absl::StrFormat("the key transition at entry %d is not covered by a head "
                                    "signed by the key in force before it: %s, the first head "
                                    "after it, is not signed by that key (a forged key "
                                    "transition)",
                                    pending_->entry, head.label));
      }
      if (!new_ok) {
        if (!FlushSignatures()) return false;
        return Fail(pending_->entry, head.record,
                    absl::StrFormat("%s covers the key transition at entry %d but is not signed "
                                    "by the key that transition announces (key id %08x): the "
                                    "announced key is not the one signing the log (a forged key "
                                    "transition)",
                                    head.label, pending_->entry, pending_->next.key_id()));
      }
      KeyTransitionSeen seen;
      seen.entry = pending_->entry;
      seen.old_version = pending_->old_version;
      seen.new_version = pending_->new_version;
      seen.new_key = pending_->next.VerifierKey();
      seen.head_size = head.checkpoint.size;
      seen.is_old_key_checked = !pending_->is_anchor;
      report_.key_transitions.push_back(std::move(seen));
      if (key_.has_value()) former_keys_.push_back(FormerKey{*key_, pending_->entry});
      key_ = pending_->next;
      key_since_ = pending_->entry;
      key_version_ = pending_->new_version;
      pending_.reset();
      return true;
    }
    if (Signs(*key_, head.note)) {
      ++heads_checked_;
      return true;
    }
    if (!FlushSignatures()) return false;
    for (const FormerKey& k : former_keys_) {
      if (Signs(k.key, head.note)) {
        return Fail(std::nullopt, head.record,
                    absl::StrFormat("%s is signed by a key that the key transition at entry %d "
                                    "replaced, not by the key in force at its size",
                                    head.label, k.replaced_at));
      }
    }
    if (pending_.has_value() && Signs(pending_->next, head.note)) {
      return Fail(std::nullopt, head.record,
                  absl::StrFormat("%s is signed by the key the transition at entry %d announces, "
                                  "but that entry is not within the head's size",
                                  head.label, pending_->entry));
    }
    if (!key_since_.has_value()) {
      return Fail(std::nullopt, head.record,
                  "not signed by the key in your key file (nor by a key a key transition of the "
                  "log announced)");
    }
    return Fail(std::nullopt, head.record,
                absl::StrFormat("not signed by the key in force at its size (announced by the "
                                "key transition at entry %d): signed by a key the log never "
                                "announced",
                                *key_since_));
  }

  // Checks every head of `size` (the entries read so far): signature,
  // forks, root.
  bool CheckHeadsAt(uint64_t size) {
    auto [begin, end] = targets_.equal_range(size);
    if (begin == end) return true;
    for (auto it = begin; it != end; ++it) {
      if (!CheckHeadKey(it->second)) return false;
    }
    for (auto a = begin; a != end; ++a) {
      for (auto b = std::next(a); b != end; ++b) {
        if (a->second.is_trusted || b->second.is_trusted) continue;
        if (a->second.checkpoint.root != b->second.checkpoint.root) {
          if (!FlushSignatures()) return false;
          return Fail(std::nullopt, b->second.label,
                      absl::StrFormat("%s and %s are both signed and have different roots: the "
                                      "log forked",
                                      a->second.label, b->second.label));
        }
      }
    }
    for (auto it = begin; it != end; ++it) {
      if (size == 0) {
        if (it->second.checkpoint.root != EmptyRoot()) {
          return Fail(std::nullopt, it->second.label, "an empty tree with a non-empty root");
        }
        continue;
      }
      if (!CheckRoot(it->second)) return false;
    }
    return true;
  }

  bool Entry(std::string_view payload) {
    const uint64_t i = tree_.size();
    if (payload.size() < 8 + 32) return FailEntry(i, "the entry record is truncated");
    const uint64_t index = GetInt(payload, 0, 8);
    if (index > i) {
      return FailEntry(i, absl::StrFormat("entry %d is missing (entry %d is in its place): "
                                          "entries were dropped or reordered",
                                          i, index));
    }
    if (index < i) {
      return FailEntry(i, absl::StrFormat("entry %d appears where entry %d belongs: entries "
                                          "were reordered or duplicated",
                                          index, i));
    }
    std::string_view entry = payload.substr(40);
    const Hash leaf = LeafHash(entry);
    if (HashBytes(leaf) != payload.substr(8, 32)) {
      return FailEntry(i,
                       "the entry's bytes were altered (its leaf hash is not the one "
                       "recorded at export)");
    }
    absl::StatusOr<Event> event = DecodeEvent(entry);
    if (!event.ok()) {
      return FailEntry(i, absl::StrFormat("malformed event: %s", event.status().message()));
    }
    ++report_.events_by_kind[std::string(KindName(KindOf(*event)))];
    if (!CheckEvent(i, *event)) return false;
    (void)tree_.Append(leaf, nullptr);
    report_.entries = tree_.size();
    if (!CheckHeadsAt(tree_.size())) return false;
    if (options_.progress && tree_.size() % kProgressEvery == 0) {
      options_.progress(bytes_, tree_.size());
    }
    return true;
  }

  bool CheckRoot(const HeadRef& head) {
    if (tree_.Root() == head.checkpoint.root) {
      last_matched_size_ = head.checkpoint.size;
      if (trusted_.has_value() && head.checkpoint.size == trusted_->checkpoint.size) {
        report_.trusted_head_checked = true;
      }
      return true;
    }
    if (!FlushSignatures()) return false;
    std::string why = absl::StrFormat(
        "the root of entries 0..%d is not the root %s signed: an entry in %d..%d was altered, "
        "inserted, dropped or reordered",
        head.checkpoint.size - 1, head.label, last_matched_size_, head.checkpoint.size - 1);
    if (trusted_.has_value() && head.checkpoint.size == trusted_->checkpoint.size) {
      why += "; the log does not extend your saved head (it was rewritten)";
      why += AbandonedBy(trusted_->checkpoint);
    }
    return Fail(last_matched_size_, head.label, why);
  }

  bool CheckRange(uint64_t i, uint64_t first, uint64_t last) {
    if (first == 0 && last == 0) return true;
    if (first == 0 || last < first) {
      return FailEntry(i, absl::StrFormat("bad case-log range %d..%d", first, last));
    }
    if (next_position_.has_value() && first != *next_position_) {
      return FailEntry(i, absl::StrFormat("case-log range %d..%d does not follow the previous "
                                          "range (expected it to start at %d): entries were "
                                          "reordered, dropped or inserted",
                                          first, last, *next_position_));
    }
    next_position_ = last + 1;
    return true;
  }

  bool CheckEvent(uint64_t i, const Event& event) {
    if (const auto* e = std::get_if<DeviceEnrolled>(&event.body)) {
      auto [it, inserted] =
          devices_.emplace(e->device_id, DeviceState{e->signing_public_key, std::nullopt, 0});
      if (!inserted) {
        return FailEntry(i, absl::StrFormat("device %s is enrolled a second time", e->device_id));
      }
      report_.devices = devices_.size();
    } else if (const auto* e = std::get_if<PrincipalRevoked>(&event.body)) {
      if (e->principal_kind == PrincipalKind::kDevice) {
        auto it = devices_.find(e->principal_id);
        if (it == devices_.end()) {
          return FailEntry(i, absl::StrFormat("revokes device %s, which no earlier entry "
                                              "enrolled",
                                              e->principal_id));
        }
        if (!it->second.revoked_at.has_value()) it->second.revoked_at = i;
      }
    } else if (const auto* e = std::get_if<BatchAccepted>(&event.body)) {
      auto it = devices_.find(e->device_id);
      if (it == devices_.end()) {
        return FailEntry(i, absl::StrFormat("a batch of device %s, which no earlier entry "
                                            "enrolled",
                                            e->device_id));
      }
      DeviceState& device = it->second;
      if (device.revoked_at.has_value()) {
        return FailEntry(i, absl::StrFormat("a batch of device %s after its revocation at "
                                            "entry %d",
                                            e->device_id, *device.revoked_at));
      }
      if (e->sequence != device.last_sequence + 1) {
        return FailEntry(i, absl::StrFormat("device %s batch sequence %d follows %d: batches "
                                            "were dropped, reordered or replayed",
                                            e->device_id, e->sequence, device.last_sequence));
      }
      device.last_sequence = e->sequence;
      if (!CheckRange(i, e->first_position, e->last_position)) return false;
      absl::StatusOr<std::string> message = BatchSignedMessageOf(*e);
      if (!message.ok()) return FailEntry(i, "the batch's device id is not a UUID");
      signatures_.Add(SignatureJob{i, *std::move(message), e->signature, device.key});
      if (signatures_.AnyBad() && !FlushSignatures()) return false;
    } else if (const auto* e = std::get_if<CaseChange>(&event.body)) {
      if (!CheckRange(i, e->first_position, e->last_position)) return false;
    } else if (const auto* e = std::get_if<RollbackAccepted>(&event.body)) {
      if (!CheckRollback(i, *e)) return false;
    } else if (const auto* e = std::get_if<KeyRotated>(&event.body)) {
      if (e->purpose == kAuditSigningPurpose && !CheckKeyTransition(i, *e)) return false;
    }
    return true;
  }

  // A KeyRotated ("audit-signing") entry announces the next key; it holds
  // once a head covering it is signed by the key in force and the new key
  // (CheckHeadKey).
  bool CheckKeyTransition(uint64_t i, const KeyRotated& e) {
    if (pending_.has_value()) {
      return FailEntry(i, absl::StrFormat("a second key transition before a signed head covered "
                                          "the one at entry %d (a forged key transition)",
                                          pending_->entry));
    }
    if (e.new_public_key.size() != crypto::kEd25519PublicKeySize) {
      return FailEntry(i, absl::StrFormat("malformed key transition: the new key has %d bytes, "
                                          "not 32",
                                          e.new_public_key.size()));
    }
    if (e.new_version <= e.old_version ||
        (key_version_.has_value() && e.old_version != *key_version_)) {
      return FailEntry(
          i, absl::StrFormat("malformed key transition: from key version %d to %d%s", e.old_version,
                             e.new_version,
                             key_version_.has_value()
                                 ? absl::StrFormat(", but version %d is in force", *key_version_)
                                 : ""));
    }
    crypto::Ed25519PublicKey raw;
    std::copy(e.new_public_key.begin(), e.new_public_key.end(), raw.begin());
    absl::StatusOr<NoteVerifier> next = NoteVerifier::FromPublicKey(options_.key->key_name(), raw);
    if (!next.ok()) return FailEntry(i, "malformed key transition: the new key is unusable");
    if (key_.has_value() && !key_since_.has_value() && raw == options_.key->public_key()) {
      // The key file's key is announced here: it is a later key (the
      // export's first heads are transition heads, signed by it too).
      // Heads below this entry that it signed mean it was in force already.
      if (heads_checked_ > 0) {
        return FailEntry(i, "malformed key transition: it announces the key already in force");
      }
      key_.reset();
    }
    if (!key_.has_value()) {
      // Keys before the key file's are unknown: wait for the transition
      // that announces the key file's key.
      if (raw != options_.key->public_key()) {
        unanchored_announcements_.push_back({*std::move(next), i});
        return true;
      }
      pending_ = PendingTransition{i, *std::move(next), e.old_version, e.new_version, true};
      return true;
    }
    if (raw == key_->public_key()) {
      return FailEntry(i, "malformed key transition: it announces the key already in force");
    }
    pending_ = PendingTransition{i, *std::move(next), e.old_version, e.new_version, false};
    return true;
  }

  // A rollback acceptance states the tree it continued from: its own
  // index and the root of the entries before it, which the verifier has
  // just computed; the heads it abandoned must be this log's.
  bool CheckRollback(uint64_t i, const RollbackAccepted& e) {
    if (e.continued_size != i || e.continued_root != tree_.Root()) {
      return FailEntry(i, absl::StrFormat("the rollback acceptance says the log continued from "
                                          "%d entries with another root than entries 0..%d have",
                                          e.continued_size, i == 0 ? 0 : i - 1));
    }
    RollbackSeen seen;
    seen.entry = i;
    seen.continued_size = e.continued_size;
    seen.continued_root = e.continued_root;
    seen.actor = e.actor;
    for (const std::string& note : e.abandoned_heads) {
      absl::StatusOr<Checkpoint> cp = OpenWithKnownKey(note);
      if (!cp.ok()) {
        return FailEntry(i, absl::StrFormat("a head the rollback acceptance abandoned is not "
                                            "signed by the key in your key file (%s)",
                                            cp.status().message()));
      }
      seen.abandoned_sizes.push_back(cp->size);
      seen.abandoned_roots.push_back(cp->root);
    }
    report_.rollbacks.push_back(std::move(seen));
    return true;
  }

  // `note` opened with the key in force or an earlier one of the chain;
  // parsed only when the keys before the key file's are unknown.
  absl::StatusOr<Checkpoint> OpenWithKnownKey(std::string_view note) {
    if (!key_.has_value()) {
      ++report_.unchecked_heads;
      return ParseCheckpointNote(note);
    }
    absl::StatusOr<Checkpoint> cp = OpenCheckpoint(note, *key_);
    for (const FormerKey& k : former_keys_) {
      if (cp.ok()) break;
      cp = OpenCheckpoint(note, k.key);
    }
    return cp;
  }

  // "; a rollback accepted at entry N abandoned it ..." when `head` is a
  // head an accepted rollback abandoned; else "".
  std::string AbandonedBy(const Checkpoint& head) const {
    for (const RollbackSeen& r : report_.rollbacks) {
      for (size_t k = 0; k < r.abandoned_sizes.size(); ++k) {
        if (r.abandoned_sizes[k] == head.size && r.abandoned_roots[k] == head.root) {
          return absl::StrFormat(
              "; an administrator's rollback, accepted at entry %d, abandoned it: the log "
              "continued from %d entries (docs/AUDIT.md, Rollbacks)",
              r.entry, r.continued_size);
        }
      }
    }
    return "";
  }

  // Waits for the device signatures added so far; false (and the first
  // bad one reported) if one does not verify.
  bool FlushSignatures() {
    std::optional<uint64_t> bad = signatures_.Wait();
    report_.device_signatures = signatures_.added();
    if (!bad.has_value()) return true;
    return Fail(*bad, absl::StrFormat("entry %d", *bad),
                "the device signature of the batch does not verify with the key its enrolment "
                "entry recorded");
  }

  bool End(std::string_view payload) {
    if (!FlushSignatures()) return false;
    if (payload.size() != 12) return Fail(std::nullopt, "end record", "malformed end record");
    const uint64_t entries = GetInt(payload, 0, 8);
    const uint64_t heads = GetInt(payload, 8, 4);
    if (entries != tree_.size() || heads != heads_.size()) {
      return Fail(tree_.size() < entries ? std::optional<uint64_t>(tree_.size()) : std::nullopt,
                  "end record",
                  absl::StrFormat("the end record counts %d entries and %d heads, the file "
                                  "holds %d and %d: records were dropped or the file spliced",
                                  entries, heads, tree_.size(), heads_.size()));
    }
    char extra;
    if (in_.read(&extra, 1); in_.gcount() != 0) {
      return Fail(std::nullopt, "end record", "data follows the end record");
    }
    for (const auto& [size, head] : targets_) {
      if (size > tree_.size() && !CheckHeadKey(head)) return false;
    }
    if (pending_.has_value()) {
      return Fail(pending_->entry, absl::StrFormat("entry %d", pending_->entry),
                  absl::StrFormat("the key transition at entry %d is covered by no head signed by "
                                  "the key in force before it and the key it announces (a forged "
                                  "or unconfirmed key transition)",
                                  pending_->entry));
    }
    if (!key_.has_value()) {
      bool key_signs_a_head = false;
      for (const HeadRef& head : heads_) key_signs_a_head |= Signs(*options_.key, head.note);
      for (const FormerKey& announced : unanchored_announcements_) {
        if (key_signs_a_head) break;
        for (const HeadRef& head : heads_) {
          if (!Signs(announced.key, head.note)) continue;
          return Fail(announced.replaced_at, absl::StrFormat("entry %d", announced.replaced_at),
                      absl::StrFormat("%s is signed by the key the transition at entry %d "
                                      "announces, but no head signed by the key in your key "
                                      "file covers that transition, and no key transition in "
                                      "the export announces that key: a forged key transition, "
                                      "or your key file is another log's",
                                      head.label, announced.replaced_at));
        }
      }
      return Fail(std::nullopt, first_unsigned_record_,
                  absl::StrFormat("%s is not signed by the key in your key file, and no key "
                                  "transition in the export announces that key: the key is "
                                  "another log's, or the head was altered",
                                  first_unsigned_));
    }
    for (const auto& [size, head] : targets_) {
      if (size > tree_.size()) {
        std::string why = absl::StrFormat(
            "%s covers %d entries but the export holds only %d: entries were dropped or the "
            "file truncated",
            head.label, size, tree_.size());
        if (trusted_.has_value() && size == trusted_->checkpoint.size) {
          why += "; the log is shorter than your saved head (rolled back)";
          why += AbandonedBy(trusted_->checkpoint);
        }
        return Fail(tree_.size(), head.label, why);
      }
    }
    for (const HeadRef& head : heads_) {
      if (!report_.latest_head.has_value() || head.checkpoint.size > report_.latest_head->size) {
        report_.latest_head = head.checkpoint;
        report_.latest_head_note = head.note;
      }
    }
    report_.unsigned_tail = tree_.size() - std::min(max_head_size_, tree_.size());
    report_.final_key = key_->VerifierKey();
    if (options_.progress) options_.progress(bytes_, tree_.size());
    return true;
  }

  std::istream& in_;
  const VerifyOptions& options_;
  VerifyReport report_;
  uint64_t bytes_ = 0;
  bool in_entries_ = false;
  std::vector<HeadRef> heads_;
  std::optional<HeadRef> trusted_;
  std::multimap<uint64_t, HeadRef> targets_;  // by size
  // The key in force (nullopt while the key file's is a later key not yet
  // announced), the entry that announced it, its version once known, the
  // keys it replaced (oldest first), a transition not yet covered by a head.
  std::optional<NoteVerifier> key_;
  std::optional<uint64_t> key_since_;
  std::optional<uint32_t> key_version_;
  struct FormerKey {
    NoteVerifier key;
    uint64_t replaced_at;  // the entry of the transition that replaced it
  };
  std::vector<FormerKey> former_keys_;
  std::optional<PendingTransition> pending_;
  // Export heads checked with the key in force (transition heads aside).
  uint64_t heads_checked_ = 0;
  // Keys announced while the key in force was unknown, with their entries.
  std::vector<FormerKey> unanchored_announcements_;
  std::string first_unsigned_;         // label of the smallest head, when
  std::string first_unsigned_record_;  // not signed by the key file's key
  uint64_t max_head_size_ = 0;
  uint64_t last_matched_size_ = 0;
  CompactMerkleTree tree_;
  std::map<std::string, DeviceState> devices_;
  std::optional<uint64_t> next_position_;
  SignatureChecker signatures_{options_.threads};
};

}  // namespace

std::string ExportHeadRecord(std::string_view note) { return Record(ExportRecord::kHead, note); }

std::string ExportEntryRecord(uint64_t index, std::string_view entry) {
  std::string payload;
  payload.reserve(40 + entry.size());
  PutInt(&payload, index, 8);
  payload.append(HashBytes(LeafHash(entry)));
  payload.append(entry);
  return Record(ExportRecord::kEntry, payload);
}

std::string ExportEndRecord(uint64_t entries, uint32_t heads) {
  std::string payload;
  PutInt(&payload, entries, 8);
  PutInt(&payload, heads, 4);
  return Record(ExportRecord::kEnd, payload);
}

std::string FormatHeadLine(const Checkpoint& checkpoint) {
  std::string_view root = HashBytes(checkpoint.root);
  return absl::StrFormat("latest head: %s, size %d, root %s", checkpoint.origin, checkpoint.size,
                         absl::Base64Escape(absl::string_view(root.data(), root.size())));
}

absl::StatusOr<TrustedHead> ParseTrustedHeadForm(std::string_view text, const NoteVerifier& key) {
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return absl::InvalidArgumentError("the saved head is empty");
  // A signed note spans lines and ends with its signature lines; the
  // printed head is one line.
  std::string_view line = text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  if (line.find('\n') != std::string_view::npos) {
    absl::StatusOr<Checkpoint> cp = ParseCheckpointNote(text);
    if (!cp.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("a saved signed head that does not parse: %s", cp.status().message()));
    }
    if (cp->origin != key.key_name()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the saved head is of log \"%s\", the key file's is \"%s\"", cp->origin, key.key_name()));
    }
    return TrustedHead{*std::move(cp), std::string(text)};
  }
  constexpr std::string_view kLabel = "latest head: ";
  if (line.starts_with(kLabel)) line.remove_prefix(kLabel.size());
  const size_t root_at = line.rfind(", root ");
  const size_t size_at =
      root_at == std::string_view::npos ? std::string_view::npos : line.rfind(", size ", root_at);
  if (size_at == std::string_view::npos) {
    return absl::InvalidArgumentError(
        "the saved head is neither a signed note (--save-head) nor the line `audit verify` "
        "prints (\"latest head: ORIGIN, size N, root BASE64\")");
  }
  const std::string_view origin = line.substr(0, size_at);
  const std::string_view size = line.substr(size_at + 7, root_at - size_at - 7);
  const std::string_view root = line.substr(root_at + 7);
  if (origin != key.key_name()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the saved head is of log \"%s\", the key file's is \"%s\"",
                        std::string(origin), key.key_name()));
  }
  // The checkpoint parser checks the size and root as strictly as in a note.
  absl::StatusOr<Checkpoint> cp = ParseCheckpoint(
      absl::StrFormat("%s\n%s\n%s\n", std::string(origin), std::string(size), std::string(root)));
  if (!cp.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the saved head line is malformed: %s", cp.status().message()));
  }
  return TrustedHead{*std::move(cp), ""};
}

absl::StatusOr<Checkpoint> ParseTrustedHead(std::string_view text, const NoteVerifier& key) {
  ASSIGN_OR_RETURN(TrustedHead head, ParseTrustedHeadForm(text, key));
  if (head.note.empty()) return head.checkpoint;
  absl::StatusOr<Checkpoint> cp = OpenCheckpoint(head.note, key);
  if (!cp.ok()) {
    return absl::Status(cp.status().code(),
                        absl::StrFormat("a saved signed head that does not verify with the "
                                        "key file: %s",
                                        cp.status().message()));
  }
  return cp;
}

VerifyReport VerifyExport(std::istream& in, const VerifyOptions& options) {
  return Verifier(in, options).Run();
}

}  // namespace fieldsync::audit
