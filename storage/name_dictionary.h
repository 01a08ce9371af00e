// The store's append-only dictionary of names: field names, record types
// and writers (device ids, "staff:<id>") as small integers, so that the
// case log and the record states (sync/) carry a one- or two-byte number
// where they would repeat a name. An id, once given, names the same string
// forever: ids are never reused, renumbered or removed.
//
// Persisted in Cf::kMetadata, one key per name (key_codec.h
// EncodeNameKey): U8 0x01 | U8 kind | U32 id -> the name's bytes. The
// 0x01 first byte keeps these keys apart from the String-named metadata
// entries (their first byte is printable). Ids of a kind count from 1.
//
// An id given while encoding a write batch is written into that batch
// (Intern), so it becomes durable exactly when the values that use it do;
// Store::Commit marks it durable. An id whose batch never commits stays
// known in memory, not durable, and is written again by the next batch that
// uses it, so no committed value ever names an id the store lacks.
#ifndef FIELDSYNC_STORAGE_NAME_DICTIONARY_H_
#define FIELDSYNC_STORAGE_NAME_DICTIONARY_H_

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/column_families.h"

namespace fieldsync::storage {

class Store;
class WriteBatch;

// Thread-safe.
class NameDictionary {
 public:
  NameDictionary() = default;
  NameDictionary(const NameDictionary&) = delete;
  NameDictionary& operator=(const NameDictionary&) = delete;

  // Reads every name `store` holds (at Store::Open). kDataLoss for a
  // malformed key, an id out of sequence, or a name given twice.
  absl::Status Load(Store* store);

  // The id of `name`, giving it the next id of `kind` when it has none.
  // When the id is not durable yet, its key is added to `batch`.
  uint32_t Intern(NameKind kind, std::string_view name, WriteBatch* batch);

  // The name with id `id`; kDataLoss naming the kind and id when there is
  // none (a value written by a newer release, or damaged).
  absl::StatusOr<std::string_view> Name(NameKind kind, uint32_t id) const;

  // The id of `name`, 0 when it has none.
  uint32_t Find(NameKind kind, std::string_view name) const;

  // Gives this dictionary every name of `source` with the same ids, adding
  // the keys of those it lacks to `batch` (a rebuild into a scratch store
  // writes state with the source's ids). kFailedPrecondition when the two
  // disagree on an id.
  absl::Status Adopt(const NameDictionary& source, WriteBatch* batch);

  // Called by Store::Commit after `batch` committed: its ids are durable.
  void MarkDurable(const std::vector<std::pair<NameKind, uint32_t>>& ids);

  // How many names of `kind` there are.
  uint32_t Size(NameKind kind) const;

 private:
  struct Names {
    std::deque<std::string> by_id;  // id - 1 -> name; stable addresses
    std::vector<bool> durable;      // id - 1 -> written by a committed batch
    std::vector<uint64_t> written;  // id - 1 -> serial of the last batch it went into
    absl::flat_hash_map<std::string_view, uint32_t> ids;
  };
  static size_t Index(NameKind kind) { return static_cast<size_t>(kind) - 1; }
  static bool Valid(NameKind kind) {
    return kind == NameKind::kField || kind == NameKind::kRecordType || kind == NameKind::kWriter;
  }

  mutable absl::Mutex mu_;
  Names names_[3] ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::storage

#endif  // FIELDSYNC_STORAGE_NAME_DICTIONARY_H_
