#include "server/sync_service.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "admin/officers.h"
#include "admin/principals.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "server/audit_service.h"
#include "server/rpc.h"
#include "storage/key_codec.h"
#include "sync/errors.h"
#include "sync/pull.h"
#include "sync/scope.h"

namespace fieldsync::server {
namespace {

constexpr char kEnroll[] = "/fieldsync.v1.SyncService/Enroll";
constexpr char kPush[] = "/fieldsync.v1.SyncService/Push";
constexpr char kPull[] = "/fieldsync.v1.SyncService/Pull";
constexpr char kGetSchema[] = "/fieldsync.v1.SyncService/GetSchema";
constexpr char kGetSealingKeys[] = "/fieldsync.v1.SyncService/GetSealingKeys";

absl::Time NowOf(const SyncServiceDeps& deps) {
  return deps.clock != nullptr ? deps.clock->Now() : absl::Now();
}

// The keys a device may seal to at `now`, ascending: the current key and
// the earlier ones within their cutoff.
void AddAcceptedSealingKeys(const admin::SealingKeySet& keys, absl::Time now,
                            google::protobuf::RepeatedPtrField<v1::SealingKey>* out) {
  for (const admin::PreparedSealingKey& k : keys.keys()) {
    if (now > k.not_after) continue;
    v1::SealingKey* key = out->Add();
    key->set_key_id(k.key_id);
    key->set_public_key(crypto::ToString(k.public_key));
    if (k.not_after != absl::InfiniteFuture()) {
      key->set_not_after_unix_micros(absl::ToUnixMicros(k.not_after));
    }
  }
}

// The audit signing key in force (32 bytes): a rotation replaces it while
// the server runs (AuditLog::CurrentKey); the key loaded at start without
// an audit log.
std::string AuditKeyInForce(const SyncServiceDeps& deps) {
  if (deps.audit_log != nullptr) {
    absl::StatusOr<protocol::NoteVerifier> key = deps.audit_log->CurrentKey();
    if (key.ok()) return crypto::ToString(key->public_key());
  }
  return crypto::ToString(deps.keys->audit_public_key);
}

// Gives an error from below a machine-readable reason by its code, so that
// every refusal of a sync or case call carries one (PROTOCOL.md §8).
absl::Status WithReason(absl::Status s) {
  if (s.ok() || sync::GetSyncErrorDetail(s).has_value()) return s;
  v1::SyncErrorReason reason;
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
      reason = v1::SYNC_ERROR_REASON_UNAVAILABLE;
      break;
    case absl::StatusCode::kNotFound:
      reason = v1::SYNC_ERROR_REASON_NOT_FOUND;
      break;
    case absl::StatusCode::kInvalidArgument:
      reason = v1::SYNC_ERROR_REASON_MALFORMED;
      break;
    case absl::StatusCode::kAborted:
      reason = v1::SYNC_ERROR_REASON_STALE_BASE;
      break;
    default:
      return s;  // authentication and internal errors: the message says it
  }
  return sync::SyncError(s.code(), reason, std::string(s.message()));
}

// The text of an ENUM or STRING value (region and officer fields).
std::string FieldText(const v1::FieldValue& v) {
  if (v.has_enum_value()) return v.enum_value();
  if (v.has_string_value()) return v.string_value();
  return "";
}

// The current text value of a field of the case's registration record;
// nullopt when the case does not exist.
absl::StatusOr<std::optional<std::string>> CaseField(const sync::ChangeFeed& feed,
                                                     const std::string& case_id,
                                                     const std::string& field) {
  ASSIGN_OR_RETURN(std::optional<v1::FieldValue> v, feed.ReadField(case_id, case_id, field));
  if (!v.has_value()) return std::nullopt;
  return FieldText(*v);
}

// Who a writer is to a person: a device's officer and label, from the
// registry (cached for one answer); "" for staff ("staff:<id>") and for a
// device the registry does not know.
class WriterNames {
 public:
  explicit WriterNames(storage::Store* store) : registry_(store) {}

  const std::pair<std::string, std::string>& Of(const std::string& writer) {
    auto it = cache_.find(writer);
    if (it != cache_.end()) return it->second;
    std::pair<std::string, std::string> names;
    if (!absl::StartsWith(writer, "staff:")) {
      absl::StatusOr<v1::Principal> p = registry_.Get({v1::PRINCIPAL_KIND_DEVICE, writer});
      if (p.ok()) names = {p->officer_id(), p->device_label()};
    }
    return cache_.emplace(writer, std::move(names)).first->second;
  }

  void Fill(v1::Conflict* c) {
    if (!c->current_writer().empty()) {
      const auto& [officer, label] = Of(c->current_writer());
      c->set_current_officer_id(officer);
      c->set_current_device_label(label);
    }
    for (v1::LosingValue& lv : *c->mutable_losing_values()) {
      for (v1::ConflictWrite& w : *lv.mutable_writes()) {
        const auto& [officer, label] = Of(w.writer());
        w.set_officer_id(officer);
        w.set_device_label(label);
      }
    }
  }

 private:
  admin::PrincipalRegistry registry_;
  absl::flat_hash_map<std::string, std::pair<std::string, std::string>> cache_;
};

bool HasRegion(const v1::Principal& p, std::string_view region) {
  return std::find(p.regions().begin(), p.regions().end(), region) != p.regions().end();
}

absl::Status OutOfScope(std::string_view what, std::string_view case_id = "") {
  v1::SyncErrorDetail detail;
  detail.set_case_id(std::string(case_id));
  return sync::SyncError(absl::StatusCode::kPermissionDenied, v1::SYNC_ERROR_REASON_OUT_OF_SCOPE,
                         what, detail);
}

// Records durably in the audit log that `caller` receives case data of
// `case_ids` (DESIGN §8), before it is sent: when this fails the data is
// withheld (kUnavailable: retry). Nothing to record without a log or cases.
absl::Status RecordCaseAccess(const SyncServiceDeps& deps, const Caller& caller,
                              protocol::AccessKind access, uint64_t from_position,
                              uint64_t to_position, const std::vector<std::string>& case_ids) {
  if (deps.audit_log == nullptr || case_ids.empty()) return absl::OkStatus();
  protocol::CaseAccess event;
  event.principal_kind = caller.principal.kind() == v1::PRINCIPAL_KIND_DEVICE
                             ? protocol::PrincipalKind::kDevice
                             : protocol::PrincipalKind::kStaff;
  event.principal_id = caller.principal.id();
  event.access = access;
  event.from_position = from_position;
  event.to_position = to_position;
  for (const std::string& id : case_ids) {
    ASSIGN_OR_RETURN(Uuid uuid, ParseUuid(id));
    event.case_ids.push_back(uuid);
  }
  const absl::Time now = NowOf(deps);
  storage::WriteBatch batch;
  audit::AuditSession session(deps.audit_log, &batch);
  absl::Status s = session.Append(protocol::Event{now, std::move(event)}).status();
  if (s.ok()) s = deps.store->Commit(&batch);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrFormat(
        "the read could not be recorded in the audit log (%s); nothing was sent: retry",
        s.message()));
  }
  session.Committed();
  return absl::OkStatus();
}

// The distinct case ids of `changes`, in first-seen order.
std::vector<std::string> CaseIdsOf(const v1::PulledChanges& changes) {
  std::vector<std::string> out;
  absl::flat_hash_set<std::string_view> seen;
  for (const v1::PulledChange& c : changes.changes()) {
    if (seen.insert(c.case_id()).second) out.push_back(c.case_id());
  }
  return out;
}

// What a pull chunk read, for the access ledger.
absl::StatusOr<audit::AccessRead> AccessReadOf(const Caller& caller, uint64_t from_position,
                                               const v1::PulledChanges& changes) {
  audit::AccessRead read;
  read.principal_kind = caller.principal.kind() == v1::PRINCIPAL_KIND_DEVICE
                            ? protocol::PrincipalKind::kDevice
                            : protocol::PrincipalKind::kStaff;
  read.principal_id = caller.principal.id();
  read.access = protocol::AccessKind::kDevicePull;
  read.from_position = from_position;
  read.to_position = changes.next_cursor();
  read.changes.reserve(changes.changes_size());
  for (const v1::PulledChange& c : changes.changes()) {
    ASSIGN_OR_RETURN(Uuid uuid, ParseUuid(c.case_id()));
    read.changes.emplace_back(c.position(), uuid);
  }
  return read;
}

// Streams one pull (PROTOCOL.md §6) of a sync::PullStream. Chunks are made
// on the work pool (when there is one): read (one storage snapshot each),
// recorded (audit/access_ledger.h: before the chunk can leave), sealed.
// The next chunk is made while the previous one is being written, so at
// most two chunks per stream are in memory (one being written, one made
// or being made) and a slow device holds no thread. gRPC's polling threads
// only authorize the call and start writes.
class PullReactor final : public grpc::ServerWriteReactor<v1::PullChunk> {
 public:
  PullReactor(const SyncServiceDeps& deps, audit::AccessLedger* ledger,
              grpc::CallbackServerContext* context, const v1::PullRequest& request)
      : deps_(deps), ledger_(ledger), start_(absl::Now()) {
    absl::StatusOr<Caller> caller = deps_.auth->Authorize(*context, kPull, &who_);
    if (!caller.ok()) {
      Done(caller.status());
      return;
    }
    // The principal's pull rate and concurrent calls (server/limits.h).
    absl::StatusOr<ConcurrencyLimit::Lease> lease = AdmitCall(deps_.call_limits, caller->uri);
    if (absl::Status s = lease.ok() ? AdmitPull(deps_.call_limits, caller->uri) : lease.status();
        !s.ok()) {
      Done(s);
      return;
    }
    lease_ = *std::move(lease);
    caller_ = *std::move(caller);
    absl::Status s = Prepare(request);
    if (!s.ok()) {
      Done(WithReason(s));
      return;
    }
    Action next;
    {
      absl::MutexLock lock(&mu_);
      next = DecideLocked();
    }
    Perform(next);
  }

  void OnWriteDone(bool ok) override {
    Action next;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finished_) {
        finished_ = true;
        next.finish = absl::CancelledError("the pull stream was closed by the device");
      } else {
        next = DecideLocked();
      }
    }
    Perform(next);
  }

  void OnDone() override {
    LogRpc(kPull, who_, final_status_, absl::Now() - start_);
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      if (producing_) return;  // the chunk being made deletes the reactor
    }
    delete this;
  }

 private:
  // What to do after a state change, decided under mu_ and done outside it
  // (gRPC may run a reaction inline).
  struct Action {
    bool produce = false;
    bool write = false;
    std::optional<absl::Status> finish;
  };

  absl::Status Prepare(const v1::PullRequest& request) {
    const v1::Principal& p = caller_.principal;
    is_device_ = p.role() == v1::ROLE_DEVICE;
    if (is_device_) {
      ASSIGN_OR_RETURN(device_uuid_, ParseUuid(p.id()));
      if (p.receiving_public_key().size() != 32) {
        return absl::FailedPreconditionError("the device has no receiving key: re-enrol");
      }
    }
    sync::PullStream::Request r;
    r.cursor = request.cursor();
    r.backfill_case_ids.assign(request.backfill_case_ids().begin(),
                               request.backfill_case_ids().end());
    r.max_changes = deps_.max_pull_chunk_changes;
    r.max_bytes = deps_.max_pull_chunk_bytes;
    if (request.max_changes_per_chunk() != 0) {
      // A device may ask for smaller chunks, down to the floor.
      const size_t floor = std::min<size_t>(r.max_changes, deps_.min_pull_chunk_changes);
      r.max_changes = std::clamp<size_t>(request.max_changes_per_chunk(), floor, r.max_changes);
    }
    if (request.max_bytes_per_chunk() != 0) {
      r.max_bytes = std::min<size_t>(r.max_bytes, request.max_bytes_per_chunk());
    }
    ASSIGN_OR_RETURN(stream_, sync::PullStream::Start(deps_.feed, sync::ScopeOfPrincipal(p), r));
    return absl::OkStatus();
  }

  Action DecideLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action a;
    if (finished_) return a;
    if (!writing_) {
      if (ready_.has_value()) {
        chunk_ = *std::move(ready_);
        ready_.reset();
        writing_ = true;
        a.write = true;
      } else if (!producing_ && (!error_.ok() || no_more_)) {
        finished_ = true;
        a.finish = error_;
        return a;
      }
    }
    if (!producing_ && !ready_.has_value() && !no_more_ && error_.ok()) {
      producing_ = true;
      a.produce = true;
    }
    return a;
  }

  void Perform(const Action& a) {
    // While producing_ is set the reactor outlives OnDone, so schedule the
    // next chunk before the write that may end the call.
    if (a.produce) {
      if (deps_.pool == nullptr) {
        Produce();
      } else {
        deps_.pool->Run([this] { Produce(); });
      }
    }
    if (a.write) StartWrite(&chunk_);
    if (a.finish.has_value()) Done(*a.finish);
  }

  // Makes the next chunk (one at a time: only while producing_).
  void Produce() {
    v1::PullChunk chunk;
    bool last = false;
    absl::Status s = MakeChunk(&chunk, &last);
    Action next;
    bool destroy = false;
    {
      absl::MutexLock lock(&mu_);
      producing_ = false;
      if (done_) {
        destroy = true;
      } else {
        if (s.ok()) {
          ready_ = std::move(chunk);
          no_more_ = last;
        } else {
          error_ = WithReason(s);
        }
        next = DecideLocked();
      }
    }
    if (destroy) {
      delete this;
      return;
    }
    Perform(next);
  }

  // Reads, records and seals the stream's next chunk.
  absl::Status MakeChunk(v1::PullChunk* out, bool* last) {
    ASSIGN_OR_RETURN(std::unique_ptr<sync::PullStream::Chunk> chunk, stream_->Next());
    const v1::PulledChanges& changes = *chunk->changes;
    // Who read which cases is in the audit log before the chunk leaves.
    RETURN_IF_ERROR(RecordRead(chunk->cursor, changes));
    *last = stream_->done();
    if (is_device_) {
      ASSIGN_OR_RETURN(
          *out, protocol::SealPullChunk(changes, device_uuid_, chunk->cursor,
                                        caller_.principal.receiving_public_key(), *deps_.random));
    } else {
      out->set_cursor(chunk->cursor);
      out->set_next_cursor(changes.next_cursor());
      out->set_caught_up(changes.caught_up());
      *out->mutable_clear_changes() = changes;
    }
    return absl::OkStatus();
  }

  // Records the chunk's read: through the ledger (a repeat within its
  // window is covered by the entry already written), else one entry.
  absl::Status RecordRead(uint64_t chunk_cursor, const v1::PulledChanges& changes) {
    if (ledger_ == nullptr) {
      return RecordCaseAccess(deps_, caller_, protocol::AccessKind::kDevicePull, chunk_cursor,
                              changes.next_cursor(), CaseIdsOf(changes));
    }
    ASSIGN_OR_RETURN(audit::AccessRead read, AccessReadOf(caller_, chunk_cursor, changes));
    return ledger_->Record(read).status();
  }

  void Done(absl::Status status) {
    final_status_ = status;
    Finish(ToGrpcStatus(status));
  }

  const SyncServiceDeps& deps_;
  audit::AccessLedger* const ledger_;  // null: one entry per chunk with changes
  // The principal to log, also for a refused pull (Authorize's `who`).
  std::string who_ = "unauthenticated";
  const absl::Time start_;
  Caller caller_;
  bool is_device_ = false;
  Uuid device_uuid_{};
  // Used by one Produce at a time.
  std::unique_ptr<sync::PullStream> stream_;
  // The chunk being written (set under mu_ before StartWrite, untouched
  // until OnWriteDone).
  v1::PullChunk chunk_;
  absl::Status final_status_;
  // The stream's slot among its principal's concurrent calls.
  ConcurrencyLimit::Lease lease_;

  absl::Mutex mu_;
  bool producing_ ABSL_GUARDED_BY(mu_) = false;  // a Produce is queued or running
  bool writing_ ABSL_GUARDED_BY(mu_) = false;    // a write is outstanding
  bool finished_ ABSL_GUARDED_BY(mu_) = false;   // Finish was called or decided
  bool done_ ABSL_GUARDED_BY(mu_) = false;       // OnDone ran
  bool no_more_ ABSL_GUARDED_BY(mu_) = false;    // the last chunk was made
  std::optional<v1::PullChunk> ready_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

SyncServiceImpl::SyncServiceImpl(SyncServiceDeps deps) : deps_(deps) {
  if (deps_.audit_log != nullptr && deps_.store != nullptr) {
    audit::AccessLedgerOptions options;
    options.repeat_window = deps_.pull_access_repeat_window;
    access_ledger_ = std::make_unique<audit::AccessLedger>(
        deps_.audit_log, deps_.store, deps_.clock != nullptr ? deps_.clock : RealClock::Get(),
        options);
  }
}

grpc::ServerUnaryReactor* SyncServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                  const v1::EnrollRequest* request,
                                                  v1::EnrollResponse* response) {
  return RunUnaryBlocking(context, kEnroll, deps_.auth, deps_.pool,
                          [this, context, request, response](const Caller&) -> absl::Status {
                            return DoEnroll(PeerAddress(context->peer()), *request, response);
                          });
}

absl::Status SyncServiceImpl::DoEnroll(const std::string& address, const v1::EnrollRequest& request,
                                       v1::EnrollResponse* response) {
  if (const size_t size = request.ByteSizeLong(); size > deps_.max_enroll_request_bytes) {
    return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED,
                           absl::StrFormat("the enrolment request is %d bytes, over the %d "
                                           "allowed (a CSR and two keys)",
                                           size, deps_.max_enroll_request_bytes));
  }
  if (deps_.enrolment_attempts != nullptr) {
    const admin::EnrolmentAdmission admission = deps_.enrolment_attempts->Admit(address);
    using Verdict = admin::EnrolmentAdmission::Verdict;
    switch (admission.verdict) {
      case Verdict::kAllowed:
        break;
      case Verdict::kAddressWaiting:
        return RateLimited("enrolment attempts from this address failed", admission.retry_after);
      case Verdict::kAddressLockedOut:
        return RateLimited("this address is locked out of enrolment after failed attempts",
                           admission.retry_after);
      case Verdict::kServerBusy:
        return ServerBusy("the server is at its rate of enrolment attempts", admission.retry_after);
    }
  }
  absl::Status enrolled = EnrollDevice(request, response);
  if (deps_.enrolment_attempts != nullptr) {
    std::optional<v1::SyncErrorDetail> detail = sync::GetSyncErrorDetail(enrolled);
    if (enrolled.ok()) {
      deps_.enrolment_attempts->Succeeded(address);
    } else if (detail.has_value() &&
               detail->reason() == v1::SYNC_ERROR_REASON_ENROLMENT_CODE_INVALID) {
      deps_.enrolment_attempts->Failed(address);
    }
  }
  return enrolled;
}

absl::Status SyncServiceImpl::EnrollDevice(const v1::EnrollRequest& request,
                                           v1::EnrollResponse* response) {
  admin::EnrolmentRequest enrol;
  enrol.code = request.enrolment_code();
  enrol.csr_pem = request.csr_pem();
  enrol.signing_public_key = request.signing_public_key();
  enrol.receiving_public_key = request.receiving_public_key();
  enrol.device_label = request.device_label();
  if (request.device_label().size() > 100) {
    return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED,
                           "device_label is longer than 100 bytes");
  }
  ASSIGN_OR_RETURN(admin::EnrolledDevice device, deps_.enrolment->Enroll(enrol));
  const admin::ServerKeys& keys = *deps_.keys;
  response->set_device_id(device.principal.id());
  response->set_certificate_pem(std::move(device.certificate_pem));
  response->set_ca_certificate_pem(deps_.cas->Get()->trust_bundle_pem);
  AddAcceptedSealingKeys(*deps_.sealing_keys->Snapshot(), NowOf(deps_),
                         response->mutable_sealing_keys());
  response->set_audit_public_key(AuditKeyInForce(deps_));
  response->set_audit_origin(keys.audit_origin);
  response->set_officer_id(device.principal.officer_id());
  if (!device.principal.regions().empty()) response->set_region(device.principal.regions(0));
  response->set_next_sequence(1);
  log::Info("device.enrolled", {{"device", device.principal.id()}});
  return absl::OkStatus();
}

absl::Status SyncServiceImpl::DoPush(const Caller& caller, const v1::PushRequest& request,
                                     v1::PushResponse* response) {
  PushKeys keys;
  keys.device_id = caller.principal.id();
  keys.signing_public_key = caller.principal.signing_public_key();
  // Held for the whole open: a rotation meanwhile does not pull the key
  // from under it.
  const std::shared_ptr<const admin::SealingKeySet> sealing_keys = deps_.sealing_keys->Snapshot();
  keys.sealing_keys = sealing_keys.get();
  keys.now = NowOf(deps_);
  ASSIGN_OR_RETURN(OpenedBatch batch,
                   OpenSealedBatch(request.batch(), request.ByteSizeLong(), keys, deps_.limits));
  sync::BatchMeta meta;
  meta.device_id = caller.principal.id();
  meta.officer_id = caller.principal.officer_id();
  if (!caller.principal.regions().empty()) meta.region = caller.principal.regions(0);
  meta.batch_id = request.batch().header().batch_id();
  meta.sequence = batch.header.sequence;
  meta.sealed_batch_sha256 = std::move(batch.payload_sha256);
  meta.signature = std::move(batch.signature);
  meta.sealing_key_id = batch.header.sealing_key_id;
  meta.compression = static_cast<uint32_t>(request.batch().compression());
  ASSIGN_OR_RETURN(sync::PushResult result, deps_.ingest->Push(meta, *batch.payload));
  response->set_batch_id(meta.batch_id);
  *response->mutable_results() = std::move(*result.result.mutable_results());
  response->set_first_position(result.result.first_position());
  response->set_last_position(result.result.last_position());
  response->set_next_sequence(result.next_sequence);
  response->set_is_retry_answer(result.is_retry_answer);
  if (deps_.cas != nullptr) {
    response->set_certificate_renewal_requested(deps_.cas->Get()->MustRenew(caller.principal));
  }
  if (deps_.audit_log != nullptr && result.result.last_position() != 0) {
    // The receipt is an extra: a batch is committed whether or not one can
    // be made now (the device may fetch it later from AuditService).
    absl::StatusOr<audit::Receipt> receipt =
        deps_.audit_log->ReceiptForBatch(meta.device_id, batch.header.batch_id);
    if (receipt.ok()) ToProto(*receipt, response->mutable_audit_receipt());
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* SyncServiceImpl::Push(grpc::CallbackServerContext* context,
                                                const v1::PushRequest* request,
                                                v1::PushResponse* response) {
  return RunUnaryBlocking(context, kPush, deps_.auth, deps_.pool,
                          [this, request, response](const Caller& caller) {
                            return WithReason(DoPush(caller, *request, response));
                          });
}

grpc::ServerWriteReactor<v1::PullChunk>* SyncServiceImpl::Pull(grpc::CallbackServerContext* context,
                                                               const v1::PullRequest* request) {
  return new PullReactor(deps_, access_ledger_.get(), context, *request);
}

grpc::ServerUnaryReactor* SyncServiceImpl::GetSchema(grpc::CallbackServerContext* context,
                                                     const v1::GetSchemaRequest* request,
                                                     v1::GetSchemaResponse* response) {
  // No storage read beyond the caller's principal: runs on gRPC's thread.
  return RunUnary(context, kGetSchema, deps_.auth,
                  [this, request, response](const Caller&) -> absl::Status {
                    const sync::Schema& schema = *deps_.schema;
                    response->set_digest(schema.digest());
                    response->set_version(schema.proto().version());
                    if (request->known_digest() == schema.digest()) {
                      response->set_unchanged(true);
                    } else {
                      *response->mutable_schema() = schema.proto();
                    }
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* SyncServiceImpl::GetSealingKeys(
    grpc::CallbackServerContext* context, const v1::GetSealingKeysRequest* /*request*/,
    v1::GetSealingKeysResponse* response) {
  // No storage read beyond the caller's principal: runs on gRPC's thread.
  return RunUnary(context, kGetSealingKeys, deps_.auth,
                  [this, response](const Caller&) -> absl::Status {
                    AddAcceptedSealingKeys(*deps_.sealing_keys->Snapshot(), NowOf(deps_),
                                           response->mutable_sealing_keys());
                    return absl::OkStatus();
                  });
}

// ---------------------------------------------------------------------------
// CaseService.

absl::Status CaseServiceImpl::CheckCaseInScope(const Caller& caller, const std::string& case_id) {
  absl::StatusOr<Uuid> id = ParseUuid(case_id);
  if (!id.ok()) {
    return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_MALFORMED,
                           "case_id is not a UUID");
  }
  ASSIGN_OR_RETURN(sync::CaseReach reach,
                   deps_.feed->Reach(sync::ScopeOfPrincipal(caller.principal), *id));
  switch (reach) {
    case sync::CaseReach::kInScope:
      return absl::OkStatus();
    case sync::CaseReach::kOutOfScope:
      return OutOfScope(absl::StrFormat("case %s is not in the caller's regions", case_id),
                        case_id);
    case sync::CaseReach::kNoSuchCase:
      break;
  }
  v1::SyncErrorDetail detail;
  detail.set_case_id(case_id);
  return sync::SyncError(absl::StatusCode::kNotFound, v1::SYNC_ERROR_REASON_NOT_FOUND,
                         absl::StrFormat("case %s does not exist", case_id), detail);
}

absl::Status CaseServiceImpl::CheckOfficer(const std::string& case_id,
                                           const std::string& officer_id,
                                           const std::string& region) {
  absl::Status s =
      admin::CheckOfficerOfRegion(admin::PrincipalRegistry(deps_.store), officer_id, region);
  if (!absl::IsInvalidArgument(s)) return WithReason(s);
  v1::SyncErrorDetail detail;
  detail.set_case_id(case_id);
  detail.set_field(deps_.schema->officer_field());
  return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_INVALID_VALUE,
                         std::string(s.message()), detail);
}

absl::Status CaseServiceImpl::CheckRegionInScope(const Caller& caller, const std::string& region) {
  if (absl::Status known = deps_.schema->CheckRegion(region); !known.ok()) {
    return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_INVALID_VALUE,
                           std::string(known.message()));
  }
  if (!HasRegion(caller.principal, region)) {
    return OutOfScope(absl::StrFormat("region %s is not one of the caller's regions (%s)", region,
                                      absl::StrJoin(caller.principal.regions(), ", ")));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* CaseServiceImpl::ListCases(grpc::CallbackServerContext* context,
                                                     const v1::ListCasesRequest* request,
                                                     v1::ListCasesResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/ListCases", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        sync::ChangeFeed::CaseFilter filter;
        if (request->region().empty()) {
          filter.regions.assign(caller.principal.regions().begin(),
                                caller.principal.regions().end());
        } else {
          RETURN_IF_ERROR(CheckRegionInScope(caller, request->region()));
          filter.regions.push_back(request->region());
        }
        if (!request->status().empty() && request->status() != "open" &&
            request->status() != "closed") {
          return sync::SyncError(absl::StatusCode::kInvalidArgument,
                                 v1::SYNC_ERROR_REASON_INVALID_VALUE,
                                 "status must be open, closed or empty");
        }
        if (!request->officer_id().empty()) {
          absl::StatusOr<v1::Principal> officer =
              admin::PrincipalRegistry(deps_.store)
                  .Get({v1::PRINCIPAL_KIND_OFFICER, request->officer_id()});
          if (absl::IsNotFound(officer.status()) ||
              (officer.ok() &&
               std::none_of(filter.regions.begin(), filter.regions.end(),
                            [&](const std::string& r) { return HasRegion(*officer, r); }))) {
            return sync::SyncError(
                absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_INVALID_VALUE,
                absl::StrFormat("no officer %s in %s: list them with fieldsync officer list",
                                absl::CHexEscape(request->officer_id()),
                                request->region().empty() ? "the caller's regions"
                                                          : "region " + request->region()));
          }
          if (!officer.ok()) return WithReason(officer.status());
          filter.officer_id = request->officer_id();
        }
        filter.status = request->status();
        filter.has_conflicts = request->has_conflicts();
        absl::StatusOr<v1::ListCasesResponse> page =
            deps_.feed->ListCases(filter, request->page_size(), request->page_token());
        if (!page.ok()) return WithReason(page.status());
        *response = *std::move(page);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::GetCase(grpc::CallbackServerContext* context,
                                                   const v1::GetCaseRequest* request,
                                                   v1::GetCaseResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/GetCase", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(CheckCaseInScope(caller, request->case_id()));
        absl::StatusOr<v1::GetCaseResponse> got =
            deps_.feed->GetCase(request->case_id(), sync::ReadScope::AllClasses());
        if (!got.ok()) return WithReason(got.status());
        WriterNames names(deps_.store);
        for (v1::CaseRecordView& record : *got->mutable_records()) {
          for (v1::CaseFieldView& field : *record.mutable_fields()) {
            const auto& [officer, label] = names.Of(field.writer());
            field.set_officer_id(officer);
            field.set_device_label(label);
          }
        }
        RETURN_IF_ERROR(WithReason(RecordCaseAccess(deps_, caller, protocol::AccessKind::kCaseView,
                                                    0, 0, {got->summary().case_id()})));
        *response = *std::move(got);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::GetCaseHistory(grpc::CallbackServerContext* context,
                                                          const v1::GetCaseHistoryRequest* request,
                                                          v1::GetCaseHistoryResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/GetCaseHistory", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(CheckCaseInScope(caller, request->case_id()));
        absl::StatusOr<v1::GetCaseHistoryResponse> page = deps_.feed->CaseHistory(
            request->case_id(), request->page_size(), request->page_token());
        if (!page.ok()) return WithReason(page.status());
        WriterNames names(deps_.store);
        for (v1::CaseHistoryEntry& e : *page->mutable_entries()) {
          const auto& [officer, label] = names.Of(e.writer());
          e.set_officer_id(officer);
          e.set_device_label(label);
        }
        RETURN_IF_ERROR(
            WithReason(RecordCaseAccess(deps_, caller, protocol::AccessKind::kCaseHistory, 0, 0,
                                        {FormatUuid(*ParseUuid(request->case_id()))})));
        *response = *std::move(page);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::GetConflict(grpc::CallbackServerContext* context,
                                                       const v1::GetConflictRequest* request,
                                                       v1::Conflict* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/GetConflict", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        absl::StatusOr<v1::Conflict> got =
            deps_.feed->GetConflict(request->id(), sync::ReadScope::AllClasses());
        if (!got.ok()) return WithReason(got.status());
        RETURN_IF_ERROR(CheckCaseInScope(caller, got->case_id()));
        WriterNames(deps_.store).Fill(&*got);
        RETURN_IF_ERROR(WithReason(RecordCaseAccess(
            deps_, caller, protocol::AccessKind::kConflictView, 0, 0, {got->case_id()})));
        *response = *std::move(got);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::ListConflicts(grpc::CallbackServerContext* context,
                                                         const v1::ListConflictsRequest* request,
                                                         v1::ListConflictsResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/ListConflicts", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        absl::StatusOr<v1::ListConflictsResponse> page;
        if (!request->case_id().empty()) {
          RETURN_IF_ERROR(CheckCaseInScope(caller, request->case_id()));
          if (!request->region().empty()) {
            RETURN_IF_ERROR(CheckRegionInScope(caller, request->region()));
          }
          page = deps_.feed->ListCaseConflicts(request->case_id(), sync::ReadScope::AllClasses());
          if (page.ok() && !request->region().empty()) {
            // The case's conflicts, when it is in the region asked for.
            auto* list = page->mutable_conflicts();
            list->erase(std::remove_if(
                            list->begin(), list->end(),
                            [&](const v1::Conflict& c) { return c.region() != request->region(); }),
                        list->end());
          }
        } else {
          RETURN_IF_ERROR(CheckRegionInScope(caller, request->region()));
          page = deps_.feed->ListConflicts(request->region(), request->page_size(),
                                           request->page_token(), sync::ReadScope::AllClasses());
        }
        if (!page.ok()) return WithReason(page.status());
        WriterNames names(deps_.store);
        for (v1::Conflict& c : *page->mutable_conflicts()) names.Fill(&c);
        std::vector<std::string> cases;
        for (const v1::Conflict& c : page->conflicts()) {
          if (std::find(cases.begin(), cases.end(), c.case_id()) == cases.end()) {
            cases.push_back(c.case_id());
          }
        }
        RETURN_IF_ERROR(WithReason(
            RecordCaseAccess(deps_, caller, protocol::AccessKind::kConflictList, 0, 0, cases)));
        *response = *std::move(page);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::ResolveConflict(
    grpc::CallbackServerContext* context, const v1::ResolveConflictRequest* request,
    v1::ResolveConflictResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/ResolveConflict", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        // The conflict's case is the case of the log entry that made it.
        absl::StatusOr<std::string> case_id = deps_.feed->CaseOfConflict(request->id());
        if (!case_id.ok()) return WithReason(case_id.status());
        RETURN_IF_ERROR(CheckCaseInScope(caller, *case_id));
        sync::Ingest::Resolution resolution;
        switch (request->choice_case()) {
          case v1::ResolveConflictRequest::kKeepCurrent:
            resolution = sync::Ingest::Resolution::kKeepCurrent;
            break;
          case v1::ResolveConflictRequest::kTakeLosing:
            resolution = sync::Ingest::Resolution::kTakeLosing;
            break;
          case v1::ResolveConflictRequest::kNewValue:
            resolution = sync::Ingest::Resolution::kNewValue;
            break;
          default:
            return sync::SyncError(absl::StatusCode::kInvalidArgument,
                                   v1::SYNC_ERROR_REASON_MALFORMED,
                                   "choose keep_current, take_losing or new_value");
        }
        absl::StatusOr<v1::ChangeResult> result = deps_.ingest->ResolveConflict(
            sync::StaffActor{caller.principal.id()}, request->id(), *case_id, resolution,
            request->losing_index(), request->new_value(), request->base_version());
        if (!result.ok()) return WithReason(result.status());
        *response->mutable_result() = *std::move(result);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::AssignCase(grpc::CallbackServerContext* context,
                                                      const v1::AssignCaseRequest* request,
                                                      v1::AssignCaseResponse* response) {
  return RunUnaryBlocking(
      context, "/fieldsync.v1.CaseService/AssignCase", deps_.auth, deps_.pool,
      [this, request, response](const Caller& caller) -> absl::Status {
        RETURN_IF_ERROR(CheckCaseInScope(caller, request->case_id()));
        // The case's region, to check the officer against (a
        // transfer meanwhile makes the change stale: base).
        ASSIGN_OR_RETURN(std::optional<std::string> region,
                         CaseField(*deps_.feed, request->case_id(), deps_.schema->region_field()));
        RETURN_IF_ERROR(
            CheckOfficer(request->case_id(), request->officer_id(), region.value_or("")));
        absl::StatusOr<v1::ChangeResult> result =
            deps_.ingest->AssignCase(sync::StaffActor{caller.principal.id()}, request->case_id(),
                                     request->officer_id(), request->base_version());
        if (!result.ok()) return WithReason(result.status());
        *response->mutable_result() = *std::move(result);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* CaseServiceImpl::TransferCase(grpc::CallbackServerContext* context,
                                                        const v1::TransferCaseRequest* request,
                                                        v1::TransferCaseResponse* response) {
  return RunUnaryBlocking(context, "/fieldsync.v1.CaseService/TransferCase", deps_.auth, deps_.pool,
                          [this, request, response](const Caller& caller) -> absl::Status {
                            RETURN_IF_ERROR(CheckCaseInScope(caller, request->case_id()));
                            if (!request->officer_id().empty() &&
                                deps_.schema->CheckRegion(request->to_region()).ok()) {
                              RETURN_IF_ERROR(CheckOfficer(
                                  request->case_id(), request->officer_id(), request->to_region()));
                            }
                            absl::StatusOr<v1::ChangeResult> result = deps_.ingest->TransferCase(
                                sync::StaffActor{caller.principal.id()}, request->case_id(),
                                request->to_region(), request->to_district(), request->officer_id(),
                                request->base_version());
                            if (!result.ok()) return WithReason(result.status());
                            *response->mutable_result() = *std::move(result);
                            return absl::OkStatus();
                          });
}

grpc::ServerUnaryReactor* CaseServiceImpl::SetCaseStatus(grpc::CallbackServerContext* context,
                                                         const v1::SetCaseStatusRequest* request,
                                                         v1::SetCaseStatusResponse* response) {
  return RunUnaryBlocking(context, "/fieldsync.v1.CaseService/SetCaseStatus", deps_.auth,
                          deps_.pool,
                          [this, request, response](const Caller& caller) -> absl::Status {
                            RETURN_IF_ERROR(CheckCaseInScope(caller, request->case_id()));
                            absl::StatusOr<v1::ChangeResult> result = deps_.ingest->SetCaseStatus(
                                sync::StaffActor{caller.principal.id()}, request->case_id(),
                                request->close(), request->reason(), request->base_version());
                            if (!result.ok()) return WithReason(result.status());
                            *response->mutable_result() = *std::move(result);
                            return absl::OkStatus();
                          });
}

}  // namespace fieldsync::server
