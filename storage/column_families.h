// The persisted numbering of fieldsync's RocksDB column families and of the
// tag bytes inside their keys. Persisted: never renumber, never reuse a
// number; only append.
#ifndef FIELDSYNC_STORAGE_COLUMN_FAMILIES_H_
#define FIELDSYNC_STORAGE_COLUMN_FAMILIES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fieldsync::storage {

// One column family per kind of data. The value is also the RocksDB column
// family id of a store created by this code (Store::Open creates them in this
// order), but the name from CfName() is what RocksDB persists and matches.
enum class Cf : uint8_t {
  kDefault = 0,      // unused by fieldsync; RocksDB requires it
  kPrincipals = 1,   // devices and staff principals, enrolment codes
  kKeys = 2,         // wrapped keys (KEK-wrapped DEKs)
  kRecords = 3,      // current record state
  kCaseLog = 4,      // the ordered case log, by position
  kCaseIndex = 5,    // blind-index entries
  kConflicts = 6,    // kept losers of concurrent edits
  kBatches = 7,      // batches seen (idempotency records)
  kAggregates = 8,   // counter pages; merge operator: keyed sums
  kAuditLeaves = 9,  // audit log entries by index
  kAuditNodes = 10,  // audit Merkle tree nodes
  kMetadata = 11,    // store-wide named values (schema version, tree head)
};

inline constexpr size_t kNumCfs = 12;

// Every column family, in numeric order.
inline constexpr std::array<Cf, kNumCfs> kAllCfs = {
    Cf::kDefault,    Cf::kPrincipals,  Cf::kKeys,       Cf::kRecords,
    Cf::kCaseLog,    Cf::kCaseIndex,   Cf::kConflicts,  Cf::kBatches,
    Cf::kAggregates, Cf::kAuditLeaves, Cf::kAuditNodes, Cf::kMetadata};

// The persisted RocksDB name of `cf`: "default", "principals", "keys",
// "records", "case_log", "case_index", "conflicts", "batches", "aggregates",
// "audit_leaves", "audit_nodes", "metadata". REQUIRES: `cf` is one of kAllCfs.
std::string_view CfName(Cf cf);

// Sets *cf to the column family named `name` and returns true; returns false
// for a name that is not one of CfName()'s.
bool CfFromName(std::string_view name, Cf* cf);

// First byte of keys in Cf::kPrincipals. Persisted: never renumber.
enum class PrincipalKind : uint8_t {
  kDevice = 1,
  kStaff = 2,
  // 3 is kEnrolmentCodeTag.
  kOfficer = 4,
  // 5 is kDeviceLastSyncTag.
};
// First byte of enrolment-code keys in Cf::kPrincipals. Persisted.
inline constexpr uint8_t kEnrolmentCodeTag = 3;
// First byte of a device's last-sync time in Cf::kPrincipals (5 is never a
// principal kind either). Persisted.
inline constexpr uint8_t kDeviceLastSyncTag = 5;

// First byte of case data-key (DEK) keys in Cf::kKeys. Persisted. The other
// keys of Cf::kKeys (server keys by purpose, a String component) start with
// a printable ASCII byte, never 0x01.
inline constexpr uint8_t kCaseDekTag = 1;

// Sync's key tags (sync/, key_codec.h). Persisted: never renumber.
// Cf::kRecords, after the case and record ids:
inline constexpr uint8_t kRecordHeaderTag = 1;  // layout 1 only
inline constexpr uint8_t kFieldStateTag = 2;    // layout 1 only
inline constexpr uint8_t kRecordStateTag = 3;   // layout 2: one value per record
// First byte of keys in Cf::kCaseIndex (3 is kept for blind-index entries;
// 1 and 2, a case by region and by officer, were retired with merge rules
// 4: never reuse them):
// 5, a case by its region and officer, was retired with merge rules 5
// (never reuse it either):
inline constexpr uint8_t kCaseEntryTag = 4;
inline constexpr uint8_t kRetiredCaseScopeTag = 5;
inline constexpr uint8_t kCaseScopeListTag = 6;  // a region and officer's cases
// First byte of keys in Cf::kConflicts:
inline constexpr uint8_t kConflictTag = 1;
inline constexpr uint8_t kOpenConflictByRegionTag = 2;
// First byte of keys in Cf::kBatches:
inline constexpr uint8_t kBatchTag = 1;
inline constexpr uint8_t kDeviceSequenceTag = 2;

// Kinds of names in the store's name dictionary (name_dictionary.h), the
// second byte of their Cf::kMetadata keys after kNameKeyTag. Persisted:
// never renumber.
enum class NameKind : uint8_t {
  kField = 1,       // a field name of a record type
  kRecordType = 2,  // a record type name
  kWriter = 3,      // a device id, or "staff:<id>"
};
// First byte of name-dictionary keys in Cf::kMetadata. The other metadata
// keys are String-encoded names that start with a printable byte.
inline constexpr uint8_t kNameKeyTag = 1;

// Audit's key tags (audit/, key_codec.h). Persisted: never renumber.
// First byte of keys in Cf::kAuditLeaves:
inline constexpr uint8_t kAuditLeafTag = 1;        // entry by leaf index
inline constexpr uint8_t kAuditLeafByHashTag = 2;  // leaf index by leaf hash
inline constexpr uint8_t kAuditBatchLeafTag = 3;   // leaf index by device batch
// Cf::kAggregates.
inline constexpr uint8_t kCounterTag = 1;      // one counter (8-byte value), until
                                               // counter pages; deleted at start
inline constexpr uint8_t kCounterPageTag = 3;  // one page of counters (keyed sums)
// Retired, never reuse 2: a case's counted dimension values
// (v1.AggregateCaseState), written by stores before layout v2 and deleted
// at start (aggregates::PrepareCounters).
inline constexpr uint8_t kRetiredAggregateCaseTag = 2;

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_COLUMN_FAMILIES_H_
