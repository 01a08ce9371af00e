#include "sync/ingest.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "common/arena_blocks.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "common/uuid.h"
#include "crypto/hash.h"
#include "google/protobuf/arena.h"
#include "storage/key_codec.h"
#include "sync/batch_answer.h"
#include "sync/errors.h"
#include "sync/hlc.h"
#include "sync/log_codec.h"
#include "sync/record_state.h"

namespace fieldsync::sync {
namespace {

using storage::Cf;

// A prepared batch's arena: its first block is sized for this many bytes
// of log entries per change (a new 19-field case takes about 2 KiB), and
// no block is larger than common/arena_blocks.h allows.
constexpr size_t kArenaBytesPerChange = 2048;

// Cf::kMetadata name of the next log position: 8 bytes, big-endian.
// Persisted.
constexpr std::string_view kNextPositionName = "sync/next_log_position";

std::string EncodeU64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xFF);
  return out;
}

absl::StatusOr<uint64_t> DecodeU64(std::string_view b) {
  if (b.size() != 8) return absl::DataLossError("next log position is not 8 bytes");
  uint64_t v = 0;
  for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

v1::ChangeResult Rejected(std::string_view change_id, v1::RejectReason reason, std::string detail) {
  v1::ChangeResult r;
  r.set_change_id(std::string(change_id));
  r.set_outcome(v1::CHANGE_OUTCOME_REJECTED);
  r.set_reject_reason(reason);
  r.set_detail(std::move(detail));
  return r;
}

bool IsEncrypted(const v1::FieldDef& def) {
  return def.sensitivity() == v1::SENSITIVITY_IDENTIFYING ||
         def.sensitivity() == v1::SENSITIVITY_SENSITIVE;
}

absl::StatusOr<std::string> CanonicalUuid(std::string_view text) {
  ASSIGN_OR_RETURN(Uuid id, ParseUuid(text));
  return FormatUuid(id);
}

void Count(v1::ChangeOutcome o, OutcomeCounts* c) {
  switch (o) {
    case v1::CHANGE_OUTCOME_APPLIED:
      ++c->applied;
      break;
    case v1::CHANGE_OUTCOME_CONVERGED:
      ++c->converged;
      break;
    case v1::CHANGE_OUTCOME_SUPERSEDED:
      ++c->superseded;
      break;
    case v1::CHANGE_OUTCOME_CONFLICT:
      ++c->conflict;
      break;
    default:
      ++c->rejected;
      break;
  }
}

// What every observer asks for, together.
DimensionNeeds ObserversNeeds(const std::vector<CommitObserver*>& observers) {
  DimensionNeeds all;
  for (const CommitObserver* o : observers) all.Add(o->RecordDimensionNeeds());
  return all;
}

}  // namespace

struct Ingest::PreparedChange {
  v1::CaseLogEntry* entry = nullptr;  // on the batch's arena
  std::optional<v1::ChangeResult> rejection;
};

struct Ingest::PreparedBatch {
  // The changes' log entries (a few thousand small messages for a batch of
  // a hundred), made and freed in a few blocks.
  std::unique_ptr<google::protobuf::Arena> arena;
  BatchMeta meta;
  // New case keys the sealed values depend on (FieldSealer::Seal).
  std::vector<KeyWrite> key_writes;
  Uuid batch_uuid{};
  std::string payload_hash;
  std::vector<PreparedChange> changes;
};

// One unit of a commit group: a device batch or a server-side change.
struct Ingest::Unit {
  PreparedBatch* batch = nullptr;  // device batches
  StaffBuilder builder;            // server-side changes
  std::string writer;
  v1::ChangeKind staff_kind = v1::CHANGE_KIND_UNSPECIFIED;
  // Outputs, valid once `done`.
  absl::Status status;
  PushResult push;
  v1::ChangeResult staff_result;
  bool done = false;
  // Server-side changes: new case keys their sealed values depend on.
  std::vector<KeyWrite> key_writes;
  // Inside the commit step: the cases of the unit's logged changes (those
  // in summary.case_ids), for a constant-time membership test.
  absl::flat_hash_set<std::string> logged_cases;
};

Ingest::Ingest(Options options)
    : options_(std::move(options)),
      reconciler_(options_.schema),
      dimensions_(options_.schema, ObserversNeeds(options_.observers)) {
  prepare_limit_ = static_cast<uint64_t>(
      options_.max_concurrent_prepares > 0
          ? options_.max_concurrent_prepares
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  committer_ = std::thread([this] { CommitLoop(); });
}

Ingest::~Ingest() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  committer_.join();
}

// --- Prepare (caller's thread) ----------------------------------------------

absl::Status Ingest::StoreValue(const v1::FieldDef& def, std::string_view case_id,
                                std::string_view record_id, const v1::FieldValue& value,
                                SealScope* scope, std::vector<KeyWrite>* key_writes,
                                v1::StoredValue* stored) {
  if (!IsEncrypted(def) || value.kind_case() == v1::FieldValue::KIND_NOT_SET) {
    *stored = ClearStoredValue(value);
    return absl::OkStatus();
  }
  const std::string plaintext = value.SerializeAsString();
  ASSIGN_OR_RETURN(*stored->mutable_data(),
                   options_.sealer->SealIn(scope, FieldAddress{case_id, record_id, def.name()},
                                           plaintext, key_writes));
  ASSIGN_OR_RETURN(std::string digest,
                   options_.sealer->DigestIn(scope, case_id, def.name(), plaintext, key_writes));
  digest.resize(std::min(digest.size(), kValueDigestBytes));
  *stored->mutable_digest() = std::move(digest);
  stored->set_encrypted(true);
  return absl::OkStatus();
}

absl::Status Ingest::PrepareChange(const v1::RecordChange& change, const BatchMeta& meta,
                                   absl::Time now, SealScope* scope, PreparedChange* out,
                                   std::vector<KeyWrite>* key_writes) {
  const std::string& cid = change.change_id();
  auto reject = [&](v1::RejectReason reason, std::string detail) {
    out->rejection = Rejected(cid, reason, std::move(detail));
    return absl::OkStatus();
  };
  v1::CaseLogEntry& e = *out->entry;
  absl::StatusOr<std::string> change_id = CanonicalUuid(cid);
  absl::StatusOr<std::string> case_id = CanonicalUuid(change.case_id());
  absl::StatusOr<std::string> record_id = CanonicalUuid(change.record_id());
  if (!change_id.ok() || !case_id.ok() || !record_id.ok()) {
    return reject(v1::REJECT_REASON_INVALID_ID,
                  "change_id, case_id and record_id must be canonical UUIDs");
  }
  const v1::RecordType* type = options_.schema->FindRecordType(change.record_type());
  if (type == nullptr) {
    return reject(v1::REJECT_REASON_UNKNOWN_RECORD_TYPE,
                  absl::StrFormat("change %s: unknown record type", cid));
  }
  const bool is_registration = type->kind() == v1::RECORD_KIND_CASE_REGISTRATION;
  if (is_registration != (*record_id == *case_id)) {
    return reject(v1::REJECT_REASON_RECORD_ID_MISMATCH,
                  absl::StrFormat("change %s: record_id must equal case_id exactly for the "
                                  "registration record %s",
                                  cid, type->name()));
  }
  if (change.hlc().wall_micros() <= 0) {
    return reject(v1::REJECT_REASON_INVALID_HLC, absl::StrFormat("change %s: no HLC", cid));
  }
  e.set_change_id(*change_id);
  e.set_case_id(*case_id);
  e.set_record_id(*record_id);
  e.set_record_type(change.record_type());
  e.set_kind(change.kind());
  *e.mutable_hlc() = change.hlc();
  e.set_clock_clamped(ClampHlc(now, options_.max_clock_skew, e.mutable_hlc()));
  e.set_writer(meta.device_id);
  e.set_batch_id(meta.batch_id);
  auto rejected_kind = [&](std::string what) {
    out->rejection = Rejected(cid, v1::REJECT_REASON_MALFORMED_CHANGE,
                              absl::StrFormat("change %s: %s", cid, what));
    out->rejection->set_clock_clamped(e.clock_clamped());
    return absl::OkStatus();
  };
  switch (change.kind()) {
    case v1::CHANGE_KIND_UPSERT: {
      if (change.fields().empty()) return rejected_kind("UPSERT without fields");
      // Views of the payload's field names (the payload outlives the loop).
      absl::flat_hash_set<std::string_view> seen;
      for (const v1::FieldWrite& w : change.fields()) {
        const v1::FieldDef* def = options_.schema->FindField(type->name(), w.field());
        if (def == nullptr) {
          return reject(v1::REJECT_REASON_UNKNOWN_FIELD,
                        absl::StrFormat("change %s: record type %s has no field %s", cid,
                                        type->name(), w.field()));
        }
        if (!seen.insert(w.field()).second) {
          return rejected_kind(absl::StrFormat("field %s written twice", w.field()));
        }
        if (options_.schema->IsServerManaged(type->name(), w.field())) {
          return reject(
              v1::REJECT_REASON_FIELD_NOT_WRITABLE,
              absl::StrFormat("change %s: field %s is set by the server", cid, w.field()));
        }
        // The refusal's context is formatted only for a refusal.
        ValueCheck check = Schema::CheckValue(*def, w.value(), {});
        if (!check.ok()) {
          check = Schema::CheckValue(*def, w.value(),
                                     absl::StrFormat("change %s field %s", cid, w.field()));
          return reject(check.reason, std::move(check.detail));
        }
        if (def->required() && w.value().kind_case() == v1::FieldValue::KIND_NOT_SET) {
          return reject(v1::REJECT_REASON_REQUIRED_FIELD_MISSING,
                        absl::StrFormat("change %s: required field %s cleared", cid, w.field()));
        }
        v1::EntryField* f = e.add_fields();
        f->set_field(w.field());
        f->set_base_version(w.base_version());
        const absl::Status stored = StoreValue(*def, *case_id, *record_id, w.value(), scope,
                                               key_writes, f->mutable_value());
        if (absl::IsFailedPrecondition(stored)) {
          // The sealer's answer for an erased case: no new key is made.
          return reject(v1::REJECT_REASON_CASE_ERASED,
                        absl::StrFormat("change %s: case %s was erased", cid, *case_id));
        }
        RETURN_IF_ERROR(stored);
      }
      e.set_base_version(change.base_version());
      return absl::OkStatus();
    }
    case v1::CHANGE_KIND_DELETE:
      if (!change.fields().empty()) return rejected_kind("DELETE with fields");
      if (is_registration) {
        return reject(v1::REJECT_REASON_RECORD_ID_MISMATCH,
                      absl::StrFormat("change %s: the registration record cannot be deleted; "
                                      "close the case",
                                      cid));
      }
      e.set_base_version(change.base_version());
      return absl::OkStatus();
    case v1::CHANGE_KIND_CLOSE_CASE:
    case v1::CHANGE_KIND_REOPEN_CASE: {
      if (!change.fields().empty()) return rejected_kind("CLOSE/REOPEN with fields");
      if (!is_registration) {
        return reject(
            v1::REJECT_REASON_RECORD_ID_MISMATCH,
            absl::StrFormat("change %s: close/reopen only on the registration record", cid));
      }
      v1::FieldValue status;
      status.set_enum_value(change.kind() == v1::CHANGE_KIND_CLOSE_CASE ? "closed" : "open");
      v1::EntryField* f = e.add_fields();
      f->set_field(options_.schema->status_field());
      f->set_base_version(change.base_version());
      *f->mutable_value() = ClearStoredValue(status);
      e.set_base_version(change.base_version());
      return absl::OkStatus();
    }
    case v1::CHANGE_KIND_ASSIGN_CASE:
    case v1::CHANGE_KIND_TRANSFER_CASE:
    case v1::CHANGE_KIND_RESOLVE_CONFLICT:
      return reject(v1::REJECT_REASON_FIELD_NOT_WRITABLE,
                    absl::StrFormat("change %s: kind %s is server-side only", cid,
                                    v1::ChangeKind_Name(change.kind())));
    default:
      return rejected_kind("unknown kind");
  }
}

absl::StatusOr<Ingest::PreparedBatch> Ingest::Prepare(const BatchMeta& meta,
                                                      const v1::BatchPayload& payload) {
  v1::SyncErrorDetail detail;
  detail.set_batch_id(meta.batch_id);
  absl::StatusOr<Uuid> batch_uuid = ParseUuid(meta.batch_id);
  if (!batch_uuid.ok() || meta.device_id.empty() || meta.sequence == 0) {
    return SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED,
                     "batch header needs a device id, a UUID batch id and a sequence >= 1", detail);
  }
  if (payload.changes_size() > static_cast<int>(options_.max_changes_per_batch)) {
    detail.set_max_changes(options_.max_changes_per_batch);
    return SyncError(
        absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_BATCH_TOO_LARGE,
        absl::StrFormat("batch %s has %d changes; the limit is %d: split it", meta.batch_id,
                        payload.changes_size(), options_.max_changes_per_batch),
        detail);
  }
  PreparedBatch batch;
  batch.meta = meta;
  batch.meta.batch_id = FormatUuid(*batch_uuid);
  batch.batch_uuid = *batch_uuid;
  std::string canonical;
  payload.SerializeToString(&canonical);
  crypto::Sha256Digest hash = crypto::Sha256(canonical);
  batch.payload_hash.assign(hash.begin(), hash.end());
  const absl::Time now = options_.clock->Now();
  absl::flat_hash_set<std::string> change_ids;
  change_ids.reserve(payload.changes_size());
  // One key lookup and digest-key derivation per case for the whole batch;
  // the scope wipes what it derived when Prepare returns.
  const std::unique_ptr<SealScope> scope = options_.sealer->NewScope();
  batch.arena = std::make_unique<google::protobuf::Arena>(
      ArenaOptionsFor(static_cast<size_t>(payload.changes_size()) * kArenaBytesPerChange));
  batch.changes.resize(payload.changes_size());
  for (PreparedChange& c : batch.changes) {
    c.entry = google::protobuf::Arena::CreateMessage<v1::CaseLogEntry>(batch.arena.get());
  }
  for (int i = 0; i < payload.changes_size(); ++i) {
    const v1::RecordChange& change = payload.changes(i);
    // Ids are compared as they are logged (lower case), so two spellings of
    // one id are one id.
    absl::StatusOr<std::string> logged = CanonicalUuid(change.change_id());
    if (!change_ids.insert(logged.ok() ? *logged : change.change_id()).second) {
      batch.changes[i].rejection =
          Rejected(change.change_id(), v1::REJECT_REASON_INVALID_ID,
                   absl::StrFormat("change %s appears twice in the batch", change.change_id()));
      continue;
    }
    RETURN_IF_ERROR(
        PrepareChange(change, batch.meta, now, scope.get(), &batch.changes[i], &batch.key_writes));
  }
  return batch;
}

uint64_t Ingest::PreparesWaiting() const {
  absl::MutexLock lock(&prepare_mu_);
  return next_prepare_turn_ - std::min(next_prepare_turn_, prepares_done_ + prepare_limit_);
}

absl::StatusOr<PushResult> Ingest::Push(const BatchMeta& meta, const v1::BatchPayload& payload) {
  absl::StatusOr<PreparedBatch> prepared;
  {
    prepare_mu_.Lock();
    const uint64_t turn = next_prepare_turn_++;
    const auto my_turn = [this, turn]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(prepare_mu_) {
      return turn < prepares_done_ + prepare_limit_;
    };
    prepare_mu_.Await(absl::Condition(&my_turn));
    prepare_mu_.Unlock();
    prepared = Prepare(meta, payload);
    absl::MutexLock lock(&prepare_mu_);
    ++prepares_done_;
  }
  ASSIGN_OR_RETURN(PreparedBatch batch, std::move(prepared));
  Unit unit;
  unit.batch = &batch;
  unit.writer = batch.meta.device_id;
  Submit(&unit);
  if (!unit.status.ok()) return unit.status;
  return std::move(unit.push);
}

absl::StatusOr<v1::ChangeResult> Ingest::RunStaff(const StaffActor& actor, v1::ChangeKind kind,
                                                  StaffBuilder builder) {
  Unit unit;
  unit.builder = std::move(builder);
  unit.writer = "staff:" + actor.staff_id;
  unit.staff_kind = kind;
  Submit(&unit);
  if (!unit.status.ok()) return unit.status;
  return std::move(unit.staff_result);
}

// --- Commit step ---------------------------------------------------------

void Ingest::Submit(Unit* unit) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(unit);
  mu_.Await(absl::Condition(&unit->done));
}

void Ingest::CommitLoop() {
  NameThread("fsd-commit");
  std::vector<Unit*> group;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and everything queued committed
      // Every queued unit commits as one group while later arrivals queue
      // up for the next.
      group.assign(queue_.begin(), queue_.end());
      queue_.clear();
    }
    const absl::Time started = absl::Now();
    CommitGroup(group);
    {
      absl::MutexLock lock(&stats_mu_);
      stats_.commit_micros +=
          static_cast<uint64_t>(absl::ToInt64Microseconds(absl::Now() - started));
    }
    absl::MutexLock lock(&mu_);
    for (Unit* u : group) u->done = true;
  }
}

void Ingest::CommitGroup(const std::vector<Unit*>& group) {
  storage::WriteBatch& wb = group_batch_;
  wb.Clear();
  StateView view(options_.store, &wb);
  // Views kept from an earlier group could be of writes that failed.
  dimensions_.Reset();
  auto fail_all = [&](const absl::Status& s) {
    next_position_.reset();
    for (Unit* u : group) u->status = s;
  };
  if (!next_position_.has_value()) {
    absl::StatusOr<uint64_t> next = NextLogPosition();
    if (!next.ok()) return fail_all(next.status());
    next_position_ = *next;
  }
  uint64_t position = *next_position_;
  const absl::Time now = options_.clock->Now();
  std::vector<std::optional<CommittedUnit>> summaries(group.size());
  for (size_t i = 0; i < group.size(); ++i) {
    Unit* u = group[i];
    CommittedUnit summary;
    summary.writer = u->writer;
    summary.staff_kind = u->staff_kind;
    summary.committed_at = now;
    absl::Status fatal = u->batch != nullptr ? ProcessDeviceBatch(u, &view, &position, &summary)
                                             : ProcessStaff(u, &view, &position, &summary);
    if (!fatal.ok()) return fail_all(fatal);
    if (u->status.ok() && !u->push.is_retry_answer) summaries[i] = std::move(summary);
  }
  // The scope lists the group moved, one operand per list.
  view.FlushSums();
  bool observed = false;
  absl::Status group_status = absl::OkStatus();
  for (size_t i = 0; i < group.size() && group_status.ok(); ++i) {
    if (!summaries[i].has_value()) continue;
    for (CommitObserver* observer : options_.observers) {
      observed = true;
      group_status = observer->OnCommit(*summaries[i], &wb);
      if (!group_status.ok()) break;
    }
  }
  for (size_t i = 0; observed && group_status.ok() && i < options_.observers.size(); ++i) {
    group_status = options_.observers[i]->BeforeCommit(&wb);
  }
  // The new case keys that committed values were sealed under, from the
  // units that commit something.
  std::vector<KeyWrite> key_writes;
  for (size_t i = 0; i < group.size(); ++i) {
    if (!summaries[i].has_value()) continue;
    std::vector<KeyWrite>& w =
        group[i]->batch != nullptr ? group[i]->batch->key_writes : group[i]->key_writes;
    key_writes.insert(key_writes.end(), std::make_move_iterator(w.begin()),
                      std::make_move_iterator(w.end()));
    w.clear();
  }
  if (group_status.ok() && !key_writes.empty()) {
    group_status = options_.sealer->Keep(&key_writes);
    for (const KeyWrite& w : key_writes) wb.Put(Cf::kKeys, w.key, w.value);
  }
  absl::Duration write_time;
  if (group_status.ok()) {
    if (position != *next_position_) {
      wb.Put(Cf::kMetadata, storage::EncodeMetadataKey(kNextPositionName), EncodeU64(position));
    }
    const absl::Time started = absl::Now();
    group_status = options_.store->Commit(&wb);
    write_time = absl::Now() - started;
  }
  // Observers learn the outcome of every group they added writes to, so
  // that in-memory state (the audit log's frontier) follows the store.
  if (observed) {
    for (CommitObserver* observer : options_.observers) observer->AfterCommit(&wb, group_status);
  }
  // The sealer too, which holds back a master key rotation's rewrap while
  // new case keys are being committed (sync/case_key_sealer.h).
  options_.sealer->AfterCommit(key_writes, group_status);
  if (!group_status.ok()) return fail_all(group_status);
  {
    absl::MutexLock lock(&stats_mu_);
    ++stats_.groups;
    stats_.units += group.size();
    stats_.log_entries += position - *next_position_;
    stats_.write_ops += static_cast<uint64_t>(wb.Count());
    stats_.write_bytes += wb.ByteSize();
    stats_.write_micros += static_cast<uint64_t>(absl::ToInt64Microseconds(write_time));
  }
  next_position_ = position;
  if (wb.ByteSize() > kMaxKeptGroupBytes) wb = storage::WriteBatch();
}

IngestStats Ingest::Stats() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_;
}

absl::StatusOr<uint64_t> Ingest::NextLogPosition() {
  absl::StatusOr<std::string> v =
      options_.store->Get(Cf::kMetadata, storage::EncodeMetadataKey(kNextPositionName));
  if (absl::IsNotFound(v.status())) return 1;
  if (!v.ok()) return v.status();
  return DecodeU64(*v);
}

absl::StatusOr<v1::ChangeResult> Ingest::LogChange(v1::CaseLogEntry* entry,
                                                   const ApplyOptions& options, StateView* view,
                                                   uint64_t* next_position, CommittedUnit* summary,
                                                   absl::flat_hash_set<std::string>* logged_cases) {
  entry->set_position(*next_position);
  entry->set_committed_unix_micros(absl::ToUnixMicros(summary->committed_at));
  // What the change can move of its record's DIMENSION view, read before
  // it is applied, when an observer asks for its record type.
  const EntryReader read = ViewEntryReader(view);
  ASSIGN_OR_RETURN(const CaseDimensionsTracker::Pending dims,
                   dimensions_.Before(view, read, *entry));
  RecordState written;
  ASSIGN_OR_RETURN(v1::ChangeResult result, reconciler_.Apply(entry, options, view, &written));
  Count(result.outcome(), &summary->counts);
  if (result.outcome() == v1::CHANGE_OUTCOME_REJECTED) return result;
  view->Put(Cf::kCaseLog, storage::EncodeCaseLogKey(*next_position),
            EncodeLogEntry(*entry, options_.store->names(), view->batch()));
  if (summary->first_position == 0) summary->first_position = *next_position;
  summary->last_position = *next_position;
  ++*next_position;
  if (logged_cases->insert(entry->case_id()).second) {
    summary->case_ids.push_back(entry->case_id());
  }
  // One per logged change, never merged: observers see each change as if
  // it had been committed alone.
  RecordDimensionChange& rec = summary->records.emplace_back();
  rec.case_id = entry->case_id();
  rec.record_id = entry->record_id();
  rec.record_type = entry->record_type();
  rec.changed_at = absl::FromUnixMicros(entry->hlc().wall_micros());
  ASSIGN_OR_RETURN(rec.dimensions_changed,
                   dimensions_.After(view, read, *entry, &written, dims, &rec.before, &rec.after));
  return result;
}

absl::Status Ingest::ProcessDeviceBatch(Unit* unit, StateView* view, uint64_t* next_position,
                                        CommittedUnit* summary) {
  PreparedBatch& batch = *unit->batch;
  const BatchMeta& meta = batch.meta;
  v1::SyncErrorDetail detail;
  detail.set_batch_id(meta.batch_id);
  const std::string batch_key = storage::EncodeBatchKey(meta.device_id, batch.batch_uuid);
  const std::string seq_key = storage::EncodeDeviceSequenceKey(meta.device_id);
  v1::DeviceSequence seq;
  ASSIGN_OR_RETURN(bool has_seq, view->GetProto(Cf::kBatches, seq_key, &seq));
  const uint64_t expected = has_seq ? seq.next_sequence() : 1;
  v1::BatchRecord seen;
  ASSIGN_OR_RETURN(bool was_seen, view->GetProto(Cf::kBatches, batch_key, &seen));
  if (was_seen) {
    if (seen.payload_hash() != batch.payload_hash) {
      unit->status = SyncError(
          absl::StatusCode::kAlreadyExists, v1::SYNC_ERROR_REASON_BATCH_ID_REUSED,
          absl::StrFormat("batch %s of device %s was committed before with different content; "
                          "a batch id is never reused",
                          meta.batch_id, meta.device_id),
          detail);
      return absl::OkStatus();
    }
    std::vector<std::string> change_ids;
    change_ids.reserve(batch.changes.size());
    for (const PreparedChange& c : batch.changes) change_ids.push_back(c.entry->change_id());
    absl::StatusOr<v1::BatchResult> answer =
        RebuildBatchResult(seen, CaseLogReader(view),
                           BatchIdentity{.device_id = meta.device_id,
                                         .batch_id = meta.batch_id,
                                         .change_count = batch.changes.size(),
                                         .change_ids = change_ids});
    if (absl::IsDataLoss(answer.status())) {
      // This batch's record or log is damaged: its push fails, the rest of
      // the group commits.
      unit->status = answer.status();
      return absl::OkStatus();
    }
    if (!answer.ok()) return answer.status();
    unit->push.result = *std::move(answer);
    unit->push.next_sequence = expected;
    unit->push.is_retry_answer = true;
    return absl::OkStatus();
  }
  if (batch.changes.empty()) {
    detail.set_expected_sequence(expected);
    // Checked after the retry lookup, so that an empty batch an older
    // release accepted still gets its stored answer when resent; a new one
    // changes nothing and uses up no sequence number (PROTOCOL.md §5).
    unit->status = SyncError(
        absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED,
        absl::StrFormat("batch %s has no changes: send a batch only when there is a change to "
                        "send; sequence %d is still the next",
                        meta.batch_id, expected),
        detail);
    return absl::OkStatus();
  }
  if (meta.sequence != expected) {
    detail.set_expected_sequence(expected);
    const bool gap = meta.sequence > expected;
    unit->status = SyncError(
        gap ? absl::StatusCode::kOutOfRange : absl::StatusCode::kFailedPrecondition,
        gap ? v1::SYNC_ERROR_REASON_SEQUENCE_GAP : v1::SYNC_ERROR_REASON_SEQUENCE_REPLAY,
        gap ? absl::StrFormat("batch %s has sequence %d but device %s must send %d next: resend "
                              "from there",
                              meta.batch_id, meta.sequence, meta.device_id, expected)
            : absl::StrFormat("batch %s has sequence %d, already used by device %s (next is %d): "
                              "refused as a replay",
                              meta.batch_id, meta.sequence, meta.device_id, expected),
        detail);
    return absl::OkStatus();
  }
  ApplyOptions options;
  options.check_scope = true;
  options.officer_id = meta.officer_id;
  options.region = meta.region;
  v1::BatchResult& result = unit->push.result;
  result.set_sequence(meta.sequence);
  for (PreparedChange& change : batch.changes) {
    if (change.rejection.has_value()) {
      Count(v1::CHANGE_OUTCOME_REJECTED, &summary->counts);
      *result.add_results() = *change.rejection;
      continue;
    }
    ASSIGN_OR_RETURN(*result.add_results(), LogChange(change.entry, options, view, next_position,
                                                      summary, &unit->logged_cases));
  }
  result.set_first_position(summary->first_position);
  result.set_last_position(summary->last_position);
  // Only what a retry cannot rebuild from the log (sync/batch_answer.h).
  view->PutProto(Cf::kBatches, batch_key, CompactBatchRecord(batch.payload_hash, result));
  seq.set_next_sequence(expected + 1);
  view->PutProto(Cf::kBatches, seq_key, seq);
  unit->push.next_sequence = expected + 1;
  summary->batch = &meta;
  return absl::OkStatus();
}

absl::Status Ingest::ProcessStaff(Unit* unit, StateView* view, uint64_t* next_position,
                                  CommittedUnit* summary) {
  staff_key_writes_ = &unit->key_writes;
  absl::StatusOr<v1::CaseLogEntry> built = unit->builder(view);
  staff_key_writes_ = nullptr;
  if (!built.ok()) {
    if (built.status().code() == absl::StatusCode::kDataLoss) return built.status();
    unit->status = built.status();
    return absl::OkStatus();
  }
  v1::CaseLogEntry entry = std::move(*built);
  entry.set_kind(unit->staff_kind);
  entry.set_writer(unit->writer);
  entry.set_change_id(absl::StrFormat("server:%d", *next_position));
  *entry.mutable_hlc() = ServerHlc(summary->committed_at);
  ASSIGN_OR_RETURN(v1::ChangeResult result, LogChange(&entry, ApplyOptions(), view, next_position,
                                                      summary, &unit->logged_cases));
  if (result.outcome() == v1::CHANGE_OUTCOME_REJECTED) {
    v1::SyncErrorDetail detail;
    detail.set_case_id(entry.case_id());
    const bool not_found = result.reject_reason() == v1::REJECT_REASON_CASE_NOT_FOUND;
    // A value that would leave the district outside the region is the
    // caller's to fix (another value, or a transfer); the rest wait on state.
    const absl::StatusCode code =
        not_found ? absl::StatusCode::kNotFound
        : result.reject_reason() == v1::REJECT_REASON_DISTRICT_OUTSIDE_REGION
            ? absl::StatusCode::kInvalidArgument
            : absl::StatusCode::kFailedPrecondition;
    unit->status = SyncError(
        code, not_found ? v1::SYNC_ERROR_REASON_NOT_FOUND : v1::SYNC_ERROR_REASON_INVALID_VALUE,
        result.detail(), detail);
    return absl::OkStatus();
  }
  unit->staff_result = std::move(result);
  return absl::OkStatus();
}

}  // namespace fieldsync::sync
