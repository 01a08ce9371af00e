#include "sync/case_key_sealer.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/hmac.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::sync {
namespace {

constexpr std::string_view kDigestKeyLabel = "fieldsync/field-digest/v1";

crypto::FieldAddress CipherAddress(const Uuid& case_id, const Uuid& record_id,
                                   std::string_view field) {
  return crypto::FieldAddress{case_id, record_id, field, keys::kCaseDekVersion};
}

absl::StatusOr<crypto::FieldAddress> Address(const FieldAddress& at, Uuid* case_id,
                                             Uuid* record_id) {
  ASSIGN_OR_RETURN(*case_id, ParseUuid(at.case_id));
  ASSIGN_OR_RETURN(*record_id, ParseUuid(at.record_id));
  return CipherAddress(*case_id, *record_id, at.field);
}

// K_d of the class comment: HMAC-SHA256(DEK, "fieldsync/field-digest/v1").
crypto::HmacSha256Tag DigestKey(const crypto::SecretBytes& dek) {
  return crypto::HmacSha256(dek.span(), crypto::AsBytes(kDigestKeyLabel));
}

std::string DigestUnder(crypto::HmacSha256Key& key, std::string_view field,
                        std::string_view plaintext) {
  std::string data;
  data.reserve(4 + field.size() + plaintext.size());
  for (int i = 3; i >= 0; --i) data.push_back(static_cast<char>((field.size() >> (8 * i)) & 0xFF));
  data.append(field);
  data.append(plaintext);
  crypto::HmacSha256Tag tag = key.Tag(crypto::AsBytes(data));
  return std::string(tag.begin(), tag.end());
}

}  // namespace

struct CaseKeySealer::CaseKeys {
  CaseKeys(std::shared_ptr<const crypto::FieldCipher> c, const crypto::HmacSha256Tag& k_d)
      : cipher(std::move(c)), digest_key(k_d) {}
  CaseKeys(const CaseKeys&) = delete;
  CaseKeys& operator=(const CaseKeys&) = delete;

  std::shared_ptr<const crypto::FieldCipher> cipher;
  // K_d, set up once per case for its digests (its context wiped when
  // freed). Used by the scope's one thread only.
  crypto::HmacSha256Key digest_key;
};

// Each case's keys on the heap, so that a rehash moves pointers, never
// key bytes (which would leave unwiped copies behind).
class CaseKeySealer::Scope final : public SealScope {
 public:
  absl::flat_hash_map<Uuid, std::unique_ptr<CaseKeys>> cases;

  // `text` as a UUID, parsed once for a run of fields with the same id (a
  // change's fields share its case and record ids).
  absl::StatusOr<Uuid> Parse(std::string_view text, std::string* last_text, Uuid* last) {
    if (!last_text->empty() && text == *last_text) return *last;
    ASSIGN_OR_RETURN(*last, ParseUuid(text));
    last_text->assign(text);
    return *last;
  }
  std::string case_text, record_text;
  Uuid case_id{}, record_id{};
};

std::unique_ptr<SealScope> CaseKeySealer::NewScope() { return std::make_unique<Scope>(); }

absl::StatusOr<CaseKeySealer::CaseKeys*> CaseKeySealer::KeysIn(
    SealScope* scope, const Uuid& case_id, std::vector<KeyWrite>* key_writes,
    std::unique_ptr<CaseKeys>* unscoped) {
  // Only scopes this class made reach here (NewScope's REQUIRES).
  auto* mine = static_cast<Scope*>(scope);
  if (mine != nullptr) {
    auto it = mine->cases.find(case_id);
    if (it != mine->cases.end()) return it->second.get();
  }
  crypto::SecretBytes dek;  // wiped when it goes out of scope
  ASSIGN_OR_RETURN(std::shared_ptr<const crypto::FieldCipher> cipher,
                   Key(case_id, key_writes, &dek));
  crypto::HmacSha256Tag digest_key = DigestKey(dek);
  auto keys = std::make_unique<CaseKeys>(std::move(cipher), digest_key);
  crypto::Cleanse(std::span<uint8_t>(digest_key));
  if (mine == nullptr) {
    *unscoped = std::move(keys);
    return unscoped->get();
  }
  return mine->cases.emplace(case_id, std::move(keys)).first->second.get();
}

absl::StatusOr<std::string> CaseKeySealer::SealIn(SealScope* scope, const FieldAddress& at,
                                                  std::string_view plaintext,
                                                  std::vector<KeyWrite>* key_writes) {
  if (scope == nullptr) return Seal(at, plaintext, key_writes);
  auto* mine = static_cast<Scope*>(scope);  // NewScope's REQUIRES
  ASSIGN_OR_RETURN(const Uuid case_id, mine->Parse(at.case_id, &mine->case_text, &mine->case_id));
  ASSIGN_OR_RETURN(const Uuid record_id,
                   mine->Parse(at.record_id, &mine->record_text, &mine->record_id));
  const crypto::FieldAddress address = CipherAddress(case_id, record_id, at.field);
  std::unique_ptr<CaseKeys> unscoped;
  ASSIGN_OR_RETURN(CaseKeys * keys, KeysIn(scope, case_id, key_writes, &unscoped));
  return keys->cipher->Encrypt(address, plaintext, *random_);
}

absl::StatusOr<std::string> CaseKeySealer::DigestIn(SealScope* scope, std::string_view case_text,
                                                    std::string_view field,
                                                    std::string_view plaintext,
                                                    std::vector<KeyWrite>* key_writes) {
  auto* mine = static_cast<Scope*>(scope);  // NewScope's REQUIRES; may be null
  ASSIGN_OR_RETURN(const Uuid case_id,
                   mine != nullptr ? mine->Parse(case_text, &mine->case_text, &mine->case_id)
                                   : ParseUuid(case_text));
  std::unique_ptr<CaseKeys> unscoped;
  ASSIGN_OR_RETURN(CaseKeys * keys, KeysIn(scope, case_id, key_writes, &unscoped));
  return DigestUnder(keys->digest_key, field, plaintext);
}

absl::StatusOr<std::shared_ptr<const crypto::FieldCipher>> CaseKeySealer::Key(
    const Uuid& case_id, std::vector<KeyWrite>* key_writes, crypto::SecretBytes* dek) {
  auto durable = [&]() -> absl::StatusOr<std::shared_ptr<const crypto::FieldCipher>> {
    ASSIGN_OR_RETURN(auto cipher, keys_->GetFieldCipher(case_id));
    if (dek != nullptr) {
      ASSIGN_OR_RETURN(*dek, keys_->GetDek(case_id));
    }
    return cipher;
  };
  const std::string store_key = storage::EncodeCaseDekKey(case_id);
  // A new case's key is pending for all the seals of its first batch: look
  // there first, which spares those seals a store lookup each.
  bool maybe_pending;
  {
    absl::ReaderMutexLock lock(&mu_);
    maybe_pending = pending_.contains(store_key);
  }
  absl::StatusOr<std::shared_ptr<const crypto::FieldCipher>> cipher =
      absl::NotFoundError("pending");
  if (!maybe_pending) {
    cipher = durable();
    if (cipher.ok() || !absl::IsNotFound(cipher.status())) return cipher;
  }
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(store_key);
  if (it == pending_.end()) {
    // The store is read once more here, by MakeDek: a key another unit
    // committed meanwhile is found there (kAlreadyExists) and used.
    absl::StatusOr<keys::CaseKeyStore::NewDek> dek_made = keys_->MakeDek(case_id, *random_);
    if (absl::IsAlreadyExists(dek_made.status())) return durable();
    // kFailedPrecondition here when the case was erased: nothing is sealed.
    if (!dek_made.ok()) return dek_made.status();
    keys::CaseKeyStore::NewDek made = *std::move(dek_made);
    ASSIGN_OR_RETURN(crypto::FieldCipher made_cipher, crypto::FieldCipher::Create(made.dek.span()));
    PendingKey pending{std::make_shared<const crypto::FieldCipher>(std::move(made_cipher)),
                       std::move(made.dek), std::move(made.wrapped)};
    it = pending_.emplace(store_key, std::move(pending)).first;
  }
  // Once per key per vector; a unit's seals of one case come together, so
  // the last entry is the usual match.
  bool listed = false;
  for (auto w = key_writes->rbegin(); w != key_writes->rend() && !listed; ++w) {
    listed = w->key == store_key;
  }
  if (!listed) key_writes->push_back(KeyWrite{store_key, it->second.wrapped});
  if (dek != nullptr) *dek = it->second.dek.Clone();
  return it->second.cipher;
}

absl::StatusOr<std::string> CaseKeySealer::Seal(const FieldAddress& at, std::string_view plaintext,
                                                std::vector<KeyWrite>* key_writes) {
  Uuid case_id, record_id;
  ASSIGN_OR_RETURN(crypto::FieldAddress address, Address(at, &case_id, &record_id));
  ASSIGN_OR_RETURN(auto cipher, Key(case_id, key_writes, nullptr));
  return cipher->Encrypt(address, plaintext, *random_);
}

absl::Status CaseKeySealer::Keep(std::vector<KeyWrite>* writes) {
  absl::MutexLock lock(&mu_);
  // Opened before any key's wrapping is chosen below (NewKeyCommit).
  key_commit_.emplace(keys_->BeginNewKeyCommit());
  // The writes still pending, and whether the store holds their keys, in
  // one read.
  std::vector<size_t> candidates;
  std::vector<std::string_view> candidate_keys;
  for (size_t i = 0; i < writes->size(); ++i) {
    const KeyWrite& w = (*writes)[i];
    auto it = pending_.find(w.key);
    if (it == pending_.end() || it->second.wrapped != w.value) continue;  // durable already
    candidates.push_back(i);
    candidate_keys.push_back(w.key);
  }
  std::vector<absl::StatusOr<std::string>> stored =
      store_->MultiGet(storage::Cf::kKeys, candidate_keys);
  std::vector<KeyWrite> kept;
  kept.reserve(candidates.size());
  for (size_t j = 0; j < candidates.size(); ++j) {
    KeyWrite& w = (*writes)[candidates[j]];
    // Looked up again: a write listed twice finds what the first left.
    auto it = pending_.find(w.key);
    if (it == pending_.end() || it->second.wrapped != w.value) continue;
    if (stored[j].ok()) {  // durable through another write, or erased since
      pending_.erase(it);
      continue;
    }
    if (!absl::IsNotFound(stored[j].status())) {
      key_commit_.reset();
      return stored[j].status();
    }
    // Under the master key's current version, even if made under an
    // older one before a rotation.
    absl::StatusOr<std::string> current = key_commit_->Current(w.key, w.value, *random_);
    if (!current.ok()) {
      key_commit_.reset();
      return current.status();
    }
    w.value = *std::move(current);
    kept.push_back(std::move(w));
  }
  if (kept.empty()) key_commit_.reset();
  *writes = std::move(kept);
  return absl::OkStatus();
}

void CaseKeySealer::AfterCommit(const std::vector<KeyWrite>& writes,
                                const absl::Status& committed) {
  absl::MutexLock lock(&mu_);
  if (committed.ok()) {
    for (const KeyWrite& w : writes) pending_.erase(w.key);
  }
  key_commit_.reset();
}

size_t CaseKeySealer::pending_keys() const {
  absl::MutexLock lock(&mu_);
  return pending_.size();
}

absl::StatusOr<std::string> CaseKeySealer::Open(const FieldAddress& at,
                                                std::string_view sealed) const {
  Uuid case_id, record_id;
  ASSIGN_OR_RETURN(crypto::FieldAddress address, Address(at, &case_id, &record_id));
  ASSIGN_OR_RETURN(auto cipher, keys_->GetFieldCipher(case_id));
  absl::StatusOr<std::string> plain = cipher->Decrypt(address, sealed);
  if (absl::IsInvalidArgument(plain.status())) {
    return absl::DataLossError(absl::StrFormat("field %s of record %s in case %s does not open",
                                               at.field, at.record_id, at.case_id));
  }
  return plain;
}

absl::StatusOr<std::string> CaseKeySealer::Digest(std::string_view case_text,
                                                  std::string_view field,
                                                  std::string_view plaintext,
                                                  std::vector<KeyWrite>* key_writes) {
  return DigestIn(nullptr, case_text, field, plaintext, key_writes);
}

}  // namespace fieldsync::sync
