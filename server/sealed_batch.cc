#include "server/sealed_batch.h"

#include <zstd.h>

#include <optional>

#include "absl/strings/str_format.h"
#include "common/arena_blocks.h"
#include "common/status_macros.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/hpke.h"
#include "sync/errors.h"

namespace fieldsync::server {
namespace {

using protocol::SealedPayloadDigest;

absl::Status Malformed(std::string_view what,
                       absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  return sync::SyncError(code, v1::SYNC_ERROR_REASON_MALFORMED, what);
}

absl::Status TooLarge(const BatchLimits& limits, std::string_view batch_id, std::string_view why) {
  v1::SyncErrorDetail detail;
  detail.set_max_changes(limits.max_changes);
  detail.set_max_bytes(limits.max_bytes);
  detail.set_batch_id(std::string(batch_id));
  return sync::SyncError(absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_BATCH_TOO_LARGE,
                         absl::StrFormat("batch %s is too large (%s): split it and resend",
                                         std::string(batch_id), std::string(why)),
                         detail);
}

// The zstd frame's content, refusing frames that do not declare their size
// or declare more than `max_size` (so a small frame cannot make us allocate
// without bound).
absl::StatusOr<std::string> Decompress(std::string_view frame, size_t max_size, bool* too_large) {
  unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::InvalidArgumentError("zstd frame without a content size");
  }
  if (size > max_size) {
    *too_large = true;
    return absl::InvalidArgumentError("decompressed payload too large");
  }
  std::string out(static_cast<size_t>(size), '\0');
  size_t got = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(got) || got != size) return absl::InvalidArgumentError("zstd frame corrupt");
  return out;
}

// OK with *key set when batches sealed to `key_id` are accepted now;
// SEALING_KEY_RETIRED or UNKNOWN_SEALING_KEY otherwise, naming the key to
// reseal to.
absl::Status CheckSealingKey(uint32_t key_id, const std::string& batch_id, const PushKeys& keys,
                             const admin::PreparedSealingKey** key) {
  std::optional<absl::Time> retired_at;
  const admin::SealingKeyVerdict verdict =
      keys.sealing_keys->Check(key_id, keys.now, key, &retired_at);
  if (verdict == admin::SealingKeyVerdict::kAccepted) return absl::OkStatus();
  v1::SyncErrorDetail detail;
  detail.set_batch_id(batch_id);
  detail.set_sealing_key_id(key_id);
  const uint32_t current = keys.sealing_keys->current().key_id;
  if (verdict == admin::SealingKeyVerdict::kRetired) {
    const std::string since =
        retired_at.has_value()
            ? absl::StrFormat(" since %s", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", *retired_at,
                                                            absl::UTCTimeZone()))
            : "";
    return sync::SyncError(
        absl::StatusCode::kFailedPrecondition, v1::SYNC_ERROR_REASON_SEALING_KEY_RETIRED,
        absl::StrFormat("sealing key %d is retired%s: fetch the current keys (GetSealingKeys) and "
                        "reseal the batch to key %d, same batch id and sequence",
                        key_id, since, current),
        detail);
  }
  return sync::SyncError(
      absl::StatusCode::kFailedPrecondition, v1::SYNC_ERROR_REASON_UNKNOWN_SEALING_KEY,
      absl::StrFormat("sealing key %d is not a key of this server: fetch the current keys "
                      "(GetSealingKeys) and reseal the batch to key %d",
                      key_id, current),
      detail);
}

}  // namespace

absl::StatusOr<protocol::BatchHeader> ParseBatchHeader(const v1::BatchHeader& header) {
  protocol::BatchHeader out;
  absl::StatusOr<Uuid> device = ParseUuid(header.device_id());
  if (!device.ok()) return Malformed("batch header device_id is not a UUID");
  absl::StatusOr<Uuid> batch = ParseUuid(header.batch_id());
  if (!batch.ok()) return Malformed("batch header batch_id is not a UUID");
  if (header.sequence() == 0) return Malformed("batch header sequence must start at 1");
  out.device_id = *device;
  out.batch_id = *batch;
  out.sequence = header.sequence();
  out.sealing_key_id = header.sealing_key_id();
  return out;
}

absl::StatusOr<OpenedBatch> OpenSealedBatch(const v1::SealedBatch& sealed, size_t request_bytes,
                                            const PushKeys& keys, const BatchLimits& limits) {
  const std::string& batch_id = sealed.header().batch_id();
  if (request_bytes > limits.max_bytes) {
    return TooLarge(limits, batch_id, absl::StrFormat("%d bytes", request_bytes));
  }
  if (!sealed.has_header()) return Malformed("the batch has no header");
  OpenedBatch out;
  ASSIGN_OR_RETURN(out.header, ParseBatchHeader(sealed.header()));
  if (FormatUuid(out.header.device_id) != keys.device_id) {
    return Malformed("the batch header names another device than the caller's certificate",
                     absl::StatusCode::kPermissionDenied);
  }
  if (sealed.enc().size() != crypto::kHpkeEncSize) return Malformed("enc must be 32 bytes");
  if (sealed.signature().size() != crypto::kEd25519SignatureSize) {
    return Malformed("signature must be 64 bytes");
  }
  if (sealed.compression() != v1::PAYLOAD_COMPRESSION_NONE &&
      sealed.compression() != v1::PAYLOAD_COMPRESSION_ZSTD) {
    return Malformed("unknown payload compression");
  }

  crypto::Sha256Digest digest = SealedPayloadDigest(sealed.enc(), sealed.ciphertext());
  absl::Status verified = protocol::VerifyBatchSignature(
      out.header, sealed.compression(), digest, keys.signing_public_key, sealed.signature());
  if (!verified.ok()) {
    v1::SyncErrorDetail detail;
    detail.set_batch_id(batch_id);
    return sync::SyncError(absl::StatusCode::kUnauthenticated, v1::SYNC_ERROR_REASON_BAD_SIGNATURE,
                           "the batch signature does not verify against the device's registered "
                           "key: re-sign, or re-enrol if it persists",
                           detail);
  }
  const admin::PreparedSealingKey* sealing_key = nullptr;
  RETURN_IF_ERROR(CheckSealingKey(out.header.sealing_key_id, batch_id, keys, &sealing_key));

  absl::StatusOr<std::string> opened = protocol::OpenBatchSeal(out.header, sealing_key->private_key,
                                                               sealed.enc(), sealed.ciphertext());
  auto does_not_open = [&](std::string_view why) {
    v1::SyncErrorDetail detail;
    detail.set_batch_id(batch_id);
    return sync::SyncError(
        absl::StatusCode::kInvalidArgument, v1::SYNC_ERROR_REASON_SEAL_DOES_NOT_OPEN,
        absl::StrFormat("batch %s: %s: reseal it", batch_id, std::string(why)), detail);
  };
  if (!opened.ok()) return does_not_open("the HPKE seal does not open");
  const size_t max_payload = static_cast<size_t>(limits.max_bytes) * 4;
  std::string plain;
  if (sealed.compression() == v1::PAYLOAD_COMPRESSION_ZSTD) {
    bool too_large = false;
    absl::StatusOr<std::string> d = Decompress(*opened, max_payload, &too_large);
    if (too_large) return TooLarge(limits, batch_id, "decompressed payload");
    if (!d.ok()) return does_not_open("the zstd payload does not decode");
    plain = *std::move(d);
  } else {
    plain = *std::move(opened);
  }
  if (plain.size() > max_payload) return TooLarge(limits, batch_id, "payload");
  // About what the parsed messages take, so that most batches fit the
  // first block; larger ones add blocks.
  out.arena = std::make_unique<google::protobuf::Arena>(ArenaOptionsFor(plain.size() * 3));
  out.payload = google::protobuf::Arena::CreateMessage<v1::BatchPayload>(out.arena.get());
  if (!out.payload->ParseFromString(plain)) return Malformed("the batch payload does not parse");
  if (static_cast<uint64_t>(out.payload->changes_size()) > limits.max_changes) {
    return TooLarge(limits, batch_id, absl::StrFormat("%d changes", out.payload->changes_size()));
  }
  out.payload_sha256 = crypto::ToString(digest);
  out.signature = sealed.signature();
  return out;
}

}  // namespace fieldsync::server
