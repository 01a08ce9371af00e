// Fuzzes the offline verifier of an audit export file (audit/export.h
// VerifyExport, `fieldsync audit verify`): an auditor runs it on a file
// that may come from anyone. It must never crash, and must never call an
// export good unless its heads are signed by the auditor's key.
//
// Input: an export file, verified with the fixed audit key
// (fuzz_fixtures.h AuditSigner).
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "audit/export.h"
#include "fuzz/fuzz_fixtures.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  audit::VerifyOptions options;
  options.key = &fuzz::AuditSigner().verifier();
  options.threads = 1;
  audit::VerifyReport report = audit::VerifyExport(in, options);
  if (!report.ok) {
    fuzz::Check(!report.error.empty(), "a failed verification says why");
    return 0;
  }
  fuzz::Check(report.heads >= 1 && report.latest_head.has_value(),
              "a verified export has a signed head");
  fuzz::Check(report.latest_head->size + report.unsigned_tail == report.entries,
              "the latest head and the unsigned tail cover every entry");
  absl::StatusOr<protocol::Checkpoint> head =
      protocol::OpenCheckpoint(report.latest_head_note, fuzz::AuditSigner().verifier());
  fuzz::Check(head.ok() && *head == *report.latest_head,
              "the latest head's note verifies with the auditor's key");
  return 0;
}
