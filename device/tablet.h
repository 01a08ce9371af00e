// A tablet's local sync state (DESIGN §5, docs/PROTOCOL.md §5-7): its keys,
// its hybrid logical clock, the server versions it last saw per field (the
// base versions of its next writes), its journal of unsent changes, its next
// batch sequence number and its pull cursor. gRPC-free: the caller moves the
// sealed batches and chunks over the wire.
#ifndef FIELDSYNC_DEVICE_TABLET_H_
#define FIELDSYNC_DEVICE_TABLET_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/random.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "crypto/x25519.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "protocol/receipt.h"
#include "protocol/sealed_batch.h"

namespace fieldsync::device {

// What a record is, as the tablet knows it.
struct KnownRecord {
  std::string case_id;
  std::string record_type;
};

// One enrolled tablet. Not thread-safe: one tablet is one sync client.
class Tablet {
 public:
  // `enrolment` is the server's EnrollResponse; `signer` and
  // `receiving_key` the keys whose public halves were enrolled.
  // kInvalidArgument if the response carries no sealing key or a device id
  // that is not a UUID.
  static absl::StatusOr<Tablet> Create(const v1::EnrollResponse& enrolment,
                                       crypto::Ed25519Signer signer,
                                       crypto::X25519PrivateKey receiving_key);

  const Uuid& device_id() const { return device_id_; }
  const std::string& device_id_text() const { return device_id_text_; }
  const std::string& officer_id() const { return officer_id_; }
  uint64_t next_sequence() const { return next_sequence_; }
  uint64_t cursor() const { return cursor_; }
  // The server sealing key new batches are sealed to.
  uint32_t sealing_key_id() const { return sealing_key_.key_id; }

  // Takes the server's sealing keys (GetSealingKeysResponse.sealing_keys,
  // or EnrollResponse's): later batches are sealed to the one with the
  // highest key id. kInvalidArgument, changing nothing, when `keys` is
  // empty or that key is not 32 bytes.
  absl::Status UpdateSealingKeys(const google::protobuf::RepeatedPtrField<v1::SealingKey>& keys);

  // The HLC time of a change made at `physical` (PROTOCOL.md §7): the
  // physical time if it is past the last time used or seen, else the last
  // time with the logical counter advanced.
  v1::Hlc Tick(absl::Time physical);

  // The server version of (record, field) last seen; 0 if never seen.
  uint64_t BaseVersion(const std::string& record_id, const std::string& field) const;

  // Journals an UPSERT of `fields` to a record, with the base versions last
  // seen and the HLC of `physical`. Returns the change as journalled.
  const v1::RecordChange& Upsert(const std::string& change_id, const std::string& case_id,
                                 const std::string& record_id, const std::string& record_type,
                                 std::vector<std::pair<std::string, v1::FieldValue>> fields,
                                 absl::Time physical);

  // Changes journalled and not yet sealed into a batch.
  size_t pending() const { return journal_.size(); }

  // Seals up to `max_changes` journalled changes into the next batch,
  // consuming a sequence number. The batch stays in flight (resend it as is
  // after a lost answer) until Acknowledge. kFailedPrecondition if a batch
  // is already in flight or nothing is pending; SealBatch's errors.
  absl::StatusOr<v1::SealedBatch> SealNext(size_t max_changes, const Uuid& batch_id,
                                           Random& random);

  // Seals the batch in flight again, to the current sealing key, with the
  // same batch id, sequence and changes (PROTOCOL.md "Sealing key
  // rotation": after SEALING_KEY_RETIRED or UNKNOWN_SEALING_KEY and
  // UpdateSealingKeys). The resealed batch replaces the one in flight.
  // kFailedPrecondition if no batch is in flight; SealBatch's errors.
  absl::StatusOr<v1::SealedBatch> ResealInFlight(Random& random);

  // What a batch with `batch_id` and `sequence` is sealed and signed with
  // (this device's id, key id, the server's sealing key, the device's
  // signer): for senders that seal a run of batches ahead of sending them
  // (the load generator, bench/sync_load.cc), outside the journal. The
  // signer stays owned by the tablet.
  protocol::BatchSealParams SealParams(const Uuid& batch_id, uint64_t sequence) const;

  // Records the answer to the batch in flight: the new field versions, and
  // next_sequence. kFailedPrecondition if no batch is in flight,
  // kInvalidArgument if the answer is for another batch.
  absl::Status Acknowledge(const v1::PushResponse& response);

  // Checks the receipt of a push answer with the audit key from the
  // enrolment, following the audit key transitions it carries
  // (ReceiptVerifier::Verify). kFailedPrecondition if the enrolment gave no
  // audit key or the answer has no receipt.
  absl::StatusOr<protocol::Checkpoint> VerifyReceipt(const v1::PushResponse& response);
  // The audit key the tablet verifies receipts with now.
  const protocol::NoteVerifier* audit_key() const {
    return receipts_.has_value() ? &receipts_->key() : nullptr;
  }

  // Opens a chunk of a pull from cursor() and takes in its changes: field
  // versions, the HLC, the records it did not know; advances the cursor.
  // OpenPullChunk's errors; kInvalidArgument if the chunk does not start at
  // cursor().
  absl::StatusOr<v1::PulledChanges> TakePullChunk(const v1::PullChunk& chunk);

  // True once the tablet has seen `record_id` (made it or pulled it).
  bool Knows(const std::string& record_id) const { return records_.contains(record_id); }
  const absl::flat_hash_map<std::string, KnownRecord>& records() const { return records_; }
  // record_id -> field -> version, for comparing replicas.
  const absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, uint64_t>>& versions()
      const {
    return versions_;
  }

 private:
  Tablet(Uuid device_id, crypto::Ed25519Signer signer, crypto::X25519PrivateKey receiving_key,
         protocol::SealingKey sealing_key);
  void Observe(const v1::Hlc& hlc);

  Uuid device_id_;
  std::string device_id_text_;
  std::string officer_id_;
  crypto::Ed25519Signer signer_;
  crypto::X25519PrivateKey receiving_key_;
  protocol::SealingKey sealing_key_;
  std::optional<protocol::ReceiptVerifier> receipts_;  // none without an audit key
  uint64_t next_sequence_ = 1;
  uint64_t cursor_ = 0;
  int64_t hlc_wall_ = 0;
  uint32_t hlc_logical_ = 0;
  std::deque<v1::RecordChange> journal_;
  std::optional<v1::SealedBatch> in_flight_;
  v1::BatchPayload in_flight_payload_;                               // what in_flight_ seals
  absl::flat_hash_map<std::string, std::string> in_flight_records_;  // change id -> record id
  absl::flat_hash_map<std::string, KnownRecord> records_;
  // By record, then field: a record's id is held once, not once per field.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, uint64_t>> versions_;
};

}  // namespace fieldsync::device

#endif  // FIELDSYNC_DEVICE_TABLET_H_
