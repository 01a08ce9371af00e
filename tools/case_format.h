// How the supervisor's verbs (case, conflict, officer) print: times in UTC,
// writers as a person knows them, aligned tables, JSON members, and the
// exact commands to run next.
#ifndef FIELDSYNC_TOOLS_CASE_FORMAT_H_
#define FIELDSYNC_TOOLS_CASE_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "fieldsync/v1/records.pb.h"
#include "nlohmann/json.hpp"
#include "tools/cli.h"

namespace fieldsync::tools {

// "2026-05-01 09:12:03" (UTC) of an HLC's wall time; "-" when it is 0.
std::string UtcTime(const v1::Hlc& hlc);
std::string UtcTime(int64_t unix_micros);
// "2026-05-01T09:12:03.123456Z" for JSON; null when 0.
nlohmann::json JsonTime(int64_t unix_micros);

// Who wrote, as a person knows it: "OFFICER / DEVICE LABEL" for a device
// the registry knows, the writer itself for a server-side change
// ("staff:amina") or an unknown device (its id).
std::string WriterName(std::string_view writer, std::string_view officer_id,
                       std::string_view device_label);

// "applied", "converged", "superseded", "conflict", "rejected"; "-" when
// unspecified.
std::string OutcomeName(v1::ChangeOutcome outcome);
// "upsert", "delete", "close", "reopen", "assign", "transfer", "resolve".
std::string ChangeKindName(v1::ChangeKind kind);

// A value in JSON: {"value": text or null, "field_value": the FieldValue
// in protobuf JSON or null, "withheld": bool}, merged into `out`.
void PutJsonValue(const v1::FieldValue* value, bool withheld, nlohmann::json* out);

// A value for a table cell: its text shortened to `width`, "(withheld)"
// or "(cleared)".
std::string CellValue(const v1::FieldValue* value, bool withheld, size_t width = 32);

// Prints rows under a header, columns padded to their widest cell (the
// last column unpadded), two spaces apart.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, std::ostream& out);

// "fieldsync" followed by the connection options of `args` (--data-dir,
// --server, --cert, --key, --ca), shell-quoted, so that a printed command
// runs as the same principal against the same server.
std::string CommandPrefix(const Args& args);

// `s` quoted for a POSIX shell when it needs it.
std::string ShellQuote(std::string_view s);

}  // namespace fieldsync::tools

#endif  // FIELDSYNC_TOOLS_CASE_FORMAT_H_
