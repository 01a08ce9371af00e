// The batch ingest pipeline (DESIGN §5, §6, §11): validation and field
// encryption in the caller's thread, then one ordered commit step (group
// commit) that checks idempotency and sequence numbers, assigns log
// positions, reconciles against the current state and writes the whole
// group - log entries, state, conflicts, idempotency records and the
// observers' writes (audit leaf, aggregate counters) - in one synced
// storage::WriteBatch. Also the supervisor's server-side changes (assign,
// transfer, close/reopen, resolve), which are log entries too.
//
// Sealed batches arrive opened: server/ verifies the device signature and
// opens the HPKE seal, then calls Push with plain C++ metadata.
#ifndef FIELDSYNC_SYNC_INGEST_H_
#define FIELDSYNC_SYNC_INGEST_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "storage/store.h"
#include "sync/case_dimensions.h"
#include "sync/field_sealer.h"
#include "sync/reconcile.h"
#include "sync/schema.h"

namespace fieldsync::sync {

// Who sent a batch and its header, as verified by the service layer.
struct BatchMeta {
  std::string device_id;   // the authenticated device (UUID text)
  std::string officer_id;  // the officer the device is enrolled for
  std::string region;      // the region the device is enrolled for
  std::string batch_id;    // BatchHeader.batch_id (UUID text)
  uint64_t sequence = 0;   // BatchHeader.sequence (from 1)
  // What the ingest does not read itself, for its observers
  // (CommittedUnit::batch; the audit log): SHA-256 of the sealed batch as
  // received, and the device's signature over it.
  std::string sealed_batch_sha256;
  std::string signature;
  // The rest of the signed header (also for the audit log, which must
  // rebuild the signed message): the server sealing key id the batch was
  // sealed to and its payload compression (v1.PayloadCompression value).
  uint32_t sealing_key_id = 0;
  uint32_t compression = 0;
};

// What Push answers.
struct PushResult {
  v1::BatchResult result;
  // The sequence the device's next new batch must carry.
  uint64_t next_sequence = 0;
  // This is the stored answer of an earlier delivery; nothing changed.
  bool is_retry_answer = false;
};

// Per-outcome counts of a committed unit.
struct OutcomeCounts {
  uint32_t applied = 0, converged = 0, superseded = 0, conflict = 0, rejected = 0;
};

// One logged change of a committed unit and, for the aggregate counters,
// its case's DIMENSION view (sync/case_dimensions.h) just before and just
// after it, as if it had been committed alone, whatever the batching.
struct RecordDimensionChange {
  std::string case_id;
  std::string record_id;
  std::string record_type;
  // Whether before and after are filled: some observer asks for the record
  // type (CommitObserver::RecordDimensionNeeds) and the change moved its
  // record's view (created the record, changed whether it exists or an
  // asked-for value). A change that moved nothing leaves them empty: it
  // moves no counter. The views hold the record types and fields observers
  // ask for: every record of the case for a change of its registration
  // (whose values are its other records' too), the changed record and the
  // registration for a change of another record (sync/case_dimensions.h
  // CaseDimensionsTracker).
  bool dimensions_changed = false;
  CaseDimensions before;
  CaseDimensions after;
  // When the change was made: its HLC wall time (clamped), the server's
  // clock for server-side changes.
  absl::Time changed_at;
};

// What observers learn about one committed unit (a device batch or one
// server-side change). Ids only, never field values.
struct CommittedUnit {
  // A device id, or "staff:<id>" for a server-side change.
  std::string writer;
  // A device batch: what the service layer verified of it, as Push was
  // given it (valid while the observer's OnCommit runs; copy what is
  // kept). Null for a server-side change.
  const BatchMeta* batch = nullptr;
  // The server-side change's kind; UNSPECIFIED for device batches.
  v1::ChangeKind staff_kind = v1::CHANGE_KIND_UNSPECIFIED;
  // Log range [first_position, last_position]; both 0 when nothing was
  // logged (every change rejected).
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  OutcomeCounts counts;
  // Cases with at least one logged change, in first-touch order.
  std::vector<std::string> case_ids;
  // One per logged change, in log order (a record changed twice appears
  // twice).
  std::vector<RecordDimensionChange> records;
  absl::Time committed_at;
};

// Called inside the commit step, after the group's sync writes are in
// `batch` and before it is committed. Its writes join the same atomic
// commit. A non-OK status fails the whole group: nothing of it is written,
// and every unit in it gets that status (kUnavailable unless the observer
// chose another code). Called from one thread at a time, in commit order.
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  virtual absl::Status OnCommit(const CommittedUnit& unit, storage::WriteBatch* batch) = 0;
  // The record types and fields whose values OnCommit reads from
  // CommittedUnit::records[].before/after; empty (the default): none, and
  // then the ingest reads no views for this observer.
  virtual DimensionNeeds RecordDimensionNeeds() const { return {}; }
  // Called once per group in which OnCommit was called (on any observer),
  // after every unit's OnCommit and before the commit, for writes summed
  // over the whole group. A non-OK status fails the whole group.
  virtual absl::Status BeforeCommit(storage::WriteBatch* batch) { return absl::OkStatus(); }
  // Called once per group in which OnCommit was called (on any observer),
  // after the store's commit, with its status: OK when the group is
  // durable, the failure otherwise (nothing of the group was written).
  virtual void AfterCommit(const storage::WriteBatch* batch, const absl::Status& commit_status) {}
};

// A supervisor or administrator making a server-side change.
struct StaffActor {
  std::string staff_id;  // the writer becomes "staff:<staff_id>"
};

// What an Ingest has committed since it was made: for the shutdown summary
// and for comparing ingest with bare storage writes of the same shape
// (bench/sync_load.cc). Counts committed groups only.
struct IngestStats {
  uint64_t groups = 0;       // synced storage writes
  uint64_t units = 0;        // device batches and server-side changes in them
  uint64_t log_entries = 0;  // canonical log entries written
  uint64_t write_ops = 0;    // puts, merges and deletes in the groups' write batches
  uint64_t write_bytes = 0;  // serialized size of those write batches
  // Wall time committing groups (one at a time), and the part of it spent
  // in the synced storage writes of the groups that committed.
  uint64_t commit_micros = 0;
  uint64_t write_micros = 0;
};

class Ingest {
 public:
  struct Options {
    // Not owned; must outlive the Ingest.
    storage::Store* store = nullptr;
    const Schema* schema = nullptr;
    FieldSealer* sealer = nullptr;
    const Clock* clock = nullptr;
    // Device HLCs further ahead of the clock are clamped (and flagged).
    absl::Duration max_clock_skew = absl::Minutes(5);
    // Bigger batches are refused whole (kInvalidArgument, BATCH_TOO_LARGE).
    uint32_t max_changes_per_batch = 10000;
    // Called for every committed unit, in order. Not owned.
    std::vector<CommitObserver*> observers;
    // Batches prepared (validated, sealed) at once; the others wait for a
    // turn. 0: one per CPU core. Preparing is CPU work: with as many at
    // once as there are cores, a batch is ready for its commit group as
    // soon as it can be instead of dozens finishing late together, and the
    // committer is not starved by them sharing the cores. Turns are taken
    // in arrival order, so that no batch waits behind later ones.
    int max_concurrent_prepares = 0;
  };

  // REQUIRES: store, schema, sealer and clock set.
  explicit Ingest(Options options);
  ~Ingest();
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  // Batches waiting for their turn to prepare (for tests and metrics).
  uint64_t PreparesWaiting() const;

  // Validates, seals and commits one batch (DESIGN §5). Thread-safe: call
  // it from any number of threads; concurrent pushes share one commit.
  // Returns the per-change results once the batch is durable. A change that
  // fails validation is REJECTED in its result and the rest still apply.
  // Errors (each with a SyncErrorDetail, errors.h):
  //   kInvalidArgument   malformed meta (bad batch id, sequence 0), or too
  //                      many changes (BATCH_TOO_LARGE).
  //   kAlreadyExists     the batch id was committed before with different
  //                      content (BATCH_ID_REUSED).
  //   kOutOfRange        the sequence skips ahead (SEQUENCE_GAP,
  //                      expected_sequence set): resend from there.
  //   kFailedPrecondition the sequence is below the expected one and the
  //                      batch id was never seen (SEQUENCE_REPLAY).
  //   kUnavailable       storage or an observer failed; nothing of the
  //                      batch was written; retry the same batch.
  // A batch seen before with the same content returns its stored result
  // (is_retry_answer) and changes nothing.
  absl::StatusOr<PushResult> Push(const BatchMeta& meta, const v1::BatchPayload& payload);

  // A consistent copy of the counters. Thread-safe.
  IngestStats Stats() const;

  // Server-side changes. Each commits one log entry and returns its result.
  // Common errors: kNotFound (case or conflict absent, NOT_FOUND),
  // kInvalidArgument (a value fails the schema, or would leave the case's
  // district outside its region: INVALID_VALUE), kAborted
  // (base_version given and stale: STALE_BASE), kUnavailable (storage).
  // base_version 0 skips the staleness check. An action that would change
  // nothing (assigning to the current officer, transferring to the current
  // region, closing a closed case, reopening an open one) is
  // kFailedPrecondition (NO_CHANGE) and logs nothing.
  absl::StatusOr<v1::ChangeResult> AssignCase(const StaffActor& actor, std::string_view case_id,
                                              std::string_view officer_id, uint64_t base_version);
  // Moves the case to `to_region`, sets its district to `to_district` and
  // assigns it to `officer_id` ("" leaves it unassigned), all in one log
  // entry. Open conflicts follow the case to its new region. When the
  // schema declares a district field, `to_district` must be a district the
  // schema places in `to_region`, or "" to clear the case's district
  // (unless the field is required); without one it must be "". Otherwise
  // kInvalidArgument (INVALID_VALUE) naming the region's districts.
  absl::StatusOr<v1::ChangeResult> TransferCase(const StaffActor& actor, std::string_view case_id,
                                                std::string_view to_region,
                                                std::string_view to_district,
                                                std::string_view officer_id, uint64_t base_version);
  // Closes (with `reason`, a value of the schema's closure reason field,
  // written with the status) or reopens (clearing the reason; `reason`
  // must be "") a case. kInvalidArgument (INVALID_VALUE) for a missing,
  // unknown or unexpected reason.
  absl::StatusOr<v1::ChangeResult> SetCaseStatus(const StaffActor& actor, std::string_view case_id,
                                                 bool close, std::string_view reason,
                                                 uint64_t base_version);
  // Resolves an open conflict, closing it with every losing value
  // (docs/MERGE.md §6): keep the current value (no field write; for a
  // record-level conflict, keep the record), take losing value number
  // `losing_index`, or write `new_value` (validated). base_version is the
  // conflict's version as the supervisor saw it (Conflict.version) and is
  // required. Errors, each with a SyncErrorDetail: kInvalidArgument
  // (base_version 0, a bad index or value, take/new on a record-level
  // conflict: INVALID_VALUE), kNotFound (NOT_FOUND), kFailedPrecondition
  // (already closed: ALREADY_RESOLVED; the record is deleted), kAborted
  // (the conflict changed since: STALE_BASE with current_version).
  enum class Resolution { kKeepCurrent, kTakeLosing, kNewValue };
  absl::StatusOr<v1::ChangeResult> ResolveConflict(const StaffActor& actor,
                                                   const v1::ConflictId& id,
                                                   std::string_view case_id, Resolution resolution,
                                                   uint32_t losing_index,
                                                   const v1::FieldValue& new_value,
                                                   uint64_t base_version);

  // The next log position (for tests and operators).
  absl::StatusOr<uint64_t> NextLogPosition();

 private:
  struct PreparedChange;
  struct PreparedBatch;
  struct Unit;
  using StaffBuilder = std::function<absl::StatusOr<v1::CaseLogEntry>(StateView*)>;

  absl::StatusOr<PreparedBatch> Prepare(const BatchMeta& meta, const v1::BatchPayload& payload);
  absl::Status PrepareChange(const v1::RecordChange& change, const BatchMeta& meta, absl::Time now,
                             SealScope* scope, PreparedChange* out,
                             std::vector<KeyWrite>* key_writes);
  // Sets *stored to `value` as the log keeps it (sealed and digested when
  // the field is encrypted at rest). `scope` may be null
  // (FieldSealer::SealIn).
  absl::Status StoreValue(const v1::FieldDef& def, std::string_view case_id,
                          std::string_view record_id, const v1::FieldValue& value, SealScope* scope,
                          std::vector<KeyWrite>* key_writes, v1::StoredValue* stored);
  absl::StatusOr<v1::ChangeResult> RunStaff(const StaffActor& actor, v1::ChangeKind kind,
                                            StaffBuilder builder);
  // Queues `unit` and returns once the commit thread has committed it.
  void Submit(Unit* unit);
  // The commit thread: commits every queued unit as one group, again and
  // again, until the destructor stops it (after the last queued group).
  void CommitLoop();
  void CommitGroup(const std::vector<Unit*>& group);
  absl::Status ProcessDeviceBatch(Unit* unit, StateView* view, uint64_t* next_position,
                                  CommittedUnit* summary);
  absl::Status ProcessStaff(Unit* unit, StateView* view, uint64_t* next_position,
                            CommittedUnit* summary);
  // Reconciles and logs one entry; a logged entry's case joins
  // summary->case_ids unless `logged_cases` (the unit's) holds it already.
  absl::StatusOr<v1::ChangeResult> LogChange(v1::CaseLogEntry* entry, const ApplyOptions& options,
                                             StateView* view, uint64_t* next_position,
                                             CommittedUnit* summary,
                                             absl::flat_hash_set<std::string>* logged_cases);

  Options options_;
  Reconciler reconciler_;
  // The views of the cases the current group touched, for
  // CommittedUnit::records[].before/after (committer only; reset at the
  // start of each group). Tracks nothing when no observer asks.
  CaseDimensionsTracker dimensions_;
  // The commit group's write batch (committer only), cleared and reused by
  // the next group: its buffer, a megabyte or two, stays mapped instead of
  // being faulted in afresh per group (common/arena_blocks.h says why). A
  // group that wrote more than kMaxKeptGroupBytes leaves a fresh one.
  static constexpr size_t kMaxKeptGroupBytes = size_t{16} << 20;
  storage::WriteBatch group_batch_;

  // Admission to Prepare (Options::max_concurrent_prepares), first come
  // first served: the batch holding turn t prepares once
  // t < prepares_done_ + prepare_limit_.
  mutable absl::Mutex prepare_mu_;
  uint64_t prepare_limit_ = 1;
  uint64_t next_prepare_turn_ ABSL_GUARDED_BY(prepare_mu_) = 0;
  uint64_t prepares_done_ ABSL_GUARDED_BY(prepare_mu_) = 0;

  absl::Mutex mu_;
  std::deque<Unit*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Committer only.
  std::optional<uint64_t> next_position_;
  // The key writes of the server-side change being built (committer only).
  std::vector<KeyWrite>* staff_key_writes_ = nullptr;
  mutable absl::Mutex stats_mu_;
  IngestStats stats_ ABSL_GUARDED_BY(stats_mu_);
  // The commit thread (CommitLoop), started last in the constructor. It
  // runs at the CPU priority of the thread that constructs the Ingest: the
  // server's handlers run below it (server/work_pool.h), so that the one
  // step every push waits for is not slowed by the batches being prepared.
  std::thread committer_;
};

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_INGEST_H_
