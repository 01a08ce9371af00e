// The server's own keys: the deployment CA, the HPKE batch-sealing key and
// the audit log's signing key. Their private halves live only wrapped by the
// master key, in the "keys" column family; their public halves in
// "metadata".
//
// keys CF, key = KeyBuilder().String(purpose), value = MasterKeyRing::Wrap
// output. Purposes (persisted): "server/ca", "server/ca-previous" (during a
// CA rotation: the CA being retired), "server/hpke-sealing/<key id>" (one
// per kept sealing key), and the audit signing seed of the version in
// force: "server/audit-signing" for version 1 (the key `fieldsync init`
// made), "server/audit-signing/<v>" (decimal) for a version v >= 2 made by
// a rotation, which deletes the seed of the version it replaces (that key
// signs nothing any more).
// metadata CF, key = EncodeMetadataKey(name) (persisted names):
//   "ca_certificate"        CA certificate, PEM (the CA that issues certificates)
//   "ca_previous_certificate"  during a CA rotation, the CA being retired, PEM
//   "ca_generation"         how many CAs the deployment has had, decimal
//                           text; absent = 1 (admin/certificates.h)
//   "hpke_sealing_key_ids"  the kept batch-sealing keys, text (below)
//   "hpke_sealing_public/<id>"  X25519 public key, 32 bytes, per kept key
//   "audit_public_key"      Ed25519 public key of audit key version 1, 32 bytes
//   "audit_public_key/<v>"  Ed25519 public key of audit key version v >= 2
//   "audit_key_version"     the audit key version in force, decimal text;
//                           absent means 1 (deployments from before rotation)
//   "deployment_id", "audit_origin"  as in the DEPLOYMENT marker
//
// "hpke_sealing_key_ids" (persisted): ASCII, entries separated by ",", in
// strictly ascending key id order. Each entry is ID, or ID "@" UNTIL, with
// ID a decimal key id (1..4294967295) and UNTIL the instant batches sealed
// to that key stop being accepted, in decimal microseconds since the Unix
// epoch; both digits only, without a leading zero. The last entry is the current key and has no
// UNTIL; every earlier entry has one. Example after two rotations:
//   "2@1798000000000000,3"
// A store from before sealing keys rotated holds one entry, e.g. "1",
// which reads as that key, current. Only kept keys are listed: a rotation
// deletes keys past their UNTIL (entry, public key and wrapped private
// key); their ids, being below the current one, are still known as
// retired (admin/sealing_keys.h).
#ifndef FIELDSYNC_ADMIN_SERVER_KEYS_H_
#define FIELDSYNC_ADMIN_SERVER_KEYS_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "crypto/secret.h"
#include "crypto/x509.h"
#include "storage/store.h"

namespace fieldsync::admin {

// One HPKE batch-sealing key of the server.
struct SealingKeyPair {
  uint32_t key_id = 0;
  crypto::SecretBytes private_key{0};  // X25519, 32 bytes
  std::array<uint8_t, 32> public_key{};
  // When batches sealed to it stop being accepted; InfiniteFuture() for
  // the current key.
  absl::Time not_after = absl::InfiniteFuture();
};

// An entry of "hpke_sealing_key_ids".
struct SealingKeyId {
  uint32_t key_id = 0;
  absl::Time not_after = absl::InfiniteFuture();
  friend bool operator==(const SealingKeyId&, const SealingKeyId&) = default;
};

// The "hpke_sealing_key_ids" text of `ids` (format above).
// REQUIRES: ids ascending, non-empty, only the last with InfiniteFuture().
std::string EncodeSealingKeyIds(std::span<const SealingKeyId> ids);

// Parses "hpke_sealing_key_ids" (format above). kDataLoss naming what is
// wrong: empty, an entry that is not ID or ID@UNTIL, an id of 0 or out of
// range, ids not strictly ascending, the last entry with an UNTIL or an
// earlier one without.
absl::StatusOr<std::vector<SealingKeyId>> ParseSealingKeyIds(std::string_view text);

struct ServerKeys {
  crypto::CertificateAuthority ca;
  // During a CA rotation (admin/certificates.h), the CA being retired: its
  // certificates are still accepted and it signs the server's certificate.
  std::optional<crypto::CertificateAuthority> previous_ca;
  uint32_t ca_generation = 1;
  // Ascending by key id; the last is the current key. `fieldsync init`
  // makes key 1; AdminService.RotateSealingKey adds the next ones
  // (admin/sealing_keys.h), and the running server then holds its keys in
  // LiveSealingKeys, not here.
  std::vector<SealingKeyPair> sealing_keys;
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

// Adds to `batch` the CA state of `keys` (ca, previous_ca, ca_generation)
// only: what a CA rotation step changes. kInternal if wrapping fails.
absl::Status WriteCertificateAuthorities(const ServerKeys& keys,
                                         const crypto::MasterKeyRing& master, Random& random,
                                         storage::WriteBatch* batch);
// Adds `key`'s wrapped private half and its public half to `batch`
// (not the id list). kInternal if wrapping fails.
absl::Status PutSealingKey(const SealingKeyPair& key, const crypto::MasterKeyRing& master,
                           Random& random, storage::WriteBatch* batch);
// Deletes key `key_id`'s private and public halves in `batch`.
void DeleteSealingKey(uint32_t key_id, storage::WriteBatch* batch);
// Writes the id list of `keys` (REQUIRES as EncodeSealingKeyIds).
void PutSealingKeyIds(std::span<const SealingKeyPair> keys, storage::WriteBatch* batch);

// Reads and unwraps the kept batch-sealing keys, ascending by key id.
// kDataLoss for a malformed id list, a missing or wrong-sized public key,
// a private key that does not open under `master` or does not match its
// public key; kNotFound when the store holds no id list.
absl::StatusOr<std::vector<SealingKeyPair>> LoadSealingKeys(storage::Store& store,
                                                            const crypto::MasterKeyRing& master);
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
