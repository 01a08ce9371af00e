// Rotating the audit log's Ed25519 signing key (docs/AUDIT.md §9): the
// administrator's operation behind AdminService.RotateAuditKey. A new key
// version is made and wrapped under the master key, recorded as KeyRotated
// ("audit-signing", with the new public key) in the same commit as the key
// and a transition head signed by the old key and the new one; the running
// log signs with the new key from then on. gRPC-free.
#ifndef FIELDSYNC_ADMIN_AUDIT_KEY_ROTATION_H_
#define FIELDSYNC_ADMIN_AUDIT_KEY_ROTATION_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "audit/log.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "storage/store.h"

namespace fieldsync::admin {

// Where the verifier key of audit key `version` is written for operators
// and auditors (persisted names): version 1 is DATA_DIR/audit-log.pub (made
// by `fieldsync init`, never replaced), version v >= 2
// DATA_DIR/audit-log.v<v>.pub.
std::string AuditPublicKeyFile(const std::string& data_dir, uint32_t version);

struct AuditKeyRotationOptions {
  storage::Store* store = nullptr;
  audit::AuditLog* audit = nullptr;  // signs with the key in force
  // The master key ring the new seed is wrapped under (thread-safe).
  const crypto::MasterKeyRing* master = nullptr;
  Random* random = nullptr;
  std::string audit_origin;
  // The version in force when the server started (ServerKeys).
  uint32_t current_version = 1;
  // The data directory, where the new verifier key file goes.
  std::string data_dir;
};

struct RotatedAuditKey {
  uint32_t old_version = 0;
  uint32_t new_version = 0;
  audit::KeyTransition transition;
  std::string verifier_key;       // "<origin>+<key id>+<key>"
  std::string verifier_key_file;  // AuditPublicKeyFile(data_dir, new_version)
};

// Thread-safe: rotations are serialized; appends and pushes go on.
// Pointers in the options are not owned and must outlive this object.
class AuditKeyRotation {
 public:
  explicit AuditKeyRotation(AuditKeyRotationOptions options);

  // Generates key version current + 1 (another if its key id collides with
  // an earlier key's), then in one commit: the wrapped seed and public key
  // (admin/server_keys.h), the old seed deleted, KeyRotated{actor,
  // "audit-signing", old, new, public key} and the transition head
  // (AuditLog::RotateSigningKey); then writes the verifier key file (mode
  // 0644). Errors: those of the audit log and the store (nothing changed:
  // retry); kUnavailable when the rotation holds but the verifier key file
  // could not be written (the message names it and gives the key).
  absl::StatusOr<RotatedAuditKey> Rotate(const std::string& actor);

  uint32_t current_version() const;

 private:
  AuditKeyRotationOptions options_;
  mutable absl::Mutex mu_;  // one rotation at a time
  uint32_t version_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_AUDIT_KEY_ROTATION_H_
