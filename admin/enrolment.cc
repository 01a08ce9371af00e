#include "admin/enrolment.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "admin/officers.h"
#include "admin/staff.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/canonical.h"
#include "crypto/hash.h"
#include "storage/key_codec.h"
#include "sync/errors.h"

namespace fieldsync::admin {
namespace {

// Crockford's base32 alphabet: no I, L, O, U.
constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kCodeLength = 20;  // 100 bits
constexpr std::string_view kCodeHashDomain = "fieldsync/enrolment-code/v1";

absl::Status CodeInvalid(std::string_view why) {
  return sync::SyncError(
      absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID,
      absl::StrFormat("enrolment code %s: ask an administrator for a new one", std::string(why)));
}

absl::Status Malformed(std::string_view what) {
  return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED, what);
}

// Storage failures keep their code; they get the UNAVAILABLE reason so that
// the device retries.
absl::Status WithReason(absl::Status s) {
  if (s.ok() || sync::GetSyncErrorDetail(s).has_value()) return s;
  return sync::SyncError(s.code(), v1::SYNC_ERROR_REASON_UNAVAILABLE, std::string(s.message()));
}

}  // namespace

absl::StatusOr<std::string> NormalizeEnrolmentCode(std::string_view typed) {
  std::string out;
  for (char c : typed) {
    if (c == '-' || c == ' ') continue;
    c = absl::ascii_toupper(static_cast<unsigned char>(c));
    if (c == 'O') c = '0';
    if (c == 'I' || c == 'L') c = '1';
    if (kAlphabet.find(c) == std::string_view::npos) {
      return absl::InvalidArgumentError("an enrolment code holds only letters, digits and dashes");
    }
    out.push_back(c);
  }
  if (out.size() != kCodeLength) {
    return absl::InvalidArgumentError("an enrolment code has 20 letters and digits");
  }
  return out;
}

std::string EnrolmentCodeHashHex(std::string_view normalized_code) {
  crypto::CanonicalWriter w(kCodeHashDomain);
  w.Fixed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(normalized_code.data()),
                                   normalized_code.size()));
  crypto::Sha256Digest d = crypto::Sha256(w.view());
  std::string hex;
  for (uint8_t b : d) absl::StrAppendFormat(&hex, "%02x", b);
  return hex;
}

absl::StatusOr<IssuedEnrolmentCode> DeviceEnrolment::CreateCode(std::string_view officer_id,
                                                                std::string_view region,
                                                                absl::Duration ttl,
                                                                const std::string& actor) {
  absl::Status officer_ok = ValidateStaffId(officer_id);
  if (!officer_ok.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("officer id: %s", std::string(officer_ok.message())));
  }
  if (ttl == absl::ZeroDuration()) ttl = kDefaultEnrolmentCodeTtl;
  if (ttl < absl::ZeroDuration() || ttl > kMaxEnrolmentCodeTtl) {
    return absl::InvalidArgumentError("an enrolment code lives at most 30 days: shorten --ttl");
  }
  // Enroll checks the officer again: it may be revoked before the code is
  // used.
  ASSIGN_OR_RETURN(v1::Principal officer, ActiveOfficer(*registry_, officer_id));
  if (officer.regions_size() != 1) {
    return absl::DataLossError(absl::StrFormat("officer %s has %d regions in the registry, not one",
                                               officer.id(), officer.regions_size()));
  }
  const std::string& officer_region = officer.regions(0);
  if (region.empty()) {
    region = officer_region;
  } else if (region != officer_region) {
    return absl::InvalidArgumentError(
        absl::StrFormat("officer %s works in region %s: issue the code for that region (or give "
                        "none)",
                        officer.id(), officer_region));
  }
  std::array<uint8_t, kCodeLength> raw;
  random_->Fill(raw);
  std::string code;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (i > 0 && i % 4 == 0) code.push_back('-');
    code.push_back(kAlphabet[raw[i] & 31]);  // 256 is a multiple of 32: uniform
  }
  std::string normalized = *NormalizeEnrolmentCode(code);

  absl::Time now = clock_->Now();
  v1::EnrolmentCode stored;
  stored.set_officer_id(std::string(officer_id));
  stored.set_region(std::string(region));
  stored.set_created_unix_micros(absl::ToUnixMicros(now));
  stored.set_expires_unix_micros(absl::ToUnixMicros(now + ttl));
  stored.set_created_by(actor);
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kPrincipals,
            storage::EncodeEnrolmentCodeKey(EnrolmentCodeHashHex(normalized)),
            stored.SerializeAsString());
  // Who let a device be enrolled for which officer and region, in the same
  // commit as the code (never the code itself).
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    audit::AdminAction action;
    action.actor = actor;
    action.action = std::string(kIssueEnrolmentCodeAction);
    action.subject_ids = {std::string(officer_id), std::string(region)};
    RETURN_IF_ERROR(audit_->Append(audit::Event{now, std::move(action)}, &batch).status());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  return IssuedEnrolmentCode{std::move(code), now + ttl, std::string(officer_id),
                             std::string(region)};
}

absl::StatusOr<EnrolledDevice> DeviceEnrolment::Enroll(const EnrolmentRequest& request) {
  absl::StatusOr<std::string> normalized = NormalizeEnrolmentCode(request.code);
  if (!normalized.ok()) return CodeInvalid("is malformed");
  if (request.signing_public_key.size() != 32) {
    return Malformed("signing_public_key must be a 32-byte Ed25519 public key");
  }
  if (request.receiving_public_key.size() != 32) {
    return Malformed("receiving_public_key must be a 32-byte X25519 public key");
  }
  absl::StatusOr<crypto::VerifiedCsr> csr = crypto::VerifyCsr(request.csr_pem);
  if (!csr.ok()) {
    return Malformed(absl::StrFormat("CSR refused: %s", std::string(csr.status().message())));
  }

  const std::string code_key = storage::EncodeEnrolmentCodeKey(EnrolmentCodeHashHex(*normalized));
  absl::MutexLock lock(&registry_->write_mutex());
  absl::StatusOr<std::string> value = store_->Get(storage::Cf::kPrincipals, code_key);
  if (absl::IsNotFound(value.status())) return CodeInvalid("is unknown");
  RETURN_IF_ERROR(WithReason(value.status()));
  v1::EnrolmentCode code;
  if (!code.ParseFromString(*value)) {
    return absl::DataLossError("a stored enrolment code does not parse");
  }
  absl::Time now = clock_->Now();
  if (code.used_unix_micros() != 0) return CodeInvalid("was already used");
  if (now >= absl::FromUnixMicros(code.expires_unix_micros())) return CodeInvalid("has expired");
  // Under the registry's write mutex: the officer cannot be revoked between
  // this check and the commit.
  absl::StatusOr<v1::Principal> officer =
      registry_->Get(PrincipalName{v1::PRINCIPAL_KIND_OFFICER, code.officer_id()});
  if (absl::IsNotFound(officer.status())) {
    return CodeInvalid(
        absl::StrFormat("was issued for officer %s, who is not registered", code.officer_id()));
  }
  RETURN_IF_ERROR(WithReason(officer.status()));
  if (officer->status() != v1::PRINCIPAL_STATUS_ACTIVE) {
    return CodeInvalid(absl::StrFormat("was issued for officer %s, who has been revoked since",
                                       code.officer_id()));
  }

  PrincipalName name{v1::PRINCIPAL_KIND_DEVICE, FormatUuid(NewUuid(*random_))};
  absl::StatusOr<crypto::IssuedCertificate> cert = crypto::IssueClientCertificate(
      *ca_, csr->public_key_pem, PrincipalUri(name), now, crypto::kClientValidity);
  if (!cert.ok()) {
    return Malformed(absl::StrFormat("CSR refused: %s", std::string(cert.status().message())));
  }
  EnrolledDevice out;
  v1::Principal& p = out.principal;
  p.set_id(name.id);
  p.set_kind(v1::PRINCIPAL_KIND_DEVICE);
  p.set_role(v1::ROLE_DEVICE);
  p.add_regions(code.region());
  p.set_status(v1::PRINCIPAL_STATUS_ACTIVE);
  p.set_created_unix_micros(absl::ToUnixMicros(now));
  p.set_certificate_serial(cert->serial_hex);
  p.set_certificate_not_after_unix_micros(absl::ToUnixMicros(cert->not_after));
  p.set_officer_id(code.officer_id());
  p.set_signing_public_key(request.signing_public_key);
  p.set_receiving_public_key(request.receiving_public_key);
  p.set_changed_by(code.created_by());
  p.set_device_label(request.device_label);
  code.set_used_unix_micros(absl::ToUnixMicros(now));
  code.set_device_id(name.id);

  storage::WriteBatch batch;
  RETURN_IF_ERROR(registry_->Put(p, &batch));
  batch.Put(storage::Cf::kPrincipals, code_key, code.SerializeAsString());
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    audit::DeviceEnrolled event;
    event.device_id = name.id;
    event.officer_id = code.officer_id();
    event.region = code.region();
    const std::string& signing = request.signing_public_key;
    const std::string& receiving = request.receiving_public_key;
    if (signing.size() != 32 || receiving.size() != 32) {
      return Malformed("device public keys must be 32 bytes each");
    }
    std::copy(signing.begin(), signing.end(), event.signing_public_key.begin());
    std::copy(receiving.begin(), receiving.end(), event.receiving_public_key.begin());
    event.certificate_serial = cert->serial_hex;
    RETURN_IF_ERROR(audit_->Append(audit::Event{now, std::move(event)}, &batch).status());
  }
  RETURN_IF_ERROR(WithReason(store_->Commit(&batch)));
  session.Committed();
  out.certificate_pem = std::move(cert->certificate_pem);
  return out;
}

}  // namespace fieldsync::admin
