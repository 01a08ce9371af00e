// The default child-protection schema shipped in
// deploy/schema/child_protection.textproto, embedded in the binaries at
// build time so that `fieldsync init` can write it wherever it runs.
#ifndef FIELDSYNC_ADMIN_DEFAULT_SCHEMA_H_
#define FIELDSYNC_ADMIN_DEFAULT_SCHEMA_H_

#include <string_view>

namespace fieldsync::admin {

// The file's text (protobuf text form).
std::string_view DefaultSchemaText();

}  // namespace fieldsync::admin

#endif  // FIELDSYNC_ADMIN_DEFAULT_SCHEMA_H_
