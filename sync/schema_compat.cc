#include "sync/schema_compat.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "fieldsync/v1/admin.pb.h"
#include "fieldsync/v1/records.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "sync/log_codec.h"
#include "sync/schema.h"

namespace fieldsync::sync {
namespace {

using google::protobuf::util::MessageDifferencer;

// How far a class keeps values from readers: encrypted classes above clear
// ones, and OPERATIONAL (clear, never aggregated) above DIMENSION (clear,
// counted in analysts' aggregates). IDENTIFYING and SENSITIVE are both
// encrypted with the case key and reach the same readers.
int Protection(v1::Sensitivity s) {
  switch (s) {
    case v1::SENSITIVITY_IDENTIFYING:
    case v1::SENSITIVITY_SENSITIVE:
      return 2;
    case v1::SENSITIVITY_OPERATIONAL:
      return 1;
    default:
      return 0;
  }
}
bool IsEncryptedClass(v1::Sensitivity s) { return Protection(s) == 2; }

std::string ClassName(v1::Sensitivity s) {
  std::string name = v1::Sensitivity_Name(s);
  constexpr std::string_view kPrefix = "SENSITIVITY_";
  return name.starts_with(kPrefix) ? name.substr(kPrefix.size()) : name;
}
std::string TypeName(v1::FieldType t) {
  std::string name = v1::FieldType_Name(t);
  constexpr std::string_view kPrefix = "FIELD_TYPE_";
  return name.starts_with(kPrefix) ? name.substr(kPrefix.size()) : name;
}

uint32_t EffectiveMaxLength(const v1::FieldDef& f) {
  return f.max_length() == 0 ? kDefaultMaxLength : f.max_length();
}
bool HasMaxLength(const v1::FieldDef& f) {
  return f.type() == v1::FIELD_TYPE_STRING || f.type() == v1::FIELD_TYPE_STRING_LIST;
}

std::string FieldKey(std::string_view type, std::string_view field) {
  return absl::StrFormat("%s.%s", type, field);
}
std::string ValueKey(std::string_view type, std::string_view field, std::string_view value) {
  return absl::StrFormat("%s.%s=%s", type, field, value);
}

template <typename T>
uint64_t CountOf(const absl::flat_hash_map<std::string, T>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return absl::StrFormat("%d %s", n, n == 1 ? one : many);
}
// "1 record holds" / "2 records hold".
std::string RecordsHold(uint64_t n) {
  return n == 1 ? "1 record holds" : absl::StrCat(n, " records hold");
}

// Walks two schemas once. In query mode (usage_ == nullptr) it only
// collects the names whose use decides a change; otherwise it judges each
// difference with the usage counts.
class Differ {
 public:
  Differ(const v1::Schema& served, const v1::Schema& configured, const SchemaUsage* usage)
      : old_(served), new_(configured), usage_(usage) {}

  void Run() {
    SchemaIdAndVersion();
    for (const v1::RecordType& t : old_.record_types()) {
      const v1::RecordType* now = FindType(new_, t.name());
      if (now == nullptr) {
        TypeRemoved(t);
      } else {
        TypeKept(t, *now);
      }
    }
    for (const v1::RecordType& t : new_.record_types()) {
      if (FindType(old_, t.name()) == nullptr) {
        Add(ChangeLevel::kCompatible, "record-type-added", t.name(),
            absl::StrFormat("new record type %s", t.name()));
      }
    }
    CaseFields();
    AggregateDimensions();
  }

  SchemaUsageQuery& query() { return query_; }
  std::vector<SchemaChange>& changes() { return changes_; }

 private:
  static const v1::RecordType* FindType(const v1::Schema& s, std::string_view name) {
    for (const v1::RecordType& t : s.record_types()) {
      if (t.name() == name) return &t;
    }
    return nullptr;
  }
  static const v1::FieldDef* FindField(const v1::RecordType& t, std::string_view name) {
    for (const v1::FieldDef& f : t.fields()) {
      if (f.name() == name) return &f;
    }
    return nullptr;
  }

  void Add(ChangeLevel level, std::string_view kind, std::string subject, std::string detail) {
    if (usage_ == nullptr) return;
    changes_.push_back(
        SchemaChange{level, std::string(kind), std::move(subject), std::move(detail)});
  }

  void SchemaIdAndVersion() {
    if (old_.schema_id() != new_.schema_id()) {
      Add(ChangeLevel::kIncompatible, "schema-id-changed", "schema_id",
          absl::StrFormat("schema_id changes from %s to %s: this store holds data of %s; an "
                          "upgrade keeps the schema_id",
                          old_.schema_id(), new_.schema_id(), old_.schema_id()));
    }
    v1::Schema a = old_, b = new_;
    a.clear_version();
    b.clear_version();
    const bool same_content = MessageDifferencer::Equals(a, b);
    if (new_.version() < old_.version()) {
      Add(ChangeLevel::kVersionError, "version-lowered", "version",
          absl::StrFormat("version %d is lower than %d, the version this store was last served "
                          "under: give the schema file version %d or higher",
                          new_.version(), old_.version(), old_.version() + 1));
    } else if (new_.version() == old_.version() && !same_content) {
      Add(ChangeLevel::kVersionError, "version-not-raised", "version",
          absl::StrFormat("the schema's content changed but its version is still %d: set "
                          "version: %d in the schema file (tablets and operators tell schemas "
                          "apart by it)",
                          old_.version(), old_.version() + 1));
    } else if (new_.version() > old_.version()) {
      Add(ChangeLevel::kCompatible, "version-raised", "version",
          absl::StrFormat("version %d -> %d", old_.version(), new_.version()));
    }
  }

  void TypeRemoved(const v1::RecordType& t) {
    if (usage_ == nullptr) {
      query_.record_types.insert(t.name());
      return;
    }
    const uint64_t n = CountOf(usage_->type_records, t.name());
    if (n == 0) {
      Add(ChangeLevel::kCompatible, "record-type-removed", t.name(),
          absl::StrFormat("record type %s removed (no record of it was ever written)", t.name()));
      return;
    }
    Add(ChangeLevel::kIncompatible, "record-type-removed", t.name(),
        absl::StrFormat("record type %s is removed, but %s of it %s in the case log: they would "
                        "vanish from pulls, case views and histories",
                        t.name(), Plural(n, "record", "records"), n == 1 ? "is" : "are"));
  }

  void TypeKept(const v1::RecordType& was, const v1::RecordType& now) {
    if (was.kind() != now.kind()) {
      Add(ChangeLevel::kIncompatible, "record-kind-changed", was.name(),
          absl::StrFormat("record type %s changes kind from %s to %s: its records keep the "
                          "place they have in their cases",
                          was.name(), v1::RecordKind_Name(was.kind()),
                          v1::RecordKind_Name(now.kind())));
    }
    if (was.label() != now.label()) {
      Add(ChangeLevel::kCompatible, "label-changed", was.name(),
          absl::StrFormat("label of record type %s", was.name()));
    }
    for (const v1::FieldDef& f : was.fields()) {
      const v1::FieldDef* g = FindField(now, f.name());
      if (g == nullptr) {
        FieldRemoved(was.name(), f);
      } else {
        FieldKept(was.name(), f, *g);
      }
    }
    for (const v1::FieldDef& g : now.fields()) {
      if (FindField(was, g.name()) != nullptr) continue;
      const std::string subject = FieldKey(now.name(), g.name());
      if (g.required()) {
        Add(ChangeLevel::kIncompatible, "required-field-added", subject,
            absl::StrFormat("new field %s is required: tablets still on the old schema are "
                            "refused every new %s (REQUIRED_FIELD_MISSING) until they fetch the "
                            "new one, and existing records lack it; add the field optional",
                            subject, now.name()));
      } else {
        Add(ChangeLevel::kCompatible, "field-added", subject,
            absl::StrFormat("new optional field %s (%s, %s)", subject, TypeName(g.type()),
                            ClassName(g.sensitivity())));
      }
    }
  }

  void FieldRemoved(const std::string& type, const v1::FieldDef& f) {
    const std::string subject = FieldKey(type, f.name());
    if (usage_ == nullptr) {
      query_.fields.insert(subject);
      return;
    }
    auto it = usage_->fields.find(subject);
    const FieldUsage use = it == usage_->fields.end() ? FieldUsage() : it->second;
    if (use.records == 0) {
      Add(ChangeLevel::kCompatible, "field-removed", subject,
          absl::StrFormat("field %s removed (no value of it was ever written)", subject));
      return;
    }
    Add(ChangeLevel::kIncompatible, "field-removed", subject,
        absl::StrFormat("field %s is removed, but %s values of it (%s of the case log): "
                        "they would vanish from pulls, case views and histories",
                        subject, RecordsHold(use.records),
                        Plural(use.entries, "entry", "entries")));
  }

  void FieldKept(const std::string& type, const v1::FieldDef& was, const v1::FieldDef& now) {
    const std::string subject = FieldKey(type, was.name());
    if (was.type() != now.type()) {
      Add(ChangeLevel::kIncompatible, "field-type-changed", subject,
          absl::StrFormat("field %s changes type from %s to %s: stored values and tablets still "
                          "on the old schema keep the old type; add a new field instead",
                          subject, TypeName(was.type()), TypeName(now.type())));
    }
    Sensitivity(subject, was, now);
    if (!was.required() && now.required()) {
      Add(ChangeLevel::kIncompatible, "field-made-required", subject,
          absl::StrFormat("field %s is made required: tablets still on the old schema are "
                          "refused new records without it (REQUIRED_FIELD_MISSING), and existing "
                          "records may lack it",
                          subject));
    } else if (was.required() && !now.required()) {
      Add(ChangeLevel::kCompatible, "field-made-optional", subject,
          absl::StrFormat("field %s is no longer required", subject));
    }
    if (was.type() == now.type()) EnumValues(type, subject, was, now);
    if (was.type() == now.type() && HasMaxLength(was)) {
      const uint32_t a = EffectiveMaxLength(was), b = EffectiveMaxLength(now);
      if (b < a) {
        Add(ChangeLevel::kIncompatible, "max-length-lowered", subject,
            absl::StrFormat("max_length of %s is lowered from %d to %d: tablets still on the old "
                            "schema are refused longer values (VALUE_TOO_LONG), and stored "
                            "values are not shortened",
                            subject, a, b));
      } else if (b > a) {
        Add(ChangeLevel::kCompatible, "max-length-raised", subject,
            absl::StrFormat("max_length of %s %d -> %d", subject, a, b));
      }
    }
    if (was.blind_indexed() != now.blind_indexed()) {
      Add(ChangeLevel::kCompatible,
          now.blind_indexed() ? "blind-index-added" : "blind-index-removed", subject,
          absl::StrFormat("blind index of %s", subject));
    }
    if (was.label() != now.label()) {
      Add(ChangeLevel::kCompatible, "label-changed", subject,
          absl::StrFormat("label of field %s", subject));
    }
  }

  void Sensitivity(const std::string& subject, const v1::FieldDef& was, const v1::FieldDef& now) {
    if (was.sensitivity() == now.sensitivity()) return;
    const std::string from = ClassName(was.sensitivity()), to = ClassName(now.sensitivity());
    if (Protection(now.sensitivity()) < Protection(was.sensitivity())) {
      Add(ChangeLevel::kIncompatible, "sensitivity-lowered", subject,
          absl::StrFormat("field %s is lowered from %s to %s: %s", subject, from, to,
                          IsEncryptedClass(was.sensitivity())
                              ? "new values would be stored in clear"
                              : "its values would reach analysts' aggregates"));
      return;
    }
    if (!IsEncryptedClass(was.sensitivity()) && IsEncryptedClass(now.sensitivity())) {
      if (usage_ == nullptr) {
        query_.fields.insert(subject);
        return;
      }
      auto it = usage_->fields.find(subject);
      const uint64_t clear = it == usage_->fields.end() ? 0 : it->second.clear_records;
      if (clear > 0) {
        Add(ChangeLevel::kIncompatible, "sensitivity-raised", subject,
            absl::StrFormat("field %s is raised from %s to %s, but %s values of it stored in "
                            "clear: they stay in clear in the case log and the state, and "
                            "erasing their case cannot shred them; only new values are encrypted",
                            subject, from, to, RecordsHold(clear)));
        return;
      }
    }
    Add(ChangeLevel::kCompatible, "sensitivity-changed", subject,
        absl::StrFormat("field %s %s -> %s", subject, from, to));
  }

  void EnumValues(const std::string& type, const std::string& subject, const v1::FieldDef& was,
                  const v1::FieldDef& now) {
    if (was.type() != v1::FIELD_TYPE_ENUM && was.type() != v1::FIELD_TYPE_STRING_LIST) return;
    const bool list = was.type() == v1::FIELD_TYPE_STRING_LIST;
    if (list && was.enum_values().empty() && !now.enum_values().empty()) {
      Add(ChangeLevel::kIncompatible, "allowed-values-restricted", subject,
          absl::StrFormat("string list %s gets allowed values: stored lists and tablets still on "
                          "the old schema may hold others",
                          subject));
      return;
    }
    if (list && !was.enum_values().empty() && now.enum_values().empty()) {
      Add(ChangeLevel::kCompatible, "allowed-values-lifted", subject,
          absl::StrFormat("string list %s takes any value", subject));
      return;
    }
    const absl::flat_hash_set<std::string> old_values(was.enum_values().begin(),
                                                      was.enum_values().end());
    const absl::flat_hash_set<std::string> new_values(now.enum_values().begin(),
                                                      now.enum_values().end());
    const bool is_region = type == RegistrationName(old_) &&
                           was.name() == old_.case_fields().region_field() &&
                           was.name() == new_.case_fields().region_field();
    for (const std::string& v : was.enum_values()) {
      if (new_values.contains(v)) continue;
      EnumValueRemoved(type, subject, was, v, is_region);
    }
    for (const std::string& v : now.enum_values()) {
      if (old_values.contains(v)) continue;
      Add(ChangeLevel::kCompatible, "enum-value-added", ValueKey(type, was.name(), v),
          absl::StrFormat("new value %s of %s", v, subject));
    }
  }

  void EnumValueRemoved(const std::string& type, const std::string& subject, const v1::FieldDef& f,
                        const std::string& value, bool is_region) {
    const std::string key = ValueKey(type, f.name(), value);
    if (usage_ == nullptr) {
      query_.enum_values[subject].insert(value);
      if (is_region) query_.regions.insert(value);
      return;
    }
    const uint64_t held = CountOf(usage_->enum_value_records, key);
    const uint64_t unreadable = CountOf(usage_->enum_unreadable_records, subject);
    const uint64_t principals = is_region ? CountOf(usage_->region_principals, value) : 0;
    std::vector<std::string> uses;
    if (held > 0) {
      uses.push_back(absl::StrFormat("%s it in the case log", RecordsHold(held)));
    }
    if (unreadable > 0) {
      uses.push_back(absl::StrFormat(
          "%s encrypted values of the field, which may be it (the check never decrypts)",
          RecordsHold(unreadable)));
    }
    if (principals > 0) {
      uses.push_back(absl::StrFormat("%s (staff, officers, devices) %s in that region",
                                     Plural(principals, "principal", "principals"),
                                     principals == 1 ? "is" : "are"));
    }
    if (uses.empty()) {
      Add(ChangeLevel::kCompatible, "enum-value-removed", key,
          absl::StrFormat("value %s of %s removed (never written)", value, subject));
      return;
    }
    Add(ChangeLevel::kIncompatible, "enum-value-removed", key,
        absl::StrFormat("value %s of %s is removed, but %s: the new schema could not read or "
                        "count them, and tablets would be sent values it refuses",
                        value, subject, absl::StrJoin(uses, ", and ")));
  }

  static std::string RegistrationName(const v1::Schema& s) {
    for (const v1::RecordType& t : s.record_types()) {
      if (t.kind() == v1::RECORD_KIND_CASE_REGISTRATION) return t.name();
    }
    return "";
  }

  void CaseFields() {
    const v1::CaseFields& a = old_.case_fields();
    const v1::CaseFields& b = new_.case_fields();
    const std::pair<std::string_view, std::pair<const std::string*, const std::string*>> fields[] =
        {{"region_field", {&a.region_field(), &b.region_field()}},
         {"status_field", {&a.status_field(), &b.status_field()}},
         {"officer_field", {&a.officer_field(), &b.officer_field()}},
         {"district_field", {&a.district_field(), &b.district_field()}},
         {"closure_reason_field", {&a.closure_reason_field(), &b.closure_reason_field()}}};
    for (const auto& [name, pair] : fields) {
      const std::string& was = *pair.first;
      const std::string& now = *pair.second;
      if (was == now) continue;
      const std::string subject = absl::StrFormat("case_fields.%s", name);
      if (was.empty()) {
        Add(ChangeLevel::kCompatible, "case-field-added", subject,
            absl::StrFormat("%s names %s (existing cases have no value until one is written)",
                            subject, now));
      } else if (now.empty()) {
        Add(ChangeLevel::kCompatible, "case-field-removed", subject,
            absl::StrFormat("%s no longer names %s (its values stay, no longer managed)", subject,
                            was));
      } else {
        Add(ChangeLevel::kIncompatible, "case-field-changed", subject,
            absl::StrFormat("%s moves from %s to %s: existing cases keep theirs in %s, so the "
                            "server would manage them by a field they never wrote",
                            subject, was, now, was));
      }
    }
    if (!MessageDifferencer::Equals(CaseFieldsRegions(a), CaseFieldsRegions(b))) {
      Add(ChangeLevel::kCompatible, "district-regions-changed", "case_fields.district_regions",
          "the regions of districts changed (cases keep their values; the rule applies to later "
          "changes)");
    }
  }
  static v1::CaseFields CaseFieldsRegions(const v1::CaseFields& cf) {
    v1::CaseFields only;
    *only.mutable_district_regions() = cf.district_regions();
    return only;
  }

  void AggregateDimensions() {
    auto find = [](const v1::Schema& s, const std::string& name) -> const v1::AggregateDimension* {
      for (const v1::AggregateDimension& d : s.aggregate_dimensions()) {
        if (d.name() == name) return &d;
      }
      return nullptr;
    };
    for (const v1::AggregateDimension& d : old_.aggregate_dimensions()) {
      const v1::AggregateDimension* e = find(new_, d.name());
      const std::string subject = absl::StrCat("aggregate_dimensions.", d.name());
      if (e == nullptr) {
        Add(ChangeLevel::kCompatible, "aggregate-dimension-removed", subject,
            absl::StrFormat("aggregate dimension %s removed", d.name()));
      } else if (!MessageDifferencer::Equals(d, *e)) {
        Add(ChangeLevel::kCompatible, "aggregate-dimension-changed", subject,
            absl::StrFormat("aggregate dimension %s now counts %s.%s", d.name(), e->record_type(),
                            e->field()));
      }
    }
    for (const v1::AggregateDimension& e : new_.aggregate_dimensions()) {
      if (find(old_, e.name()) != nullptr) continue;
      Add(ChangeLevel::kCompatible, "aggregate-dimension-added",
          absl::StrCat("aggregate_dimensions.", e.name()),
          absl::StrFormat("new aggregate dimension %s", e.name()));
    }
  }

  const v1::Schema& old_;
  const v1::Schema& new_;
  const SchemaUsage* usage_;
  SchemaUsageQuery query_;
  std::vector<SchemaChange> changes_;
};

// Per-name sets of records seen while scanning, turned into counts at the
// end. A record is "CASE_ID/RECORD_ID".
using RecordSets = absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>;

void CountInto(const RecordSets& sets, absl::flat_hash_map<std::string, uint64_t>* out) {
  for (const auto& [key, records] : sets) (*out)[key] = records.size();
}

absl::Status ScanCaseLog(storage::Store& store, const storage::Snapshot* snap,
                         const SchemaUsageQuery& q, SchemaUsage* usage) {
  RecordSets types, fields, clear, encrypted, values, unreadable;
  std::unique_ptr<storage::Iterator> it = store.NewIterator(storage::Cf::kCaseLog, "", "", snap);
  v1::CaseLogEntry entry;
  v1::FieldValue value;
  for (; it->Valid(); it->Next()) {
    absl::StatusOr<uint64_t> position = storage::DecodeCaseLogKey(it->key());
    if (!position.ok() || !DecodeLogEntry(it->value(), *position, store.names(), &entry).ok()) {
      return absl::DataLossError(absl::StrFormat(
          "case log entry %d does not parse: the store is damaged; restore it from a backup",
          position.ok() ? *position : 0));
    }
    const std::string record = absl::StrCat(entry.case_id(), "/", entry.record_id());
    if (q.record_types.contains(entry.record_type())) types[entry.record_type()].insert(record);
    for (const v1::EntryField& f : entry.fields()) {
      const v1::StoredValue& stored = f.value();
      if (stored.cleared()) continue;
      const std::string key = FieldKey(entry.record_type(), f.field());
      if (q.fields.contains(key)) {
        fields[key].insert(record);
        ++usage->fields[key].entries;
        (stored.encrypted() ? encrypted : clear)[key].insert(record);
      }
      auto wanted = q.enum_values.find(key);
      if (wanted == q.enum_values.end()) continue;
      if (stored.encrypted()) {
        unreadable[key].insert(record);
        continue;
      }
      if (!value.ParseFromString(stored.data())) {
        return absl::DataLossError(absl::StrFormat(
            "case log entry %d: the value of %s does not parse: the store is damaged; restore it "
            "from a backup",
            entry.position(), key));
      }
      if (value.has_enum_value() && wanted->second.contains(value.enum_value())) {
        values[ValueKey(entry.record_type(), f.field(), value.enum_value())].insert(record);
      }
      if (value.has_string_list_value()) {
        for (const std::string& v : value.string_list_value().values()) {
          if (wanted->second.contains(v)) {
            values[ValueKey(entry.record_type(), f.field(), v)].insert(record);
          }
        }
      }
    }
  }
  RETURN_IF_ERROR(it->status());
  CountInto(types, &usage->type_records);
  for (const auto& [key, records] : fields) usage->fields[key].records = records.size();
  for (const auto& [key, records] : clear) usage->fields[key].clear_records = records.size();
  for (const auto& [key, records] : encrypted) {
    usage->fields[key].encrypted_records = records.size();
  }
  CountInto(values, &usage->enum_value_records);
  CountInto(unreadable, &usage->enum_unreadable_records);
  return absl::OkStatus();
}

absl::Status ScanPrincipals(storage::Store& store, const storage::Snapshot* snap,
                            const SchemaUsageQuery& q, SchemaUsage* usage) {
  std::unique_ptr<storage::Iterator> it = store.NewIterator(storage::Cf::kPrincipals, "", "", snap);
  v1::Principal p;
  for (; it->Valid(); it->Next()) {
    // Enrolment codes share the column family; they expire within days.
    if (!it->key().empty() && static_cast<uint8_t>(it->key()[0]) == storage::kEnrolmentCodeTag) {
      continue;
    }
    if (!p.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          "a principal of the registry does not parse: the store is damaged; restore it from a "
          "backup");
    }
    for (const std::string& region : p.regions()) {
      if (q.regions.contains(region)) ++usage->region_principals[region];
    }
  }
  return it->status();
}

}  // namespace

std::string SchemaName(const v1::Schema& schema) {
  return absl::StrCat(schema.schema_id(), "@", schema.version());
}

SchemaUsageQuery UsageQueryFor(const v1::Schema& served, const v1::Schema& configured) {
  Differ differ(served, configured, nullptr);
  differ.Run();
  return std::move(differ.query());
}

absl::StatusOr<SchemaUsage> ScanSchemaUsage(storage::Store& store, const SchemaUsageQuery& query) {
  SchemaUsage usage;
  if (query.empty()) return usage;
  std::unique_ptr<storage::Snapshot> snap = store.GetSnapshot();
  if (!query.record_types.empty() || !query.fields.empty() || !query.enum_values.empty()) {
    RETURN_IF_ERROR(ScanCaseLog(store, snap.get(), query, &usage));
  }
  if (!query.regions.empty()) RETURN_IF_ERROR(ScanPrincipals(store, snap.get(), query, &usage));
  return usage;
}

std::vector<SchemaChange> CompareSchemas(const v1::Schema& served, const v1::Schema& configured,
                                         const SchemaUsage& usage) {
  Differ differ(served, configured, &usage);
  differ.Run();
  std::vector<SchemaChange> changes = std::move(differ.changes());
  auto rank = [](ChangeLevel l) {
    return l == ChangeLevel::kVersionError ? 0 : l == ChangeLevel::kIncompatible ? 1 : 2;
  };
  std::stable_sort(
      changes.begin(), changes.end(),
      [&](const SchemaChange& a, const SchemaChange& b) { return rank(a.level) < rank(b.level); });
  return changes;
}

std::vector<std::string> SchemaVerdict::IncompatibleNames() const {
  std::vector<std::string> names;
  for (const SchemaChange& c : changes) {
    if (c.level == ChangeLevel::kIncompatible) names.push_back(c.Name());
  }
  return names;
}

std::string SchemaVerdict::RefusalLine(const v1::Schema& configured) const {
  std::vector<const SchemaChange*> refusing;
  for (const SchemaChange& c : changes) {
    if (c.level != ChangeLevel::kCompatible) refusing.push_back(&c);
  }
  if (refusing.empty()) return "";
  const std::string from = served.has_value() ? SchemaName(*served) : "(none)";
  std::string line = absl::StrFormat("schema change %s -> %s refused: %s", from,
                                     SchemaName(configured), refusing[0]->detail);
  if (outcome == Outcome::kVersionError) {
    absl::StrAppend(&line, " (--accept-schema-change does not override the version)");
  } else {
    absl::StrAppend(&line,
                    "; undo the change in the schema file, or start fieldsyncd once with "
                    "--accept-schema-change to accept it (recorded in the audit log)");
  }
  if (refusing.size() > 1) {
    std::vector<std::string> others;
    for (size_t i = 1; i < refusing.size() && i <= 3; ++i) others.push_back(refusing[i]->Name());
    absl::StrAppend(
        &line, absl::StrFormat("; %s more: %s%s", Plural(refusing.size() - 1, "change", "changes"),
                               absl::StrJoin(others, ", "), refusing.size() > 4 ? ", ..." : ""));
  }
  absl::StrAppend(&line, "; `fieldsync schema check` lists every change");
  return line;
}

absl::StatusOr<std::optional<v1::Schema>> LoadServedSchema(storage::Store& store) {
  absl::StatusOr<std::string> bytes =
      store.Get(storage::Cf::kMetadata, storage::EncodeMetadataKey(kServedSchemaName));
  if (absl::IsNotFound(bytes.status())) return std::nullopt;
  RETURN_IF_ERROR(bytes.status());
  v1::Schema schema;
  if (!schema.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrFormat(
        "the store's record of its schema (metadata %s) does not parse: the store is damaged; "
        "restore it from a backup",
        kServedSchemaName));
  }
  return schema;
}

void PutServedSchema(const v1::Schema& schema, storage::WriteBatch* batch) {
  std::string bytes;
  // Deterministic, so that the same schema is always the same bytes.
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    schema.SerializeToCodedStream(&coded);
  }
  batch->Put(storage::Cf::kMetadata, storage::EncodeMetadataKey(kServedSchemaName), bytes);
}

absl::StatusOr<SchemaVerdict> CheckSchemaUpgrade(storage::Store& store,
                                                 const v1::Schema& configured) {
  SchemaVerdict verdict;
  ASSIGN_OR_RETURN(verdict.served, LoadServedSchema(store));
  if (!verdict.served.has_value()) {
    verdict.outcome = SchemaVerdict::Outcome::kFirstRecord;
    return verdict;
  }
  if (MessageDifferencer::Equals(*verdict.served, configured)) {
    verdict.outcome = SchemaVerdict::Outcome::kUnchanged;
    return verdict;
  }
  ASSIGN_OR_RETURN(SchemaUsage usage,
                   ScanSchemaUsage(store, UsageQueryFor(*verdict.served, configured)));
  verdict.changes = CompareSchemas(*verdict.served, configured, usage);
  verdict.outcome = SchemaVerdict::Outcome::kCompatible;
  for (const SchemaChange& c : verdict.changes) {
    if (c.level == ChangeLevel::kVersionError) {
      verdict.outcome = SchemaVerdict::Outcome::kVersionError;
      break;
    }
    if (c.level == ChangeLevel::kIncompatible)
      verdict.outcome = SchemaVerdict::Outcome::kIncompatible;
  }
  return verdict;
}

}  // namespace fieldsync::sync
