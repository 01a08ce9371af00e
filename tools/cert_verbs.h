// `fieldsync certs status|renew-server` and `fieldsync staff renew`: the
// administrator's certificate verbs (docs/OPERATIONS.md "Certificates:
// status, renewal and CA rotation").
#ifndef FIELDSYNC_TOOLS_CERT_VERBS_H_
#define FIELDSYNC_TOOLS_CERT_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// The usage lines of `fieldsync certs --help`.
extern const char kCertsUsage[];

// Each returns the exit code (0 success, 1 failure, 2 usage) and on failure
// sets *error to the one line to print (the server's reason on a refusal).
int CertsStatus(const Args& args, std::string* error);
int CertsRenewServer(const Args& args, std::string* error);
// fieldsync certs rotate-ca [--finish [--force]]
int CertsRotateCa(const Args& args, std::string* error);
int StaffRenew(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CERT_VERBS_H_
