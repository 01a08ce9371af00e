#include "admin/sealing_keys.h"

#include <limits>

#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "protocol/events.h"

namespace fieldsync::admin {

absl::StatusOr<std::shared_ptr<const SealingKeySet>> SealingKeySet::Prepare(
    std::span<const SealingKeyPair> keys) {
  if (keys.empty()) return absl::InvalidArgumentError("no sealing key");
  std::vector<PreparedSealingKey> prepared;
  prepared.reserve(keys.size());
  for (const SealingKeyPair& k : keys) {
    if (!prepared.empty() && k.key_id <= prepared.back().key_id) {
      return absl::InvalidArgumentError("sealing keys are not in ascending id order");
    }
    ASSIGN_OR_RETURN(crypto::X25519PrivateKey key,
                     crypto::X25519PrivateKey::Create(k.private_key.span()));
    prepared.push_back(PreparedSealingKey{k.key_id, k.public_key, k.not_after, std::move(key)});
  }
  return std::shared_ptr<const SealingKeySet>(new SealingKeySet(std::move(prepared)));
}

absl::StatusOr<std::shared_ptr<const SealingKeySet>> SealingKeySet::Single(
    uint32_t key_id, std::span<const uint8_t> private_key) {
  std::vector<SealingKeyPair> keys(1);
  keys[0].key_id = key_id;
  keys[0].private_key = crypto::SecretBytes(private_key);
  ASSIGN_OR_RETURN(keys[0].public_key, crypto::X25519PublicFromPrivate(private_key));
  return Prepare(keys);
}

SealingKeyVerdict SealingKeySet::Check(uint32_t key_id, absl::Time now,
                                       const PreparedSealingKey** key,
                                       std::optional<absl::Time>* retired_at) const {
  *key = nullptr;
  *retired_at = std::nullopt;
  // Key ids are given out in order from 1, so every id below the current
  // one was a key of this server, kept or deleted.
  if (key_id == 0 || key_id > current().key_id) return SealingKeyVerdict::kUnknown;
  for (const PreparedSealingKey& k : keys_) {
    if (k.key_id != key_id) continue;
    if (now <= k.not_after) {
      *key = &k;
      return SealingKeyVerdict::kAccepted;
    }
    *retired_at = k.not_after;
    return SealingKeyVerdict::kRetired;
  }
  return SealingKeyVerdict::kRetired;
}

absl::StatusOr<SealingKeyRotationResult> SealingKeyRotation::Rotate(
    const std::string& actor, const SealingKeyCutoff& cutoff) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock->Now();
  const absl::Time until =
      cutoff.at.has_value() ? *cutoff.at : now + cutoff.after.value_or(options_.default_overlap);
  if (until < now) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the replaced key's cutoff %s is in the past: give a later date, or retire the key at "
        "once with `--previous-until now`",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", until, absl::UTCTimeZone())));
  }
  if (until - now > kMaxSealingKeyOverlap) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the replaced key's cutoff %s is more than 365 days ahead: choose an earlier one",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", until, absl::UTCTimeZone())));
  }
  ASSIGN_OR_RETURN(std::vector<SealingKeyPair> stored,
                   LoadSealingKeys(*options_.store, *options_.ring));
  SealingKeyRotationResult result;
  result.old_key_id = stored.back().key_id;
  if (result.old_key_id == std::numeric_limits<uint32_t>::max()) {
    return absl::FailedPreconditionError("the sealing key ids are used up (4294967295)");
  }
  result.new_key_id = result.old_key_id + 1;
  result.previous_until = until;

  std::vector<SealingKeyPair> kept;
  storage::WriteBatch batch;
  for (size_t i = 0; i + 1 < stored.size(); ++i) {
    if (now > stored[i].not_after) {
      // Refused already; nothing sealed to it is kept, so its private half
      // has nothing left to open.
      DeleteSealingKey(stored[i].key_id, &batch);
      result.deleted_key_ids.push_back(stored[i].key_id);
    } else {
      kept.push_back(std::move(stored[i]));
    }
  }
  SealingKeyPair& replaced = kept.emplace_back(std::move(stored.back()));
  replaced.not_after = until;
  crypto::X25519KeyPair pair = crypto::GenerateX25519(*options_.random);
  SealingKeyPair& added = kept.emplace_back();
  added.key_id = result.new_key_id;
  added.private_key = std::move(pair.private_key);
  added.public_key = pair.public_key;
  result.new_public_key = pair.public_key;
  // Prepared before the commit, so that nothing is written that the
  // server could not then use.
  ASSIGN_OR_RETURN(result.keys, SealingKeySet::Prepare(kept));

  RETURN_IF_ERROR(PutSealingKey(added, *options_.ring, *options_.random, &batch));
  PutSealingKeyIds(kept, &batch);
  audit::AuditSession session(options_.audit, &batch);
  protocol::KeyRotated event;
  event.actor = actor;
  event.purpose = std::string(kSealingKeyPurpose);
  event.old_version = result.old_key_id;
  event.new_version = result.new_key_id;
  event.new_public_key.assign(pair.public_key.begin(), pair.public_key.end());
  ASSIGN_OR_RETURN(result.audit_leaf_index, session.Append(protocol::Event{now, std::move(event)}));
  RETURN_IF_ERROR(options_.store->Commit(&batch));
  session.Committed();
  options_.live->Install(result.keys);
  log::Info("sealing_key.rotated",
            {{"old_key", result.old_key_id},
             {"new_key", result.new_key_id},
             {"previous_until", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", until, absl::UTCTimeZone())},
             {"deleted_keys", result.deleted_key_ids.size()},
             {"actor", actor}});
  return result;
}

}  // namespace fieldsync::admin
