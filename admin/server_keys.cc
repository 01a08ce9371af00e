#include "admin/server_keys.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "crypto/x25519.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"

namespace fieldsync::admin {
namespace {

constexpr char kCaPurpose[] = "server/ca";
constexpr char kPreviousCaPurpose[] = "server/ca-previous";
constexpr char kAuditPurpose[] = "server/audit-signing";
constexpr char kAuditPublicKey[] = "audit_public_key";

constexpr char kSealingIdsName[] = "hpke_sealing_key_ids";

std::string SealingPurpose(uint32_t id) { return absl::StrCat("server/hpke-sealing/", id); }
std::string SealingPublicName(uint32_t id) { return absl::StrCat("hpke_sealing_public/", id); }
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

template <typename A>
std::string AsString(const A& a) {
  return std::string(reinterpret_cast<const char*>(a.data()), a.size());
}

// A non-empty run of ASCII digits without a leading zero (no sign, no
// space: one spelling per number, stricter than SimpleAtoi) that fits in
// `max`.
bool ParseDigits(std::string_view text, uint64_t max, uint64_t* out) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (max - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

absl::Status BadIds(std::string_view why) {
  return absl::DataLossError(
      absl::StrFormat("metadata %s is malformed (%s)", kSealingIdsName, std::string(why)));
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

std::string EncodeSealingKeyIds(std::span<const SealingKeyId> ids) {
  std::vector<std::string> entries;
  for (const SealingKeyId& id : ids) {
    entries.push_back(id.not_after == absl::InfiniteFuture()
                          ? absl::StrCat(id.key_id)
                          : absl::StrCat(id.key_id, "@", absl::ToUnixMicros(id.not_after)));
  }
  return absl::StrJoin(entries, ",");
}

absl::StatusOr<std::vector<SealingKeyId>> ParseSealingKeyIds(std::string_view text) {
  if (text.empty()) return BadIds("empty");
  std::vector<SealingKeyId> out;
  for (absl::string_view entry : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(entry, absl::MaxSplits('@', 1));
    SealingKeyId id;
    uint64_t key_id = 0;
    if (!ParseDigits(std::string_view(parts[0].data(), parts[0].size()),
                     std::numeric_limits<uint32_t>::max(), &key_id) ||
        key_id == 0) {
      return BadIds(absl::StrFormat("entry %d: not a key id from 1 to 4294967295", out.size() + 1));
    }
    id.key_id = static_cast<uint32_t>(key_id);
    if (parts.size() == 2) {
      uint64_t micros = 0;
      if (!ParseDigits(std::string_view(parts[1].data(), parts[1].size()),
                       std::numeric_limits<int64_t>::max(), &micros)) {
        return BadIds(
            absl::StrFormat("key %d: the cutoff is not a number of microseconds", id.key_id));
      }
      id.not_after = absl::FromUnixMicros(static_cast<int64_t>(micros));
    }
    if (!out.empty() && id.key_id <= out.back().key_id) {
      return BadIds(
          absl::StrFormat("key %d after key %d: ids must ascend", id.key_id, out.back().key_id));
    }
    if (!out.empty() && out.back().not_after == absl::InfiniteFuture()) {
      return BadIds(
          absl::StrFormat("key %d is not the current key but has no cutoff", out.back().key_id));
    }
    out.push_back(id);
  }
  if (out.back().not_after != absl::InfiniteFuture()) {
    return BadIds(absl::StrFormat("the current key %d has a cutoff", out.back().key_id));
  }
  return out;
}

absl::Status PutSealingKey(const SealingKeyPair& key, const crypto::MasterKeyRing& master,
                           Random& random, storage::WriteBatch* batch) {
  ASSIGN_OR_RETURN(std::string wrapped,
                   master.Wrap(SealingPurpose(key.key_id), key.private_key.span(), random));
  batch->Put(storage::Cf::kKeys, KeysKey(SealingPurpose(key.key_id)), wrapped);
  batch->Put(storage::Cf::kMetadata, Meta(SealingPublicName(key.key_id)), AsString(key.public_key));
  return absl::OkStatus();
}

void DeleteSealingKey(uint32_t key_id, storage::WriteBatch* batch) {
  batch->Delete(storage::Cf::kKeys, KeysKey(SealingPurpose(key_id)));
  batch->Delete(storage::Cf::kMetadata, Meta(SealingPublicName(key_id)));
}

void PutSealingKeyIds(std::span<const SealingKeyPair> keys, storage::WriteBatch* batch) {
  std::vector<SealingKeyId> ids;
  for (const SealingKeyPair& k : keys) ids.push_back({k.key_id, k.not_after});
  batch->Put(storage::Cf::kMetadata, Meta(kSealingIdsName), EncodeSealingKeyIds(ids));
}

absl::StatusOr<std::vector<SealingKeyPair>> LoadSealingKeys(storage::Store& store,
                                                            const crypto::MasterKeyRing& master) {
  ASSIGN_OR_RETURN(std::string ids_text, GetMeta(store, kSealingIdsName));
  ASSIGN_OR_RETURN(std::vector<SealingKeyId> ids, ParseSealingKeyIds(ids_text));
  std::vector<SealingKeyPair> out;
  for (const SealingKeyId& id : ids) {
    SealingKeyPair key;
    key.key_id = id.key_id;
    key.not_after = id.not_after;
    absl::StatusOr<crypto::SecretBytes> secret = Unwrap(store, master, SealingPurpose(id.key_id));
    if (absl::IsNotFound(secret.status())) {
      return absl::DataLossError(
          absl::StrFormat("sealing key %d is listed in %s but its private key is missing",
                          id.key_id, kSealingIdsName));
    }
    RETURN_IF_ERROR(secret.status());
    key.private_key = *std::move(secret);
    absl::StatusOr<std::string> public_key = GetMeta(store, SealingPublicName(id.key_id));
    if (absl::IsNotFound(public_key.status())) {
      return absl::DataLossError(
          absl::StrFormat("sealing key %d is listed in %s but its public key is missing", id.key_id,
                          kSealingIdsName));
    }
    RETURN_IF_ERROR(public_key.status());
    ASSIGN_OR_RETURN(key.public_key, FixedBytes<32>(*public_key, "sealing public key"));
    absl::StatusOr<crypto::X25519PublicKey> derived =
        crypto::X25519PublicFromPrivate(key.private_key.span());
    if (!derived.ok() || *derived != key.public_key) {
      return absl::DataLossError(absl::StrFormat(
          "sealing key %d: the private key does not match the stored public key", id.key_id));
    }
    out.push_back(std::move(key));
  }
  return out;
}

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
  RETURN_IF_ERROR(WriteCertificateAuthorities(keys, master, random, batch));
  ASSIGN_OR_RETURN(std::string audit,
                   master.Wrap(kAuditPurpose, keys.audit_signing_seed.span(), random));
  if (keys.sealing_keys.empty()) return absl::InternalError("no sealing key to write");
  for (const SealingKeyPair& key : keys.sealing_keys) {
    RETURN_IF_ERROR(PutSealingKey(key, master, random, batch));
  }
  PutSealingKeyIds(keys.sealing_keys, batch);
  batch->Put(storage::Cf::kKeys, KeysKey(kAuditPurpose), audit);
  batch->Put(storage::Cf::kMetadata, Meta("audit_public_key"), AsString(keys.audit_public_key));
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
  ASSIGN_OR_RETURN(keys.sealing_keys, LoadSealingKeys(store, master));
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
