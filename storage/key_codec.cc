#include "storage/key_codec.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace fieldsync::storage {
namespace {

void AppendBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}

uint64_t ReadBigEndian(std::string_view b) {
  uint64_t v = 0;
  for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

constexpr uint64_t kSignBit = uint64_t{1} << 63;

// String escaping (persisted): 00 -> 00 FF; terminator 00 01.
constexpr char kEscape = '\x00';
constexpr char kEscapedZero = '\xFF';
constexpr char kTerminator = '\x01';

}  // namespace

KeyBuilder& KeyBuilder::U8(uint8_t v) {
  key_.push_back(static_cast<char>(v));
  return *this;
}

KeyBuilder& KeyBuilder::U32(uint32_t v) {
  AppendBigEndian(&key_, v, 4);
  return *this;
}

KeyBuilder& KeyBuilder::U64(uint64_t v) {
  AppendBigEndian(&key_, v, 8);
  return *this;
}

KeyBuilder& KeyBuilder::I64(int64_t v) {
  AppendBigEndian(&key_, static_cast<uint64_t>(v) ^ kSignBit, 8);
  return *this;
}

KeyBuilder& KeyBuilder::String(std::string_view s) {
  key_.reserve(key_.size() + s.size() + 2);
  for (char c : s) {
    key_.push_back(c);
    if (c == kEscape) key_.push_back(kEscapedZero);
  }
  key_.push_back(kEscape);
  key_.push_back(kTerminator);
  return *this;
}

KeyBuilder& KeyBuilder::Uuid(std::span<const uint8_t, 16> id) {
  key_.append(reinterpret_cast<const char*>(id.data()), id.size());
  return *this;
}

KeyBuilder& KeyBuilder::Bytes(std::string_view raw) {
  key_.append(raw);
  return *this;
}

absl::StatusOr<std::string_view> KeyReader::Take(size_t n, std::string_view what) {
  if (key_.size() - pos_ < n) {
    return absl::DataLossError(
        absl::StrFormat("malformed key: expected %s (%d bytes) at offset %d, only %d bytes left",
                        what, n, pos_, key_.size() - pos_));
  }
  std::string_view out = key_.substr(pos_, n);
  pos_ += n;
  return out;
}

absl::StatusOr<uint8_t> KeyReader::U8() {
  ASSIGN_OR_RETURN(std::string_view b, Take(1, "u8"));
  return static_cast<uint8_t>(b[0]);
}

absl::StatusOr<uint32_t> KeyReader::U32() {
  ASSIGN_OR_RETURN(std::string_view b, Take(4, "u32"));
  return static_cast<uint32_t>(ReadBigEndian(b));
}

absl::StatusOr<uint64_t> KeyReader::U64() {
  ASSIGN_OR_RETURN(std::string_view b, Take(8, "u64"));
  return ReadBigEndian(b);
}

absl::StatusOr<int64_t> KeyReader::I64() {
  ASSIGN_OR_RETURN(std::string_view b, Take(8, "i64"));
  return static_cast<int64_t>(ReadBigEndian(b) ^ kSignBit);
}

absl::StatusOr<std::string> KeyReader::String() {
  const size_t start = pos_;
  std::string out;
  while (pos_ < key_.size()) {
    const char c = key_[pos_];
    if (c != kEscape) {
      out.push_back(c);
      ++pos_;
      continue;
    }
    if (pos_ + 1 >= key_.size()) break;  // 00 at the very end: truncated
    const char next = key_[pos_ + 1];
    pos_ += 2;
    if (next == kTerminator) return out;
    if (next != kEscapedZero) {
      return absl::DataLossError(absl::StrFormat(
          "malformed key: bad escape 00 %02x in string at offset %d (expected 00 ff or 00 01)",
          static_cast<uint8_t>(next), pos_ - 2));
    }
    out.push_back('\0');
  }
  return absl::DataLossError(absl::StrFormat(
      "malformed key: string starting at offset %d has no 00 01 terminator", start));
}

absl::StatusOr<std::array<uint8_t, 16>> KeyReader::Uuid() {
  ASSIGN_OR_RETURN(std::string_view b, Take(16, "16-byte id"));
  std::array<uint8_t, 16> out;
  for (size_t i = 0; i < 16; ++i) out[i] = static_cast<uint8_t>(b[i]);
  return out;
}

std::string_view KeyReader::Rest() {
  std::string_view rest = key_.substr(pos_);
  pos_ = key_.size();
  return rest;
}

absl::Status KeyReader::ExpectEnd(std::string_view what) const {
  if (AtEnd()) return absl::OkStatus();
  return absl::DataLossError(absl::StrFormat(
      "malformed %s: %d unexpected trailing bytes at offset %d", what, key_.size() - pos_, pos_));
}

std::string PrefixUpperBound(std::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty() && static_cast<uint8_t>(bound.back()) == 0xFF) bound.pop_back();
  if (bound.empty()) return bound;
  bound.back() = static_cast<char>(static_cast<uint8_t>(bound.back()) + 1);
  return bound;
}

// --- Key kinds --------------------------------------------------------------

std::string EncodePrincipalKey(PrincipalKind kind, std::string_view id) {
  return KeyBuilder().U8(static_cast<uint8_t>(kind)).String(id).Finish();
}

absl::StatusOr<PrincipalKey> DecodePrincipalKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != static_cast<uint8_t>(PrincipalKind::kDevice) &&
      tag != static_cast<uint8_t>(PrincipalKind::kStaff) &&
      tag != static_cast<uint8_t>(PrincipalKind::kOfficer)) {
    return absl::DataLossError(absl::StrFormat(
        "malformed principal key: kind tag %d is not 1 (device), 2 (staff) or 4 (officer)", tag));
  }
  ASSIGN_OR_RETURN(std::string id, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("principal key"));
  return PrincipalKey{static_cast<PrincipalKind>(tag), std::move(id)};
}

std::string PrincipalKindPrefix(PrincipalKind kind) {
  return KeyBuilder().U8(static_cast<uint8_t>(kind)).Finish();
}

std::string EncodeEnrolmentCodeKey(std::string_view code_hash_hex) {
  return KeyBuilder().U8(kEnrolmentCodeTag).String(code_hash_hex).Finish();
}

absl::StatusOr<std::string> DecodeEnrolmentCodeKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kEnrolmentCodeTag) {
    return absl::DataLossError(absl::StrFormat("malformed enrolment-code key: tag %d, expected %d",
                                               tag, kEnrolmentCodeTag));
  }
  ASSIGN_OR_RETURN(std::string hash_hex, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("enrolment-code key"));
  return hash_hex;
}

std::string EncodeDeviceLastSyncKey(std::string_view device_id) {
  return KeyBuilder().U8(kDeviceLastSyncTag).String(device_id).Finish();
}

absl::StatusOr<std::string> DecodeDeviceLastSyncKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kDeviceLastSyncTag) {
    return absl::DataLossError(absl::StrFormat(
        "malformed device last-sync key: tag %d, expected %d", tag, kDeviceLastSyncTag));
  }
  ASSIGN_OR_RETURN(std::string device_id, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("device last-sync key"));
  return device_id;
}

std::string DeviceLastSyncPrefix() { return KeyBuilder().U8(kDeviceLastSyncTag).Finish(); }

std::string EncodeCaseDekKey(std::span<const uint8_t, 16> case_id) {
  return KeyBuilder().U8(kCaseDekTag).Uuid(case_id).Finish();
}

absl::StatusOr<std::array<uint8_t, 16>> DecodeCaseDekKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kCaseDekTag) {
    return absl::DataLossError(
        absl::StrFormat("malformed case DEK key: tag %d, expected %d", tag, kCaseDekTag));
  }
  ASSIGN_OR_RETURN(auto case_id, r.Uuid());
  RETURN_IF_ERROR(r.ExpectEnd("case DEK key"));
  return case_id;
}

std::string CaseDekPrefix() { return KeyBuilder().U8(kCaseDekTag).Finish(); }

std::string EncodeCaseLogKey(uint64_t position) { return KeyBuilder().U64(position).Finish(); }

absl::StatusOr<uint64_t> DecodeCaseLogKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint64_t position, r.U64());
  RETURN_IF_ERROR(r.ExpectEnd("case-log key"));
  return position;
}

std::string EncodeMetadataKey(std::string_view name) { return KeyBuilder().String(name).Finish(); }

absl::StatusOr<std::string> DecodeMetadataKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(std::string name, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("metadata key"));
  return name;
}

std::string EncodeNameKey(NameKind kind, uint32_t id) {
  return KeyBuilder().U8(kNameKeyTag).U8(static_cast<uint8_t>(kind)).U32(id).Finish();
}

absl::StatusOr<NameKey> DecodeNameKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kNameKeyTag) {
    return absl::DataLossError(absl::StrFormat("malformed name key: tag %d", tag));
  }
  NameKey out;
  ASSIGN_OR_RETURN(uint8_t kind, r.U8());
  out.kind = static_cast<NameKind>(kind);
  ASSIGN_OR_RETURN(out.id, r.U32());
  RETURN_IF_ERROR(r.ExpectEnd("name key"));
  return out;
}

std::string NameKeyPrefix() { return KeyBuilder().U8(kNameKeyTag).Finish(); }

// --- Sync keys ---------------------------------------------------------------

namespace {

absl::Status ExpectTag(KeyReader& r, uint8_t want, std::string_view what) {
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != want) {
    return absl::DataLossError(
        absl::StrFormat("malformed %s: tag %d, expected %d", what, tag, want));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeRecordHeaderKey(std::span<const uint8_t, 16> case_id,
                                  std::span<const uint8_t, 16> record_id) {
  return KeyBuilder().Uuid(case_id).Uuid(record_id).U8(kRecordHeaderTag).Finish();
}

std::string EncodeFieldStateKey(std::span<const uint8_t, 16> case_id,
                                std::span<const uint8_t, 16> record_id, std::string_view field) {
  return KeyBuilder().Uuid(case_id).Uuid(record_id).U8(kFieldStateTag).String(field).Finish();
}

std::string EncodeRecordStateKey(std::span<const uint8_t, 16> case_id,
                                 std::span<const uint8_t, 16> record_id) {
  return KeyBuilder().Uuid(case_id).Uuid(record_id).U8(kRecordStateTag).Finish();
}

absl::StatusOr<RecordsKey> DecodeRecordsKey(std::string_view key) {
  KeyReader r(key);
  RecordsKey out;
  ASSIGN_OR_RETURN(out.case_id, r.Uuid());
  ASSIGN_OR_RETURN(out.record_id, r.Uuid());
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag == kRecordHeaderTag) {
    out.is_header = true;
  } else if (tag == kRecordStateTag) {
    out.is_state = true;
  } else if (tag == kFieldStateTag) {
    ASSIGN_OR_RETURN(out.field, r.String());
  } else {
    return absl::DataLossError(absl::StrFormat("malformed records key: tag %d", tag));
  }
  RETURN_IF_ERROR(r.ExpectEnd("records key"));
  return out;
}

std::string CaseRecordsPrefix(std::span<const uint8_t, 16> case_id) {
  return KeyBuilder().Uuid(case_id).Finish();
}

std::string RecordPrefix(std::span<const uint8_t, 16> case_id,
                         std::span<const uint8_t, 16> record_id) {
  return KeyBuilder().Uuid(case_id).Uuid(record_id).Finish();
}

std::string EncodeCaseScopeListKey(std::string_view region, std::string_view officer_id) {
  return KeyBuilder().U8(kCaseScopeListTag).String(region).String(officer_id).Finish();
}

absl::StatusOr<CaseScopeListKey> DecodeCaseScopeListKey(std::string_view key) {
  KeyReader r(key);
  RETURN_IF_ERROR(ExpectTag(r, kCaseScopeListTag, "case scope list key"));
  CaseScopeListKey out;
  ASSIGN_OR_RETURN(out.region, r.String());
  ASSIGN_OR_RETURN(out.officer_id, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("case scope list key"));
  return out;
}

std::string CaseScopeListPrefix() { return KeyBuilder().U8(kCaseScopeListTag).Finish(); }

std::string CaseScopeListRegionPrefix(std::string_view region) {
  return KeyBuilder().U8(kCaseScopeListTag).String(region).Finish();
}

std::string EncodeCaseEntryKey(std::span<const uint8_t, 16> case_id, uint64_t position) {
  return KeyBuilder().U8(kCaseEntryTag).Uuid(case_id).U64(position).Finish();
}

absl::StatusOr<CaseEntryKey> DecodeCaseEntryKey(std::string_view key) {
  KeyReader r(key);
  CaseEntryKey out;
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kCaseEntryTag) {
    return absl::DataLossError(absl::StrFormat("malformed case-entry key: tag %d", tag));
  }
  ASSIGN_OR_RETURN(out.case_id, r.Uuid());
  ASSIGN_OR_RETURN(out.position, r.U64());
  RETURN_IF_ERROR(r.ExpectEnd("case-entry key"));
  return out;
}

std::string CaseEntriesPrefix(std::span<const uint8_t, 16> case_id) {
  return KeyBuilder().U8(kCaseEntryTag).Uuid(case_id).Finish();
}

std::string EncodeConflictKey(std::span<const uint8_t, 16> case_id, uint64_t position,
                              std::string_view field) {
  return KeyBuilder().U8(kConflictTag).Uuid(case_id).U64(position).String(field).Finish();
}

absl::StatusOr<ConflictKey> DecodeConflictKey(std::string_view key) {
  KeyReader r(key);
  RETURN_IF_ERROR(ExpectTag(r, kConflictTag, "conflict key"));
  ConflictKey out;
  ASSIGN_OR_RETURN(out.case_id, r.Uuid());
  ASSIGN_OR_RETURN(out.position, r.U64());
  ASSIGN_OR_RETURN(out.field, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("conflict key"));
  return out;
}

std::string CaseConflictsPrefix(std::span<const uint8_t, 16> case_id) {
  return KeyBuilder().U8(kConflictTag).Uuid(case_id).Finish();
}

std::string EncodeOpenConflictKey(std::string_view region, std::span<const uint8_t, 16> case_id,
                                  uint64_t position, std::string_view field) {
  return KeyBuilder()
      .U8(kOpenConflictByRegionTag)
      .String(region)
      .U64(position)
      .Uuid(case_id)
      .String(field)
      .Finish();
}

absl::StatusOr<OpenConflictKey> DecodeOpenConflictKey(std::string_view key) {
  KeyReader r(key);
  RETURN_IF_ERROR(ExpectTag(r, kOpenConflictByRegionTag, "open-conflict key"));
  OpenConflictKey out;
  ASSIGN_OR_RETURN(out.region, r.String());
  ASSIGN_OR_RETURN(out.conflict.position, r.U64());
  ASSIGN_OR_RETURN(out.conflict.case_id, r.Uuid());
  ASSIGN_OR_RETURN(out.conflict.field, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("open-conflict key"));
  return out;
}

std::string RegionOpenConflictsPrefix(std::string_view region) {
  return KeyBuilder().U8(kOpenConflictByRegionTag).String(region).Finish();
}

std::string EncodeBatchKey(std::string_view device_id, std::span<const uint8_t, 16> batch_id) {
  return KeyBuilder().U8(kBatchTag).String(device_id).Uuid(batch_id).Finish();
}

absl::StatusOr<BatchKey> DecodeBatchKey(std::string_view key) {
  KeyReader r(key);
  RETURN_IF_ERROR(ExpectTag(r, kBatchTag, "batch key"));
  BatchKey out;
  ASSIGN_OR_RETURN(out.device_id, r.String());
  ASSIGN_OR_RETURN(out.batch_id, r.Uuid());
  RETURN_IF_ERROR(r.ExpectEnd("batch key"));
  return out;
}

std::string EncodeDeviceSequenceKey(std::string_view device_id) {
  return KeyBuilder().U8(kDeviceSequenceTag).String(device_id).Finish();
}

absl::StatusOr<std::string> DecodeDeviceSequenceKey(std::string_view key) {
  KeyReader r(key);
  RETURN_IF_ERROR(ExpectTag(r, kDeviceSequenceTag, "device-sequence key"));
  ASSIGN_OR_RETURN(std::string device_id, r.String());
  RETURN_IF_ERROR(r.ExpectEnd("device-sequence key"));
  return device_id;
}

// --- Audit keys --------------------------------------------------------------

std::string EncodeAuditLeafKey(uint64_t index) {
  return KeyBuilder().U8(kAuditLeafTag).U64(index).Finish();
}

absl::StatusOr<uint64_t> DecodeAuditLeafKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kAuditLeafTag) return absl::DataLossError("audit leaf key: wrong tag");
  ASSIGN_OR_RETURN(uint64_t index, r.U64());
  RETURN_IF_ERROR(r.ExpectEnd("audit leaf key"));
  return index;
}

std::string AuditLeafKeyPrefix() { return KeyBuilder().U8(kAuditLeafTag).Finish(); }

std::string EncodeAuditLeafByHashKey(std::span<const uint8_t, 32> leaf_hash) {
  return KeyBuilder()
      .U8(kAuditLeafByHashTag)
      .Bytes(std::string_view(reinterpret_cast<const char*>(leaf_hash.data()), leaf_hash.size()))
      .Finish();
}

absl::StatusOr<std::array<uint8_t, 32>> DecodeAuditLeafByHashKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kAuditLeafByHashTag) return absl::DataLossError("audit leaf-hash key: wrong tag");
  std::string_view rest = r.Rest();
  if (rest.size() != 32) return absl::DataLossError("audit leaf-hash key: hash is not 32 bytes");
  std::array<uint8_t, 32> hash;
  std::copy(rest.begin(), rest.end(), hash.begin());
  return hash;
}

std::string EncodeAuditBatchLeafKey(std::string_view device_id,
                                    std::span<const uint8_t, 16> batch_id) {
  return KeyBuilder().U8(kAuditBatchLeafTag).String(device_id).Uuid(batch_id).Finish();
}

absl::StatusOr<BatchKey> DecodeAuditBatchLeafKey(std::string_view key) {
  KeyReader r(key);
  ASSIGN_OR_RETURN(uint8_t tag, r.U8());
  if (tag != kAuditBatchLeafTag) return absl::DataLossError("audit batch key: wrong tag");
  BatchKey out;
  ASSIGN_OR_RETURN(out.device_id, r.String());
  ASSIGN_OR_RETURN(out.batch_id, r.Uuid());
  RETURN_IF_ERROR(r.ExpectEnd("audit batch key"));
  return out;
}

std::string EncodeAuditNodeKey(uint8_t level, uint64_t index) {
  return KeyBuilder().U8(level).U64(index).Finish();
}

absl::StatusOr<AuditNodeKey> DecodeAuditNodeKey(std::string_view key) {
  KeyReader r(key);
  AuditNodeKey out;
  ASSIGN_OR_RETURN(out.level, r.U8());
  if (out.level > 63) return absl::DataLossError("audit node key: level above 63");
  ASSIGN_OR_RETURN(out.index, r.U64());
  RETURN_IF_ERROR(r.ExpectEnd("audit node key"));
  return out;
}

std::string EncodeCounterPageKey(std::string_view metric, uint8_t granularity, uint32_t period) {
  return KeyBuilder().U8(kCounterPageTag).String(metric).U8(granularity).U32(period).Finish();
}

absl::StatusOr<CounterKey> DecodeCounterPageKey(std::string_view key) {
  KeyReader r(key);
  RETURN_IF_ERROR(ExpectTag(r, kCounterPageTag, "counter page key"));
  CounterKey out;
  ASSIGN_OR_RETURN(out.metric, r.String());
  ASSIGN_OR_RETURN(out.granularity, r.U8());
  if (out.granularity != 'S' && out.granularity != 'W' && out.granularity != 'M') {
    return absl::DataLossError(
        absl::StrFormat("malformed counter page key: granularity %d", out.granularity));
  }
  ASSIGN_OR_RETURN(out.period, r.U32());
  RETURN_IF_ERROR(r.ExpectEnd("counter page key"));
  return out;
}

std::string EncodeCounterCell(const std::vector<std::string>& values) {
  KeyBuilder b;
  for (const std::string& v : values) b.String(v);
  return std::move(b).Finish();
}

absl::StatusOr<std::vector<std::string>> DecodeCounterCell(std::string_view member) {
  KeyReader r(member);
  std::vector<std::string> values;
  while (!r.AtEnd()) {
    ASSIGN_OR_RETURN(std::string v, r.String());
    values.push_back(std::move(v));
  }
  return values;
}

}  // namespace fieldsync::storage
