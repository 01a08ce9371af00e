#include "sync/case_key_sealer.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/hmac.h"

namespace fieldsync::sync {
namespace {

constexpr std::string_view kDigestKeyLabel = "fieldsync/field-digest/v1";

absl::StatusOr<crypto::FieldAddress> Address(const FieldAddress& at, Uuid* case_id,
                                             Uuid* record_id) {
  ASSIGN_OR_RETURN(*case_id, ParseUuid(at.case_id));
  ASSIGN_OR_RETURN(*record_id, ParseUuid(at.record_id));
  return crypto::FieldAddress{*case_id, *record_id, at.field, crypto::kCaseDekVersion};
}

}  // namespace

absl::Status CaseKeySealer::EnsureDek(const Uuid& case_id) {
  absl::StatusOr<crypto::SecretBytes> dek = keys_->GetDek(case_id);
  if (dek.ok() || !absl::IsNotFound(dek.status())) return dek.status();
  absl::MutexLock lock(&create_mu_);
  dek = keys_->GetDek(case_id);  // another thread may have made it
  if (dek.ok() || !absl::IsNotFound(dek.status())) return dek.status();
  storage::WriteBatch batch;
  // kFailedPrecondition here when the case was erased: nothing is sealed.
  RETURN_IF_ERROR(keys_->CreateDek(case_id, *random_, &batch).status());
  return store_->Commit(&batch);
}

absl::StatusOr<std::string> CaseKeySealer::Seal(const FieldAddress& at,
                                                std::string_view plaintext) {
  Uuid case_id, record_id;
  ASSIGN_OR_RETURN(crypto::FieldAddress address, Address(at, &case_id, &record_id));
  RETURN_IF_ERROR(EnsureDek(case_id));
  ASSIGN_OR_RETURN(auto cipher, keys_->GetFieldCipher(case_id));
  return cipher->Encrypt(address, plaintext, *random_);
}

absl::StatusOr<std::string> CaseKeySealer::Open(const FieldAddress& at,
                                                std::string_view sealed) const {
  Uuid case_id, record_id;
  ASSIGN_OR_RETURN(crypto::FieldAddress address, Address(at, &case_id, &record_id));
  ASSIGN_OR_RETURN(auto cipher, keys_->GetFieldCipher(case_id));
  absl::StatusOr<std::string> plain = cipher->Decrypt(address, sealed);
  if (absl::IsInvalidArgument(plain.status())) {
    return absl::DataLossError(absl::StrFormat(
        "field %s of record %s in case %s does not open", at.field, at.record_id, at.case_id));
  }
  return plain;
}

absl::StatusOr<std::string> CaseKeySealer::Digest(std::string_view case_text,
                                                  std::string_view field,
                                                  std::string_view plaintext) {
  ASSIGN_OR_RETURN(Uuid case_id, ParseUuid(case_text));
  RETURN_IF_ERROR(EnsureDek(case_id));
  ASSIGN_OR_RETURN(crypto::SecretBytes dek, keys_->GetDek(case_id));
  crypto::HmacSha256Tag key = crypto::HmacSha256(dek.span(), crypto::AsBytes(kDigestKeyLabel));
  std::string data;
  data.reserve(4 + field.size() + plaintext.size());
  for (int i = 3; i >= 0; --i) data.push_back(static_cast<char>((field.size() >> (8 * i)) & 0xFF));
  data.append(field);
  data.append(plaintext);
  crypto::HmacSha256Tag tag = crypto::HmacSha256(key, crypto::AsBytes(data));
  crypto::Cleanse(std::span<uint8_t>(key));
  return std::string(tag.begin(), tag.end());
}

}  // namespace fieldsync::sync
