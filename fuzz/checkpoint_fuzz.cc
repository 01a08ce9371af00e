// Fuzzes the C2SP checkpoint and signed note parsers (protocol/checkpoint.h)
// and the forms of a saved head an auditor passes back (audit/export.h
// ParseTrustedHeadForm), each with its formatter as the inverse.
//
// Input: one mode byte, then
//   mode 0: a signed note (ParseSignedNote, NoteVerifier::Open with the
//           fixed audit key, ParseCheckpointNote);
//   mode 1: a checkpoint body (ParseCheckpoint, CheckpointTimestamp);
//   mode 2: verifier key text (NoteVerifier::FromVerifierKey);
//   mode 3: a saved trusted head (either form).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "audit/export.h"
#include "fuzz/fuzz_fixtures.h"
#include "protocol/checkpoint.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const protocol::NoteVerifier& key = fuzz::AuditSigner().verifier();
  switch (mode) {
    case 0: {
      absl::StatusOr<protocol::SignedNote> note = protocol::ParseSignedNote(text);
      if (note.ok()) {
        absl::StatusOr<std::string> formatted = protocol::FormatSignedNote(*note);
        fuzz::Check(formatted.ok(), "a parsed note formats");
        absl::StatusOr<protocol::SignedNote> again = protocol::ParseSignedNote(*formatted);
        fuzz::Check(
            again.ok() && again->text == note->text && again->signatures == note->signatures,
            "format then parse gives the same note");
      }
      absl::StatusOr<std::string> opened = key.Open(text);
      if (opened.ok()) {
        fuzz::Check(note.ok() && *opened == note->text, "an opened note is its parsed text");
        fuzz::Check(protocol::HasSignatureLineOf(text, key), "an opened note has the key's line");
      }
      absl::StatusOr<protocol::Checkpoint> cp = protocol::ParseCheckpointNote(text);
      if (cp.ok()) fuzz::Check(note.ok(), "a checkpoint note is a note");
      (void)protocol::OpenCheckpoint(text, key);
      return 0;
    }
    case 1: {
      absl::StatusOr<protocol::Checkpoint> cp = protocol::ParseCheckpoint(text);
      if (!cp.ok()) return 0;
      absl::StatusOr<std::string> formatted = protocol::FormatCheckpoint(*cp);
      fuzz::Check(formatted.ok() && *formatted == text,
                  "parse then format gives back the checkpoint text");
      (void)protocol::CheckpointTimestamp(*cp);
      (void)audit::FormatHeadLine(*cp);
      return 0;
    }
    case 2: {
      absl::StatusOr<protocol::NoteVerifier> verifier =
          protocol::NoteVerifier::FromVerifierKey(text);
      if (!verifier.ok()) return 0;
      // The key id's hex is read in either case (as Go's note package
      // does) and written lowercase; name and base64 key come back as is.
      const size_t id_start = text.find('+') + 1;
      std::string lowered(text);
      for (size_t i = id_start; i < id_start + 8; ++i) lowered[i] = absl::ascii_tolower(lowered[i]);
      fuzz::Check(verifier->VerifierKey() == lowered,
                  "a verifier key formats back to its text, its key id lowercase");
      return 0;
    }
    default: {
      absl::StatusOr<audit::TrustedHead> head = audit::ParseTrustedHeadForm(text, key);
      if (!head.ok()) return 0;
      fuzz::Check(head->checkpoint.origin == key.key_name(), "a saved head is of the key's log");
      absl::StatusOr<protocol::Checkpoint> trusted = audit::ParseTrustedHead(text, key);
      if (trusted.ok()) fuzz::Check(*trusted == head->checkpoint, "both forms agree");
      return 0;
    }
  }
}
