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
constexpr char kPreviousCaPurpose[] = "server/ca-previous";
constexpr char kAuditPurpose[] = "server/audit-signing";

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

absl::Status WriteCertificateAuthorities(const ServerKeys& keys,
                                         const crypto::MasterKeyRing& master, Random& random,
                                         storage::WriteBatch* batch) {
  ASSIGN_OR_RETURN(std::string ca, master.Wrap(kCaPurpose, Bytes(keys.ca.private_key_pem), random));
  batch->Put(storage::Cf::kKeys, KeysKey(kCaPurpose), ca);
  batch->Put(storage::Cf::kMetadata, Meta("ca_certificate"), keys.ca.certificate_pem);
  if (keys.previous_ca.has_value()) {
    ASSIGN_OR_RETURN(
        std::string previous,
        master.Wrap(kPreviousCaPurpose, Bytes(keys.previous_ca->private_key_pem), random));
    batch->Put(storage::Cf::kKeys, KeysKey(kPreviousCaPurpose), previous);
    batch->Put(storage::Cf::kMetadata, Meta("ca_previous_certificate"),
               keys.previous_ca->certificate_pem);
  } else {
    batch->Delete(storage::Cf::kKeys, KeysKey(kPreviousCaPurpose));
    batch->Delete(storage::Cf::kMetadata, Meta("ca_previous_certificate"));
  }
  batch->Put(storage::Cf::kMetadata, Meta("ca_generation"), absl::StrCat(keys.ca_generation));
  return absl::OkStatus();
}

absl::Status WriteServerKeys(const ServerKeys& keys, const crypto::MasterKeyRing& master,
                             Random& random, storage::WriteBatch* batch) {
  RETURN_IF_ERROR(WriteCertificateAuthorities(keys, master, random, batch));
  ASSIGN_OR_RETURN(std::string audit,
                   master.Wrap(kAuditPurpose, keys.audit_signing_seed.span(), random));
  ASSIGN_OR_RETURN(std::string sealing, master.Wrap(SealingPurpose(keys.sealing_key_id),
                                                    keys.sealing_private_key.span(), random));
  batch->Put(storage::Cf::kKeys, KeysKey(kAuditPurpose), audit);
  batch->Put(storage::Cf::kKeys, KeysKey(SealingPurpose(keys.sealing_key_id)), sealing);
  auto as_string = [](const auto& a) {
    return std::string(reinterpret_cast<const char*>(a.data()), a.size());
  };
  batch->Put(storage::Cf::kMetadata, Meta("hpke_sealing_key_ids"),
             absl::StrCat(keys.sealing_key_id));
  batch->Put(storage::Cf::kMetadata,
             Meta(absl::StrCat("hpke_sealing_public/", keys.sealing_key_id)),
             as_string(keys.sealing_public_key));
  batch->Put(storage::Cf::kMetadata, Meta("audit_public_key"), as_string(keys.audit_public_key));
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
  absl::StatusOr<std::string> previous_ca = GetMeta(store, "ca_previous_certificate");
  if (previous_ca.ok()) {
    ASSIGN_OR_RETURN(crypto::SecretBytes previous_key, Unwrap(store, master, kPreviousCaPurpose));
    keys.previous_ca = crypto::CertificateAuthority{
        *std::move(previous_ca),
        std::string(reinterpret_cast<const char*>(previous_key.data()), previous_key.size())};
  } else if (!absl::IsNotFound(previous_ca.status())) {
    return previous_ca.status();
  }
  absl::StatusOr<std::string> generation = GetMeta(store, "ca_generation");
  if (generation.ok()) {
    if (!absl::SimpleAtoi(*generation, &keys.ca_generation) || keys.ca_generation == 0) {
      return absl::DataLossError("metadata ca_generation is not a positive number");
    }
  } else if (!absl::IsNotFound(generation.status())) {
    return generation.status();
  }
  ASSIGN_OR_RETURN(std::string id_text, GetMeta(store, "hpke_sealing_key_ids"));
  if (!absl::SimpleAtoi(id_text, &keys.sealing_key_id)) {
    return absl::DataLossError("metadata hpke_sealing_key_ids is not a number");
  }
  ASSIGN_OR_RETURN(keys.sealing_private_key,
                   Unwrap(store, master, SealingPurpose(keys.sealing_key_id)));
  ASSIGN_OR_RETURN(std::string sealing_public,
                   GetMeta(store, absl::StrCat("hpke_sealing_public/", keys.sealing_key_id)));
  ASSIGN_OR_RETURN(keys.sealing_public_key, FixedBytes<32>(sealing_public, "sealing public key"));
  ASSIGN_OR_RETURN(keys.audit_signing_seed, Unwrap(store, master, kAuditPurpose));
  ASSIGN_OR_RETURN(std::string audit_public, GetMeta(store, "audit_public_key"));
  ASSIGN_OR_RETURN(keys.audit_public_key, FixedBytes<32>(audit_public, "audit public key"));
  ASSIGN_OR_RETURN(keys.deployment_id, GetMeta(store, "deployment_id"));
  ASSIGN_OR_RETURN(keys.audit_origin, GetMeta(store, "audit_origin"));
  return keys;
}

}  // namespace fieldsync::admin
