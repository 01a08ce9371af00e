// The sync protocol's cryptography, both sides (docs/PROTOCOL.md §4, §5, §6):
// the byte-exact messages both compute (the signed batch message, the pull
// chunk header); the device's half (seal and sign a batch, open a pull
// chunk) and the server's (verify and open a batch, seal a pull chunk). The
// server's request checks (size limits, the sealing key's lifetime, the
// refusal reasons) are in server/sealed_batch.h, on top of these.
// gRPC-free: protos and crypto/ in, absl::Status out.
#ifndef FIELDSYNC_PROTOCOL_SEALED_BATCH_H_
#define FIELDSYNC_PROTOCOL_SEALED_BATCH_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/random.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"
#include "crypto/x25519.h"
#include "fieldsync/v1/records.pb.h"
#include "fieldsync/v1/sync.pb.h"
#include "protocol/batch_header.h"
#include "protocol/events.h"

namespace fieldsync::protocol {

// Domain and HPKE info strings. Persisted: devices in the field use them.
inline constexpr std::string_view kBatchSealInfo = "fieldsync/batch-seal/v1";
inline constexpr std::string_view kPullChunkDomain = "fieldsync/pull-chunk/v1";
inline constexpr std::string_view kPullSealInfo = "fieldsync/pull-seal/v1";

// SealedPayloadDigest(enc, ciphertext) (protocol/events.h): SHA-256 of a
// sealed batch's enc and ciphertext, the digest the device signs and the
// audit log records.

// What a device signs with Ed25519 for a batch: protocol::BatchSignedMessage
// (protocol/events.h, which owns the persisted 132-byte layout, so that the
// offline verifier, the server and devices can never disagree) over
// EncodeBatchHeader(header), the compression byte and the payload digest.
std::string EncodeBatchSignedMessage(const protocol::BatchHeader& header,
                                     v1::PayloadCompression compression,
                                     const crypto::Sha256Digest& payload_digest);

// The associated data of a pull chunk sealed to a device. Persisted; 57
// bytes:
//   "fieldsync/pull-chunk/v1" (23) || 0x00 || device_id (16 raw bytes)
//   || cursor (u64 BE) || next_cursor (u64 BE) || caught_up (1 byte, 0/1)
std::string EncodePullChunkHeader(const Uuid& device_id, uint64_t cursor, uint64_t next_cursor,
                                  bool caught_up);

// A server key batches are sealed to (from EnrollResponse.sealing_keys).
struct SealingKey {
  uint32_t key_id = 0;
  std::string public_key;  // X25519, 32 bytes
};

// What a batch is sealed and signed with.
struct BatchSealParams {
  protocol::BatchHeader header;                   // device id, batch id, sequence, sealing key id
  std::string_view sealing_public_key;            // the server key named by header.sealing_key_id
  const crypto::Ed25519Signer* signer = nullptr;  // the device's signing key; not owned
  v1::PayloadCompression compression = v1::PAYLOAD_COMPRESSION_NONE;
};

// Seals `payload` (PROTOCOL.md §5): serializes it, zstd-compresses it when
// params.compression says so, seals it with HPKE single-shot to the sealing
// key (info kBatchSealInfo, aad EncodeBatchHeader(header)) with an
// ephemeral key from `random`, and signs EncodeBatchSignedMessage with the
// device key. kInvalidArgument for a sealing key that is not a usable
// X25519 public key, a sequence of 0, an unknown compression, or a null
// signer.
absl::StatusOr<v1::SealedBatch> SealBatch(const v1::BatchPayload& payload,
                                          const BatchSealParams& params, Random& random);

// Opens a pull chunk sealed to this device (PROTOCOL.md §6): HPKE with the
// receiving key, info kPullSealInfo, aad EncodePullChunkHeader over the
// chunk's clear cursor fields. Returns the changes; kInvalidArgument if the
// seal does not open (wrong key or device, tampered bytes or cursor fields),
// the plaintext does not parse, or its next_cursor / caught_up disagree with
// the clear copies.
absl::StatusOr<v1::PulledChanges> OpenPullChunk(const v1::PullChunk& chunk, const Uuid& device_id,
                                                const crypto::X25519PrivateKey& receiving_key);

// The server's half.

// Checks a batch's device signature: Ed25519 over
// EncodeBatchSignedMessage(header, compression, payload_digest) with the
// device's registered key. OK if it verifies; kUnauthenticated (or
// kInvalidArgument for a key or signature of the wrong length) if not.
absl::Status VerifyBatchSignature(const BatchHeader& header, v1::PayloadCompression compression,
                                  const crypto::Sha256Digest& payload_digest,
                                  std::string_view signing_public_key, std::string_view signature);

// Opens a batch's HPKE seal with the server key it names (info
// kBatchSealInfo, aad EncodeBatchHeader(header)): the payload as the device
// serialized it, zstd-compressed when the batch says so. An error if the
// seal does not open (wrong key, tampered bytes or header).
absl::StatusOr<std::string> OpenBatchSeal(const BatchHeader& header,
                                          const crypto::X25519PrivateKey& sealing_key,
                                          std::string_view enc, std::string_view ciphertext);

// Seals `changes` (serialized deterministically) with HPKE single-shot to
// `receiving_public_key`, info kPullSealInfo, aad EncodePullChunkHeader, and
// fills the chunk's enc, ciphertext and clear cursor copies.
// `cursor` is the position the chunk starts after. kInvalidArgument for a
// bad receiving key.
absl::StatusOr<v1::PullChunk> SealPullChunk(const v1::PulledChanges& changes, const Uuid& device_id,
                                            uint64_t cursor, std::string_view receiving_public_key,
                                            Random& random);

}  // namespace fieldsync::protocol

#endif  // FIELDSYNC_PROTOCOL_SEALED_BATCH_H_
