#include "admin/enrolment.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "admin/officers.h"
#include "admin/staff.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text_policy.h"
#include "common/uuid.h"
#include "crypto/canonical.h"
#include "crypto/hash.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "sync/errors.h"

namespace fieldsync::admin {
namespace {

// Crockford's base32 alphabet: no I, L, O, U.
constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kCodeLength = 20;  // 100 bits
constexpr std::string_view kCodeHashDomain = "fieldsync/enrolment-code/v1";
constexpr std::string_view kCodeIdDomain = "fieldsync/enrolment-code-id/v1";
constexpr size_t kCodeIdLength = 16;
// At most this many ids are named in a message.
constexpr size_t kMaxNamedCodes = 20;

// An id as a person types it: 16 lowercase hex digits.
bool IsCodeId(std::string_view id) {
  if (id.size() != kCodeIdLength) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsOpen(const v1::EnrolmentCode& code, absl::Time now) {
  return code.used_unix_micros() == 0 && code.cancelled_unix_micros() == 0 &&
         now < absl::FromUnixMicros(code.expires_unix_micros());
}

v1::ListedEnrolmentCode Listed(std::string code_id, const v1::EnrolmentCode& code) {
  v1::ListedEnrolmentCode out;
  out.set_code_id(std::move(code_id));
  out.set_officer_id(code.officer_id());
  out.set_region(code.region());
  out.set_created_unix_micros(code.created_unix_micros());
  out.set_expires_unix_micros(code.expires_unix_micros());
  out.set_created_by(code.created_by());
  return out;
}

// One stored code: its key, id and entry.
struct StoredCode {
  std::string key;
  std::string code_id;
  v1::EnrolmentCode code;
};

// Every stored code, in key order. kDataLoss if one does not parse.
absl::StatusOr<std::vector<StoredCode>> AllCodes(storage::Store* store) {
  const std::string lower = storage::KeyBuilder().U8(storage::kEnrolmentCodeTag).Finish();
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(storage::Cf::kPrincipals, lower, storage::PrefixUpperBound(lower));
  std::vector<StoredCode> out;
  for (; it->Valid(); it->Next()) {
    ASSIGN_OR_RETURN(std::string hash_hex, storage::DecodeEnrolmentCodeKey(it->key()));
    StoredCode c;
    c.key = std::string(it->key());
    c.code_id = EnrolmentCodeId(hash_hex);
    if (!c.code.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a stored enrolment code does not parse");
    }
    out.push_back(std::move(c));
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

std::string NameSome(std::vector<std::string> ids) {
  if (ids.empty()) return "(none)";
  const size_t more = ids.size() > kMaxNamedCodes ? ids.size() - kMaxNamedCodes : 0;
  ids.resize(ids.size() - more);
  std::string out = absl::StrJoin(ids, ", ");
  if (more > 0) absl::StrAppendFormat(&out, " and %d more", more);
  return out;
}

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

std::string EnrolmentCodeId(std::string_view code_hash_hex) {
  crypto::CanonicalWriter w(kCodeIdDomain);
  w.Fixed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(code_hash_hex.data()),
                                   code_hash_hex.size()));
  crypto::Sha256Digest d = crypto::Sha256(w.view());
  std::string hex;
  for (size_t i = 0; i < kCodeIdLength / 2; ++i) absl::StrAppendFormat(&hex, "%02x", d[i]);
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
  const std::string hash_hex = EnrolmentCodeHashHex(normalized);
  std::string code_id = EnrolmentCodeId(hash_hex);

  absl::Time now = clock_->Now();
  v1::EnrolmentCode stored;
  stored.set_officer_id(std::string(officer_id));
  stored.set_region(std::string(region));
  stored.set_created_unix_micros(absl::ToUnixMicros(now));
  stored.set_expires_unix_micros(absl::ToUnixMicros(now + ttl));
  stored.set_created_by(actor);
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kPrincipals, storage::EncodeEnrolmentCodeKey(hash_hex),
            stored.SerializeAsString());
  // Who let a device be enrolled for which officer and region, in the same
  // commit as the code (never the code itself).
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    protocol::AdminAction action;
    action.actor = actor;
    action.action = std::string(kIssueEnrolmentCodeAction);
    action.subject_ids = {std::string(officer_id), std::string(region), code_id};
    RETURN_IF_ERROR(session.Append(protocol::Event{now, std::move(action)}).status());
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info("enrolment_code.issue",
            {{"code_id", code_id}, {"officer", std::string(officer_id)}, {"actor", actor}});
  return IssuedEnrolmentCode{std::move(code), std::move(code_id), now + ttl,
                             std::string(officer_id), std::string(region)};
}

absl::StatusOr<std::vector<v1::ListedEnrolmentCode>> DeviceEnrolment::ListOpenCodes(
    std::string_view officer_id) const {
  if (!officer_id.empty()) {
    absl::StatusOr<v1::Principal> officer =
        ValidateStaffId(officer_id).ok()
            ? registry_->Get(PrincipalName{v1::PRINCIPAL_KIND_OFFICER, std::string(officer_id)})
            : absl::NotFoundError("not an officer id");
    if (absl::IsNotFound(officer.status())) {
      ASSIGN_OR_RETURN(std::vector<v1::Principal> officers,
                       registry_->List(v1::PRINCIPAL_KIND_OFFICER));
      std::vector<std::string> ids;
      for (const v1::Principal& p : officers) ids.push_back(p.id());
      return absl::InvalidArgumentError(
          absl::StrFormat("no officer \"%s\" is registered; the officers are: %s",
                          std::string(officer_id), NameSome(std::move(ids))));
    }
    RETURN_IF_ERROR(officer.status());
  }
  ASSIGN_OR_RETURN(std::vector<StoredCode> all, AllCodes(store_));
  const absl::Time now = clock_->Now();
  std::vector<v1::ListedEnrolmentCode> out;
  for (StoredCode& c : all) {
    if (!IsOpen(c.code, now)) continue;
    if (!officer_id.empty() && c.code.officer_id() != officer_id) continue;
    out.push_back(Listed(std::move(c.code_id), c.code));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const v1::ListedEnrolmentCode& a, const v1::ListedEnrolmentCode& b) {
                     return a.created_unix_micros() < b.created_unix_micros();
                   });
  return out;
}

absl::StatusOr<CancelledEnrolmentCode> DeviceEnrolment::CancelCode(std::string_view code_id,
                                                                   const std::string& actor) {
  if (!IsCodeId(code_id)) {
    return absl::InvalidArgumentError(
        "a code id is 16 lowercase hex digits, as `fieldsync device codes list` prints it (never "
        "the code itself)");
  }
  absl::MutexLock lock(&registry_->write_mutex());
  ASSIGN_OR_RETURN(std::vector<StoredCode> all, AllCodes(store_));
  const absl::Time now = clock_->Now();
  StoredCode* found = nullptr;
  std::vector<std::string> open;
  for (StoredCode& c : all) {
    if (c.code_id == code_id) found = &c;
    if (IsOpen(c.code, now)) open.push_back(c.code_id);
  }
  if (found == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("no enrolment code has id %s; the open codes are: %s", std::string(code_id),
                        NameSome(std::move(open))));
  }
  v1::EnrolmentCode& code = found->code;
  if (code.used_unix_micros() != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("enrolment code %s was used already (device %s): revoke the device instead "
                        "(fieldsync device revoke --id %s)",
                        found->code_id, code.device_id(), code.device_id()));
  }
  if (code.cancelled_unix_micros() != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("enrolment code %s was cancelled already", found->code_id));
  }
  if (now >= absl::FromUnixMicros(code.expires_unix_micros())) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "enrolment code %s has expired: it no longer enrols, nothing to cancel", found->code_id));
  }
  code.set_cancelled_unix_micros(absl::ToUnixMicros(now));
  code.set_cancelled_by(actor);
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kPrincipals, found->key, code.SerializeAsString());
  CancelledEnrolmentCode out;
  audit::AuditSession session(audit_, &batch);
  if (audit_ != nullptr) {
    protocol::AdminAction action;
    action.actor = actor;
    action.action = std::string(kCancelEnrolmentCodeAction);
    action.subject_ids = {found->code_id, code.officer_id()};
    ASSIGN_OR_RETURN(out.audit_leaf_index, session.Append(protocol::Event{now, std::move(action)}));
  }
  RETURN_IF_ERROR(store_->Commit(&batch));
  session.Committed();
  log::Info("enrolment_code.cancel",
            {{"code_id", found->code_id}, {"officer", code.officer_id()}, {"actor", actor}});
  out.code = Listed(found->code_id, code);
  return out;
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
  // An administrator reads the label back in device lists and logs.
  absl::Status label = CheckText(request.device_label, TextKind::kSingleLine, "device_label");
  if (!label.ok()) return Malformed(std::string(label.message()));
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
  if (code.cancelled_unix_micros() != 0) return CodeInvalid("was cancelled");
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
  std::shared_ptr<const CertificateAuthorities::State> cas = cas_->Get();
  absl::StatusOr<crypto::IssuedCertificate> cert = crypto::IssueClientCertificate(
      cas->issuer, csr->public_key_pem, PrincipalUri(name), now, crypto::kClientValidity);
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
  p.set_ca_generation(cas->generation);
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
    protocol::DeviceEnrolled event;
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
    RETURN_IF_ERROR(session.Append(protocol::Event{now, std::move(event)}).status());
  }
  RETURN_IF_ERROR(WithReason(store_->Commit(&batch)));
  session.Committed();
  log::Info("device.enrol", {{"principal", PrincipalUri(name)},
                             {"officer", code.officer_id()},
                             {"code_id", EnrolmentCodeId(EnrolmentCodeHashHex(*normalized))}});
  out.certificate_pem = std::move(cert->certificate_pem);
  return out;
}

EnrolmentAttempts::EnrolmentAttempts(EnrolmentLimits limits, const Clock* clock)
    : limits_(limits), clock_(clock) {
  const absl::Time now = clock_->Now();
  tokens_ = limits_.attempts_per_minute;
  tokens_updated_ = now;
  window_.start = now;
}

EnrolmentAdmission EnrolmentAttempts::Admit(std::string_view address) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  EnrolmentAdmission out;
  auto it = addresses_.find(std::string(address));
  if (it != addresses_.end()) {
    Address& a = it->second;
    if (now < a.locked_until) {
      out.verdict = EnrolmentAdmission::Verdict::kAddressLockedOut;
      out.retry_after = a.locked_until - now;
    } else if (a.failures >= limits_.lockout_failures) {
      a.failures = 0;  // the lockout is over: a fresh start
    } else if (a.failures >= limits_.free_failures) {
      const uint32_t doublings = std::min<uint32_t>(a.failures - limits_.free_failures, 30);
      const absl::Duration delay =
          std::min(limits_.max_delay, limits_.first_delay * (int64_t{1} << doublings));
      if (now < a.last_failure + delay) {
        out.verdict = EnrolmentAdmission::Verdict::kAddressWaiting;
        out.retry_after = a.last_failure + delay - now;
      }
    }
  }
  if (out.verdict == EnrolmentAdmission::Verdict::kAllowed) {
    const double per_second = limits_.attempts_per_minute / 60.0;
    tokens_ = std::min<double>(
        limits_.attempts_per_minute,
        tokens_ + std::max(0.0, absl::ToDoubleSeconds(now - tokens_updated_)) * per_second);
    tokens_updated_ = now;
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
    } else {
      out.verdict = EnrolmentAdmission::Verdict::kServerBusy;
      const double ms = (1.0 - tokens_) / per_second * 1000.0;
      out.retry_after = absl::Milliseconds(static_cast<int64_t>(std::ceil(ms - 1e-6)));
    }
  }
  if (out.verdict != EnrolmentAdmission::Verdict::kAllowed) {
    ++counts_.refused;
    ++window_.refused;
  }
  return out;
}

void EnrolmentAttempts::Failed(std::string_view address) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  ForgetIdleLocked(now);
  Address& a = addresses_[std::string(address)];
  ++a.failures;
  a.last_failure = now;
  ++counts_.failed;
  ++window_.failed;
  window_addresses_.insert(std::string(address));
  if (a.failures >= limits_.lockout_failures) {
    a.locked_until = now + limits_.lockout;
    ++counts_.lockouts;
    ++window_.lockouts;
    log::Warn("enrolment.lockout", {{"peer", address},
                                    {"failures", a.failures},
                                    {"seconds", absl::ToInt64Seconds(limits_.lockout)}});
  }
}

void EnrolmentAttempts::Succeeded(std::string_view address) {
  absl::MutexLock lock(&mu_);
  addresses_.erase(std::string(address));
}

EnrolmentAttemptCounts EnrolmentAttempts::Counts() const {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  EnrolmentAttemptCounts out = counts_;
  out.locked_out_now = 0;
  for (const auto& [address, a] : addresses_) {
    if (now < a.locked_until) ++out.locked_out_now;
  }
  return out;
}

EnrolmentFailureWindow EnrolmentAttempts::TakeWindow() {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  EnrolmentFailureWindow out = window_;
  out.end = now;
  out.distinct_addresses = window_addresses_.size();
  window_ = EnrolmentFailureWindow{};
  window_.start = now;
  window_addresses_.clear();
  return out;
}

void EnrolmentAttempts::ForgetIdleLocked(absl::Time now) {
  // Bounded memory under a spread-out attack: only addresses that still
  // wait or are locked out are kept once many are held.
  constexpr size_t kMaxAddresses = 65536;
  if (addresses_.size() < kMaxAddresses) return;
  absl::erase_if(addresses_, [&](const auto& kv) {
    const Address& a = kv.second;
    return now >= a.locked_until && now >= a.last_failure + limits_.max_delay;
  });
}

absl::StatusOr<bool> AuditEnrolmentFailures(EnrolmentAttempts* attempts, audit::AuditLog* audit,
                                            storage::Store* store) {
  const EnrolmentFailureWindow window = attempts->TakeWindow();
  if (window.failed == 0 && window.refused == 0) return false;
  protocol::EnrolmentFailures event;
  event.window_start = window.start;
  event.window_end = window.end;
  event.failed = window.failed;
  event.distinct_addresses = window.distinct_addresses;
  event.lockouts = window.lockouts;
  event.refused = window.refused;
  log::Info("enrolment.failures", {{"failed", window.failed},
                                   {"addresses", window.distinct_addresses},
                                   {"lockouts", window.lockouts},
                                   {"refused", window.refused}});
  storage::WriteBatch batch;
  audit::AuditSession session = audit->Begin(&batch);
  RETURN_IF_ERROR(session.Append(protocol::Event{window.end, std::move(event)}).status());
  RETURN_IF_ERROR(store->Commit(&batch));
  session.Committed();
  return true;
}

}  // namespace fieldsync::admin
