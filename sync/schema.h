// The deployment schema (DESIGN §4): parsing a schema file, validating it,
// and an indexed, immutable view used to validate every change on ingest.
#ifndef FIELDSYNC_SYNC_SCHEMA_H_
#define FIELDSYNC_SYNC_SCHEMA_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/schema.pb.h"

namespace fieldsync::sync {

// The default max_length of STRING values and STRING_LIST elements.
inline constexpr uint32_t kDefaultMaxLength = 4096;

// True for the names of types, fields, dimensions, enum values (and
// aggregate metrics): [a-z][a-z0-9_]{0,63}; enum values may start with a
// digit ("0_4" age bands) when `allow_leading_digit`.
bool IsSchemaName(std::string_view s, bool allow_leading_digit = false);

// Parses a schema in protobuf text format or, when the first non-blank
// character is '{', in JSON form, then validates it (ValidateSchema).
// kInvalidArgument naming the line and column of a syntax error, or the
// first invalid element.
absl::StatusOr<v1::Schema> ParseSchema(std::string_view text);

// Reads `path` and parses it (ParseSchema). kNotFound / kFailedPrecondition
// when it cannot be read, naming the path; kInvalidArgument as ParseSchema,
// prefixed with the path.
absl::StatusOr<v1::Schema> LoadSchemaFile(const std::string& path);

// OK when `schema` is usable; otherwise kInvalidArgument naming the first
// problem: a bad or duplicate record type or field name, an unspecified
// type or sensitivity, an enum with no (or duplicate) values, enum values
// on a non-enum field, a blind index on a non-IDENTIFYING field, not
// exactly one registration type, case_fields naming a missing or wrongly
// typed field, a district field whose values do not each have exactly one
// region that is a value of the region field (an unknown name is listed
// with the known ones), an aggregate dimension naming a missing record
// type or a field that is not a DIMENSION field.
absl::Status ValidateSchema(const v1::Schema& schema);

// The result of checking one value against its field: reason ==
// REJECT_REASON_UNSPECIFIED means valid; otherwise `detail` says what is
// wrong with ids and field names only, never the value.
struct ValueCheck {
  v1::RejectReason reason = v1::REJECT_REASON_UNSPECIFIED;
  std::string detail;
  bool ok() const { return reason == v1::REJECT_REASON_UNSPECIFIED; }
};

// A validated schema with lookups by name. Immutable, so thread-safe.
class Schema {
 public:
  // Validates `proto` (ValidateSchema's errors) and indexes it.
  static absl::StatusOr<std::unique_ptr<Schema>> Create(v1::Schema proto);

  const v1::Schema& proto() const { return proto_; }

  // The schema's version string for tablets (SyncService.GetSchema):
  // lowercase hex SHA-256 (64 characters) of proto()'s deterministic
  // serialization, computed once by Create. Any change to the schema's
  // content changes it; the file's layout and comments do not.
  const std::string& digest() const { return digest_; }

  // nullptr when absent.
  const v1::RecordType* FindRecordType(std::string_view name) const;
  const v1::FieldDef* FindField(std::string_view record_type, std::string_view field) const;

  // The registration record type and the server-managed fields in it.
  const v1::RecordType& registration_type() const { return *registration_; }
  const std::string& region_field() const { return proto_.case_fields().region_field(); }
  const std::string& status_field() const { return proto_.case_fields().status_field(); }
  const std::string& officer_field() const { return proto_.case_fields().officer_field(); }
  // The district field of the registration type; empty when the schema
  // declares none (then the two lookups below find nothing).
  const std::string& district_field() const { return proto_.case_fields().district_field(); }
  bool has_districts() const { return !district_field().empty(); }
  // The region `district` lies in; nullptr when it is not a district value.
  const std::string* RegionOfDistrict(std::string_view district) const;
  // The districts of `region`, in the district field's order; empty for a
  // region without districts or an unknown one.
  const std::vector<std::string>& DistrictsOfRegion(std::string_view region) const;
  // The closure reason field; empty when the schema declares none.
  const std::string& closure_reason_field() const {
    return proto_.case_fields().closure_reason_field();
  }
  // True for the status, officer and closure reason fields of the
  // registration type. (The region field is written by a device only when
  // it creates a case; sync/reconcile.cc holds that rule.)
  bool IsServerManaged(std::string_view record_type, std::string_view field) const;

  // The region field and its values: the deployment's regions.
  const v1::FieldDef& region_def() const;
  const google::protobuf::RepeatedPtrField<std::string>& regions() const {
    return region_def().enum_values();
  }
  // OK when `region` is one of regions(); otherwise kInvalidArgument naming
  // every known region (region names are not personal data).
  absl::Status CheckRegion(std::string_view region) const;

  // The DIMENSION fields of `record_type`, in schema order (empty if the
  // type is unknown).
  const std::vector<std::string>& DimensionFields(std::string_view record_type) const;

  // Checks `value` against `def`: the oneof member matches the type, the
  // value is in range, enum values are allowed, lengths within max_length.
  // A cleared value (no member set) is valid here; required-ness is the
  // caller's check. `where` (e.g. "change <id> field <name>") prefixes the
  // detail.
  static ValueCheck CheckValue(const v1::FieldDef& def, const v1::FieldValue& value,
                               std::string_view where);

 private:
  struct TypeIndex {
    const v1::RecordType* type = nullptr;
    absl::flat_hash_map<std::string, const v1::FieldDef*> fields;
    std::vector<std::string> dimension_fields;
  };
  explicit Schema(v1::Schema proto);

  v1::Schema proto_;
  std::string digest_;
  absl::flat_hash_map<std::string, TypeIndex> types_;
  const v1::RecordType* registration_ = nullptr;
  absl::flat_hash_map<std::string, std::string> region_of_district_;
  absl::flat_hash_map<std::string, std::vector<std::string>> districts_of_region_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_SCHEMA_H_
