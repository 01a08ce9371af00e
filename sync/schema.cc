#include "sync/schema.h"

#include <cmath>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "common/proto_text.h"
#include "common/status_macros.h"
#include "common/text_policy.h"
#include "crypto/hash.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fieldsync::sync {
namespace {

// kInvalidArgument with `fmt` filled by its string arguments.
template <typename... Args>
absl::Status Invalid(const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrFormat(fmt, args...));
}

// A ValueCheck detail for a refused code point: which one, where, and the
// rule; never the text.
std::string NotAllowed(const TextViolation& violation) {
  return absl::StrFormat("%s is not allowed (text policy, PROTOCOL.md)",
                         DescribeTextViolation(violation));
}

absl::Status ValidateField(const v1::RecordType& type, const v1::FieldDef& f) {
  const std::string where = absl::StrFormat("record type %s field %s", type.name(), f.name());
  if (!IsSchemaName(f.name())) {
    return Invalid(
        "schema: record type %s has a field with an invalid name (1-64 of [a-z0-9_], "
        "starting with a letter)",
        type.name());
  }
  RETURN_IF_ERROR(
      CheckText(f.label(), TextKind::kSingleLine, absl::StrFormat("schema: %s label", where)));
  if (f.type() == v1::FIELD_TYPE_UNSPECIFIED || !v1::FieldType_IsValid(f.type())) {
    return Invalid("schema: %s has no type", where);
  }
  if (f.sensitivity() == v1::SENSITIVITY_UNSPECIFIED || !v1::Sensitivity_IsValid(f.sensitivity())) {
    return Invalid("schema: %s has no sensitivity class", where);
  }
  if (f.type() == v1::FIELD_TYPE_ENUM && f.enum_values().empty()) {
    return Invalid("schema: %s is an enum with no enum_values", where);
  }
  if (!f.enum_values().empty() && f.type() != v1::FIELD_TYPE_ENUM &&
      f.type() != v1::FIELD_TYPE_STRING_LIST) {
    return Invalid("schema: %s has enum_values but is neither ENUM nor STRING_LIST", where);
  }
  absl::flat_hash_set<std::string> values;
  for (const std::string& v : f.enum_values()) {
    if (!IsSchemaName(v, /*allow_leading_digit=*/true)) {
      return Invalid("schema: %s has an invalid enum value (1-64 of [a-z0-9_])", where);
    }
    if (!values.insert(v).second) {
      return Invalid("schema: %s has a duplicate enum value %s", where, v);
    }
  }
  if (f.blind_indexed()) {
    if (f.sensitivity() != v1::SENSITIVITY_IDENTIFYING) {
      return Invalid("schema: %s is blind-indexed but not IDENTIFYING", where);
    }
    if (f.type() != v1::FIELD_TYPE_STRING && f.type() != v1::FIELD_TYPE_DATE &&
        f.type() != v1::FIELD_TYPE_ENUM) {
      return Invalid("schema: %s is blind-indexed but not STRING, DATE or ENUM", where);
    }
  }
  return absl::OkStatus();
}

// "a, b, c": a field's values for an error message (schema names only).
std::string ValueList(const google::protobuf::RepeatedPtrField<std::string>& values) {
  return absl::StrJoin(values, ", ");
}

// The optional district field and the region of each of its values.
absl::Status ValidateDistricts(const v1::CaseFields& cf, const v1::RecordType& reg) {
  if (cf.district_field().empty()) {
    if (!cf.district_regions().empty()) {
      return absl::InvalidArgumentError(
          "schema: case_fields.district_regions is given but case_fields.district_field is not: "
          "name the district field or drop the list");
    }
    return absl::OkStatus();
  }
  const v1::FieldDef* district = nullptr;
  const v1::FieldDef* region = nullptr;
  for (const v1::FieldDef& f : reg.fields()) {
    if (f.name() == cf.district_field()) district = &f;
    if (f.name() == cf.region_field()) region = &f;
  }
  if (district == nullptr) {
    return Invalid(
        "schema: case_fields.district_field '%s' is not a field of the registration type %s",
        cf.district_field(), reg.name());
  }
  if (district->sensitivity() != v1::SENSITIVITY_DIMENSION ||
      district->type() != v1::FIELD_TYPE_ENUM) {
    return Invalid("schema: district field %s must be a DIMENSION ENUM", district->name());
  }
  if (district->name() == cf.region_field() || district->name() == cf.status_field() ||
      district->name() == cf.officer_field()) {
    return Invalid("schema: district field %s is also another case field; it must be its own",
                   district->name());
  }
  absl::flat_hash_set<std::string> regions(region->enum_values().begin(),
                                           region->enum_values().end());
  absl::flat_hash_set<std::string> districts(district->enum_values().begin(),
                                             district->enum_values().end());
  absl::flat_hash_map<std::string, std::string> region_of;
  for (const v1::DistrictRegion& dr : cf.district_regions()) {
    if (!districts.contains(dr.district())) {
      return Invalid(
          "schema: case_fields.district_regions names '%s', which is not a value of district "
          "field %s; its values are: %s",
          dr.district(), district->name(), ValueList(district->enum_values()));
    }
    if (!regions.contains(dr.region())) {
      return Invalid(
          "schema: case_fields.district_regions places district %s in '%s', which is not a "
          "value of region field %s; its values are: %s",
          dr.district(), dr.region(), region->name(), ValueList(region->enum_values()));
    }
    auto [it, inserted] = region_of.emplace(dr.district(), dr.region());
    if (!inserted) {
      return Invalid(
          "schema: case_fields.district_regions gives district %s two entries (regions %s and "
          "%s); a district lies in exactly one region",
          dr.district(), it->second, dr.region());
    }
  }
  for (const std::string& d : district->enum_values()) {
    if (!region_of.contains(d)) {
      return Invalid(
          "schema: district %s of district field %s has no region: add a "
          "case_fields.district_regions entry for it",
          d, district->name());
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCaseFields(const v1::Schema& schema, const v1::RecordType& reg) {
  auto find = [&](const std::string& name) -> const v1::FieldDef* {
    for (const v1::FieldDef& f : reg.fields()) {
      if (f.name() == name) return &f;
    }
    return nullptr;
  };
  const v1::CaseFields& cf = schema.case_fields();
  const v1::FieldDef* region = find(cf.region_field());
  if (region == nullptr) {
    return Invalid("schema: case_fields.region_field '%s' is not a field of the registration type",
                   cf.region_field());
  }
  if (region->sensitivity() != v1::SENSITIVITY_DIMENSION || region->type() != v1::FIELD_TYPE_ENUM) {
    return Invalid(
        "schema: region field %s must be a DIMENSION ENUM (its values are the deployment's "
        "regions)",
        region->name());
  }
  const v1::FieldDef* status = find(cf.status_field());
  if (status == nullptr) {
    return Invalid("schema: case_fields.status_field '%s' is not a field of the registration type",
                   cf.status_field());
  }
  bool has_open = false, has_closed = false;
  for (const std::string& v : status->enum_values()) {
    has_open |= v == "open";
    has_closed |= v == "closed";
  }
  if (status->sensitivity() != v1::SENSITIVITY_DIMENSION || status->type() != v1::FIELD_TYPE_ENUM ||
      !has_open || !has_closed) {
    return Invalid("schema: status field %s must be a DIMENSION ENUM with values open and closed",
                   status->name());
  }
  const v1::FieldDef* officer = find(cf.officer_field());
  if (officer == nullptr) {
    return Invalid("schema: case_fields.officer_field '%s' is not a field of the registration type",
                   cf.officer_field());
  }
  if (officer->sensitivity() != v1::SENSITIVITY_OPERATIONAL ||
      officer->type() != v1::FIELD_TYPE_STRING) {
    return Invalid("schema: officer field %s must be an OPERATIONAL STRING", officer->name());
  }
  if (status->required() || officer->required()) {
    return Invalid("schema: server-managed field %s must not be required (the server sets it)",
                   status->required() ? status->name() : officer->name());
  }
  if (!cf.closure_reason_field().empty()) {
    const v1::FieldDef* reason = find(cf.closure_reason_field());
    if (reason == nullptr) {
      return Invalid(
          "schema: case_fields.closure_reason_field '%s' is not a field of the registration type",
          cf.closure_reason_field());
    }
    if (reason->sensitivity() != v1::SENSITIVITY_DIMENSION ||
        reason->type() != v1::FIELD_TYPE_ENUM || reason->required()) {
      return Invalid("schema: closure reason field %s must be a DIMENSION ENUM, not required",
                     reason->name());
    }
    for (const std::string* other :
         {&cf.region_field(), &cf.status_field(), &cf.officer_field(), &cf.district_field()}) {
      if (*other == reason->name()) {
        return Invalid("schema: closure reason field %s is also another case field",
                       reason->name());
      }
    }
  }
  return ValidateDistricts(cf, reg);
}

bool IsDecimal(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  size_t digits = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (digits == 0) return false;
  if (i == s.size()) return s.size() <= 64;
  if (s[i] != '.') return false;
  ++i;
  size_t frac = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac;
  return frac > 0 && i == s.size() && s.size() <= 64;
}

bool IsValidDate(const v1::Date& d) {
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (d.year() < 1 || d.year() > 9999 || d.month() < 1 || d.month() > 12 || d.day() < 1) {
    return false;
  }
  int max = kDays[d.month() - 1];
  if (d.month() == 2) {
    bool leap = (d.year() % 4 == 0 && d.year() % 100 != 0) || d.year() % 400 == 0;
    max = leap ? 29 : 28;
  }
  return d.day() <= max;
}

bool IsCanonicalUuidText(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status ValidateSchema(const v1::Schema& schema) {
  if (schema.schema_id().empty() || schema.schema_id().size() > 64) {
    return absl::InvalidArgumentError("schema: schema_id must be 1-64 characters");
  }
  RETURN_IF_ERROR(CheckText(schema.schema_id(), TextKind::kSingleLine, "schema: schema_id"));
  if (schema.record_types().empty()) {
    return absl::InvalidArgumentError("schema: no record types");
  }
  absl::flat_hash_map<std::string, const v1::RecordType*> types;
  const v1::RecordType* registration = nullptr;
  for (const v1::RecordType& type : schema.record_types()) {
    if (!IsSchemaName(type.name())) {
      return absl::InvalidArgumentError(
          "schema: a record type has an invalid name (1-64 of [a-z0-9_], starting with a letter)");
    }
    if (!types.emplace(type.name(), &type).second) {
      return Invalid("schema: duplicate record type %s", type.name());
    }
    if (type.kind() == v1::RECORD_KIND_UNSPECIFIED || !v1::RecordKind_IsValid(type.kind())) {
      return Invalid("schema: record type %s has no kind", type.name());
    }
    RETURN_IF_ERROR(CheckText(type.label(), TextKind::kSingleLine,
                              absl::StrFormat("schema: record type %s label", type.name())));
    if (type.kind() == v1::RECORD_KIND_CASE_REGISTRATION) {
      if (registration != nullptr) {
        return Invalid(
            "schema: record types %s and %s are both case registrations; exactly one "
            "may be",
            type.name(), registration->name());
      }
      registration = &type;
    }
    if (type.fields().empty()) return Invalid("schema: record type %s has no fields", type.name());
    absl::flat_hash_set<std::string> names;
    for (const v1::FieldDef& f : type.fields()) {
      RETURN_IF_ERROR(ValidateField(type, f));
      if (!names.insert(f.name()).second) {
        return Invalid("schema: record type %s has a duplicate field %s", type.name(), f.name());
      }
    }
  }
  if (registration == nullptr) {
    return absl::InvalidArgumentError(
        "schema: no record type of kind RECORD_KIND_CASE_REGISTRATION");
  }
  RETURN_IF_ERROR(ValidateCaseFields(schema, *registration));
  absl::flat_hash_set<std::string> dims;
  for (const v1::AggregateDimension& d : schema.aggregate_dimensions()) {
    if (!IsSchemaName(d.name())) {
      return absl::InvalidArgumentError("schema: an aggregate dimension has an invalid name");
    }
    if (!dims.insert(d.name()).second) {
      return Invalid("schema: duplicate aggregate dimension %s", d.name());
    }
    auto it = types.find(d.record_type());
    if (it == types.end()) {
      return Invalid("schema: aggregate dimension %s names an unknown record type %s", d.name(),
                     d.record_type());
    }
    const v1::FieldDef* field = nullptr;
    for (const v1::FieldDef& f : it->second->fields()) {
      if (f.name() == d.field()) field = &f;
    }
    if (field == nullptr) {
      return Invalid("schema: aggregate dimension %s names an unknown field %s.%s", d.name(),
                     d.record_type(), d.field());
    }
    if (field->sensitivity() != v1::SENSITIVITY_DIMENSION) {
      return Invalid(
          "schema: aggregate dimension %s uses field %s.%s, which is not a DIMENSION field",
          d.name(), d.record_type(), d.field());
    }
  }
  return absl::OkStatus();
}

bool IsSchemaName(std::string_view s, bool allow_leading_digit) {
  if (s.empty() || s.size() > 64) return false;
  if (!(s[0] >= 'a' && s[0] <= 'z') && !(allow_leading_digit && s[0] >= '0' && s[0] <= '9')) {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

absl::StatusOr<v1::Schema> ParseSchema(std::string_view text) {
  v1::Schema schema;
  RETURN_IF_ERROR(ParseTextOrJson(text, "schema", &schema));
  RETURN_IF_ERROR(ValidateSchema(schema));
  return schema;
}

absl::StatusOr<v1::Schema> LoadSchemaFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  absl::StatusOr<v1::Schema> schema = ParseSchema(text);
  if (!schema.ok()) {
    return absl::Status(schema.status().code(),
                        absl::StrFormat("%s: %s", path, schema.status().message()));
  }
  return schema;
}

Schema::Schema(v1::Schema proto) : proto_(std::move(proto)) {
  // Deterministic so that one schema always gives one digest from this
  // build; the digest is opaque to tablets, which only compare it.
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    proto_.SerializeToCodedStream(&coded);
  }
  const crypto::Sha256Digest sha = crypto::Sha256(std::string_view(bytes));
  digest_ = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(sha.data()), sha.size()));
}

absl::StatusOr<std::unique_ptr<Schema>> Schema::Create(v1::Schema proto) {
  RETURN_IF_ERROR(ValidateSchema(proto));
  std::unique_ptr<Schema> schema(new Schema(std::move(proto)));
  for (const v1::RecordType& type : schema->proto_.record_types()) {
    TypeIndex& index = schema->types_[type.name()];
    index.type = &type;
    for (const v1::FieldDef& f : type.fields()) {
      index.fields[f.name()] = &f;
      if (f.sensitivity() == v1::SENSITIVITY_DIMENSION) index.dimension_fields.push_back(f.name());
    }
    if (type.kind() == v1::RECORD_KIND_CASE_REGISTRATION) schema->registration_ = &type;
  }
  for (const v1::DistrictRegion& dr : schema->proto_.case_fields().district_regions()) {
    schema->region_of_district_[dr.district()] = dr.region();
  }
  // Each region's districts in the district field's order (what messages
  // list).
  if (const v1::FieldDef* district =
          schema->FindField(schema->registration_->name(), schema->district_field())) {
    for (const std::string& d : district->enum_values()) {
      schema->districts_of_region_[schema->region_of_district_[d]].push_back(d);
    }
  }
  return schema;
}

const std::string* Schema::RegionOfDistrict(std::string_view district) const {
  auto it = region_of_district_.find(absl::string_view(district.data(), district.size()));
  return it == region_of_district_.end() ? nullptr : &it->second;
}

const std::vector<std::string>& Schema::DistrictsOfRegion(std::string_view region) const {
  static const std::vector<std::string>* const kEmpty = new std::vector<std::string>();
  auto it = districts_of_region_.find(absl::string_view(region.data(), region.size()));
  return it == districts_of_region_.end() ? *kEmpty : it->second;
}

const v1::RecordType* Schema::FindRecordType(std::string_view name) const {
  auto it = types_.find(absl::string_view(name.data(), name.size()));
  return it == types_.end() ? nullptr : it->second.type;
}

const v1::FieldDef* Schema::FindField(std::string_view record_type, std::string_view field) const {
  auto it = types_.find(absl::string_view(record_type.data(), record_type.size()));
  if (it == types_.end()) return nullptr;
  auto f = it->second.fields.find(absl::string_view(field.data(), field.size()));
  return f == it->second.fields.end() ? nullptr : f->second;
}

bool Schema::IsServerManaged(std::string_view record_type, std::string_view field) const {
  return record_type == registration_->name() &&
         (field == status_field() || field == officer_field() ||
          (!closure_reason_field().empty() && field == closure_reason_field()));
}

const v1::FieldDef& Schema::region_def() const {
  return *FindField(registration_->name(), region_field());
}

absl::Status Schema::CheckRegion(std::string_view region) const {
  const v1::FieldDef& def = region_def();
  for (const std::string& r : def.enum_values()) {
    if (r == region) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown region '%s'; the deployment's regions are: %s",
                      absl::CHexEscape(absl::string_view(region.data(), region.size())),
                      absl::StrJoin(def.enum_values(), ", ")));
}

const std::vector<std::string>& Schema::DimensionFields(std::string_view record_type) const {
  static const std::vector<std::string>* const kEmpty = new std::vector<std::string>();
  auto it = types_.find(absl::string_view(record_type.data(), record_type.size()));
  return it == types_.end() ? *kEmpty : it->second.dimension_fields;
}

ValueCheck Schema::CheckValue(const v1::FieldDef& def, const v1::FieldValue& value,
                              std::string_view where) {
  auto fail = [&](v1::RejectReason reason, std::string_view what) {
    return ValueCheck{reason, absl::StrFormat("%s: %s", where, what)};
  };
  if (value.kind_case() == v1::FieldValue::KIND_NOT_SET) return {};
  const uint32_t max_len = def.max_length() == 0 ? kDefaultMaxLength : def.max_length();
  auto allowed = [&](const std::string& v) {
    for (const std::string& a : def.enum_values()) {
      if (a == v) return true;
    }
    return false;
  };
  switch (def.type()) {
    case v1::FIELD_TYPE_STRING:
      if (value.kind_case() != v1::FieldValue::kStringValue) break;
      if (value.string_value().size() > max_len) {
        return fail(v1::REJECT_REASON_VALUE_TOO_LONG, "value longer than max_length");
      }
      if (std::optional<TextViolation> v =
              FindTextViolation(value.string_value(), TextKind::kMultiLine)) {
        return fail(v1::REJECT_REASON_TEXT_NOT_ALLOWED, NotAllowed(*v));
      }
      return {};
    case v1::FIELD_TYPE_INT:
      if (value.kind_case() == v1::FieldValue::kIntValue) return {};
      break;
    case v1::FIELD_TYPE_DECIMAL:
      if (value.kind_case() != v1::FieldValue::kDecimalValue) break;
      if (!IsDecimal(value.decimal_value())) {
        return fail(v1::REJECT_REASON_WRONG_VALUE_TYPE, "not a canonical decimal");
      }
      return {};
    case v1::FIELD_TYPE_BOOL:
      if (value.kind_case() == v1::FieldValue::kBoolValue) return {};
      break;
    case v1::FIELD_TYPE_DATE:
      if (value.kind_case() != v1::FieldValue::kDateValue) break;
      if (!IsValidDate(value.date_value())) {
        return fail(v1::REJECT_REASON_WRONG_VALUE_TYPE, "not a valid date");
      }
      return {};
    case v1::FIELD_TYPE_DATETIME:
      if (value.kind_case() == v1::FieldValue::kDatetimeUnixMicros) return {};
      break;
    case v1::FIELD_TYPE_ENUM:
      if (value.kind_case() != v1::FieldValue::kEnumValue) break;
      if (!allowed(value.enum_value())) {
        return fail(v1::REJECT_REASON_ENUM_VALUE_NOT_ALLOWED, "enum value not allowed");
      }
      return {};
    case v1::FIELD_TYPE_GEOPOINT: {
      if (value.kind_case() != v1::FieldValue::kGeopointValue) break;
      const v1::GeoPoint& g = value.geopoint_value();
      if (!std::isfinite(g.latitude()) || !std::isfinite(g.longitude()) ||
          !std::isfinite(g.accuracy_m()) || std::fabs(g.latitude()) > 90 ||
          std::fabs(g.longitude()) > 180 || g.accuracy_m() < 0) {
        return fail(v1::REJECT_REASON_WRONG_VALUE_TYPE, "geopoint out of range");
      }
      return {};
    }
    case v1::FIELD_TYPE_STRING_LIST:
      if (value.kind_case() != v1::FieldValue::kStringListValue) break;
      for (const std::string& v : value.string_list_value().values()) {
        if (v.size() > max_len) {
          return fail(v1::REJECT_REASON_VALUE_TOO_LONG, "list element longer than max_length");
        }
        if (std::optional<TextViolation> violation = FindTextViolation(v, TextKind::kSingleLine)) {
          return fail(v1::REJECT_REASON_TEXT_NOT_ALLOWED,
                      absl::StrFormat("list element: %s", NotAllowed(*violation)));
        }
        if (!def.enum_values().empty() && !allowed(v)) {
          return fail(v1::REJECT_REASON_ENUM_VALUE_NOT_ALLOWED, "list element not allowed");
        }
      }
      return {};
    case v1::FIELD_TYPE_ATTACHMENT: {
      if (value.kind_case() != v1::FieldValue::kAttachmentValue) break;
      const v1::AttachmentRef& a = value.attachment_value();
      if (!IsCanonicalUuidText(a.attachment_id()) || a.sha256().size() != 32 ||
          a.media_type().empty() || a.media_type().size() > 255) {
        return fail(v1::REJECT_REASON_WRONG_VALUE_TYPE, "malformed attachment reference");
      }
      if (std::optional<TextViolation> v =
              FindTextViolation(a.media_type(), TextKind::kSingleLine)) {
        return fail(v1::REJECT_REASON_TEXT_NOT_ALLOWED,
                    absl::StrFormat("media type: %s", NotAllowed(*v)));
      }
      return {};
    }
    default:
      break;
  }
  return fail(
      v1::REJECT_REASON_WRONG_VALUE_TYPE,
      absl::StrFormat("value is not of the field's type %s", v1::FieldType_Name(def.type())));
}

}  // namespace fieldsync::sync
