// `fieldsync case erase`, `fieldsync keys rotate-master`, `keys
// rotate-sealing`, `keys list` and `keys rotate-audit`: the administrator's
// verbs for crypto-shredding a case and rotating the master key, the
// batch-sealing key and the audit signing key (docs/OPERATIONS.md).
#ifndef FIELDSYNC_TOOLS_KEY_VERBS_H_
#define FIELDSYNC_TOOLS_KEY_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 failure, 2 usage) and on failure
// sets *error to the one line to print (the server's reason on a refusal).
int CaseErase(const Args& args, std::string* error);
int KeysRotateMaster(const Args& args, std::string* error);
int KeysRotateSealing(const Args& args, std::string* error);
int KeysList(const Args& args, std::string* error);
int KeysRotateAudit(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_KEY_VERBS_H_
