// The server's own keys: the deployment CA, the HPKE batch-sealing key and
// the audit log's signing key. Their private halves live only wrapped by the
// master key, in the "keys" column family; their public halves in
// "metadata".
//
// keys CF, key = KeyBuilder().String(purpose), value = MasterKeyRing::Wrap
// output. Purposes (persisted): "server/ca", "server/hpke-sealing/<key id>",
// and the audit signing seed of the version in force: "server/audit-signing"
// for version 1 (the key `fieldsync init` made), "server/audit-signing/<v>"
// (decimal) for a version v >= 2 made by a rotation, which deletes the
// seed of the version it replaces (that key signs nothing any more).
// metadata CF, key = EncodeMetadataKey(name) (persisted names):
//   "ca_certificate"        CA certificate, PEM
//   "hpke_sealing_key_ids"  current key id, decimal text
//   "hpke_sealing_public/<id>"  X25519 public key, 32 bytes
//   "audit_public_key"      Ed25519 public key of audit key version 1, 32 bytes
//   "audit_public_key/<v>"  Ed25519 public key of audit key version v >= 2
//   "audit_key_version"     the audit key version in force, decimal text;
//                           absent means 1 (deployments from before rotation)
//   "deployment_id", "audit_origin"  as in the DEPLOYMENT marker
#ifndef FIELDSYNC_ADMIN_SERVER_KEYS_H_
#define FIELDSYNC_ADMIN_SERVER_KEYS_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "crypto/secret.h"
#include "crypto/x509.h"
#include "storage/store.h"

namespace fieldsync::admin {

struct ServerKeys {
  crypto::CertificateAuthority ca;
  uint32_t sealing_key_id = 0;
  crypto::SecretBytes sealing_private_key{0};
  std::array<uint8_t, 32> sealing_public_key{};
  // The audit signing key in force: its version, seed and public key.
  uint32_t audit_key_version = 1;
  crypto::SecretBytes audit_signing_seed{0};
  std::array<uint8_t, 32> audit_public_key{};
  // The public keys of the earlier audit key versions, by version.
  std::map<uint32_t, std::array<uint8_t, 32>> former_audit_public_keys;
  std::string deployment_id;
  std::string audit_origin;
};

// Adds the wrapped private keys and the public metadata of `keys` to
// `batch`. kInternal if wrapping fails.
absl::Status WriteServerKeys(const ServerKeys& keys, const crypto::MasterKeyRing& master,
                             Random& random, storage::WriteBatch* batch);

// The keys CF purpose of audit signing key `version` (see above).
std::string AuditSigningPurpose(uint32_t version);
// The metadata name of its public key.
std::string AuditPublicKeyName(uint32_t version);
inline constexpr std::string_view kAuditKeyVersionName = "audit_key_version";

// Adds to `batch` what makes audit signing key `version` (>= 2) the one in
// force: its wrapped seed, its public key, the version; and deletes the
// wrapped seed of `version - 1`. kInvalidArgument for a version below 2 or
// a seed that is not 32 bytes; kInternal if wrapping fails.
absl::Status WriteRotatedAuditKey(uint32_t version, const crypto::SecretBytes& seed,
                                  const std::array<uint8_t, 32>& public_key,
                                  const crypto::MasterKeyRing& master, Random& random,
                                  storage::WriteBatch* batch);

// Reads and unwraps the server's keys. kDataLoss if a key does not open
// under `master` (wrong master key file for this database), kNotFound if
// the database holds no server keys (not made by `fieldsync init`).
absl::StatusOr<ServerKeys> LoadServerKeys(storage::Store& store,
                                          const crypto::MasterKeyRing& master);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_SERVER_KEYS_H_
