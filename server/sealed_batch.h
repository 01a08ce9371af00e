// The device-facing cryptography of the sync protocol (docs/PROTOCOL.md §4,
// §5): the byte-exact message a device signs for a batch, opening a sealed
// batch (signature, sealing key id, HPKE, optional zstd, payload parse,
// size limits), and sealing pull chunks to a device's receiving key.
// gRPC-free: plain protos and crypto/ in, sync errors (sync/errors.h) out.
#ifndef FIELDSYNC_SERVER_SEALED_BATCH_H_
#define FIELDSYNC_SERVER_SEALED_BATCH_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "crypto/canonical.h"
#include "crypto/hash.h"
#include "crypto/x25519.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.pb.h"

namespace fieldsync::server {

// Domain and HPKE info strings. Persisted: devices in the field use them.
inline constexpr std::string_view kBatchSealInfo = "fieldsync/batch-seal/v1";
inline constexpr std::string_view kPullChunkDomain = "fieldsync/pull-chunk/v1";
inline constexpr std::string_view kPullSealInfo = "fieldsync/pull-seal/v1";

// SHA-256(enc || ciphertext) of a sealed batch (enc is 32 bytes); the same
// digest the audit log records (audit::SealedPayloadDigest).
crypto::Sha256Digest SealedPayloadDigest(std::string_view enc, std::string_view ciphertext);

// What a device signs with Ed25519 for a batch: audit::BatchSignedMessage
// (audit/events.h, which owns the persisted 132-byte layout, so that the
// offline verifier and the server can never disagree) over
// EncodeBatchHeader(header), the compression byte and the payload digest.
std::string EncodeBatchSignedMessage(const crypto::BatchHeader& header,
                                     v1::PayloadCompression compression,
                                     const crypto::Sha256Digest& payload_digest);

// The header proto with its UUID texts parsed. kInvalidArgument MALFORMED
// when a UUID is not canonical text or the sequence is 0.
absl::StatusOr<crypto::BatchHeader> ParseBatchHeader(const v1::BatchHeader& header);

struct BatchLimits {
  uint64_t max_bytes = 4 << 20;  // serialized PushRequest
  uint32_t max_changes = 1000;   // changes in the payload
};

// The server side of a device's registry entry and key that a push needs.
struct PushKeys {
  std::string_view device_id;           // the authenticated device (UUID text)
  std::string_view signing_public_key;  // its registered Ed25519 key
  uint32_t sealing_key_id = 0;          // the server's current sealing key
  const crypto::X25519PrivateKey* sealing_key = nullptr;
};

struct OpenedBatch {
  crypto::BatchHeader header;
  v1::BatchPayload payload;
  std::string payload_sha256;  // SealedPayloadDigest, raw 32 bytes
  std::string signature;
};

// Checks and opens one pushed batch, in this order, each failure a
// sync::SyncError:
//   request larger than limits.max_bytes        INVALID_ARGUMENT BATCH_TOO_LARGE
//   no header, bad UUIDs, sequence 0, enc not 32 bytes, signature not 64
//     bytes, unknown compression                INVALID_ARGUMENT MALFORMED
//   header device id is not the caller          PERMISSION_DENIED MALFORMED
//   signature does not verify                   UNAUTHENTICATED BAD_SIGNATURE
//   sealing key id is not the current key       FAILED_PRECONDITION UNKNOWN_SEALING_KEY
//   HPKE does not open, or zstd does not decode INVALID_ARGUMENT SEAL_DOES_NOT_OPEN
//   payload (decompressed) over 4 * max_bytes,
//     or more than max_changes changes          INVALID_ARGUMENT BATCH_TOO_LARGE
//   payload does not parse                      INVALID_ARGUMENT MALFORMED
// `request_bytes` is the serialized size of the PushRequest.
absl::StatusOr<OpenedBatch> OpenSealedBatch(const v1::SealedBatch& sealed, size_t request_bytes,
                                            const PushKeys& keys, const BatchLimits& limits);

// The associated data of a pull chunk sealed to a device. Persisted; 57
// bytes:
//   "fieldsync/pull-chunk/v1" (23) || 0x00 || device_id (16 raw bytes)
//   || cursor (u64 BE) || next_cursor (u64 BE) || caught_up (1 byte, 0/1)
std::string EncodePullChunkHeader(const Uuid& device_id, uint64_t cursor, uint64_t next_cursor,
                                  bool caught_up);

// Seals `changes` (serialized deterministically) with HPKE single-shot to
// `receiving_public_key`, info kPullSealInfo, aad EncodePullChunkHeader,
// and fills the chunk's enc, ciphertext and clear cursor copies.
// `cursor` is the position the chunk starts after. kInvalidArgument for a
// bad receiving key.
absl::StatusOr<v1::PullChunk> SealPullChunk(const v1::PulledChanges& changes, const Uuid& device_id,
                                            uint64_t cursor, std::string_view receiving_public_key,
                                            Random& random);

}  // namespace fieldsync::server

#endif  // FIELDSYNC_SERVER_SEALED_BATCH_H_
