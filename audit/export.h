// The audit export file (`fieldsync audit export`) and its offline verifier
// (`fieldsync audit verify`): an auditor checks, from the file and the log's
// verifier key alone, every leaf, every root, every tree-head signature,
// every batch's device signature and consistency with a head saved earlier.
#ifndef FIELDSYNC_AUDIT_EXPORT_H_
#define FIELDSYNC_AUDIT_EXPORT_H_

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/checkpoint.h"
#include "protocol/merkle.h"

namespace fieldsync::audit {

// File layout (persisted; docs/AUDIT.md):
//   "fieldsync-audit-export/v1\n"             26 bytes
//   records, each: U8 type | U32 length (big-endian) | payload
//     1 HEAD   payload: one signed checkpoint note (UTF-8 text)
//     2 ENTRY  payload: U64 index | leaf hash (32) | entry bytes
//     3 END    payload: U64 entry count | U32 head count
//   HEAD records first, then ENTRY records for indexes 0, 1, 2, ... in
//   order, then exactly one END record and nothing after it. The leaf hash
//   in an ENTRY is the exporter's; it only localizes damage (a forger can
//   recompute it); security rests on the signed heads.
inline constexpr std::string_view kExportMagic = "fieldsync-audit-export/v1\n";
enum class ExportRecord : uint8_t { kHead = 1, kEntry = 2, kEnd = 3 };
// A record payload longer than this is refused by the verifier.
inline constexpr uint32_t kMaxExportRecord = 16 << 20;

std::string ExportHeadRecord(std::string_view note);
std::string ExportEntryRecord(uint64_t index, std::string_view entry);
std::string ExportEndRecord(uint64_t entries, uint32_t heads);

// The one line a head is printed as (`fieldsync audit verify`):
//   "latest head: <origin>, size <N>, root <base64(root)>"
std::string FormatHeadLine(const protocol::Checkpoint& checkpoint);

// A head an auditor saved, as --trusted-head takes it: either the signed
// checkpoint note (as --save-head writes it), whose signature by `key`
// must verify, or the printed line (FormatHeadLine's, with or without its
// "latest head: " label and surrounding blank space), whose origin must be
// `key`'s name (the auditor wrote it down themselves: no signature).
// kInvalidArgument naming what is wrong (empty, not a note nor the line,
// malformed size or root, another log's origin); kUnauthenticated: a note
// whose signature does not verify (altered).
absl::StatusOr<protocol::Checkpoint> ParseTrustedHead(std::string_view text,
                                                      const protocol::NoteVerifier& key);

// A saved head in either form, its signature not checked yet (the
// verifier checks it with the key in force at its size, which a key
// transition may have changed): the checkpoint and, for a note, the note
// ("" for the printed line). kInvalidArgument as ParseTrustedHead.
struct TrustedHead {
  protocol::Checkpoint checkpoint;
  std::string note;
};
absl::StatusOr<TrustedHead> ParseTrustedHeadForm(std::string_view text,
                                                 const protocol::NoteVerifier& key);

struct VerifyOptions {
  // The log's key, from the auditor's own KEYFILE (never from the export).
  // Its name is the log's origin. Not owned. Either the log's first key
  // (every head is checked, following each key transition) or a later one
  // (heads from its own announcement on are checked; earlier ones only by
  // their roots). docs/AUDIT.md §9.
  const protocol::NoteVerifier* key = nullptr;
  // A head the auditor saved earlier (ParseTrustedHead's forms): the export
  // must extend it.
  std::optional<std::string> trusted_head;
  // Threads that check device signatures (>= 1).
  int threads = 2;
  // Called now and then with the bytes and entries read so far.
  std::function<void(uint64_t bytes, uint64_t entries)> progress;
};

// A RollbackAccepted entry the verifier checked: the log continued from
// the tree of its first `continued_size` entries (the entry's own index),
// abandoning published heads it does not extend, each signed by the key.
struct RollbackSeen {
  uint64_t entry = 0;
  uint64_t continued_size = 0;
  protocol::Hash continued_root{};
  std::string actor;
  std::vector<uint64_t> abandoned_sizes;
  std::vector<protocol::Hash> abandoned_roots;
};

// A key transition the verifier followed (docs/AUDIT.md §9): the
// KeyRotated ("audit-signing") entry, the versions, the new key (verifier
// key text) and the size of the head that confirmed it, signed by the old
// key (unless the old key is unknown: the key file held a later key) and
// the new one.
struct KeyTransitionSeen {
  uint64_t entry = 0;
  uint32_t old_version = 0;
  uint32_t new_version = 0;
  std::string new_key;
  uint64_t head_size = 0;
  bool is_old_key_checked = true;
};

struct VerifyReport {
  bool ok = false;
  // On failure: what failed, and the first bad entry when one can be named.
  std::string error;
  std::optional<uint64_t> bad_entry;
  std::string bad_record;  // "entry 12", "tree head #2 (size 40)", "end record"
  // What was checked.
  uint64_t entries = 0;
  uint64_t heads = 0;
  uint64_t device_signatures = 0;
  uint64_t devices = 0;
  std::map<std::string, uint64_t> events_by_kind;  // KindName -> count
  // Every accepted rollback, in log order (docs/AUDIT.md).
  std::vector<RollbackSeen> rollbacks;
  // Every key transition followed, in log order, and the key in force at
  // the end (verifier key text): the one that signs the newest heads.
  std::vector<KeyTransitionSeen> key_transitions;
  std::string final_key;
  // Heads (and abandoned heads) signed before the key file's key was
  // announced, whose signatures could not be checked (the key file holds a
  // later key than the log's first); their roots were checked.
  uint64_t unchecked_heads = 0;
  // The largest verified head (and its signed note, for --save-head), and
  // whether the trusted head was checked.
  std::optional<protocol::Checkpoint> latest_head;
  std::string latest_head_note;
  bool trusted_head_checked = false;
  // Entries after the largest head: present but not covered by a signature.
  uint64_t unsigned_tail = 0;
};

// Verifies an export read from `in`. Never fails for a bad export: a
// failure is a report with ok == false naming the first bad record.
VerifyReport VerifyExport(std::istream& in, const VerifyOptions& options);

}  // namespace fieldsync::audit

#endif  // FIELDSYNC_AUDIT_EXPORT_H_
