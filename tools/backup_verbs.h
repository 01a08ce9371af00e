// `fieldsync backup create|verify|restore`: the administrator's backups
// (docs/OPERATIONS.md, "Backup and restore"; admin/backup.h).
#ifndef FIELDSYNC_TOOLS_BACKUP_VERBS_H_
#define FIELDSYNC_TOOLS_BACKUP_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 failure, 2 usage) and on failure
// sets *error to the one line to print.
int BackupCreate(const Args& args, std::string* error);   // asks fieldsyncd
int BackupVerify(const Args& args, std::string* error);   // offline
int BackupRestore(const Args& args, std::string* error);  // offline

// The usage text of `fieldsync backup`.
extern const char kBackupUsage[];

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_BACKUP_VERBS_H_
