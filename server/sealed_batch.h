// The server's checks of a pushed batch (docs/PROTOCOL.md §5): size limits,
// the sealing key's lifetime, signature, HPKE, optional zstd, payload parse,
// each refused with its sync error reason. The cryptography itself (verify
// and open a batch, seal a pull chunk) and the device's side are in
// protocol/sealed_batch.h.
// gRPC-free: plain protos and crypto/ in, sync errors (sync/errors.h) out.
#ifndef FIELDSYNC_SERVER_SEALED_BATCH_H_
#define FIELDSYNC_SERVER_SEALED_BATCH_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "admin/sealing_keys.h"
#include "common/random.h"
#include "crypto/hash.h"
#include "crypto/x25519.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "google/protobuf/arena.h"
#include "protocol/batch_header.h"
#include "protocol/sealed_batch.h"

namespace fieldsync::server {

// The header proto with its UUID texts parsed. kInvalidArgument MALFORMED
// when a UUID is not canonical text or the sequence is 0.
absl::StatusOr<protocol::BatchHeader> ParseBatchHeader(const v1::BatchHeader& header);

struct BatchLimits {
  uint64_t max_bytes = 4 << 20;  // serialized PushRequest
  uint32_t max_changes = 1000;   // changes in the payload
};

// The server side of a device's registry entry and key that a push needs.
struct PushKeys {
  std::string_view device_id;           // the authenticated device (UUID text)
  std::string_view signing_public_key;  // its registered Ed25519 key
  // The server's sealing keys (a LiveSealingKeys snapshot), and the
  // instant their cutoffs are checked against.
  const admin::SealingKeySet* sealing_keys = nullptr;
  absl::Time now;
};

struct OpenedBatch {
  protocol::BatchHeader header;
  // The payload, parsed into `arena`: a hundred changes of twenty fields
  // are a few thousand small messages, made and freed in a few blocks.
  std::unique_ptr<google::protobuf::Arena> arena;
  v1::BatchPayload* payload = nullptr;  // owned by `arena`
  std::string payload_sha256;           // protocol::SealedPayloadDigest, raw 32 bytes
  std::string signature;
};

// Checks and opens one pushed batch, in this order, each failure a
// sync::SyncError:
//   request larger than limits.max_bytes        INVALID_ARGUMENT BATCH_TOO_LARGE
//   no header, bad UUIDs, sequence 0, enc not 32 bytes, signature not 64
//     bytes, unknown compression                INVALID_ARGUMENT MALFORMED
//   header device id is not the caller          PERMISSION_DENIED MALFORMED
//   signature does not verify                   UNAUTHENTICATED BAD_SIGNATURE
//   sealing key id was a key of this server, now
//     past its cutoff or deleted               FAILED_PRECONDITION SEALING_KEY_RETIRED
//   sealing key id never was one (0, or above
//     the current key)                         FAILED_PRECONDITION UNKNOWN_SEALING_KEY
//   HPKE does not open, or zstd does not decode INVALID_ARGUMENT SEAL_DOES_NOT_OPEN
//   payload (decompressed) over 4 * max_bytes,
//     or more than max_changes changes          INVALID_ARGUMENT BATCH_TOO_LARGE
//   payload does not parse                      INVALID_ARGUMENT MALFORMED
// `request_bytes` is the serialized size of the PushRequest.
absl::StatusOr<OpenedBatch> OpenSealedBatch(const v1::SealedBatch& sealed, size_t request_bytes,
                                            const PushKeys& keys, const BatchLimits& limits);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_SEALED_BATCH_H_
