// Fuzzes the parsing of a typed enrolment code (admin/enrolment.h
// NormalizeEnrolmentCode), the one secret an unauthenticated caller sends.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "admin/enrolment.h"
#include "fuzz/fuzz_fixtures.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view typed(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::string> code = admin::NormalizeEnrolmentCode(typed);
  if (!code.ok()) {
    fuzz::Check(code.status().code() == absl::StatusCode::kInvalidArgument,
                "a bad code is kInvalidArgument");
    // The message never repeats what was typed: it is one of the messages
    // of two fixed bad codes (a bad character, a bad length).
    static const std::string kBadCharacter(admin::NormalizeEnrolmentCode("!").status().message());
    static const std::string kBadLength(admin::NormalizeEnrolmentCode("A").status().message());
    const std::string message(code.status().message());
    fuzz::Check(message == kBadCharacter || message == kBadLength,
                "an error names no part of the typed code");
    return 0;
  }
  fuzz::Check(code->size() == 20, "a normalized code has 20 characters");
  for (char c : *code) {
    fuzz::Check((c >= '0' && c <= '9') ||
                    (c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U'),
                "a normalized code is Crockford base 32");
  }
  absl::StatusOr<std::string> again = admin::NormalizeEnrolmentCode(*code);
  fuzz::Check(again.ok() && *again == *code, "normalizing is idempotent");
  // The printed form (groups of four) normalizes to the same code.
  std::string printed;
  for (size_t i = 0; i < code->size(); i += 4) {
    if (i > 0) printed += '-';
    printed += code->substr(i, 4);
  }
  absl::StatusOr<std::string> from_printed = admin::NormalizeEnrolmentCode(printed);
  fuzz::Check(from_printed.ok() && *from_printed == *code, "the printed form normalizes back");
  fuzz::Check(admin::EnrolmentCodeHashHex(*code).size() == 64, "a code hash is 64 hex digits");
  return 0;
}
