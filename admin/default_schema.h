// The default child-protection schema shipped in
// deploy/schema/child_protection.textproto, with its metrics and DHIS2
// mapping, embedded in the binaries at build time so that `fieldsync init`
// can write them wherever it runs.
#ifndef FIELDSYNC_ADMIN_DEFAULT_SCHEMA_H_
#define FIELDSYNC_ADMIN_DEFAULT_SCHEMA_H_

#include <string_view>

namespace fieldsync::admin {

// The file's text (protobuf text form).
std::string_view DefaultSchemaText();

// deploy/metrics/child_protection.textproto (aggregates' MetricsConfig).
std::string_view DefaultMetricsText();

// deploy/dhis2/child_protection.json (the DHIS2 export mapping).
std::string_view DefaultDhis2MappingText();

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_DEFAULT_SCHEMA_H_
