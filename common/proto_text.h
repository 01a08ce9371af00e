// Parsing of configuration messages written by people: protobuf text
// format, or JSON when the first non-blank character is '{'.
#ifndef FIELDSYNC_COMMON_PROTO_TEXT_H_
#define FIELDSYNC_COMMON_PROTO_TEXT_H_

#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace fieldsync {

// Parses `text` into *msg (cleared first). Unknown fields are errors.
// kInvalidArgument "<what>: invalid text: line L column C: ..." or
// "<what>: invalid JSON: ...".
absl::Status ParseTextOrJson(std::string_view text, std::string_view what,
                             google::protobuf::Message* msg);

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_PROTO_TEXT_H_
