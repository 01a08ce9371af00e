#include "protocol/checkpoint.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/hash.h"

namespace fieldsync::protocol {
namespace {

// U+2014 EM DASH and a space: the start of every signature line.
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";
// The C2SP signed-note signature type of Ed25519 (persisted in key ids and
// verifier keys: never change).
constexpr uint8_t kEd25519SignatureType = 0x01;
constexpr std::string_view kTimestampPrefix = "Timestamp: ";

// Decodes the UTF-8 sequence at s[i]: its length, or 0 if it is not the
// shortest encoding of a scalar value (as Go's utf8.DecodeRune accepts).
size_t DecodeUtf8(std::string_view s, size_t i, char32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  size_t length;
  uint8_t low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;   // overlong
    if (b0 == 0xED) high = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;   // overlong
    if (b0 == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  char32_t value = b0 & (0xFF >> (length + 1));
  for (size_t k = 1; k < length; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte(k) & 0x3F);
  }
  *code_point = value;
  return length;
}

// Go's unicode.IsSpace: the White_Space property.
bool IsUnicodeSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// OK iff `s` is valid UTF-8 with no control character below U+0020 other
// than (when `allow_newline`) a newline.
absl::Status CheckNoteCharacters(std::string_view s, bool allow_newline, std::string_view what) {
  for (size_t i = 0; i < s.size();) {
    char32_t c;
    const size_t length = DecodeUtf8(s, i, &c);
    if (length == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("note: %s is not valid UTF-8 at byte %d", what, i));
    }
    if (c < 0x20 && !(allow_newline && c == '\n')) {
      return absl::InvalidArgumentError(
          absl::StrFormat("note: %s holds a control character at byte %d", what, i));
    }
    i += length;
  }
  return absl::OkStatus();
}

// Splits `text` (which ends in "\n") into its lines, without the newlines.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  return lines;
}

// ASCII decimal with no sign, no leading zero (but "0") and no overflow.
std::optional<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = c - '0';
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::string Base64(std::string_view bytes) {
  return absl::Base64Escape(absl::string_view(bytes.data(), bytes.size()));
}

// RFC 4648 section 4 base64 with padding, canonical only: the decoding must
// encode back to exactly `text`, which rules out missing padding, stray
// characters and non-zero trailing bits.
std::optional<std::string> StrictUnbase64(std::string_view text) {
  std::string bytes;
  if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &bytes)) {
    return std::nullopt;
  }
  if (Base64(bytes) != text) return std::nullopt;
  return bytes;
}

std::string KeyLabel(std::string_view name, uint32_t key_id) {
  return absl::StrFormat("%s+%08x", name, key_id);
}

}  // namespace

// --- Checkpoint bodies ---

absl::StatusOr<std::string> FormatCheckpoint(const Checkpoint& checkpoint) {
  if (checkpoint.origin.empty()) return absl::InvalidArgumentError("checkpoint: empty origin");
  RETURN_IF_ERROR(CheckNoteCharacters(checkpoint.origin, false, "checkpoint origin"));
  std::string text = absl::StrFormat("%s\n%d\n%s\n", checkpoint.origin, checkpoint.size,
                                     Base64(HashBytes(checkpoint.root)));
  for (const std::string& line : checkpoint.extensions) {
    if (line.empty()) return absl::InvalidArgumentError("checkpoint: empty extension line");
    RETURN_IF_ERROR(CheckNoteCharacters(line, false, "checkpoint extension line"));
    text += line;
    text += '\n';
  }
  return text;
}

absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("checkpoint: text does not end in a newline");
  }
  RETURN_IF_ERROR(CheckNoteCharacters(text, true, "checkpoint"));
  const std::vector<std::string_view> lines = Lines(text);
  if (lines.size() < 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("checkpoint: %d lines; origin, size and root are required", lines.size()));
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("checkpoint: line %d is empty", i + 1));
    }
  }
  Checkpoint checkpoint;
  checkpoint.origin = std::string(lines[0]);
  std::optional<uint64_t> size = ParseDecimal(lines[1]);
  if (!size.has_value()) {
    return absl::InvalidArgumentError(
        "checkpoint: line 2 is not a tree size (decimal, no leading zeroes, below 2^64)");
  }
  checkpoint.size = *size;
  std::optional<std::string> root = StrictUnbase64(lines[2]);
  if (!root.has_value() || root->size() != checkpoint.root.size()) {
    return absl::InvalidArgumentError(
        "checkpoint: line 3 is not the canonical base64 of a 32-byte root hash");
  }
  std::memcpy(checkpoint.root.data(), root->data(), checkpoint.root.size());
  for (size_t i = 3; i < lines.size(); ++i) checkpoint.extensions.emplace_back(lines[i]);
  return checkpoint;
}

std::string TimestampExtension(absl::Time t) {
  return absl::StrFormat("%s%d", kTimestampPrefix, absl::ToUnixNanos(t));
}

absl::StatusOr<absl::Time> CheckpointTimestamp(const Checkpoint& checkpoint) {
  std::optional<absl::Time> found;
  for (const std::string& line : checkpoint.extensions) {
    std::string_view rest = line;
    if (rest.substr(0, kTimestampPrefix.size()) != kTimestampPrefix) continue;
    rest.remove_prefix(kTimestampPrefix.size());
    if (found.has_value()) {
      return absl::InvalidArgumentError("checkpoint: more than one timestamp line");
    }
    std::optional<uint64_t> nanos = ParseDecimal(rest);
    if (!nanos.has_value() || *nanos > uint64_t{std::numeric_limits<int64_t>::max()}) {
      return absl::InvalidArgumentError("checkpoint: malformed timestamp line");
    }
    found = absl::FromUnixNanos(static_cast<int64_t>(*nanos));
  }
  if (!found.has_value()) return absl::NotFoundError("checkpoint: no timestamp line");
  return *found;
}

// --- Signed notes ---

bool IsValidKeyName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size();) {
    char32_t c;
    const size_t length = DecodeUtf8(name, i, &c);
    if (length == 0 || c < 0x20 || c == '+' || IsUnicodeSpace(c)) return false;
    i += length;
  }
  return true;
}

absl::StatusOr<SignedNote> ParseSignedNote(std::string_view note) {
  if (note.size() > kMaxNoteBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("note: %d bytes; at most %d are accepted", note.size(), kMaxNoteBytes));
  }
  RETURN_IF_ERROR(CheckNoteCharacters(note, true, "note"));
  // The text ends at the last blank line (signature lines are never blank).
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return absl::InvalidArgumentError("note: no blank line before the signatures");
  }
  SignedNote parsed;
  parsed.text = std::string(note.substr(0, split + 1));
  std::string_view block = note.substr(split + 2);
  if (block.empty() || block.back() != '\n') {
    return absl::InvalidArgumentError("note: signature block missing or not ending in a newline");
  }
  for (std::string_view line : Lines(block)) {
    if (parsed.signatures.size() == kMaxNoteSignatures) {
      return absl::InvalidArgumentError(
          absl::StrFormat("note: more than %d signatures", kMaxNoteSignatures));
    }
    const size_t number = parsed.signatures.size() + 1;
    if (line.substr(0, kSignaturePrefix.size()) != kSignaturePrefix) {
      return absl::InvalidArgumentError(
          absl::StrFormat("note: signature line %d does not start with an em dash", number));
    }
    line.remove_prefix(kSignaturePrefix.size());
    const size_t space = line.find(' ');
    const std::string_view name = line.substr(0, space);
    const std::string_view encoded =
        space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    std::optional<std::string> raw = StrictUnbase64(encoded);
    if (!IsValidKeyName(name) || encoded.empty() || !raw.has_value() || raw->size() < 5) {
      return absl::InvalidArgumentError(
          absl::StrFormat("note: signature line %d is malformed", number));
    }
    NoteSignature signature;
    signature.key_name = std::string(name);
    for (int k = 0; k < 4; ++k) {
      signature.key_id = (signature.key_id << 8) | static_cast<uint8_t>((*raw)[k]);
    }
    signature.signature = raw->substr(4);
    parsed.signatures.push_back(std::move(signature));
  }
  return parsed;
}

absl::StatusOr<std::string> FormatSignedNote(const SignedNote& note) {
  if (note.text.empty() || note.text.back() != '\n') {
    return absl::InvalidArgumentError("note: text does not end in a newline");
  }
  RETURN_IF_ERROR(CheckNoteCharacters(note.text, true, "note text"));
  if (note.signatures.empty()) return absl::InvalidArgumentError("note: no signature");
  std::string out = note.text;
  out += '\n';
  for (const NoteSignature& signature : note.signatures) {
    if (!IsValidKeyName(signature.key_name) || signature.signature.empty()) {
      return absl::InvalidArgumentError("note: invalid key name or empty signature");
    }
    std::string raw(4, '\0');
    for (int k = 0; k < 4; ++k) raw[k] = static_cast<char>(signature.key_id >> (24 - 8 * k));
    raw += signature.signature;
    absl::StrAppendFormat(&out, "%s%s %s\n", kSignaturePrefix, signature.key_name, Base64(raw));
  }
  return out;
}

uint32_t Ed25519KeyId(std::string_view key_name, const crypto::Ed25519PublicKey& public_key) {
  crypto::Sha256Hasher hasher;
  hasher.Update(key_name);
  hasher.Update(std::string_view("\n"));
  hasher.Update(std::span<const uint8_t>(&kEd25519SignatureType, 1));
  hasher.Update(public_key);
  const crypto::Sha256Digest digest = hasher.Finish();
  return (uint32_t{digest[0]} << 24) | (uint32_t{digest[1]} << 16) | (uint32_t{digest[2]} << 8) |
         uint32_t{digest[3]};
}

// --- NoteVerifier ---

NoteVerifier::NoteVerifier(std::string key_name, const crypto::Ed25519PublicKey& public_key)
    : key_name_(std::move(key_name)),
      key_id_(Ed25519KeyId(key_name_, public_key)),
      public_key_(public_key) {}

absl::StatusOr<NoteVerifier> NoteVerifier::FromPublicKey(
    std::string_view key_name, const crypto::Ed25519PublicKey& public_key) {
  if (!IsValidKeyName(key_name)) {
    return absl::InvalidArgumentError(
        "note: a key name must be non-empty UTF-8 without spaces, '+' or control characters");
  }
  return NoteVerifier(std::string(key_name), public_key);
}

absl::StatusOr<NoteVerifier> NoteVerifier::FromVerifierKey(std::string_view text) {
  const absl::Status malformed =
      absl::InvalidArgumentError("note: verifier key is not <name>+<8 hex digits>+<base64 key>");
  const size_t plus1 = text.find('+');
  if (plus1 == std::string_view::npos) return malformed;
  const size_t plus2 = text.find('+', plus1 + 1);
  if (plus2 == std::string_view::npos) return malformed;
  const std::string_view name = text.substr(0, plus1);
  const std::string_view hex = text.substr(plus1 + 1, plus2 - plus1 - 1);
  std::optional<std::string> key = StrictUnbase64(text.substr(plus2 + 1));
  if (!IsValidKeyName(name) || hex.size() != 8 || !key.has_value() || key->empty()) {
    return malformed;
  }
  uint32_t key_id = 0;
  for (char c : hex) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return malformed;
    }
    key_id = (key_id << 4) | static_cast<uint32_t>(digit);
  }
  if (static_cast<uint8_t>((*key)[0]) != kEd25519SignatureType) {
    return absl::InvalidArgumentError("note: verifier key is not an Ed25519 key (type 0x01)");
  }
  crypto::Ed25519PublicKey public_key;
  if (key->size() != 1 + public_key.size()) {
    return absl::InvalidArgumentError("note: Ed25519 verifier key is not 32 bytes");
  }
  std::memcpy(public_key.data(), key->data() + 1, public_key.size());
  NoteVerifier verifier(std::string(name), public_key);
  if (verifier.key_id() != key_id) {
    return absl::InvalidArgumentError(
        "note: verifier key id does not match its name and public key");
  }
  return verifier;
}

std::string NoteVerifier::VerifierKey() const {
  std::string key(1, static_cast<char>(kEd25519SignatureType));
  key += crypto::AsStringView(public_key_);
  return absl::StrFormat("%s+%s", KeyLabel(key_name_, key_id_), Base64(key));
}

absl::StatusOr<std::string> NoteVerifier::Open(std::string_view note) const {
  ASSIGN_OR_RETURN(SignedNote parsed, ParseSignedNote(note));
  bool is_verified = false;
  for (const NoteSignature& signature : parsed.signatures) {
    if (signature.key_name != key_name_ || signature.key_id != key_id_) continue;
    absl::Status s = crypto::Ed25519Verify(public_key_, crypto::AsBytes(parsed.text),
                                           crypto::AsBytes(signature.signature));
    if (!s.ok()) {
      return absl::UnauthenticatedError(absl::StrFormat(
          "note: the signature by key %s does not verify", KeyLabel(key_name_, key_id_)));
    }
    is_verified = true;
  }
  if (!is_verified) {
    return absl::UnauthenticatedError(
        absl::StrFormat("note: no signature by key %s", KeyLabel(key_name_, key_id_)));
  }
  return std::move(parsed.text);
}

// --- NoteSigner ---

NoteSigner::NoteSigner(crypto::Ed25519Signer signer, NoteVerifier verifier)
    : signer_(std::move(signer)), verifier_(std::move(verifier)) {}

absl::StatusOr<NoteSigner> NoteSigner::Create(std::string_view key_name,
                                              std::span<const uint8_t> seed) {
  ASSIGN_OR_RETURN(crypto::Ed25519Signer signer, crypto::Ed25519Signer::Create(seed));
  ASSIGN_OR_RETURN(NoteVerifier verifier,
                   NoteVerifier::FromPublicKey(key_name, signer.public_key()));
  return NoteSigner(std::move(signer), std::move(verifier));
}

absl::StatusOr<NoteSignature> NoteSigner::SignText(std::string_view text) const {
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("note: text does not end in a newline");
  }
  RETURN_IF_ERROR(CheckNoteCharacters(text, true, "note text"));
  const crypto::Ed25519Signature signature = signer_.Sign(crypto::AsBytes(text));
  return NoteSignature{verifier_.key_name(), verifier_.key_id(),
                       std::string(crypto::AsStringView(signature))};
}

absl::StatusOr<std::string> NoteSigner::Sign(std::string_view text) const {
  ASSIGN_OR_RETURN(NoteSignature signature, SignText(text));
  return FormatSignedNote(SignedNote{std::string(text), {std::move(signature)}});
}

// --- Checkpoints as signed notes ---

absl::StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint, const NoteSigner& signer) {
  if (checkpoint.origin != signer.verifier().key_name()) {
    return absl::InvalidArgumentError("checkpoint: origin is not the signing key's name");
  }
  ASSIGN_OR_RETURN(std::string text, FormatCheckpoint(checkpoint));
  return signer.Sign(text);
}

absl::StatusOr<std::string> SignCheckpointWithAll(const Checkpoint& checkpoint,
                                                  std::span<const NoteSigner* const> signers) {
  if (signers.empty()) return absl::InvalidArgumentError("checkpoint: no signing key");
  SignedNote note;
  ASSIGN_OR_RETURN(note.text, FormatCheckpoint(checkpoint));
  for (const NoteSigner* signer : signers) {
    if (checkpoint.origin != signer->verifier().key_name()) {
      return absl::InvalidArgumentError("checkpoint: origin is not the signing key's name");
    }
    for (const NoteSignature& earlier : note.signatures) {
      if (earlier.key_id == signer->verifier().key_id()) {
        return absl::InvalidArgumentError("checkpoint: two signing keys have the same key id");
      }
    }
    ASSIGN_OR_RETURN(note.signatures.emplace_back(), signer->SignText(note.text));
  }
  return FormatSignedNote(note);
}

bool HasSignatureLineOf(std::string_view note, const NoteVerifier& key) {
  absl::StatusOr<SignedNote> parsed = ParseSignedNote(note);
  if (!parsed.ok()) return false;
  for (const NoteSignature& sig : parsed->signatures) {
    if (sig.key_name == key.key_name() && sig.key_id == key.key_id()) return true;
  }
  return false;
}

absl::StatusOr<Checkpoint> ParseCheckpointNote(std::string_view note) {
  ASSIGN_OR_RETURN(SignedNote parsed, ParseSignedNote(note));
  return ParseCheckpoint(parsed.text);
}

absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view note, const NoteVerifier& verifier) {
  ASSIGN_OR_RETURN(std::string text, verifier.Open(note));
  ASSIGN_OR_RETURN(Checkpoint checkpoint, ParseCheckpoint(text));
  if (checkpoint.origin != verifier.key_name()) {
    return absl::UnauthenticatedError("checkpoint: origin is not the log the verifier key names");
  }
  return checkpoint;
}

}  // namespace fieldsync::protocol
