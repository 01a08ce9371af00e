#include "protocol/receipt.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "protocol/events.h"
#include "protocol/merkle.h"

namespace fieldsync::protocol {
namespace {

// The head of a SignedTreeHead message opened with `key`, its size and
// root fields checked against the note.
absl::StatusOr<protocol::Checkpoint> OpenHead(const v1::SignedTreeHead& head,
                                              const protocol::NoteVerifier& key,
                                              std::string_view what) {
  absl::StatusOr<protocol::Checkpoint> cp = protocol::OpenCheckpoint(head.note(), key);
  if (!cp.ok()) {
    return absl::UnauthenticatedError(absl::StrFormat(
        "%s is not signed by the audit key this device holds: %s", what, cp.status().message()));
  }
  if (head.tree_size() != cp->size || head.root_hash() != protocol::HashBytes(cp->root)) {
    return absl::UnauthenticatedError(
        absl::StrFormat("%s: the size or root field disagrees with the signed note", what));
  }
  return cp;
}

// `entry` at `index` is in the tree of `cp`.
absl::Status CheckIncluded(const std::string& entry, uint64_t index,
                           const google::protobuf::RepeatedPtrField<std::string>& proof,
                           const protocol::Checkpoint& cp, std::string_view what) {
  std::vector<std::string> hashes(proof.begin(), proof.end());
  absl::Status s = protocol::VerifyInclusion(protocol::HashBytes(protocol::LeafHash(entry)), index,
                                             cp.size, hashes, protocol::HashBytes(cp.root));
  if (!s.ok()) {
    return absl::UnauthenticatedError(
        absl::StrFormat("%s: the inclusion proof does not lead to the signed root", what));
  }
  return absl::OkStatus();
}

// The new key a key-transition entry announces.
absl::StatusOr<crypto::Ed25519PublicKey> AnnouncedKey(const std::string& entry) {
  absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(entry);
  const auto* rotated = event.ok() ? std::get_if<protocol::KeyRotated>(&event->body) : nullptr;
  if (rotated == nullptr || rotated->purpose != protocol::kAuditSigningPurpose ||
      rotated->new_public_key.size() != crypto::kEd25519PublicKeySize) {
    return absl::UnauthenticatedError(
        "a key transition's entry is not an audit-signing KeyRotated event with a 32-byte key");
  }
  crypto::Ed25519PublicKey key;
  std::copy(rotated->new_public_key.begin(), rotated->new_public_key.end(), key.begin());
  return key;
}

}  // namespace

absl::StatusOr<ReceiptVerifier> ReceiptVerifier::Create(std::string_view origin,
                                                        std::span<const uint8_t> public_key) {
  if (public_key.size() != crypto::kEd25519PublicKeySize) {
    return absl::InvalidArgumentError("the audit public key is not 32 bytes");
  }
  crypto::Ed25519PublicKey key;
  std::copy(public_key.begin(), public_key.end(), key.begin());
  ASSIGN_OR_RETURN(protocol::NoteVerifier verifier,
                   protocol::NoteVerifier::FromPublicKey(origin, key));
  return ReceiptVerifier(std::move(verifier));
}

absl::StatusOr<protocol::Checkpoint> ReceiptVerifier::Verify(const v1::AuditReceipt& receipt,
                                                             std::string_view device_id) {
  // The transitions after the one that announced the key held (all of
  // them when it is the log's first key), followed on a copy: a failed
  // check changes nothing.
  const auto& transitions = receipt.key_transitions();
  int start = 0;
  for (int i = 0; i < transitions.size(); ++i) {
    absl::StatusOr<crypto::Ed25519PublicKey> announced = AnnouncedKey(transitions[i].entry());
    if (announced.ok() && *announced == key_.public_key()) start = i + 1;
  }
  protocol::NoteVerifier key = key_;
  for (int i = start; i < transitions.size(); ++i) {
    const v1::AuditKeyTransition& t = transitions[i];
    const std::string what = absl::StrFormat("the key transition at entry %d", t.leaf_index());
    ASSIGN_OR_RETURN(crypto::Ed25519PublicKey announced, AnnouncedKey(t.entry()));
    ASSIGN_OR_RETURN(protocol::Checkpoint cp, OpenHead(t.head(), key, what));
    ASSIGN_OR_RETURN(protocol::NoteVerifier next,
                     protocol::NoteVerifier::FromPublicKey(key.key_name(), announced));
    if (!protocol::OpenCheckpoint(t.head().note(), next).ok()) {
      return absl::UnauthenticatedError(
          absl::StrFormat("%s: its head is not signed by the key it announces", what));
    }
    RETURN_IF_ERROR(CheckIncluded(t.entry(), t.leaf_index(), t.inclusion_proof(), cp, what));
    key = std::move(next);
  }
  ASSIGN_OR_RETURN(protocol::Checkpoint cp, OpenHead(receipt.head(), key, "the receipt's head"));
  absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(receipt.entry());
  const auto* batch = event.ok() ? std::get_if<protocol::BatchAccepted>(&event->body) : nullptr;
  if (batch == nullptr || batch->device_id != device_id) {
    return absl::UnauthenticatedError("the receipt's entry is not a batch of this device");
  }
  RETURN_IF_ERROR(CheckIncluded(receipt.entry(), receipt.leaf_index(), receipt.inclusion_proof(),
                                cp, "the receipt"));
  if (cp.size < latest_size_) {
    return absl::UnauthenticatedError(
        absl::StrFormat("the audit tree shrank: size %d after %d", cp.size, latest_size_));
  }
  key_ = std::move(key);
  latest_size_ = cp.size;
  return cp;
}

}  // namespace fieldsync::protocol
