#include "sync/layout_upgrade.h"

#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "storage/key_codec.h"
#include "sync/batch_answer.h"
#include "sync/log_codec.h"
#include "sync/rebuild.h"
#include "sync/reconcile.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

absl::StatusOr<std::optional<std::string>> GetMeta(storage::Store* store, std::string_view name) {
  absl::StatusOr<std::string> v = store->Get(Cf::kMetadata, storage::EncodeMetadataKey(name));
  if (absl::IsNotFound(v.status())) return std::optional<std::string>();
  if (!v.ok()) return v.status();
  return std::optional<std::string>(*std::move(v));
}

absl::Status PutMeta(storage::Store* store, std::string_view name, std::string_view value) {
  storage::WriteBatch batch;
  batch.Put(Cf::kMetadata, storage::EncodeMetadataKey(name), value);
  return store->Commit(&batch);
}

absl::Status Differs(const storage::RecordsKey& at, std::string_view field, std::string_view what) {
  return absl::DataLossError(absl::StrFormat(
      "layout upgrade stopped: the state rebuilt from the case log differs from the stored state "
      "at case %s, record %s%s%s (%s); nothing was changed and the server does not start. Keep "
      "this store and its backups, and report the message",
      FormatUuid(at.case_id), FormatUuid(at.record_id), field.empty() ? "" : ", field ", field,
      what));
}

// A field state or conflict without its values, for comparing the rest.
template <typename Message>
std::string WithoutValues(Message m);
template <>
std::string WithoutValues(v1::FieldState m) {
  m.clear_value();
  return m.SerializeAsString();
}
template <>
std::string WithoutValues(v1::ConflictRecord m) {
  for (v1::FieldHead& h : *m.mutable_losing()) h.clear_value();
  return m.SerializeAsString();
}

// Compares one layout-1 record (its header and field states, values
// included) with the layout-2 state of the scratch store, whose values are
// read from the live log.
absl::Status CompareRecord(const storage::RecordsKey& at, const v1::RecordHeader& header,
                           const std::vector<std::pair<std::string, v1::FieldState>>& fields,
                           storage::Store* scratch, const EntryReader& read) {
  absl::StatusOr<std::string> raw =
      scratch->Get(Cf::kRecords, storage::EncodeRecordStateKey(at.case_id, at.record_id));
  if (absl::IsNotFound(raw.status())) return Differs(at, "", "the rebuilt state lacks the record");
  if (!raw.ok()) return raw.status();
  RecordState rebuilt;
  RETURN_IF_ERROR(DecodeRecordState(*raw, scratch->names(), &rebuilt));
  RETURN_IF_ERROR(FillValues(&rebuilt, read));
  if (rebuilt.header.SerializeAsString() != header.SerializeAsString()) {
    return Differs(at, "", "record header");
  }
  if (rebuilt.fields.size() != fields.size()) return Differs(at, "", "number of fields");
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto& [name, stored] = fields[i];
    const auto& [rebuilt_name, state] = rebuilt.fields[i];
    if (rebuilt_name != name) return Differs(at, name, "field missing from the rebuilt state");
    if (WithoutValues(stored) != WithoutValues(state)) return Differs(at, name, "versions");
    if (!SameValue(stored.value(), state.value())) return Differs(at, name, "value");
  }
  return absl::OkStatus();
}

absl::Status CompareRecords(storage::Store* live, const storage::Snapshot* snap,
                            storage::Store* scratch, uint64_t* records) {
  const EntryReader read = [&](uint64_t at, v1::CaseLogEntry* e) {
    return ReadLogEntry(live, at, e, snap);
  };
  std::unique_ptr<storage::Iterator> it = live->NewIterator(Cf::kRecords, "", "", snap);
  std::optional<storage::RecordsKey> current;
  v1::RecordHeader header;
  std::vector<std::pair<std::string, v1::FieldState>> fields;
  auto finish = [&]() -> absl::Status {
    if (!current.has_value()) return absl::OkStatus();
    ++*records;
    return CompareRecord(*current, header, fields, scratch, read);
  };
  for (; it->Valid(); it->Next()) {
    ASSIGN_OR_RETURN(storage::RecordsKey key, storage::DecodeRecordsKey(it->key()));
    if (key.is_state) continue;  // a layout-2 record of an earlier, interrupted run
    if (!current.has_value() || current->case_id != key.case_id ||
        current->record_id != key.record_id) {
      RETURN_IF_ERROR(finish());
      current = key;
      header.Clear();
      fields.clear();
    }
    const std::string_view raw = it->value();
    if (key.is_header) {
      if (!header.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
        return absl::DataLossError("a layout-1 record header does not parse");
      }
      continue;
    }
    v1::FieldState state;
    if (!state.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
      return absl::DataLossError("a layout-1 field state does not parse");
    }
    fields.emplace_back(std::move(key.field), std::move(state));
  }
  RETURN_IF_ERROR(it->status());
  RETURN_IF_ERROR(finish());
  uint64_t rebuilt = 0;
  std::unique_ptr<storage::Iterator> r = scratch->NewIterator(Cf::kRecords, "", "");
  for (; r->Valid(); r->Next()) ++rebuilt;
  RETURN_IF_ERROR(r->status());
  if (rebuilt != *records) {
    return absl::DataLossError(absl::StrFormat(
        "layout upgrade stopped: the state rebuilt from the case log has %d records, the stored "
        "state %d; nothing was changed",
        rebuilt, *records));
  }
  return absl::OkStatus();
}

// The conflicts and the case index, key for key; conflict values as merge
// compares them.
absl::Status CompareColumn(Cf cf, storage::Store* live, const storage::Snapshot* snap,
                           storage::Store* scratch, uint64_t* conflicts) {
  std::unique_ptr<storage::Iterator> a = live->NewIterator(cf, "", "", snap);
  std::unique_ptr<storage::Iterator> b = scratch->NewIterator(cf, "", "");
  for (; a->Valid() || b->Valid(); a->Next(), b->Next()) {
    if (!a->Valid() || !b->Valid() || a->key() != b->key()) {
      return absl::DataLossError(absl::StrFormat(
          "layout upgrade stopped: the %s rebuilt from the case log differ from the stored ones; "
          "nothing was changed",
          storage::CfName(cf)));
    }
    if (conflicts != nullptr) ++*conflicts;
    if (a->value() == b->value()) continue;
    if (cf != Cf::kConflicts) {
      return absl::DataLossError(absl::StrFormat(
          "layout upgrade stopped: an entry of %s differs from its rebuilt copy; nothing was "
          "changed",
          storage::CfName(cf)));
    }
    v1::ConflictRecord x, y;
    if (!x.ParseFromArray(a->value().data(), static_cast<int>(a->value().size())) ||
        !y.ParseFromArray(b->value().data(), static_cast<int>(b->value().size()))) {
      return absl::DataLossError("a conflict record does not parse");
    }
    bool same = WithoutValues(x) == WithoutValues(y) && x.losing_size() == y.losing_size();
    for (int i = 0; same && i < x.losing_size(); ++i) {
      same = SameValue(x.losing(i).value(), y.losing(i).value());
    }
    if (!same) {
      ASSIGN_OR_RETURN(storage::ConflictKey key, storage::DecodeConflictKey(a->key()));
      return Differs(storage::RecordsKey{key.case_id, {}, false, false, ""}, key.field, "conflict");
    }
  }
  RETURN_IF_ERROR(a->status());
  return b->status();
}

absl::Status ClearState(storage::Store* store) {
  // Every state key sorts below 64 0xff bytes (ids are 16 bytes).
  const std::string end(64, '\xff');
  storage::WriteBatch clear;
  for (Cf cf : {Cf::kRecords, Cf::kCaseIndex, Cf::kConflicts}) clear.DeleteRange(cf, "", end);
  return store->Commit(&clear);
}

// Rewrites stored batch answers in the compact form (sync/batch_answer.h)
// where the log rebuilds them exactly; others stay as they are.
absl::StatusOr<uint64_t> CompactBatchRecords(storage::Store* store) {
  const EntryReader read = [store](uint64_t at, v1::CaseLogEntry* e) {
    return ReadLogEntry(store, at, e);
  };
  const std::string prefix(1, static_cast<char>(storage::kBatchTag));
  std::unique_ptr<storage::Iterator> it =
      store->NewIterator(Cf::kBatches, prefix, storage::PrefixUpperBound(prefix));
  storage::WriteBatch batch;
  uint64_t compacted = 0;
  for (; it->Valid(); it->Next()) {
    ASSIGN_OR_RETURN(storage::BatchKey key, storage::DecodeBatchKey(it->key()));
    v1::BatchRecord record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a stored batch answer does not parse");
    }
    if (record.results_from_log()) continue;
    const std::string batch_id = FormatUuid(key.batch_id);
    BatchIdentity identity;
    identity.device_id = key.device_id;
    identity.batch_id = batch_id;
    ASSIGN_OR_RETURN(bool rewritten, CompactStoredBatchRecord(&record, read, identity));
    if (!rewritten) continue;
    batch.Put(Cf::kBatches, it->key(), record.SerializeAsString());
    if (++compacted % 1000 == 0) {
      RETURN_IF_ERROR(store->Commit(&batch));
      batch.Clear();
    }
  }
  RETURN_IF_ERROR(it->status());
  RETURN_IF_ERROR(store->Commit(&batch));
  return compacted;
}

}  // namespace

absl::StatusOr<LayoutUpgrade> UpgradeStateLayout(const Schema& schema, storage::Store* store,
                                                 const LayoutUpgradeOptions& options) {
  LayoutUpgrade out;
  const std::string current = std::to_string(kStateLayout);
  ASSIGN_OR_RETURN(std::optional<std::string> layout, GetMeta(store, kLayoutName));
  if (layout.has_value() && *layout == current) return out;
  if (layout.has_value() && *layout == "2") {
    // Every layout-2 value decodes here as it is; only new writes differ.
    RETURN_IF_ERROR(PutMeta(store, kLayoutName, current));
    return out;
  }
  if (layout.has_value()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the store's state has layout %s, which this release (layout %s) does not know: run the "
        "release that wrote it",
        *layout, current));
  }
  auto step = [&](std::string_view name) -> absl::Status {
    if (options.before_step) RETURN_IF_ERROR(options.before_step(name));
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(std::optional<std::string> resumed, GetMeta(store, kLayoutStepName));
  bool has_log = false;
  {
    std::unique_ptr<storage::Iterator> first = store->NewIterator(Cf::kCaseLog, "", "");
    RETURN_IF_ERROR(first->status());
    has_log = first->Valid();
  }
  ASSIGN_OR_RETURN(std::optional<std::string> rules, GetMeta(store, kMergeRulesName));
  const bool same_rules = rules.has_value() && *rules == std::to_string(kMergeRules);
  if (!resumed.has_value() && (!has_log || !same_rules)) {
    // A new store; or state of earlier merge rules, which
    // BringStateToCurrentRules rebuilds whole (layout 2) next: there is no
    // state of today's rules to compare with.
    RETURN_IF_ERROR(step("mark"));
    RETURN_IF_ERROR(PutMeta(store, kLayoutName, current));
    out.upgraded = has_log;
    return out;
  }
  out.upgraded = true;
  if (!resumed.has_value() || *resumed == "verify") {
    RETURN_IF_ERROR(step("verify"));
    RETURN_IF_ERROR(PutMeta(store, kLayoutStepName, "verify"));
    std::error_code ec;
    std::filesystem::remove_all(options.scratch_dir, ec);
    {
      storage::StoreOptions so;
      so.path = options.scratch_dir;
      so.create_if_missing = true;
      so.error_if_exists = true;
      so.sync_writes = false;
      ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> scratch, storage::Store::Open(so));
      std::unique_ptr<storage::Snapshot> snap = store->GetSnapshot();
      RebuildOptions rebuild;
      rebuild.snapshot = snap.get();
      ASSIGN_OR_RETURN(std::optional<std::string> from, GetMeta(store, kMergeRulesFromName));
      if (from.has_value() && !absl::SimpleAtoi(*from, &rebuild.compare_from)) {
        rebuild.compare_from = std::numeric_limits<uint64_t>::max();
      }
      ASSIGN_OR_RETURN(out.entries, RebuildStateFromLog(schema, store, scratch.get(), rebuild));
      RETURN_IF_ERROR(CompareRecords(store, snap.get(), scratch.get(), &out.records));
      RETURN_IF_ERROR(
          CompareColumn(Cf::kConflicts, store, snap.get(), scratch.get(), &out.conflicts));
      RETURN_IF_ERROR(CompareColumn(Cf::kCaseIndex, store, snap.get(), scratch.get(), nullptr));
      snap.reset();
      RETURN_IF_ERROR(scratch->Close());
    }
    std::filesystem::remove_all(options.scratch_dir, ec);
    resumed = "replace";
  }
  RETURN_IF_ERROR(step("replace"));
  RETURN_IF_ERROR(PutMeta(store, kLayoutStepName, "replace"));
  RETURN_IF_ERROR(ClearState(store));
  RebuildOptions in_place;
  in_place.compare_from = std::numeric_limits<uint64_t>::max();
  ASSIGN_OR_RETURN(uint64_t replayed, RebuildStateFromLog(schema, store, store, in_place));
  if (out.entries == 0) out.entries = replayed;
  ASSIGN_OR_RETURN(out.batch_answers, CompactBatchRecords(store));
  RETURN_IF_ERROR(step("mark"));
  storage::WriteBatch mark;
  mark.Put(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName), current);
  mark.Delete(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutStepName));
  RETURN_IF_ERROR(store->Commit(&mark));
  return out;
}

}  // namespace fieldsync::sync
