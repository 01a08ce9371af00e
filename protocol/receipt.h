// A device's check of its push receipts (docs/AUDIT.md §7, §9;
// docs/PROTOCOL.md §5 step 6): the signed head with the audit key it holds,
// the batch's entry and its inclusion proof, tree sizes that never shrink;
// and the audit key rotations the receipt carries, each followed only if
// its transition head is signed by the key the device holds and by the new
// key, and covers the KeyRotated entry that announces it. gRPC-free.
#ifndef FIELDSYNC_PROTOCOL_RECEIPT_H_
#define FIELDSYNC_PROTOCOL_RECEIPT_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "fieldsync/v1/audit.pb.h"
#include "protocol/checkpoint.h"

namespace fieldsync::protocol {

// Not thread-safe: one per device.
class ReceiptVerifier {
 public:
  // The log's origin and the Ed25519 key the device was given at
  // enrolment (EnrollResponse.audit_origin, audit_public_key).
  // kInvalidArgument for a key that is not 32 bytes or a bad origin.
  static absl::StatusOr<ReceiptVerifier> Create(std::string_view origin,
                                                std::span<const uint8_t> public_key);

  // Checks `receipt` for a batch of `device_id`: first follows the key
  // transitions after the key held (oldest first), then the head's
  // signature and origin, the size and root fields against the note, the
  // entry (a BatchAccepted of this device) and its inclusion proof, and
  // that the tree did not shrink. Returns the head. kUnauthenticated
  // naming the first check that fails (a transition not signed by the key
  // held, one whose entry or proof does not match, a head not signed by
  // the key in force); kInvalidArgument for a malformed receipt. A failed
  // check changes nothing.
  absl::StatusOr<protocol::Checkpoint> Verify(const v1::AuditReceipt& receipt,
                                              std::string_view device_id);

  // The key the device verifies heads with now.
  const protocol::NoteVerifier& key() const { return key_; }

 private:
  explicit ReceiptVerifier(protocol::NoteVerifier key) : key_(std::move(key)) {}

  protocol::NoteVerifier key_;
  uint64_t latest_size_ = 0;
};

}  // namespace fieldsync::protocol

#endif  // FIELDSYNC_PROTOCOL_RECEIPT_H_
