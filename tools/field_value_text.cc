#include "tools/field_value_text.h"

#include <cstdio>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "sync/schema.h"

namespace fieldsync::tools {
namespace {

// Shortest text that reads back as the same double.
std::string Number(double d) {
  for (int precision = 6; precision < 17; ++precision) {
    std::string s = absl::StrFormat("%.*g", precision, d);
    double back = 0;
    if (absl::SimpleAtod(s, &back) && back == d) return s;
  }
  return absl::StrFormat("%.17g", d);
}

absl::Status Expected(const v1::FieldDef& def, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("--value for field %s (%s) must be %s",
                                                    def.name(), FieldTypeName(def.type()), what));
}

absl::StatusOr<v1::FieldValue> ParseUnchecked(const v1::FieldDef& def, std::string_view std_text) {
  // Debian's abseil has its own string_view.
  const absl::string_view text(std_text.data(), std_text.size());
  v1::FieldValue v;
  switch (def.type()) {
    case v1::FIELD_TYPE_STRING:
      v.set_string_value(std::string(text));
      return v;
    case v1::FIELD_TYPE_ENUM:
      v.set_enum_value(std::string(text));
      return v;
    case v1::FIELD_TYPE_INT: {
      int64_t i = 0;
      if (!absl::SimpleAtoi(text, &i)) return Expected(def, "a whole number");
      v.set_int_value(i);
      return v;
    }
    case v1::FIELD_TYPE_DECIMAL:
      v.set_decimal_value(std::string(text));
      return v;
    case v1::FIELD_TYPE_BOOL:
      if (text == "true" || text == "yes") {
        v.set_bool_value(true);
      } else if (text == "false" || text == "no") {
        v.set_bool_value(false);
      } else {
        return Expected(def, "true or false");
      }
      return v;
    case v1::FIELD_TYPE_DATE: {
      int y = 0, m = 0, d = 0;
      char tail = 0;
      std::string s(text);
      if (s.size() != 10 || std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) {
        return Expected(def, "a date like 2026-05-01");
      }
      v.mutable_date_value()->set_year(y);
      v.mutable_date_value()->set_month(m);
      v.mutable_date_value()->set_day(d);
      return v;
    }
    case v1::FIELD_TYPE_DATETIME: {
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
        return Expected(def, "an RFC 3339 time like 2026-05-01T09:30:00Z");
      }
      v.set_datetime_unix_micros(absl::ToUnixMicros(t));
      return v;
    }
    case v1::FIELD_TYPE_GEOPOINT: {
      std::vector<std::string> parts = absl::StrSplit(text, ',');
      double lat = 0, lon = 0, acc = 0;
      if (parts.size() < 2 || parts.size() > 3 || !absl::SimpleAtod(parts[0], &lat) ||
          !absl::SimpleAtod(parts[1], &lon) ||
          (parts.size() == 3 && !absl::SimpleAtod(parts[2], &acc))) {
        return Expected(def, "LATITUDE,LONGITUDE[,ACCURACY_M] like 0.3476,32.5825");
      }
      v.mutable_geopoint_value()->set_latitude(lat);
      v.mutable_geopoint_value()->set_longitude(lon);
      v.mutable_geopoint_value()->set_accuracy_m(acc);
      return v;
    }
    case v1::FIELD_TYPE_STRING_LIST: {
      v1::StringList* list = v.mutable_string_list_value();
      if (absl::StripAsciiWhitespace(text).empty()) return v;
      for (absl::string_view part : absl::StrSplit(text, ',')) {
        list->add_values(std::string(absl::StripAsciiWhitespace(part)));
      }
      return v;
    }
    case v1::FIELD_TYPE_ATTACHMENT:
      return absl::UnimplementedError(absl::StrFormat(
          "field %s holds an attachment, which cannot be typed: keep the current value or "
          "take a losing one",
          def.name()));
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("field %s has a type this tool does not know", def.name()));
  }
}

}  // namespace

std::string FieldTypeName(v1::FieldType type) {
  switch (type) {
    case v1::FIELD_TYPE_STRING:
      return "string";
    case v1::FIELD_TYPE_INT:
      return "whole number";
    case v1::FIELD_TYPE_DECIMAL:
      return "decimal";
    case v1::FIELD_TYPE_BOOL:
      return "true/false";
    case v1::FIELD_TYPE_DATE:
      return "date";
    case v1::FIELD_TYPE_DATETIME:
      return "date and time";
    case v1::FIELD_TYPE_ENUM:
      return "enum";
    case v1::FIELD_TYPE_GEOPOINT:
      return "position";
    case v1::FIELD_TYPE_STRING_LIST:
      return "list of strings";
    case v1::FIELD_TYPE_ATTACHMENT:
      return "attachment";
    default:
      return "unknown type";
  }
}

std::string FormatFieldValue(const v1::FieldValue& value) {
  switch (value.kind_case()) {
    case v1::FieldValue::kStringValue:
      return value.string_value();
    case v1::FieldValue::kIntValue:
      return absl::StrCat(value.int_value());
    case v1::FieldValue::kDecimalValue:
      return value.decimal_value();
    case v1::FieldValue::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case v1::FieldValue::kDateValue:
      return absl::StrFormat("%04d-%02d-%02d", value.date_value().year(),
                             value.date_value().month(), value.date_value().day());
    case v1::FieldValue::kDatetimeUnixMicros:
      return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ",
                              absl::FromUnixMicros(value.datetime_unix_micros()),
                              absl::UTCTimeZone());
    case v1::FieldValue::kEnumValue:
      return value.enum_value();
    case v1::FieldValue::kGeopointValue: {
      const v1::GeoPoint& g = value.geopoint_value();
      std::string out = absl::StrCat(Number(g.latitude()), ",", Number(g.longitude()));
      if (g.accuracy_m() != 0) absl::StrAppend(&out, ",", Number(g.accuracy_m()));
      return out;
    }
    case v1::FieldValue::kStringListValue:
      return absl::StrJoin(value.string_list_value().values(), ", ");
    case v1::FieldValue::kAttachmentValue: {
      const v1::AttachmentRef& a = value.attachment_value();
      return absl::StrFormat("attachment %s (%s, %d bytes)", a.attachment_id(), a.media_type(),
                             a.size_bytes());
    }
    case v1::FieldValue::KIND_NOT_SET:
      break;
  }
  return "(cleared)";
}

absl::StatusOr<v1::FieldValue> ParseFieldValue(const v1::FieldDef& def, std::string_view text) {
  absl::StatusOr<v1::FieldValue> value = ParseUnchecked(def, text);
  if (!value.ok()) return value.status();
  sync::ValueCheck check =
      sync::Schema::CheckValue(def, *value, absl::StrFormat("--value for field %s", def.name()));
  if (check.ok()) return value;
  if (def.type() == v1::FIELD_TYPE_ENUM ||
      (def.type() == v1::FIELD_TYPE_STRING_LIST && !def.enum_values().empty())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--value for field %s (%s) must be one of: %s", def.name(),
                        FieldTypeName(def.type()), absl::StrJoin(def.enum_values(), ", ")));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("%s (a %s)", check.detail, FieldTypeName(def.type())));
}

std::string Shorten(std::string_view text, size_t width) {
  std::string flat(text);
  for (char& c : flat) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  // Count characters, not bytes: a UTF-8 continuation byte is 10xxxxxx.
  size_t chars = 0, cut = flat.size();
  const size_t keep = width > 3 ? width - 3 : width;
  for (size_t i = 0; i < flat.size(); ++i) {
    if ((static_cast<unsigned char>(flat[i]) & 0xC0) == 0x80) continue;
    if (chars == keep && cut == flat.size()) cut = i;
    ++chars;
  }
  if (chars <= width) return flat;
  return flat.substr(0, cut) + "...";
}

}  // namespace fieldsync::tools
