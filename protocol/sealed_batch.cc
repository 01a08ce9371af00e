#include "protocol/sealed_batch.h"

#include <zstd.h>

#include <limits>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "crypto/bytes.h"
#include "crypto/canonical.h"
#include "crypto/hpke.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fieldsync::protocol {
namespace {

using crypto::AsBytes;

// The zstd level devices use: fast, and tablets' batches are small.
constexpr int kZstdLevel = 3;

absl::StatusOr<std::string> Compress(const std::string& plain) {
  std::string frame(ZSTD_compressBound(plain.size()), '\0');
  // ZSTD_compress writes the content size into the frame header, which the
  // server requires (it refuses frames without one).
  size_t n = ZSTD_compress(frame.data(), frame.size(), plain.data(), plain.size(), kZstdLevel);
  if (ZSTD_isError(n)) return absl::InternalError("zstd compression failed");
  frame.resize(n);
  return frame;
}

}  // namespace

std::string EncodeBatchSignedMessage(const protocol::BatchHeader& header,
                                     v1::PayloadCompression compression,
                                     const crypto::Sha256Digest& payload_digest) {
  return BatchSignedMessage(EncodeBatchHeader(header), static_cast<uint8_t>(compression),
                            payload_digest);
}

std::string EncodePullChunkHeader(const Uuid& device_id, uint64_t cursor, uint64_t next_cursor,
                                  bool caught_up) {
  return crypto::CanonicalWriter(kPullChunkDomain)
      .Uuid(device_id)
      .U64(cursor)
      .U64(next_cursor)
      .U8(caught_up ? 1 : 0)
      .Finish();
}

absl::StatusOr<v1::SealedBatch> SealBatch(const v1::BatchPayload& payload,
                                          const BatchSealParams& params, Random& random) {
  if (params.signer == nullptr) return absl::InvalidArgumentError("no signing key given");
  if (params.header.sequence == 0) {
    return absl::InvalidArgumentError("batch sequence numbers start at 1");
  }
  std::string plain = payload.SerializeAsString();
  switch (params.compression) {
    case v1::PAYLOAD_COMPRESSION_NONE:
      break;
    case v1::PAYLOAD_COMPRESSION_ZSTD: {
      ASSIGN_OR_RETURN(plain, Compress(plain));
      break;
    }
    default:
      return absl::InvalidArgumentError("unknown payload compression");
  }
  const std::string aad = protocol::EncodeBatchHeader(params.header);
  ASSIGN_OR_RETURN(crypto::HpkeCiphertext sealed,
                   crypto::HpkeSeal(AsBytes(params.sealing_public_key), AsBytes(kBatchSealInfo),
                                    AsBytes(aad), AsBytes(plain), random));
  v1::SealedBatch out;
  v1::BatchHeader* h = out.mutable_header();
  h->set_device_id(FormatUuid(params.header.device_id));
  h->set_batch_id(FormatUuid(params.header.batch_id));
  h->set_sequence(params.header.sequence);
  h->set_sealing_key_id(params.header.sealing_key_id);
  out.set_compression(params.compression);
  const std::string message = EncodeBatchSignedMessage(
      params.header, params.compression, SealedPayloadDigest(sealed.enc, sealed.ciphertext));
  out.set_signature(crypto::ToString(params.signer->Sign(AsBytes(message))));
  out.set_enc(std::move(sealed.enc));
  out.set_ciphertext(std::move(sealed.ciphertext));
  return out;
}

absl::StatusOr<v1::PulledChanges> OpenPullChunk(const v1::PullChunk& chunk, const Uuid& device_id,
                                                const crypto::X25519PrivateKey& receiving_key) {
  const std::string aad =
      EncodePullChunkHeader(device_id, chunk.cursor(), chunk.next_cursor(), chunk.caught_up());
  absl::StatusOr<std::string> plain =
      crypto::HpkeOpen(receiving_key, AsBytes(chunk.enc()), AsBytes(kPullSealInfo), AsBytes(aad),
                       AsBytes(chunk.ciphertext()));
  if (!plain.ok()) {
    return absl::InvalidArgumentError(
        "a pull chunk does not open with this device's receiving key: pull again from the "
        "last cursor");
  }
  v1::PulledChanges changes;
  if (!changes.ParseFromString(*plain)) {
    return absl::InvalidArgumentError("a pull chunk's content does not parse");
  }
  if (changes.next_cursor() != chunk.next_cursor() || changes.caught_up() != chunk.caught_up()) {
    return absl::InvalidArgumentError("a pull chunk's clear cursor disagrees with its content");
  }
  return changes;
}

absl::Status VerifyBatchSignature(const BatchHeader& header, v1::PayloadCompression compression,
                                  const crypto::Sha256Digest& payload_digest,
                                  std::string_view signing_public_key, std::string_view signature) {
  const std::string message = EncodeBatchSignedMessage(header, compression, payload_digest);
  return crypto::Ed25519Verify(AsBytes(signing_public_key), AsBytes(message), AsBytes(signature));
}

absl::StatusOr<std::string> OpenBatchSeal(const BatchHeader& header,
                                          const crypto::X25519PrivateKey& sealing_key,
                                          std::string_view enc, std::string_view ciphertext) {
  const std::string aad = EncodeBatchHeader(header);
  return crypto::HpkeOpen(sealing_key, AsBytes(enc), AsBytes(kBatchSealInfo), AsBytes(aad),
                          AsBytes(ciphertext));
}

absl::StatusOr<v1::PullChunk> SealPullChunk(const v1::PulledChanges& changes, const Uuid& device_id,
                                            uint64_t cursor, std::string_view receiving_public_key,
                                            Random& random) {
  // Serialized at its exact size in one allocation: a chunk is up to
  // 2 MiB, and a string grown by doubling would copy it and fault in each
  // larger buffer afresh (allocations that large go back to the system
  // when freed).
  const size_t size = changes.ByteSizeLong();
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a pull chunk of %d bytes is over protobuf's 2 GiB limit", size));
  }
  std::string plain(size, '\0');
  {
    google::protobuf::io::ArrayOutputStream stream(plain.data(), static_cast<int>(plain.size()));
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    changes.SerializeWithCachedSizes(&coded);
    if (coded.HadError() || static_cast<size_t>(coded.ByteCount()) != plain.size()) {
      return absl::InternalError("a pull chunk did not serialize to its computed size");
    }
  }
  std::string aad =
      EncodePullChunkHeader(device_id, cursor, changes.next_cursor(), changes.caught_up());
  ASSIGN_OR_RETURN(crypto::HpkeCiphertext sealed,
                   crypto::HpkeSeal(AsBytes(receiving_public_key), AsBytes(kPullSealInfo),
                                    AsBytes(aad), AsBytes(plain), random));
  v1::PullChunk chunk;
  chunk.set_enc(std::move(sealed.enc));
  chunk.set_ciphertext(std::move(sealed.ciphertext));
  chunk.set_cursor(cursor);
  chunk.set_next_cursor(changes.next_cursor());
  chunk.set_caught_up(changes.caught_up());
  return chunk;
}

}  // namespace fieldsync::protocol
