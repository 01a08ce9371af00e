#include "device/tablet.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace fieldsync::device {

absl::StatusOr<Tablet> Tablet::Create(const v1::EnrollResponse& enrolment,
                                      crypto::Ed25519Signer signer,
                                      crypto::X25519PrivateKey receiving_key) {
  ASSIGN_OR_RETURN(Uuid id, ParseUuid(enrolment.device_id()));
  Tablet t(id, std::move(signer), std::move(receiving_key), protocol::SealingKey{});
  RETURN_IF_ERROR(t.UpdateSealingKeys(enrolment.sealing_keys()));
  t.officer_id_ = enrolment.officer_id();
  t.next_sequence_ = std::max<uint64_t>(enrolment.next_sequence(), 1);
  if (!enrolment.audit_public_key().empty()) {
    const std::string& key = enrolment.audit_public_key();
    ASSIGN_OR_RETURN(
        protocol::ReceiptVerifier receipts,
        protocol::ReceiptVerifier::Create(
            enrolment.audit_origin(),
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size())));
    t.receipts_.emplace(std::move(receipts));
  }
  return t;
}

absl::StatusOr<protocol::Checkpoint> Tablet::VerifyReceipt(const v1::PushResponse& response) {
  if (!receipts_.has_value()) {
    return absl::FailedPreconditionError("the enrolment gave this tablet no audit key");
  }
  if (!response.has_audit_receipt()) {
    return absl::FailedPreconditionError("the push answer carries no audit receipt");
  }
  return receipts_->Verify(response.audit_receipt(), device_id_text_);
}

Tablet::Tablet(Uuid device_id, crypto::Ed25519Signer signer, crypto::X25519PrivateKey receiving_key,
               protocol::SealingKey sealing_key)
    : device_id_(device_id),
      device_id_text_(FormatUuid(device_id)),
      signer_(std::move(signer)),
      receiving_key_(std::move(receiving_key)),
      sealing_key_(std::move(sealing_key)) {}

absl::Status Tablet::UpdateSealingKeys(
    const google::protobuf::RepeatedPtrField<v1::SealingKey>& keys) {
  if (keys.empty()) return absl::InvalidArgumentError("the server names no sealing key");
  // PROTOCOL.md: seal to the key with the highest key id.
  const v1::SealingKey* best = &keys[0];
  for (const v1::SealingKey& k : keys) {
    if (k.key_id() > best->key_id()) best = &k;
  }
  if (best->public_key().size() != crypto::kX25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sealing key %d is not a 32-byte X25519 key", best->key_id()));
  }
  sealing_key_ = protocol::SealingKey{best->key_id(), best->public_key()};
  return absl::OkStatus();
}

v1::Hlc Tablet::Tick(absl::Time physical) {
  const int64_t micros = absl::ToUnixMicros(physical);
  if (micros > hlc_wall_) {
    hlc_wall_ = micros;
    hlc_logical_ = 0;
  } else {
    ++hlc_logical_;
  }
  v1::Hlc out;
  out.set_wall_micros(hlc_wall_);
  out.set_logical(hlc_logical_);
  return out;
}

void Tablet::Observe(const v1::Hlc& hlc) {
  if (hlc.wall_micros() > hlc_wall_ ||
      (hlc.wall_micros() == hlc_wall_ && hlc.logical() > hlc_logical_)) {
    hlc_wall_ = hlc.wall_micros();
    hlc_logical_ = hlc.logical();
  }
}

uint64_t Tablet::BaseVersion(const std::string& record_id, const std::string& field) const {
  auto record = versions_.find(record_id);
  if (record == versions_.end()) return 0;
  auto it = record->second.find(field);
  return it == record->second.end() ? 0 : it->second;
}

const v1::RecordChange& Tablet::Upsert(const std::string& change_id, const std::string& case_id,
                                       const std::string& record_id, const std::string& record_type,
                                       std::vector<std::pair<std::string, v1::FieldValue>> fields,
                                       absl::Time physical) {
  v1::RecordChange& c = journal_.emplace_back();
  c.set_change_id(change_id);
  c.set_case_id(case_id);
  c.set_record_id(record_id);
  c.set_record_type(record_type);
  c.set_kind(v1::CHANGE_KIND_UPSERT);
  *c.mutable_hlc() = Tick(physical);
  for (auto& [name, value] : fields) {
    v1::FieldWrite* w = c.add_fields();
    w->set_field(name);
    *w->mutable_value() = std::move(value);
    w->set_base_version(BaseVersion(record_id, name));
  }
  records_.try_emplace(record_id, KnownRecord{case_id, record_type});
  return c;
}

protocol::BatchSealParams Tablet::SealParams(const Uuid& batch_id, uint64_t sequence) const {
  protocol::BatchSealParams params;
  params.header.device_id = device_id_;
  params.header.batch_id = batch_id;
  params.header.sequence = sequence;
  params.header.sealing_key_id = sealing_key_.key_id;
  params.sealing_public_key = sealing_key_.public_key;
  params.signer = &signer_;
  return params;
}

absl::StatusOr<v1::SealedBatch> Tablet::SealNext(size_t max_changes, const Uuid& batch_id,
                                                 Random& random) {
  if (in_flight_.has_value()) {
    return absl::FailedPreconditionError("a batch is in flight: resend it or acknowledge it");
  }
  if (journal_.empty() || max_changes == 0) {
    return absl::FailedPreconditionError("no journalled change to send");
  }
  v1::BatchPayload payload;
  absl::flat_hash_map<std::string, std::string> records;
  while (!journal_.empty() && static_cast<size_t>(payload.changes_size()) < max_changes) {
    records[journal_.front().change_id()] = journal_.front().record_id();
    *payload.add_changes() = std::move(journal_.front());
    journal_.pop_front();
  }
  const protocol::BatchSealParams params = SealParams(batch_id, next_sequence_);
  absl::StatusOr<v1::SealedBatch> sealed = protocol::SealBatch(payload, params, random);
  if (!sealed.ok()) {
    // Put the changes back, in order, so that nothing journalled is lost.
    for (int i = payload.changes_size() - 1; i >= 0; --i) {
      journal_.push_front(std::move(*payload.mutable_changes(i)));
    }
    return sealed.status();
  }
  ++next_sequence_;
  in_flight_ = *sealed;
  in_flight_payload_ = std::move(payload);
  in_flight_records_ = std::move(records);
  return sealed;
}

absl::StatusOr<v1::SealedBatch> Tablet::ResealInFlight(Random& random) {
  if (!in_flight_.has_value()) return absl::FailedPreconditionError("no batch in flight");
  ASSIGN_OR_RETURN(Uuid batch_id, ParseUuid(in_flight_->header().batch_id()));
  protocol::BatchSealParams params = SealParams(batch_id, in_flight_->header().sequence());
  params.compression = in_flight_->compression();
  ASSIGN_OR_RETURN(v1::SealedBatch sealed, protocol::SealBatch(in_flight_payload_, params, random));
  in_flight_ = sealed;
  return sealed;
}

absl::Status Tablet::Acknowledge(const v1::PushResponse& response) {
  if (!in_flight_.has_value()) return absl::FailedPreconditionError("no batch in flight");
  if (response.batch_id() != in_flight_->header().batch_id()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the answer is for batch %s, not the batch in flight %s",
                        response.batch_id(), in_flight_->header().batch_id()));
  }
  for (const v1::ChangeResult& r : response.results()) {
    auto record = in_flight_records_.find(r.change_id());
    if (record == in_flight_records_.end()) continue;
    if (r.fields().empty()) continue;  // no empty entries: replicas compare equal
    absl::flat_hash_map<std::string, uint64_t>& fields = versions_[record->second];
    for (const v1::FieldResult& f : r.fields()) fields[f.field()] = f.version();
  }
  if (response.next_sequence() > next_sequence_) next_sequence_ = response.next_sequence();
  in_flight_.reset();
  in_flight_payload_.Clear();
  in_flight_records_.clear();
  return absl::OkStatus();
}

absl::StatusOr<v1::PulledChanges> Tablet::TakePullChunk(const v1::PullChunk& chunk) {
  if (chunk.cursor() != cursor_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a pull chunk starts after %d, not at the cursor %d", chunk.cursor(), cursor_));
  }
  ASSIGN_OR_RETURN(v1::PulledChanges changes,
                   protocol::OpenPullChunk(chunk, device_id_, receiving_key_));
  for (const v1::PulledChange& c : changes.changes()) {
    Observe(c.hlc());
    if (!records_.contains(c.record_id())) {
      records_.emplace(c.record_id(), KnownRecord{c.case_id(), c.record_type()});
    }
    if (c.fields().empty()) continue;  // as above
    absl::flat_hash_map<std::string, uint64_t>& fields = versions_[c.record_id()];
    for (const v1::PulledField& f : c.fields()) fields[f.field()] = f.version();
  }
  cursor_ = changes.next_cursor();
  return changes;
}

}  // namespace fieldsync::device
