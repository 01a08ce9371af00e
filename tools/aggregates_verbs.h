// `fieldsync aggregates list|query|export`: the analyst's and supervisor's
// verbs (AggregateService). They connect with the caller's certificate
// (--cert/--key/--ca, as written by `fieldsync staff add`): the server
// scopes every answer to that principal's regions and suppresses small
// counts before anything reaches the tool.
#ifndef FIELDSYNC_TOOLS_AGGREGATES_VERBS_H_
#define FIELDSYNC_TOOLS_AGGREGATES_VERBS_H_

#include <string>

#include "tools/cli.h"

namespace fieldsync::tools {

// Each returns the exit code (0 success, 1 failure, 2 usage) and on failure
// sets *error to the one line to print.
int AggregatesList(const Args& args, std::string* error);
int AggregatesQuery(const Args& args, std::string* error);
int AggregatesExport(const Args& args, std::string* error);
int AggregatesVerify(const Args& args, std::string* error);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_AGGREGATES_VERBS_H_
