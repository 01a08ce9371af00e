// `fieldsync audit export` and `fieldsync audit verify`: the auditor's verbs.
#ifndef FIELDSYNC_TOOLS_AUDIT_VERBS_H_
#define FIELDSYNC_TOOLS_AUDIT_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 failure, 2 usage) and on failure
// sets *error to the one line to print.
int AuditExport(const Args& args, std::string* error);
int AuditVerify(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_AUDIT_VERBS_H_
