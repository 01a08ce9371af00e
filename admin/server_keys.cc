#include "admin/server_keys.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {
namespace {

constexpr char kCaPurpose[] = "server/ca";
constexpr char kAuditPurpose[] = "server/audit-signing";
constexpr char kAuditPublicKey[] = "audit_public_key";

std::string SealingPurpose(uint32_t id) { return absl::StrCat("server/hpke-sealing/", id); }
std::string KeysKey(std::string_view purpose) {
  return storage::KeyBuilder().String(purpose).Finish();
}
std::string Meta(std::string_view name) { return storage::EncodeMetadataKey(name); }

absl::StatusOr<std::string> GetMeta(storage::Store& store, std::string_view name) {
  absl::StatusOr<std::string> v = store.Get(storage::Cf::kMetadata, Meta(name));
  if (absl::IsNotFound(v.status())) {
    return absl::NotFoundError(absl::StrFormat(
        "the database holds no %s: it was not created by `fieldsync init`", std::string(name)));
  }
  return v;
}

absl::StatusOr<crypto::SecretBytes> Unwrap(storage::Store& store,
                                           const crypto::MasterKeyRing& master,
                                           const std::string& purpose) {
  absl::StatusOr<std::string> wrapped = store.Get(storage::Cf::kKeys, KeysKey(purpose));
  if (absl::IsNotFound(wrapped.status())) {
    return absl::NotFoundError(absl::StrFormat(
        "the database holds no key %s: it was not created by `fieldsync init`", purpose));
  }
  RETURN_IF_ERROR(wrapped.status());
  return master.Unwrap(purpose, *wrapped);
}

template <size_t N>
absl::StatusOr<std::array<uint8_t, N>> FixedBytes(const std::string& s, std::string_view what) {
  if (s.size() != N) {
    return absl::DataLossError(
        absl::StrFormat("metadata %s has %d bytes, not %d", std::string(what), s.size(), N));
  }
  std::array<uint8_t, N> out;
  std::copy(s.begin(), s.end(), out.begin());
  return out;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

std::string AuditSigningPurpose(uint32_t version) {
  return version <= 1 ? std::string(kAuditPurpose) : absl::StrCat(kAuditPurpose, "/", version);
}

std::string AuditPublicKeyName(uint32_t version) {
  return version <= 1 ? std::string(kAuditPublicKey) : absl::StrCat(kAuditPublicKey, "/", version);
}

absl::Status WriteRotatedAuditKey(uint32_t version, const crypto::SecretBytes& seed,
                                  const std::array<uint8_t, 32>& public_key,
                                  const crypto::MasterKeyRing& master, Random& random,
                                  storage::WriteBatch* batch) {
  if (version < 2) return absl::InvalidArgumentError("a rotated audit key has version >= 2");
  if (seed.size() != 32) return absl::InvalidArgumentError("an audit key seed is 32 bytes");
  const std::string purpose = AuditSigningPurpose(version);
  ASSIGN_OR_RETURN(std::string wrapped, master.Wrap(purpose, seed.span(), random));
  batch->Put(storage::Cf::kKeys, KeysKey(purpose), wrapped);
  batch->Delete(storage::Cf::kKeys, KeysKey(AuditSigningPurpose(version - 1)));
  batch->Put(storage::Cf::kMetadata, Meta(AuditPublicKeyName(version)),
             std::string(reinterpret_cast<const char*>(public_key.data()), public_key.size()));
  batch->Put(storage::Cf::kMetadata, Meta(kAuditKeyVersionName), absl::StrCat(version));
  return absl::OkStatus();
}

absl::Status WriteServerKeys(const ServerKeys& keys, const crypto::MasterKeyRing& master,
                             Random& random, storage::WriteBatch* batch) {
  ASSIGN_OR_RETURN(std::string ca, master.Wrap(kCaPurpose, Bytes(keys.ca.private_key_pem), random));
  ASSIGN_OR_RETURN(std::string audit,
                   master.Wrap(kAuditPurpose, keys.audit_signing_seed.span(), random));
  ASSIGN_OR_RETURN(std::string sealing, master.Wrap(SealingPurpose(keys.sealing_key_id),
                                                    keys.sealing_private_key.span(), random));
  batch->Put(storage::Cf::kKeys, KeysKey(kCaPurpose), ca);
  batch->Put(storage::Cf::kKeys, KeysKey(kAuditPurpose), audit);
  batch->Put(storage::Cf::kKeys, KeysKey(SealingPurpose(keys.sealing_key_id)), sealing);
  auto as_string = [](const auto& a) {
    return std::string(reinterpret_cast<const char*>(a.data()), a.size());
  };
  batch->Put(storage::Cf::kMetadata, Meta("ca_certificate"), keys.ca.certificate_pem);
  batch->Put(storage::Cf::kMetadata, Meta("hpke_sealing_key_ids"),
             absl::StrCat(keys.sealing_key_id));
  batch->Put(storage::Cf::kMetadata,
             Meta(absl::StrCat("hpke_sealing_public/", keys.sealing_key_id)),
             as_string(keys.sealing_public_key));
  batch->Put(storage::Cf::kMetadata, Meta(kAuditPublicKey), as_string(keys.audit_public_key));
  batch->Put(storage::Cf::kMetadata, Meta("deployment_id"), keys.deployment_id);
  batch->Put(storage::Cf::kMetadata, Meta("audit_origin"), keys.audit_origin);
  return absl::OkStatus();
}

absl::StatusOr<ServerKeys> LoadServerKeys(storage::Store& store,
                                          const crypto::MasterKeyRing& master) {
  ServerKeys keys;
  ASSIGN_OR_RETURN(keys.ca.certificate_pem, GetMeta(store, "ca_certificate"));
  ASSIGN_OR_RETURN(crypto::SecretBytes ca_key, Unwrap(store, master, kCaPurpose));
  keys.ca.private_key_pem.assign(reinterpret_cast<const char*>(ca_key.data()), ca_key.size());
  ASSIGN_OR_RETURN(std::string id_text, GetMeta(store, "hpke_sealing_key_ids"));
  if (!absl::SimpleAtoi(id_text, &keys.sealing_key_id)) {
    return absl::DataLossError("metadata hpke_sealing_key_ids is not a number");
  }
  ASSIGN_OR_RETURN(keys.sealing_private_key,
                   Unwrap(store, master, SealingPurpose(keys.sealing_key_id)));
  ASSIGN_OR_RETURN(std::string sealing_public,
                   GetMeta(store, absl::StrCat("hpke_sealing_public/", keys.sealing_key_id)));
  ASSIGN_OR_RETURN(keys.sealing_public_key, FixedBytes<32>(sealing_public, "sealing public key"));
  absl::StatusOr<std::string> version_text =
      store.Get(storage::Cf::kMetadata, Meta(kAuditKeyVersionName));
  if (version_text.ok()) {
    if (!absl::SimpleAtoi(*version_text, &keys.audit_key_version) || keys.audit_key_version < 1) {
      return absl::DataLossError("metadata audit_key_version is not a version number");
    }
  } else if (!absl::IsNotFound(version_text.status())) {
    return version_text.status();
  }
  for (uint32_t v = 1; v <= keys.audit_key_version; ++v) {
    ASSIGN_OR_RETURN(std::string audit_public, GetMeta(store, AuditPublicKeyName(v)));
    ASSIGN_OR_RETURN(auto public_key, FixedBytes<32>(audit_public, "audit public key"));
    if (v == keys.audit_key_version) {
      keys.audit_public_key = public_key;
    } else {
      keys.former_audit_public_keys[v] = public_key;
    }
  }
  ASSIGN_OR_RETURN(keys.audit_signing_seed,
                   Unwrap(store, master, AuditSigningPurpose(keys.audit_key_version)));
  ASSIGN_OR_RETURN(keys.deployment_id, GetMeta(store, "deployment_id"));
  ASSIGN_OR_RETURN(keys.audit_origin, GetMeta(store, "audit_origin"));
  return keys;
}

}  // namespace fieldsync::admin
