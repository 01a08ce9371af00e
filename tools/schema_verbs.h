// `fieldsync schema check`: the verdict fieldsyncd would give a schema file
// at its next start, offline (docs/OPERATIONS.md, "Schema upgrades";
// sync/schema_compat.h).
#ifndef FIELDSYNC_TOOLS_SCHEMA_VERBS_H_
#define FIELDSYNC_TOOLS_SCHEMA_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Returns the exit code: 0 when fieldsyncd would start with the schema
// without --accept-schema-change, 1 when it would refuse it (or the check
// failed; *error is the line to print), 2 for bad usage.
int SchemaCheck(const Args& args, std::string* error);

// The usage text of `fieldsync schema`.
extern const char kSchemaUsage[];

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_SCHEMA_VERBS_H_
