// Fuzzes the decoders of fieldsync's canonical encodings: audit entries
// (protocol/events.h DecodeEvent, what `fieldsync audit verify` reads from an
// export) and UUID text (common/uuid.h, in every header and request).
// Canonical means one encoding per value, so decoding then encoding must
// give back the input byte for byte.
//
// Input: one mode byte, then
//   mode even: audit entry bytes;
//   mode odd:  UUID text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "absl/strings/ascii.h"
#include "common/uuid.h"
#include "fuzz/fuzz_fixtures.h"
#include "protocol/events.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((mode & 1) == 0) {
    absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(rest);
    if (!event.ok()) {
      fuzz::Check(event.status().code() == absl::StatusCode::kInvalidArgument,
                  "a bad entry is kInvalidArgument");
      return 0;
    }
    absl::StatusOr<std::string> encoded = protocol::EncodeEvent(*event);
    fuzz::Check(encoded.ok(), "a decoded entry encodes");
    fuzz::Check(*encoded == rest, "decode then encode gives the same entry bytes");
    (void)protocol::KindName(protocol::KindOf(*event));
    if (const auto* batch = std::get_if<protocol::BatchAccepted>(&event->body)) {
      // The signed message is rebuilt from the event for the verifier.
      absl::StatusOr<std::string> message = protocol::BatchSignedMessageOf(*batch);
      if (message.ok())
        fuzz::Check(message->size() == 132, "a batch's signed message is 132 bytes");
    }
    return 0;
  }
  absl::StatusOr<Uuid> uuid = ParseUuid(rest);
  if (!uuid.ok()) return 0;
  fuzz::Check(FormatUuid(*uuid) == absl::AsciiStrToLower(std::string(rest)),
              "a parsed UUID formats back to its text, lower case");
  return 0;
}
