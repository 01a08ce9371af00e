// The master key ring (DESIGN §7): the versioned key-encryption keys (KEK)
// that wrap every other server secret (HPKE sealing keys, the audit signing
// key, the CA key, per-case data keys). Never stored in the database.
#ifndef FIELDSYNC_CRYPTO_MASTER_KEY_H_
#define FIELDSYNC_CRYPTO_MASTER_KEY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/random.h"
#include "crypto/aead.h"
#include "crypto/secret.h"

namespace fieldsync::crypto {

// Text format of a key file or of a key command's output (persisted):
//
//   fieldsync-master-key v1\n
//   <version> <base64 of 32 bytes>\n      one line per version, any order
//
// Versions are decimal integers 1..2^32-1, each at most once; the current
// version (the one Wrap uses) is the highest. Blank lines and lines starting
// with '#' are ignored. Base64 is standard, padded (44 characters).
//
// Wrapped secret layout (persisted; `||` is concatenation):
//
//   wrapped = 0x01                       format version, 1 byte
//          || kek_version                4 bytes, big-endian
//          || nonce                      12 random bytes
//          || AES-256-GCM(KEK[kek_version], nonce, aad, secret)
//                                        ciphertext || 16-byte tag
//   aad     = "fieldsync/wrap/v1"        17 ASCII bytes, no terminator
//          || len(purpose)               4 bytes, big-endian
//          || purpose                    the bytes of the purpose string
//          || kek_version                4 bytes, big-endian
//
// so a wrapped key opens only under the purpose and KEK version it was made
// for. Purposes in use: "server/hpke-sealing/<key id>",
// "server/audit-signing", "server/ca", "case-dek/<case id hex>".
//
// Thread-safe: every method may run concurrently with every other, so that
// a KEK rotation (AddVersion or Adopt) can happen while the server wraps and
// unwraps case keys. A reader lock guards the versions: Wrap, Unwrap and
// Rewrap hold it for one AES-GCM operation; AddVersion and Adopt hold it
// exclusively for a map insertion or swap. Move-only (moving is not
// thread-safe with respect to the moved-from ring).
class MasterKeyRing {
 public:
  MasterKeyRing(MasterKeyRing&& other) noexcept;
  // Locks both rings in address order (which the analysis cannot follow).
  MasterKeyRing& operator=(MasterKeyRing&& other) noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS;

  static constexpr uint8_t kWrapFormatVersion = 1;
  static constexpr size_t kWrapOverhead = 1 + 4 + kAesGcmNonceSize + kAesGcmTagSize;

  // A ring with one fresh version (1).
  static MasterKeyRing Generate(Random& random);

  // Reads the text format from `path`. Errors (never holding key bytes):
  //   kNotFound - no such file (naming it);
  //   kFailedPrecondition - the file's mode grants group or other users any
  //     access ("... run: chmod 600 PATH"), or it cannot be read;
  //   kInvalidArgument - malformed (naming the line number).
  static absl::StatusOr<MasterKeyRing> LoadFile(const std::string& path);

  // How LoadFromCommand waits for its command.
  struct CommandOptions {
    // The command must have exited by then; it is killed after it.
    absl::Duration timeout = absl::Seconds(30);
    // Signals that end the wait while pending (a process that blocks its
    // stop signals, as fieldsyncd does before it serves, sees them only as
    // pending): the command is killed and kCancelled returned. Checked
    // every 50 ms. Empty: none.
    std::vector<int> stop_signals;
  };

  // Runs `command` with /bin/sh -c, in its own process group with standard
  // input from /dev/null, default signal handling and its standard error
  // passed through, and parses its standard output (the same text format).
  // Errors (never holding the command string or its output):
  //   kFailedPrecondition - it cannot start, exits non-zero (naming the
  //     status) or is killed by a signal (naming it);
  //   kDeadlineExceeded - it ran past options.timeout (its process group
  //     was killed);
  //   kCancelled - a stop signal became pending (its process group was
  //     killed);
  //   kInvalidArgument - the output is malformed or over 1 MiB.
  static absl::StatusOr<MasterKeyRing> LoadFromCommand(const std::string& command,
                                                       const CommandOptions& options);
  static absl::StatusOr<MasterKeyRing> LoadFromCommand(const std::string& command) {
    return LoadFromCommand(command, CommandOptions());
  }

  // Parses the text format; kInvalidArgument if malformed.
  static absl::StatusOr<MasterKeyRing> Parse(std::string_view text);

  // The text format, every version. Holds the keys in clear: write it only
  // to a file created with mode 0600.
  std::string Serialize() const;

  uint32_t current_version() const;
  bool has_version(uint32_t version) const;

  // Adds version current_version() + 1 with a fresh key and makes it
  // current (rotation). kFailedPrecondition at version 2^32 - 1.
  absl::Status AddVersion(Random& random);

  // A ring with the same versions and keys (for a rotation that must write
  // the new ring to its key file before anything is wrapped under it:
  // Clone, AddVersion on the clone, write clone.Serialize(), then Adopt).
  // kInternal only if the AES-GCM setup fails.
  absl::StatusOr<MasterKeyRing> Clone() const;

  // Makes this ring hold exactly `next`'s versions, atomically with
  // respect to every other method: a Wrap either uses the old current
  // version or the new one. kFailedPrecondition (nothing changes) unless
  // `next` holds every version this ring holds, each with the same key,
  // so that nothing wrapped earlier becomes unreadable.
  absl::Status Adopt(MasterKeyRing next);

  // `secret` wrapped under the current version for `purpose` (layout above).
  // kInvalidArgument if secret is over 1 GiB.
  absl::StatusOr<std::string> Wrap(std::string_view purpose, std::span<const uint8_t> secret,
                                   Random& random) const;

  // The secret inside `wrapped`. Errors (naming only the purpose):
  //   kDataLoss "wrapped key for PURPOSE does not open: wrong master key or
  //     corrupted" - tampered, truncated, or wrapped for another purpose;
  //   kFailedPrecondition - made under a KEK version this ring lacks (named).
  absl::StatusOr<SecretBytes> Unwrap(std::string_view purpose, std::string_view wrapped) const;

  // `wrapped` re-wrapped under the current version with a fresh nonce
  // (rotation); the errors of Unwrap.
  absl::StatusOr<std::string> Rewrap(std::string_view purpose, std::string_view wrapped,
                                     Random& random) const;

  // The KEK version `wrapped` was made under, without opening it (to find
  // what a rotation still has to rewrap). kDataLoss if malformed.
  static absl::StatusOr<uint32_t> WrappedVersion(std::string_view wrapped);

  // A subkey of KEK `version` for `purpose` (e.g. the blind-index key):
  // HKDF-SHA256(salt = "fieldsync/derive/v1", ikm = KEK[version],
  // info = purpose, length). kFailedPrecondition if the ring lacks the
  // version, kInvalidArgument if length > 8160.
  absl::StatusOr<SecretBytes> DeriveKey(std::string_view purpose, uint32_t version,
                                        size_t length) const;

 private:
  struct Version {
    SecretBytes key;
    std::unique_ptr<AesGcm> aead;
  };
  MasterKeyRing() = default;
  // Parses the text format; `source` ("master key file PATH", ...) names it
  // in errors.
  static absl::StatusOr<MasterKeyRing> ParseText(std::string_view text, std::string_view source);
  absl::Status Insert(uint32_t version, SecretBytes key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<SecretBytes> UnwrapLocked(std::string_view purpose, std::string_view wrapped) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> WrapLocked(std::string_view purpose, std::span<const uint8_t> secret,
                                         Random& random) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<uint32_t, Version> keys_ ABSL_GUARDED_BY(mu_);
  uint32_t current_version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::crypto

#endif  // FIELDSYNC_CRYPTO_MASTER_KEY_H_
