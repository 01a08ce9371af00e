// Signed tree heads: C2SP tlog-checkpoint note bodies (c2sp.org/tlog-checkpoint)
// and C2SP signed notes with Ed25519 keys (c2sp.org/signed-note), byte for
// byte compatible with golang.org/x/mod/sumdb/note and transparency-dev tools.
#ifndef FIELDSYNC_PROTOCOL_CHECKPOINT_H_
#define FIELDSYNC_PROTOCOL_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/ed25519.h"
#include "protocol/merkle.h"

namespace fieldsync::protocol {

// The body of a checkpoint note (signed bytes, persisted and published):
//   <origin>\n                 non-empty; no control characters
//   <tree size>\n              ASCII decimal, no leading zeroes ("0" if empty)
//   <base64(root hash)>\n      RFC 4648 section 4 base64 with padding, 44 chars
//   [<extension line>\n]...    each non-empty; opaque to other tools
struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// The note text of `checkpoint`. kInvalidArgument if the origin is empty or
// any line would hold a newline, another control character or invalid
// UTF-8, or an extension line is empty.
absl::StatusOr<std::string> FormatCheckpoint(const Checkpoint& checkpoint);

// Parses a note text (ending in "\n"). Strict: exactly the form above,
// canonical base64 of 32 bytes, size fits 64 bits. kInvalidArgument
// naming the first bad line otherwise.
absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text);

// The timestamp extension line, "Timestamp: <Unix time in nanoseconds>"
// (the form Sigstore's Rekor writes). REQUIRES: t is not before 1970.
std::string TimestampExtension(absl::Time t);
// The time in the checkpoint's single timestamp extension line. kNotFound
// if there is none; kInvalidArgument if it is malformed or repeated.
absl::StatusOr<absl::Time> CheckpointTimestamp(const Checkpoint& checkpoint);

// One signature line of a signed note: "— <key name> <base64(key id || sig)>".
struct NoteSignature {
  std::string key_name;
  uint32_t key_id = 0;
  std::string signature;  // the bytes after the key id
  friend bool operator==(const NoteSignature&, const NoteSignature&) = default;
};

// A signed note: text (ending in "\n"), a blank line, signature lines.
struct SignedNote {
  std::string text;
  std::vector<NoteSignature> signatures;
};

// At most this many signature lines are accepted (the spec asks for >= 16;
// golang.org/x/mod/sumdb/note allows 100).
inline constexpr size_t kMaxNoteSignatures = 100;
// Notes longer than this are rejected before parsing.
inline constexpr size_t kMaxNoteBytes = 1 << 20;

// Splits a signed note at its last blank line and decodes each signature
// line. Checks syntax only, no signature. kInvalidArgument if the note is
// not valid UTF-8, holds a control character other than newline, has no
// blank line, no signature line, a malformed line, more than
// kMaxNoteSignatures lines, or more than kMaxNoteBytes bytes.
absl::StatusOr<SignedNote> ParseSignedNote(std::string_view note);
// The inverse of ParseSignedNote. kInvalidArgument if the text does not end
// in "\n", or a key name is not valid (see IsValidKeyName).
absl::StatusOr<std::string> FormatSignedNote(const SignedNote& note);

// True iff `name` is non-empty, valid UTF-8, and has no Unicode space (as
// Go's unicode.IsSpace), no "+" and no control character.
bool IsValidKeyName(std::string_view name);

// SHA-256(key name || 0x0A || 0x01 || public key)[:4], big-endian.
uint32_t Ed25519KeyId(std::string_view key_name, const crypto::Ed25519PublicKey& public_key);

// An Ed25519 note verifier key: its name, id and public key. Immutable;
// thread-safe.
class NoteVerifier {
 public:
  // Parses verifier key text "<name>+<8 hex key id>+<base64(0x01 ||
  // 32-byte public key)>" (as golang.org/x/mod/sumdb/note writes it; the
  // key id is read in either case and written lowercase).
  // kInvalidArgument if malformed, for another algorithm, or if the key id
  // is not the one the name and key give.
  static absl::StatusOr<NoteVerifier> FromVerifierKey(std::string_view text);
  // kInvalidArgument if `key_name` is not valid.
  static absl::StatusOr<NoteVerifier> FromPublicKey(std::string_view key_name,
                                                    const crypto::Ed25519PublicKey& public_key);

  const std::string& key_name() const { return key_name_; }
  uint32_t key_id() const { return key_id_; }
  const crypto::Ed25519PublicKey& public_key() const { return public_key_; }
  // The verifier key text FromVerifierKey parses.
  std::string VerifierKey() const;

  // Parses `note` and verifies it. Every signature line with this key's name
  // and id must verify; lines of other keys are ignored, as the spec
  // requires. Returns the verified note text. Errors: kInvalidArgument for
  // a malformed note (see ParseSignedNote); kUnauthenticated if no line is
  // by this key or one of them does not verify.
  absl::StatusOr<std::string> Open(std::string_view note) const;

 private:
  NoteVerifier(std::string key_name, const crypto::Ed25519PublicKey& public_key);
  std::string key_name_;
  uint32_t key_id_;
  crypto::Ed25519PublicKey public_key_;
};

// An Ed25519 note signing key. Thread-safe; moveable.
class NoteSigner {
 public:
  // kInvalidArgument if `key_name` is not valid or `seed` is not 32 bytes.
  static absl::StatusOr<NoteSigner> Create(std::string_view key_name,
                                           std::span<const uint8_t> seed);

  const NoteVerifier& verifier() const { return verifier_; }
  // The signature line's fields for `text` (which must end in "\n").
  absl::StatusOr<NoteSignature> SignText(std::string_view text) const;
  // `text`, a blank line and this key's signature line: a signed note.
  absl::StatusOr<std::string> Sign(std::string_view text) const;

 private:
  NoteSigner(crypto::Ed25519Signer signer, NoteVerifier verifier);
  crypto::Ed25519Signer signer_;
  NoteVerifier verifier_;
};

// A checkpoint signed as a note by `signer`. kInvalidArgument if the
// checkpoint cannot be formatted or its origin is not the signer's key name
// (our logs always sign under their origin).
absl::StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint, const NoteSigner& signer);

// A checkpoint signed as one note by every signer in order (one signature
// line each; a key-transition head is signed by the old and the new audit
// key, which share the origin as key name and differ in key id).
// kInvalidArgument as SignCheckpoint, for no signer, or for two signers
// with the same key id.
absl::StatusOr<std::string> SignCheckpointWithAll(const Checkpoint& checkpoint,
                                                  std::span<const NoteSigner* const> signers);

// The checkpoint of a signed note, parsed without checking any signature
// (for notes whose key is decided later, or the log's own stored notes).
// Errors as ParseSignedNote and ParseCheckpoint.
absl::StatusOr<Checkpoint> ParseCheckpointNote(std::string_view note);

// True iff `note` parses and has a signature line with `key`'s name and
// key id (whether or not it verifies): a note meant for that key.
bool HasSignatureLineOf(std::string_view note, const NoteVerifier& key);

// Verifies a checkpoint note against the auditor's key and parses it. The
// origin must equal the verifier's key name: the key text names the log.
// Errors: as NoteVerifier::Open and ParseCheckpoint; kUnauthenticated if
// the origin is not the key's name.
absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view note, const NoteVerifier& verifier);

}  // namespace fieldsync::protocol

#endif  // FIELDSYNC_PROTOCOL_CHECKPOINT_H_
