// The one order-preserving codec for every RocksDB key of fieldsync: the
// byte order of encoded keys (RocksDB's bytewise comparator) is the order of
// the values they encode. STYLE §3. All layouts here are persisted.
//
// Components, each written out in full:
//   U8, U32, U64  fixed width, big-endian: byte order is numeric order.
//   I64           the two's complement value with its sign bit flipped,
//                 then big-endian: INT64_MIN -> 00..00, -1 -> 7F FF..FF,
//                 0 -> 80 00..00, INT64_MAX -> FF..FF.
//   String        each 00 byte written as 00 FF, every other byte as is,
//                 then the terminator 00 01. Order holds (the terminator sorts
//                 below every continuation) and no encoded string is a prefix
//                 of another, so a later component never changes the order.
//   Uuid/Bytes16  16 raw bytes.
//   Bytes         raw, unterminated: only ever the last component of a key.
#ifndef FIELDSYNC_STORAGE_KEY_CODEC_H_
#define FIELDSYNC_STORAGE_KEY_CODEC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/column_families.h"

namespace fieldsync::storage {

// Builds one key, component by component. Not thread-safe.
//   std::string key = KeyBuilder().U8(1).String(id).Finish();
class KeyBuilder {
 public:
  KeyBuilder() = default;

  KeyBuilder& U8(uint8_t v);
  KeyBuilder& U32(uint32_t v);
  KeyBuilder& U64(uint64_t v);
  KeyBuilder& I64(int64_t v);
  KeyBuilder& String(std::string_view s);
  KeyBuilder& Uuid(std::span<const uint8_t, 16> id);
  KeyBuilder& Bytes16(std::span<const uint8_t, 16> b) { return Uuid(b); }
  // Raw bytes with no terminator. REQUIRES: nothing is appended after it.
  KeyBuilder& Bytes(std::string_view raw);

  // The key built so far.
  const std::string& view() const { return key_; }
  // The key; the rvalue form moves it out (`std::move(b).Finish()`), the
  // lvalue form (for one-line chains on a temporary) copies it.
  std::string Finish() && { return std::move(key_); }
  std::string Finish() const& { return key_; }

 private:
  std::string key_;
};

// Reads the components of a key in the order they were built. Every
// accessor returns kDataLoss naming the expected component and the offset
// when the bytes are truncated or malformed; it never crashes. After an
// error the reader's position is unspecified. Not thread-safe; `key` must
// outlive the reader.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : key_(key) {}

  absl::StatusOr<uint8_t> U8();
  absl::StatusOr<uint32_t> U32();
  absl::StatusOr<uint64_t> U64();
  absl::StatusOr<int64_t> I64();
  // kDataLoss on a 00 followed by anything but FF or 01, or no terminator.
  absl::StatusOr<std::string> String();
  absl::StatusOr<std::array<uint8_t, 16>> Uuid();
  absl::StatusOr<std::array<uint8_t, 16>> Bytes16() { return Uuid(); }
  // All remaining bytes (the trailing Bytes component); leaves AtEnd().
  std::string_view Rest();

  bool AtEnd() const { return pos_ == key_.size(); }
  // OK when every byte has been read; kDataLoss naming `what` otherwise.
  absl::Status ExpectEnd(std::string_view what) const;
  size_t position() const { return pos_; }

 private:
  absl::StatusOr<std::string_view> Take(size_t n, std::string_view what);

  std::string_view key_;
  size_t pos_ = 0;
};

// The smallest key greater than every key that starts with `prefix`, for
// iterate_upper_bound; "" (unbounded) when `prefix` is empty or all FF.
std::string PrefixUpperBound(std::string_view prefix);

// ---------------------------------------------------------------------------
// Key kinds. Each: its column family, layout, Encode and Decode. Decode
// returns kDataLoss for any key that Encode cannot produce.

// Cf::kPrincipals, a device, staff or officer principal:
//   U8 kind (PrincipalKind: 1 = device, 2 = staff, 4 = officer) | String id
// (3 is the enrolment-code tag: never a principal kind.)
struct PrincipalKey {
  PrincipalKind kind;
  std::string id;
  friend bool operator==(const PrincipalKey&, const PrincipalKey&) = default;
};
std::string EncodePrincipalKey(PrincipalKind kind, std::string_view id);
absl::StatusOr<PrincipalKey> DecodePrincipalKey(std::string_view key);
// The prefix of every principal key of `kind` (scan with PrefixUpperBound).
std::string PrincipalKindPrefix(PrincipalKind kind);

// Cf::kPrincipals, an enrolment code, by the hex of its hash:
//   U8 3 (kEnrolmentCodeTag) | String code_hash_hex
std::string EncodeEnrolmentCodeKey(std::string_view code_hash_hex);
absl::StatusOr<std::string> DecodeEnrolmentCodeKey(std::string_view key);

// Cf::kPrincipals, when a device last pushed or pulled (value: I64
// microseconds since the Unix epoch; admin/device_activity.h):
//   U8 5 (kDeviceLastSyncTag) | String device_id
// Every such key starts with DeviceLastSyncPrefix().
std::string EncodeDeviceLastSyncKey(std::string_view device_id);
absl::StatusOr<std::string> DecodeDeviceLastSyncKey(std::string_view key);
std::string DeviceLastSyncPrefix();

// Cf::kKeys, a case's wrapped data key (keys/case_keys.h):
//   U8 1 (kCaseDekTag) | Uuid case_id
// All case DEK keys share the one-byte prefix CaseDekPrefix().
std::string EncodeCaseDekKey(std::span<const uint8_t, 16> case_id);
absl::StatusOr<std::array<uint8_t, 16>> DecodeCaseDekKey(std::string_view key);
std::string CaseDekPrefix();

// Cf::kCaseLog: U64 position (8 bytes, big-endian). kDataLoss unless 8 bytes.
std::string EncodeCaseLogKey(uint64_t position);
absl::StatusOr<uint64_t> DecodeCaseLogKey(std::string_view key);

// Cf::kMetadata: String name.
std::string EncodeMetadataKey(std::string_view name);
absl::StatusOr<std::string> DecodeMetadataKey(std::string_view key);

// Cf::kMetadata, one name of the store's name dictionary (value: the name's
// bytes; name_dictionary.h):
//   U8 1 (kNameKeyTag) | U8 kind (NameKind) | U32 id
// Every such key starts with NameKeyPrefix(); one kind's ids are in order.
struct NameKey {
  NameKind kind = NameKind::kField;
  uint32_t id = 0;
  friend bool operator==(const NameKey&, const NameKey&) = default;
};
std::string EncodeNameKey(NameKind kind, uint32_t id);
absl::StatusOr<NameKey> DecodeNameKey(std::string_view key);
std::string NameKeyPrefix();

// --- Sync (sync/). Ids are 16 raw bytes; device ids, regions, officers and
// field names are String components. Tags in column_families.h.

// Cf::kRecords, a record's state (layout 2; sync/record_codec.h), and the
// header (v1.RecordHeader) and field states (v1.FieldState) of layout 1,
// which a store upgraded to layout 2 no longer holds
// (sync/layout_upgrade.h):
//   Uuid case_id | Uuid record_id | U8 3 (kRecordStateTag)
//   Uuid case_id | Uuid record_id | U8 1 (kRecordHeaderTag)         layout 1
//   Uuid case_id | Uuid record_id | U8 2 (kFieldStateTag) | String field
//                                                                  layout 1
// A case's keys share the 16-byte prefix CaseRecordsPrefix(case_id), a
// record's the 32-byte prefix RecordPrefix(case_id, record_id).
struct RecordsKey {
  std::array<uint8_t, 16> case_id;
  std::array<uint8_t, 16> record_id;
  bool is_header = false;  // layout 1
  bool is_state = false;
  std::string field;  // layout 1 field states; empty otherwise
  friend bool operator==(const RecordsKey&, const RecordsKey&) = default;
};
std::string EncodeRecordStateKey(std::span<const uint8_t, 16> case_id,
                                 std::span<const uint8_t, 16> record_id);
std::string EncodeRecordHeaderKey(std::span<const uint8_t, 16> case_id,
                                  std::span<const uint8_t, 16> record_id);
std::string EncodeFieldStateKey(std::span<const uint8_t, 16> case_id,
                                std::span<const uint8_t, 16> record_id, std::string_view field);
absl::StatusOr<RecordsKey> DecodeRecordsKey(std::string_view key);
std::string CaseRecordsPrefix(std::span<const uint8_t, 16> case_id);
std::string RecordPrefix(std::span<const uint8_t, 16> case_id,
                         std::span<const uint8_t, 16> record_id);

// Cf::kCaseIndex, the cases of one region and assigned officer, the empty
// string for a field that is unset (value: keyed sums, keyed_sums.h, whose
// members are 16-byte case ids, each with sum 1):
//   U8 6 (kCaseScopeListTag) | String region | String officer_id
// Every case whose region or officer is set is a member of exactly one
// list. A region's lists are read with CaseScopeListRegionPrefix(region),
// an officer's by reading its list in each region present (few). Moved by
// Merge operands (+1 under the new region and officer, -1 under the old)
// that the reconciler sums over a commit group (sync/reconcile.cc), so a
// group of one officer's new cases writes one key; it lists exactly the
// cases the scope rule (sync/scope.h) gives an officer or a region; a pull
// by scope (sync/pull.h) and ListCases read it. Not touched by an erasure
// (an erased case stays in its scopes). Merge rules 4 kept one key per case
// instead (tag 5: U8 5 | String region | String officer_id | Uuid case_id),
// rules 3 and earlier two (tags 1 and 2, by region and by officer); a store
// of those rules is rebuilt at start (sync/rebuild.h
// BringStateToCurrentRules).
struct CaseScopeListKey {
  std::string region;
  std::string officer_id;
  friend bool operator==(const CaseScopeListKey&, const CaseScopeListKey&) = default;
};
std::string EncodeCaseScopeListKey(std::string_view region, std::string_view officer_id);
absl::StatusOr<CaseScopeListKey> DecodeCaseScopeListKey(std::string_view key);
// The prefix of every scope list key and of one region's.
std::string CaseScopeListPrefix();
std::string CaseScopeListRegionPrefix(std::string_view region);

// Cf::kCaseIndex, one log entry of a case (value empty), so that a case's
// history, and a pull of a scope's cases (merging their entry streams by
// position, sync/pull.h), are read without scanning the log:
//   U8 4 (kCaseEntryTag) | Uuid case_id | U64 position
// Written with every log entry but the one that created its record (since
// merge rules 4): that entry's position is the record state's
// created_position, so a case's entries are its records' created positions
// and its entry keys (sync/case_entries.h). A state built under earlier
// rules is rebuilt at start (BringStateToCurrentRules).
struct CaseEntryKey {
  std::array<uint8_t, 16> case_id;
  uint64_t position = 0;
  friend bool operator==(const CaseEntryKey&, const CaseEntryKey&) = default;
};
std::string EncodeCaseEntryKey(std::span<const uint8_t, 16> case_id, uint64_t position);
absl::StatusOr<CaseEntryKey> DecodeCaseEntryKey(std::string_view key);
// The prefix of every entry key of `case_id`, in position order.
std::string CaseEntriesPrefix(std::span<const uint8_t, 16> case_id);

// Cf::kConflicts, a conflict record (v1.ConflictRecord) by case, and an
// open conflict by region (value empty) for listing:
//   U8 1 (kConflictTag) | Uuid case_id | U64 position | String field
//   U8 2 (kOpenConflictByRegionTag) | String region | U64 position |
//        Uuid case_id | String field
// `position` is the log position of the entry that made the conflict;
// `field` is "" for a record-level conflict.
struct ConflictKey {
  std::array<uint8_t, 16> case_id;
  uint64_t position = 0;
  std::string field;
  friend bool operator==(const ConflictKey&, const ConflictKey&) = default;
};
std::string EncodeConflictKey(std::span<const uint8_t, 16> case_id, uint64_t position,
                              std::string_view field);
absl::StatusOr<ConflictKey> DecodeConflictKey(std::string_view key);
std::string CaseConflictsPrefix(std::span<const uint8_t, 16> case_id);
struct OpenConflictKey {
  std::string region;
  ConflictKey conflict;
  friend bool operator==(const OpenConflictKey&, const OpenConflictKey&) = default;
};
std::string EncodeOpenConflictKey(std::string_view region, std::span<const uint8_t, 16> case_id,
                                  uint64_t position, std::string_view field);
absl::StatusOr<OpenConflictKey> DecodeOpenConflictKey(std::string_view key);
std::string RegionOpenConflictsPrefix(std::string_view region);

// Cf::kBatches, a committed batch's idempotency record (v1.BatchRecord) and
// a device's next sequence number (v1.DeviceSequence):
//   U8 1 (kBatchTag) | String device_id | Uuid batch_id
//   U8 2 (kDeviceSequenceTag) | String device_id
// A BatchRecord is in one of two forms (records.proto, sync/batch_answer.h),
// both read: full (the whole BatchResult answered; every record written
// before storage layout v2) or compact (results_from_log: payload hash,
// sequence, the log range first..last and only the rejected changes'
// results with their batch indexes; every other result is rebuilt from the
// case log entries first..last, in batch order). New records are compact.
struct BatchKey {
  std::string device_id;
  std::array<uint8_t, 16> batch_id;
  friend bool operator==(const BatchKey&, const BatchKey&) = default;
};
std::string EncodeBatchKey(std::string_view device_id, std::span<const uint8_t, 16> batch_id);
absl::StatusOr<BatchKey> DecodeBatchKey(std::string_view key);
std::string EncodeDeviceSequenceKey(std::string_view device_id);
absl::StatusOr<std::string> DecodeDeviceSequenceKey(std::string_view key);

// --- Audit (audit/). Tags in column_families.h.

// Cf::kAuditLeaves, an audit log entry (value: the canonical event bytes),
// the leaf index of a leaf hash, and the leaf index of a device batch's
// event (both values: U64 big-endian leaf index):
//   U8 1 (kAuditLeafTag) | U64 index
//   U8 2 (kAuditLeafByHashTag) | Bytes leaf_hash (32 bytes, last component)
//   U8 3 (kAuditBatchLeafTag) | String device_id | Uuid batch_id
// Entries sort by index; scan them with AuditLeafKeyPrefix().
std::string EncodeAuditLeafKey(uint64_t index);
absl::StatusOr<uint64_t> DecodeAuditLeafKey(std::string_view key);
std::string AuditLeafKeyPrefix();
// kDataLoss unless the key holds a 32-byte hash.
std::string EncodeAuditLeafByHashKey(std::span<const uint8_t, 32> leaf_hash);
absl::StatusOr<std::array<uint8_t, 32>> DecodeAuditLeafByHashKey(std::string_view key);
std::string EncodeAuditBatchLeafKey(std::string_view device_id,
                                    std::span<const uint8_t, 16> batch_id);
absl::StatusOr<BatchKey> DecodeAuditBatchLeafKey(std::string_view key);

// Cf::kAuditNodes, a complete Merkle subtree (value: its 32-byte hash):
//   U8 level | U64 index
// The node covers leaves [index * 2^level, (index + 1) * 2^level); level
// is at most 63. kDataLoss for any other key.
struct AuditNodeKey {
  uint8_t level = 0;
  uint64_t index = 0;
  friend bool operator==(const AuditNodeKey&, const AuditNodeKey&) = default;
};
std::string EncodeAuditNodeKey(uint8_t level, uint64_t index);
absl::StatusOr<AuditNodeKey> DecodeAuditNodeKey(std::string_view key);

// --- Aggregates (aggregates/). Tags in column_families.h.

// Cf::kAggregates, one page of counters: those of one metric, granularity
// and period (value: keyed sums, keyed_sums.h, one member per non-zero
// counter):
//   U8 3 (kCounterPageTag) | String metric | U8 granularity | U32 period
// and a member, the counter's cell:
//   String value (one per dimension of the metric, in its order)
// granularity is 'S' (stock; period 0), 'W' (ISO week; period = ISO year
// * 100 + week) or 'M' (month; period = year * 100 + month), so one
// metric's pages of one granularity are a contiguous, ordered range:
// [EncodeCounterPageKey(m, g, first), EncodeCounterPageKey(m, g, last + 1)).
// A commit group writes one Merge operand per page it moves
// (aggregates/counters.h).
// Retired, never reuse: U8 1 (kCounterTag) | String metric | U8 granularity
// | U32 period | String value... held one counter (8-byte value,
// storage/counter.h) until counter pages, and U8 2
// (kRetiredAggregateCaseTag) | Uuid case_id a case's counted dimension
// values (v1::AggregateCaseState) until layout v2; aggregates::
// PrepareCounters deletes both at start.
// A counter (metric, granularity, period and its cell's values), or a page
// (values empty).
struct CounterKey {
  std::string metric;
  uint8_t granularity = 0;
  uint32_t period = 0;
  std::vector<std::string> values;
  friend bool operator==(const CounterKey&, const CounterKey&) = default;
};
std::string EncodeCounterPageKey(std::string_view metric, uint8_t granularity, uint32_t period);
// The page key's metric, granularity and period (`values` empty). kDataLoss
// unless it is a counter page key with a known granularity.
absl::StatusOr<CounterKey> DecodeCounterPageKey(std::string_view key);
// The member of a page that is the counter of `values`, and back; kDataLoss
// on a member EncodeCounterCell cannot produce.
std::string EncodeCounterCell(const std::vector<std::string>& values);
absl::StatusOr<std::vector<std::string>> DecodeCounterCell(std::string_view member);

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_KEY_CODEC_H_
