#include "keys/case_keys.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::keys {
namespace {

using crypto::FieldCipher;
using crypto::MasterKeyRing;
using crypto::SecretBytes;

constexpr size_t kDekSize = 32;
// The value that replaces an erased case's wrapped DEK. A wrapped secret
// starts with its format version (0x01), so the two never collide.
constexpr std::string_view kErasedMarker("\0", 1);

std::string CaseHex(const fieldsync::Uuid& case_id) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(case_id.data()), case_id.size()));
}

absl::Status Erased() { return absl::NotFoundError("case key erased"); }

}  // namespace

CaseKeyStore::CaseKeyStore(storage::Store* store, const MasterKeyRing* ring,
                           CaseKeyStoreOptions options)
    : store_(store), ring_(ring), options_(options) {}

std::string CaseKeyStore::WrapPurpose(const fieldsync::Uuid& case_id) {
  return absl::StrCat("case-dek/", CaseHex(case_id));
}

absl::StatusOr<SecretBytes> CaseKeyStore::CreateDek(const fieldsync::Uuid& case_id, Random& random,
                                                    storage::WriteBatch* batch) {
  ASSIGN_OR_RETURN(NewDek made, MakeDek(case_id, random));
  batch->Put(storage::Cf::kKeys, made.store_key, made.wrapped);
  return std::move(made.dek);
}

absl::StatusOr<CaseKeyStore::NewDek> CaseKeyStore::MakeDek(const fieldsync::Uuid& case_id,
                                                           Random& random) {
  const std::string key = storage::EncodeCaseDekKey(case_id);
  absl::StatusOr<std::string> existing = store_->Get(storage::Cf::kKeys, key);
  if (existing.ok()) {
    if (*existing == kErasedMarker) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "case %s was erased; an erased case cannot get a new data key, so its identifying "
          "and sensitive fields can no longer be written (dimension fields can): drop those "
          "changes",
          fieldsync::FormatUuid(case_id)));
    }
    return absl::AlreadyExistsError(
        absl::StrFormat("case %s already has a data key", CaseHex(case_id)));
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  SecretBytes dek(kDekSize);
  random.Fill(dek.mutable_span());
  ASSIGN_OR_RETURN(std::string wrapped, ring_->Wrap(WrapPurpose(case_id), dek.span(), random));
  return NewDek{std::move(dek), key, std::move(wrapped)};
}

CaseKeyStore::NewKeyCommit CaseKeyStore::BeginNewKeyCommit() {
  absl::MutexLock lock(&commits_mu_);
  const uint64_t id = next_commit_id_++;
  open_commits_.insert(id);
  return NewKeyCommit(this, id);
}

void CaseKeyStore::EndKeyCommit(uint64_t id) {
  absl::MutexLock lock(&commits_mu_);
  open_commits_.erase(id);
  commit_ended_.SignalAll();
}

bool CaseKeyStore::CommitOpenBefore(uint64_t id) {
  return !open_commits_.empty() && *open_commits_.begin() < id;
}

void CaseKeyStore::AwaitEarlierKeyCommits() {
  // Only the commits opened before now: later ones read the ring after the
  // caller installed its new version, and cannot keep the wait going.
  uint64_t before;
  bool waits;
  {
    absl::MutexLock lock(&commits_mu_);
    before = next_commit_id_;
    waits = CommitOpenBefore(before);
  }
  if (waits && options_.on_rewrap_waits) options_.on_rewrap_waits();
  absl::MutexLock lock(&commits_mu_);
  while (CommitOpenBefore(before)) commit_ended_.Wait(&commits_mu_);
}

CaseKeyStore::NewKeyCommit::NewKeyCommit(NewKeyCommit&& other) noexcept
    : keys_(std::exchange(other.keys_, nullptr)), id_(other.id_) {}

CaseKeyStore::NewKeyCommit& CaseKeyStore::NewKeyCommit::operator=(NewKeyCommit&& other) noexcept {
  if (this != &other) {
    if (keys_ != nullptr) keys_->EndKeyCommit(id_);
    keys_ = std::exchange(other.keys_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

CaseKeyStore::NewKeyCommit::~NewKeyCommit() {
  if (keys_ != nullptr) keys_->EndKeyCommit(id_);
}

absl::StatusOr<std::string> CaseKeyStore::NewKeyCommit::Current(std::string_view store_key,
                                                                std::string_view wrapped,
                                                                Random& random) const {
  ASSIGN_OR_RETURN(uint32_t version, MasterKeyRing::WrappedVersion(wrapped));
  // Read after this commit was opened: if a rotation installed a newer
  // version before, this sees it; if after, its RewrapAll waits for this
  // commit to end and then finds the key in the store.
  if (version == keys_->ring_->current_version()) return std::string(wrapped);
  ASSIGN_OR_RETURN(fieldsync::Uuid case_id, storage::DecodeCaseDekKey(store_key));
  return keys_->ring_->Rewrap(WrapPurpose(case_id), wrapped, random);
}

absl::StatusOr<std::shared_ptr<const CaseKeyStore::CachedKey>> CaseKeyStore::Lookup(
    const fieldsync::Uuid& case_id) {
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(case_id);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    epoch = erase_epoch_;
  }
  absl::StatusOr<std::string> wrapped =
      store_->Get(storage::Cf::kKeys, storage::EncodeCaseDekKey(case_id));
  if (absl::IsNotFound(wrapped.status())) {
    return absl::NotFoundError(absl::StrFormat(
        "no data key for case %s: the case was never created here", CaseHex(case_id)));
  }
  RETURN_IF_ERROR(wrapped.status());
  if (*wrapped == kErasedMarker) return Erased();
  ASSIGN_OR_RETURN(SecretBytes dek, ring_->Unwrap(WrapPurpose(case_id), *wrapped));
  ASSIGN_OR_RETURN(FieldCipher cipher, FieldCipher::Create(dek.span()));
  auto entry = std::make_shared<const CachedKey>(CachedKey{std::move(dek), std::move(cipher)});

  absl::MutexLock lock(&mu_);
  if (epoch != erase_epoch_ || options_.cache_capacity == 0) return entry;
  auto it = index_.find(case_id);
  if (it != index_.end()) {
    // Another thread cached it meanwhile: keep one entry.
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  lru_.emplace_front(case_id, entry);
  index_.emplace(case_id, lru_.begin());
  while (lru_.size() > options_.cache_capacity) {
    // Dropping the last reference destroys the entry: SecretBytes wipes the
    // DEK and freeing the AES-GCM contexts wipes their key schedules.
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return entry;
}

absl::StatusOr<SecretBytes> CaseKeyStore::GetDek(const fieldsync::Uuid& case_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<const CachedKey> entry, Lookup(case_id));
  return entry->dek.Clone();
}

absl::StatusOr<std::shared_ptr<const FieldCipher>> CaseKeyStore::GetFieldCipher(
    const fieldsync::Uuid& case_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<const CachedKey> entry, Lookup(case_id));
  // Aliasing: the handle keeps the whole entry (and its DEK) alive.
  return std::shared_ptr<const FieldCipher>(entry, &entry->cipher);
}

void CaseKeyStore::Evict(const fieldsync::Uuid& case_id) {
  auto it = index_.find(case_id);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

absl::StatusOr<RewrapCounts> CaseKeyStore::RewrapAll(Random& random) {
  // A new key made under an older version may be on its way into the store
  // (NewKeyCommit): let it land first, so that the scan below sees it.
  AwaitEarlierKeyCommits();
  RewrapCounts counts;
  const uint32_t current = ring_->current_version();
  const std::string prefix = storage::CaseDekPrefix();
  const std::string upper = storage::PrefixUpperBound(prefix);
  std::string start = prefix;
  const size_t step = options_.rewrap_batch_size == 0 ? 1 : options_.rewrap_batch_size;
  for (bool done = false; !done;) {
    // One step: read up to `step` keys and commit their rewraps, under the
    // erasure lock so that no key erased in between is written back.
    absl::MutexLock erase_lock(&erase_mu_);
    storage::WriteBatch batch;
    std::string last_key;
    {
      std::unique_ptr<storage::Iterator> it = store_->NewIterator(storage::Cf::kKeys, start, upper);
      for (size_t n = 0; it->Valid() && n < step; ++n, it->Next()) {
        ++counts.examined;
        last_key = std::string(it->key());
        const std::string_view value = it->value();
        if (value == kErasedMarker) {
          ++counts.erased;
          continue;
        }
        ASSIGN_OR_RETURN(uint32_t version, MasterKeyRing::WrappedVersion(value));
        if (version == current) {
          ++counts.already_current;
          continue;
        }
        ASSIGN_OR_RETURN(fieldsync::Uuid case_id, storage::DecodeCaseDekKey(it->key()));
        ASSIGN_OR_RETURN(std::string rewrapped, ring_->Rewrap(WrapPurpose(case_id), value, random));
        batch.Put(storage::Cf::kKeys, it->key(), rewrapped);
        ++counts.rewrapped;
      }
      RETURN_IF_ERROR(it->status());
      done = !it->Valid();
    }
    if (batch.Count() > 0) {
      RETURN_IF_ERROR(store_->Commit(&batch));
      ++counts.batches;
    }
    // The smallest key after last_key.
    start = last_key + std::string(1, '\0');
  }
  return counts;
}

absl::Status CaseKeyStore::Erase(const fieldsync::Uuid& case_id, storage::WriteBatch* batch) {
  RETURN_IF_ERROR(CommitErasure(case_id, batch));
  return CompactErased(case_id);
}

absl::Status CaseKeyStore::CommitErasure(const fieldsync::Uuid& case_id,
                                         storage::WriteBatch* batch) {
  const std::string key = storage::EncodeCaseDekKey(case_id);
  absl::MutexLock erase_lock(&erase_mu_);
  storage::WriteBatch own;
  if (batch == nullptr) batch = &own;
  batch->Put(storage::Cf::kKeys, key, kErasedMarker);
  RETURN_IF_ERROR(store_->Commit(batch));
  absl::MutexLock lock(&mu_);
  Evict(case_id);
  ++erase_epoch_;
  return absl::OkStatus();
}

absl::Status CaseKeyStore::CompactErased(const fieldsync::Uuid& case_id) {
  // The erasure hook: the marker's Put shadows the wrapped DEK; compacting
  // the key's range rewrites the SST files without the shadowed value, and
  // the flush inside CompactRange retires the WAL files that held it.
  const std::string key = storage::EncodeCaseDekKey(case_id);
  return store_->CompactRange(storage::Cf::kKeys, key, key);
}

absl::StatusOr<DekState> CaseKeyStore::State(const fieldsync::Uuid& case_id) const {
  absl::StatusOr<std::string> value =
      store_->Get(storage::Cf::kKeys, storage::EncodeCaseDekKey(case_id));
  if (absl::IsNotFound(value.status())) return DekState::kAbsent;
  RETURN_IF_ERROR(value.status());
  return *value == kErasedMarker ? DekState::kErased : DekState::kPresent;
}

absl::StatusOr<uint32_t> CaseKeyStore::WrappedVersion(const fieldsync::Uuid& case_id) const {
  absl::StatusOr<std::string> value =
      store_->Get(storage::Cf::kKeys, storage::EncodeCaseDekKey(case_id));
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(absl::StrFormat("no data key for case %s", CaseHex(case_id)));
  }
  RETURN_IF_ERROR(value.status());
  if (*value == kErasedMarker) return Erased();
  return MasterKeyRing::WrappedVersion(*value);
}

size_t CaseKeyStore::cached_count() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace fieldsync::keys
