// `fieldsync officer add|list|revoke`: the field officers cases are assigned
// to and tablets are enrolled for (AdminService; PRINCIPAL_KIND_OFFICER).
// Officers have no certificate: their tablets call the server. Enrolment
// codes are issued only for registered, active officers, and revoking an
// officer revokes its tablets in the same write.
#ifndef FIELDSYNC_TOOLS_OFFICER_VERBS_H_
#define FIELDSYNC_TOOLS_OFFICER_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 refused or failed, 2 usage) and
// on failure sets *error to the one line to print.
int OfficerAdd(const Args& args, std::string* error);
int OfficerList(const Args& args, std::string* error);
int OfficerRevoke(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_OFFICER_VERBS_H_
