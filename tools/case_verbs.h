// `fieldsync case list|show|history|assign|transfer|close|reopen`: the
// supervisor's verbs on cases (CaseService). They connect with the caller's
// certificate (--cert/--key/--ca as `fieldsync staff add` writes them); the
// server scopes every answer to the caller's regions, and records each
// reading of a case (show, history) in the audit log.
#ifndef FIELDSYNC_TOOLS_CASE_VERBS_H_
#define FIELDSYNC_TOOLS_CASE_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 refused or failed, 2 usage) and
// on failure sets *error to the one line to print.
int CaseList(const Args& args, std::string* error);
int CaseShow(const Args& args, std::string* error);
int CaseHistory(const Args& args, std::string* error);
int CaseAssign(const Args& args, std::string* error);
int CaseTransfer(const Args& args, std::string* error);
int CaseClose(const Args& args, std::string* error);
int CaseReopen(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CASE_VERBS_H_
