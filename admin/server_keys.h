// The server's own keys: the deployment CA, the HPKE batch-sealing key and
// the audit log's signing key. Their private halves live only wrapped by the
// master key, in the "keys" column family; their public halves in
// "metadata".
//
// keys CF, key = KeyBuilder().String(purpose), value = MasterKeyRing::Wrap
// output. Purposes (persisted): "server/ca", "server/ca-previous" (during a
// CA rotation: the CA being retired), "server/audit-signing",
// "server/hpke-sealing/<key id>".
// metadata CF, key = EncodeMetadataKey(name) (persisted names):
//   "ca_certificate"        CA certificate, PEM (the CA that issues certificates)
//   "ca_previous_certificate"  during a CA rotation, the CA being retired, PEM
//   "ca_generation"         how many CAs the deployment has had, decimal
//                           text; absent = 1 (admin/certificates.h)
//   "hpke_sealing_key_ids"  current key id, decimal text
//   "hpke_sealing_public/<id>"  X25519 public key, 32 bytes
//   "audit_public_key"      Ed25519 public key, 32 bytes
//   "deployment_id", "audit_origin"  as in the DEPLOYMENT marker
#ifndef FIELDSYNC_ADMIN_SERVER_KEYS_H_
#define FIELDSYNC_ADMIN_SERVER_KEYS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "crypto/master_key.h"
#include "crypto/secret.h"
#include "crypto/x509.h"
#include "storage/store.h"

namespace fieldsync::admin {

struct ServerKeys {
  crypto::CertificateAuthority ca;
  // During a CA rotation (admin/certificates.h), the CA being retired: its
  // certificates are still accepted and it signs the server's certificate.
  std::optional<crypto::CertificateAuthority> previous_ca;
  uint32_t ca_generation = 1;
  uint32_t sealing_key_id = 0;
  crypto::SecretBytes sealing_private_key{0};
  std::array<uint8_t, 32> sealing_public_key{};
  crypto::SecretBytes audit_signing_seed{0};
  std::array<uint8_t, 32> audit_public_key{};
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

// Reads and unwraps the server's keys. kDataLoss if a key does not open
// under `master` (wrong master key file for this database), kNotFound if
// the database holds no server keys (not made by `fieldsync init`).
absl::StatusOr<ServerKeys> LoadServerKeys(storage::Store& store,
                                          const crypto::MasterKeyRing& master);

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_SERVER_KEYS_H_
