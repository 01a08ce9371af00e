#include "sync/case_entries.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/status_macros.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "sync/record_codec.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

// Case id, record id and the state tag.
constexpr size_t kRecordStateKeySize = 16 + 16 + 1;

// The first byte of every entry key. The entries iterator is bounded to
// them: a seek past a case's last entry must not land on a scope list,
// whose value the iterator would merge to no purpose.
const std::string kEntryKeys(1, static_cast<char>(storage::kCaseEntryTag));

}  // namespace

CaseEntryReader::CaseEntryReader(storage::Store* store, const storage::Snapshot* snapshot)
    : records_(store->NewIterator(Cf::kRecords, "", "", snapshot)),
      entries_(store->NewIterator(Cf::kCaseIndex, kEntryKeys, storage::PrefixUpperBound(kEntryKeys),
                                  snapshot)) {}

absl::Status CaseEntryReader::Read(const Uuid& case_id, uint64_t after, uint64_t through,
                                   size_t max, std::vector<uint64_t>* out, bool* more) {
  out->clear();
  *more = false;
  const uint64_t limit = through == 0 ? std::numeric_limits<uint64_t>::max() : through;
  if (after >= limit) return absl::OkStatus();
  // The entries that created the case's records (a case has few records).
  created_.clear();
  const std::string records = storage::CaseRecordsPrefix(case_id);
  for (records_->Seek(records); records_->Valid() && records_->key().starts_with(records);
       records_->Next()) {
    const std::string_view key = records_->key();
    if (key.size() != kRecordStateKeySize ||
        static_cast<uint8_t>(key.back()) != storage::kRecordStateTag) {
      continue;
    }
    ASSIGN_OR_RETURN(uint64_t created, DecodeRecordCreatedPosition(records_->value()));
    if (created > after && created <= limit) created_.push_back(created);
  }
  RETURN_IF_ERROR(records_->status());
  std::sort(created_.begin(), created_.end());
  // Merged with every later entry's key.
  const std::string entries = storage::CaseEntriesPrefix(case_id);
  entries_->Seek(storage::EncodeCaseEntryKey(case_id, after + 1));
  size_t c = 0;
  while (true) {
    std::optional<uint64_t> indexed;
    if (entries_->Valid() && entries_->key().starts_with(entries)) {
      ASSIGN_OR_RETURN(storage::CaseEntryKey key, storage::DecodeCaseEntryKey(entries_->key()));
      if (key.position <= limit) indexed = key.position;
    }
    const bool from_created = c < created_.size() && (!indexed || created_[c] <= *indexed);
    if (!from_created && !indexed) break;
    if (out->size() == max) {
      *more = true;
      break;
    }
    if (from_created) {
      out->push_back(created_[c++]);
      if (indexed && out->back() == *indexed) entries_->Next();
    } else {
      out->push_back(*indexed);
      entries_->Next();
    }
  }
  return entries_->status();
}

}  // namespace fieldsync::sync
