// Field values as a person reads and types them on the command line: the
// text `fieldsync case show` and `conflict show` print, and the text
// `conflict resolve --value` parses by the field's schema type.
#ifndef FIELDSYNC_TOOLS_FIELD_VALUE_TEXT_H_
#define FIELDSYNC_TOOLS_FIELD_VALUE_TEXT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/schema.pb.h"

namespace fieldsync::tools {

// The value as text: strings and enum values as they are, integers and
// decimals in decimal, bools as true/false, dates as 2026-05-01, instants
// as RFC 3339 UTC, positions as "lat,lon" (",accuracy" when known), string
// lists joined by ", ", attachments as "attachment ID (TYPE, N bytes)".
// "(cleared)" when no member is set. Every form but attachments and
// cleared values is accepted back by ParseFieldValue.
std::string FormatFieldValue(const v1::FieldValue& value);

// `text` read as a value of `def`'s type (the forms above; string lists are
// comma-separated, surrounding spaces dropped), then checked against the
// schema (allowed enum values, ranges, max_length). kInvalidArgument naming
// the field, its type and what is expected (the allowed values of an enum),
// never echoing the text; kUnimplemented for attachments, which cannot be
// typed.
absl::StatusOr<v1::FieldValue> ParseFieldValue(const v1::FieldDef& def, std::string_view text);

// "enum", "string", "date", ... for messages.
std::string FieldTypeName(v1::FieldType type);

// `text` on one line, at most `width` characters (UTF-8 aware: never cuts
// a character), with "..." when shortened. Newlines and tabs become spaces.
std::string Shorten(std::string_view text, size_t width);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_FIELD_VALUE_TEXT_H_
