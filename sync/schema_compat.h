// Schema upgrades (docs/OPERATIONS.md, "Schema upgrades"): comparing the
// schema a deployment is configured with against the one its store was last
// served under, with what the store holds of every name a change takes away,
// so that fieldsyncd refuses a change that would hide or misread stored data.
#ifndef FIELDSYNC_SYNC_SCHEMA_COMPAT_H_
#define FIELDSYNC_SYNC_SCHEMA_COMPAT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/schema.pb.h"
#include "storage/store.h"

namespace fieldsync::sync {

// Metadata (Cf::kMetadata) name of the schema the store was last served
// under; value: its v1.Schema serialization. Written at the first start of
// a store and whenever a change is accepted. Persisted.
inline constexpr std::string_view kServedSchemaName = "sync/schema";

// How a change is judged.
enum class ChangeLevel {
  // Served without a word beyond a log line and an audit event.
  kCompatible,
  // Refused unless the operator accepts it (fieldsyncd
  // --accept-schema-change, audited).
  kIncompatible,
  // Refused, and no flag accepts it: the version rules (fix the file).
  kVersionError,
};

// One difference between the served and the configured schema. Every
// string holds schema names and counts only, never a stored value.
struct SchemaChange {
  ChangeLevel level = ChangeLevel::kCompatible;
  // Stable name of the kind of change: "field-removed", "enum-value-added",
  // ... (docs/OPERATIONS.md lists them; written to the audit log).
  std::string kind;
  // What it concerns: "TYPE", "TYPE.FIELD", "TYPE.FIELD=VALUE",
  // "case_fields.NAME", "schema_id", "version", "aggregate_dimensions.NAME".
  std::string subject;
  // What changed and, for an incompatible change, what it would do to
  // stored data and how to go on.
  std::string detail;

  // "KIND SUBJECT": the change's name in the audit log and in summaries.
  std::string Name() const { return kind + " " + subject; }
};

// What a schema change needs to know about the store: the names it takes
// away (or whose values it re-classes), to be counted by ScanSchemaUsage.
struct SchemaUsageQuery {
  absl::flat_hash_set<std::string> record_types;  // "TYPE"
  absl::flat_hash_set<std::string> fields;        // "TYPE.FIELD"
  // "TYPE.FIELD" -> values whose use is counted.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> enum_values;
  // Region values whose principals (staff, officers, devices) are counted.
  absl::flat_hash_set<std::string> regions;

  bool empty() const {
    return record_types.empty() && fields.empty() && enum_values.empty() && regions.empty();
  }
};

// What the canonical case log (every value ever written, which pulls from
// cursor 0 and case histories still show) and the principal registry hold
// of the queried names. A record is (case id, record id).
struct FieldUsage {
  uint64_t records = 0;            // records with a value written (not a clear)
  uint64_t entries = 0;            // log entries writing a value
  uint64_t clear_records = 0;      // of `records`: with a value stored in clear
  uint64_t encrypted_records = 0;  // of `records`: with an encrypted value
};
struct SchemaUsage {
  absl::flat_hash_map<std::string, uint64_t> type_records;  // "TYPE" -> records
  absl::flat_hash_map<std::string, FieldUsage> fields;      // "TYPE.FIELD"
  // "TYPE.FIELD=VALUE" -> records with a clear value holding VALUE.
  absl::flat_hash_map<std::string, uint64_t> enum_value_records;
  // "TYPE.FIELD" -> records with an encrypted value of a queried enum
  // field: which value it holds cannot be told without the case keys.
  absl::flat_hash_map<std::string, uint64_t> enum_unreadable_records;
  // Region -> principals (active or revoked) holding it.
  absl::flat_hash_map<std::string, uint64_t> region_principals;
};

// The names `configured` takes away from `served`, to be counted. Pure.
SchemaUsageQuery UsageQueryFor(const v1::Schema& served, const v1::Schema& configured);

// Counts the queried names in `store`'s case log and principal registry:
// one pass over each (none when the query is empty), read at one snapshot.
// kDataLoss when a log entry or principal does not parse; kUnavailable on
// an I/O error.
absl::StatusOr<SchemaUsage> ScanSchemaUsage(storage::Store& store, const SchemaUsageQuery& query);

// Every difference between `served` and `configured`, judged with `usage`
// (ScanSchemaUsage of UsageQueryFor(served, configured)): incompatible and
// version errors first, in schema order within each level. Pure.
//   Incompatible: schema_id changed; a record type or field in use removed;
//   a record kind or field type changed; a sensitivity class lowered
//   (encrypted -> clear, OPERATIONAL -> DIMENSION); a class raised from
//   clear to encrypted while values are stored in clear; a field made
//   required, or a new required field on an existing type; an enum value
//   in use removed (or one of an encrypted field that holds values); a
//   STRING_LIST given allowed values; max_length lowered; a server-managed
//   case field moved to another field.
//   Version errors: content changed without a higher version; a lower
//   version.
//   Everything else is compatible (new types, fields, enum values; unused
//   names removed; labels; ...).
std::vector<SchemaChange> CompareSchemas(const v1::Schema& served, const v1::Schema& configured,
                                         const SchemaUsage& usage);

// "SCHEMA_ID@VERSION".
std::string SchemaName(const v1::Schema& schema);

// The outcome of comparing a store with a configured schema.
struct SchemaVerdict {
  enum class Outcome {
    kFirstRecord,   // the store records no schema yet: record this one
    kUnchanged,     // same content and version
    kCompatible,    // record it (log and audit "schema.changed")
    kIncompatible,  // refused unless accepted explicitly
    kVersionError,  // refused; fix the version in the file
  };
  Outcome outcome = Outcome::kFirstRecord;
  std::optional<v1::Schema> served;  // absent for kFirstRecord
  std::vector<SchemaChange> changes;

  // The incompatible changes' names (Name()).
  std::vector<std::string> IncompatibleNames() const;
  // One line for an operator: the first refusing change in full, the way
  // forward, and how many others there are. For kIncompatible and
  // kVersionError only. `configured` names the new schema.
  std::string RefusalLine(const v1::Schema& configured) const;
};

// The schema recorded in `store`; nullopt when none is (a store from
// before schema checks, or never started). kDataLoss when the record does
// not parse.
absl::StatusOr<std::optional<v1::Schema>> LoadServedSchema(storage::Store& store);

// Adds the record of `schema` as the served one to `batch`.
void PutServedSchema(const v1::Schema& schema, storage::WriteBatch* batch);

// Loads the served schema, scans the store for what the change takes away
// and compares. Errors as LoadServedSchema and ScanSchemaUsage.
absl::StatusOr<SchemaVerdict> CheckSchemaUpgrade(storage::Store& store,
                                                 const v1::Schema& configured);

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_SCHEMA_COMPAT_H_
