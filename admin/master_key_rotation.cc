#include "admin/master_key_rotation.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>

#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "crypto/secret.h"
#include "protocol/events.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {
namespace {

// The purpose of KeyRotated events for the master key (persisted).
constexpr std::string_view kKekPurpose = "kek";

struct PendingRotation {
  uint32_t old_version = 0;
  uint32_t new_version = 0;
};

std::string EncodePending(const PendingRotation& p) {
  std::string out;
  for (uint32_t v : {p.old_version, p.new_version}) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  }
  return out;
}

absl::StatusOr<std::optional<PendingRotation>> ReadPending(storage::Store& store) {
  absl::StatusOr<std::string> v =
      store.Get(storage::Cf::kMetadata, storage::EncodeMetadataKey(kPendingRotationMetadata));
  if (absl::IsNotFound(v.status())) return std::nullopt;
  RETURN_IF_ERROR(v.status());
  if (v->size() != 8) {
    return absl::DataLossError(absl::StrFormat("metadata %s has %d bytes, not 8",
                                               std::string(kPendingRotationMetadata), v->size()));
  }
  auto u32 = [&](size_t at) {
    uint32_t x = 0;
    for (size_t i = 0; i < 4; ++i) x = (x << 8) | static_cast<uint8_t>((*v)[at + i]);
    return x;
  };
  return PendingRotation{u32(0), u32(4)};
}

}  // namespace

absl::Status ReplaceKeyFile(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot remove the stale %s: %s", tmp, std::strerror(errno)));
  }
  RETURN_IF_ERROR(WriteNewFile(tmp, text, 0600));  // fsynced
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot rename %s over %s: %s", tmp, path, std::strerror(err)));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

absl::StatusOr<uint32_t> MasterKeyRotation::RewrapServerKeys() {
  crypto::MasterKeyRing& ring = *options_.ring;
  const uint32_t current = ring.current_version();
  storage::WriteBatch batch;
  uint32_t count = 0;
  // Every Cf::kKeys entry outside the case DEK prefix is a server key,
  // keyed by its purpose (admin/server_keys.h).
  const std::string dek_prefix = storage::CaseDekPrefix();
  const std::pair<std::string, std::string> ranges[] = {
      {"", dek_prefix}, {storage::PrefixUpperBound(dek_prefix), ""}};
  for (const auto& [lower, upper] : ranges) {
    std::unique_ptr<storage::Iterator> it =
        options_.store->NewIterator(storage::Cf::kKeys, lower, upper);
    for (; it->Valid(); it->Next()) {
      ASSIGN_OR_RETURN(uint32_t version, crypto::MasterKeyRing::WrappedVersion(it->value()));
      if (version == current) continue;
      storage::KeyReader reader(it->key());
      ASSIGN_OR_RETURN(std::string purpose, reader.String());
      ASSIGN_OR_RETURN(std::string rewrapped, ring.Rewrap(purpose, it->value(), *options_.random));
      batch.Put(storage::Cf::kKeys, it->key(), rewrapped);
      ++count;
    }
    RETURN_IF_ERROR(it->status());
  }
  RETURN_IF_ERROR(options_.store->Commit(&batch));
  return count;
}

absl::StatusOr<RotationResult> MasterKeyRotation::Rotate(const std::string& actor) {
  if (options_.key_file.empty()) {
    return absl::FailedPreconditionError(
        "the master key comes from master_key_command, which fieldsyncd cannot write: rotate "
        "it in the key command (add a line with the next version, keep the old ones) and "
        "restart fieldsyncd");
  }
  absl::MutexLock lock(&mu_);
  crypto::MasterKeyRing& ring = *options_.ring;
  RotationResult result;

  // 1. The pending record: resume the recorded rotation, or record one.
  ASSIGN_OR_RETURN(std::optional<PendingRotation> pending, ReadPending(*options_.store));
  const std::string pending_key = storage::EncodeMetadataKey(kPendingRotationMetadata);
  if (pending.has_value()) {
    result.resumed = true;
  } else {
    const uint32_t current = ring.current_version();
    if (current == std::numeric_limits<uint32_t>::max()) {
      return absl::FailedPreconditionError("the master key ring is at its last version number");
    }
    pending = PendingRotation{current, current + 1};
    storage::WriteBatch batch;
    batch.Put(storage::Cf::kMetadata, pending_key, EncodePending(*pending));
    RETURN_IF_ERROR(options_.store->Commit(&batch));
  }
  result.old_version = pending->old_version;

  // 2. The new version: in the file first, then in the live ring.
  const uint32_t current = ring.current_version();
  if (current + 1 == pending->new_version) {
    ASSIGN_OR_RETURN(crypto::MasterKeyRing next, ring.Clone());
    RETURN_IF_ERROR(next.AddVersion(*options_.random));
    std::string text = next.Serialize();
    absl::Status written = ReplaceKeyFile(options_.key_file, text);
    crypto::Cleanse(text);
    RETURN_IF_ERROR(written);
    RETURN_IF_ERROR(ring.Adopt(std::move(next)));
    log::Info("kek.version_added",
              {{"version", pending->new_version}, {"key_file", options_.key_file}});
  } else if (current < pending->new_version) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "an unfinished rotation to master key version %d is recorded, but the master key "
        "file's newest version is %d: restore the key file that holds version %d",
        pending->new_version, current, pending->new_version - 1));
  }
  // (current > new_version: the file gained versions since; wrap under the
  // newest.)
  result.new_version = ring.current_version();

  // 3, 4. Re-wrap everything still under an older version.
  ASSIGN_OR_RETURN(result.server_keys_rewrapped, RewrapServerKeys());
  ASSIGN_OR_RETURN(result.case_keys, options_.case_keys->RewrapAll(*options_.random));

  // 5. Record it; the pending record goes in the same write.
  storage::WriteBatch batch;
  audit::AuditSession session(options_.audit, &batch);
  protocol::KeyRotated event;
  event.actor = actor;
  event.purpose = std::string(kKekPurpose);
  event.old_version = result.old_version;
  event.new_version = result.new_version;
  ASSIGN_OR_RETURN(result.audit_leaf_index,
                   session.Append(protocol::Event{options_.clock->Now(), std::move(event)}));
  batch.Delete(storage::Cf::kMetadata, pending_key);
  RETURN_IF_ERROR(options_.store->Commit(&batch));
  session.Committed();
  log::Info("kek.rotated", {{"old_version", result.old_version},
                            {"new_version", result.new_version},
                            {"case_keys_rewrapped", result.case_keys.rewrapped},
                            {"case_keys_current", result.case_keys.already_current},
                            {"case_keys_erased", result.case_keys.erased},
                            {"server_keys_rewrapped", result.server_keys_rewrapped},
                            {"resumed", result.resumed ? "yes" : "no"},
                            {"actor", actor}});
  return result;
}

}  // namespace fieldsync::admin
