// `fieldsync conflict list|show|resolve`: a supervisor decides what a
// field's value is when tablets wrote different values offline
// (docs/MERGE.md §6). list and show remember the Conflict.version they
// printed (tools/seen_conflicts.h); resolve sends that version, so a
// decision is refused if the conflict changed after the supervisor looked.
#ifndef FIELDSYNC_TOOLS_CONFLICT_VERBS_H_
#define FIELDSYNC_TOOLS_CONFLICT_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 refused or failed, 2 usage) and
// on failure sets *error to the one line to print.
int ConflictList(const Args& args, std::string* error);
int ConflictShow(const Args& args, std::string* error);
int ConflictResolve(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CONFLICT_VERBS_H_
