// The one rule for what text from outside may hold: every string a device,
// a supervisor or an administrator sends that a person may read back (field
// values, list elements, device labels, schema labels, paths). Invalid
// UTF-8, NUL, control characters and the bidirectional embeddings,
// overrides and isolates that make text display other than it is are
// refused, never repaired; docs/PROTOCOL.md, "Text policy", lists the code
// points. Thread-safe (no state).
#ifndef FIELDSYNC_COMMON_TEXT_POLICY_H_
#define FIELDSYNC_COMMON_TEXT_POLICY_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace fieldsync {

enum class TextKind {
  // A name, label or list element: one line, no control character at all.
  kSingleLine,
  // Free text a person types into a form (a STRING field's value): may
  // also hold TAB, LF, CR and the Unicode line and paragraph separators.
  kMultiLine,
};

// Why a code point (or byte) is refused.
enum class TextFault {
  kInvalidUtf8,  // Not well-formed UTF-8 (overlong, surrogate, truncated, > U+10FFFF).
  kNul,          // U+0000, refused everywhere.
  kControl,      // C0 (U+0001-U+001F), DEL (U+007F) or C1 (U+0080-U+009F).
  kLineBreak,    // TAB, LF, CR, U+2028 or U+2029 in single-line text.
  kBidiControl,  // U+202A-U+202E (embeddings, overrides), U+2066-U+2069 (isolates).
};

struct TextViolation {
  TextFault fault;
  size_t offset;        // Byte offset of the first refused code point.
  char32_t code_point;  // The code point; for kInvalidUtf8, the offending byte.
};

// The first code point of `text` that `kind` refuses; nullopt if none.
std::optional<TextViolation> FindTextViolation(std::string_view text, TextKind kind);

// "U+202E (a bidirectional override or isolate) at byte 5": the code point
// and its class, never the text around it.
std::string DescribeTextViolation(const TextViolation& violation);

// OK if `kind` allows all of `text`. kInvalidArgument "<field>: U+0000 (a
// NUL) at byte 3 is not allowed in ..." naming the field and the code
// point, never the text, otherwise.
absl::Status CheckText(std::string_view text, TextKind kind, std::string_view field);

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_TEXT_POLICY_H_
