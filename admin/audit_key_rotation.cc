#include "admin/audit_key_rotation.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "admin/server_keys.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "crypto/ed25519.h"

namespace fieldsync::admin {
namespace {

// A new key whose key id differs from every id the log used: signature
// lines are told apart by key id (they share the origin as key name). A
// collision (1 in 2^32 per earlier key) just means another key.
constexpr int kKeyAttempts = 8;

// Replaces `path` with `text` (mode 0644) through a temporary file, a
// rename and a directory sync.
absl::Status WritePublicFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  RETURN_IF_ERROR(WriteNewFile(tmp, text, 0644));
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::UnavailableError(absl::StrFormat("cannot rename %s to %s", tmp, path));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

}  // namespace

std::string AuditPublicKeyFile(const std::string& data_dir, uint32_t version) {
  if (version <= 1) return absl::StrCat(data_dir, "/audit-log.pub");
  return absl::StrCat(data_dir, "/audit-log.v", version, ".pub");
}

AuditKeyRotation::AuditKeyRotation(AuditKeyRotationOptions options)
    : options_(std::move(options)), version_(options_.current_version) {}

uint32_t AuditKeyRotation::current_version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

absl::StatusOr<RotatedAuditKey> AuditKeyRotation::Rotate(const std::string& actor) {
  absl::MutexLock lock(&mu_);
  RotatedAuditKey out;
  out.old_version = version_;
  out.new_version = version_ + 1;
  absl::StatusOr<audit::KeyTransition> transition =
      absl::InternalError("no audit key could be generated");
  for (int attempt = 0; attempt < kKeyAttempts; ++attempt) {
    crypto::Ed25519KeyPair key = crypto::GenerateEd25519(*options_.random);
    ASSIGN_OR_RETURN(protocol::NoteSigner signer,
                     protocol::NoteSigner::Create(options_.audit_origin, key.seed.span()));
    out.verifier_key = signer.verifier().VerifierKey();
    storage::WriteBatch batch;
    RETURN_IF_ERROR(WriteRotatedAuditKey(out.new_version, key.seed, key.public_key,
                                         *options_.master, *options_.random, &batch));
    protocol::KeyRotated event;
    event.actor = actor;
    event.purpose = std::string(protocol::kAuditSigningPurpose);
    event.old_version = out.old_version;
    event.new_version = out.new_version;
    event.new_public_key.assign(key.public_key.begin(), key.public_key.end());
    transition = options_.audit->RotateSigningKey(
        std::make_unique<protocol::NoteSigner>(std::move(signer)), event, &batch);
    // kInvalidArgument before anything is written: the key id was used.
    if (!absl::IsInvalidArgument(transition.status())) break;
  }
  RETURN_IF_ERROR(transition.status());
  // From here the rotation holds (committed): the new key signs.
  version_ = out.new_version;
  out.verifier_key_file = AuditPublicKeyFile(options_.data_dir, out.new_version);
  absl::Status file = WritePublicFile(out.verifier_key_file, absl::StrCat(out.verifier_key, "\n"));
  log::Info("audit.key.rotate", {{"old_version", out.old_version},
                                 {"new_version", out.new_version},
                                 {"actor", actor},
                                 {"verifier_key_file", out.verifier_key_file}});
  if (!file.ok()) {
    return absl::UnavailableError(absl::StrFormat(
        "the audit signing key was rotated (version %d is in force) but %s could not be "
        "written: %s; the verifier key is %s",
        out.new_version, out.verifier_key_file, file.message(), out.verifier_key));
  }
  out.transition = *std::move(transition);
  return out;
}

}  // namespace fieldsync::admin
