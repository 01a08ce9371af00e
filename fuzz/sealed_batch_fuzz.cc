// Fuzzes the server's opening of a pushed batch (server/sealed_batch.h):
// the SealedBatch envelope and its header as they arrive on the wire, and,
// behind a valid seal and signature, the plaintext (zstd frame or payload).
//
// Input: one mode byte, then
//   mode even: a serialized SealedBatch, opened as is (the header, size,
//              signature, key id and seal checks);
//   mode odd:  plaintext that the target seals and signs as the fixed device
//              (fuzz_fixtures.h) before opening it, so that decompression
//              and the payload parser see the bytes; bit 1 of the mode
//              marks it zstd.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "crypto/bytes.h"
#include "fuzz/fuzz_fixtures.h"
#include "protocol/sealed_batch.h"
#include "server/sealed_batch.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  server::BatchLimits limits;
  limits.max_bytes = 64 << 10;  // small, so that the size checks are reached
  limits.max_changes = 50;

  v1::SealedBatch sealed;
  const bool sealed_here = (mode & 1) != 0;
  if (sealed_here) {
    fuzz::CounterRandom random(mode);
    sealed = fuzz::SealBatchPlaintext(
        rest, (mode & 2) != 0 ? v1::PAYLOAD_COMPRESSION_ZSTD : v1::PAYLOAD_COMPRESSION_NONE,
        /*sequence=*/1, random);
  } else if (!sealed.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) {
    return 0;
  }
  // The header parser alone.
  if (sealed.has_header()) {
    absl::StatusOr<protocol::BatchHeader> h = server::ParseBatchHeader(sealed.header());
    if (h.ok()) {
      fuzz::Check(protocol::EncodeBatchHeader(*h).size() == protocol::kBatchHeaderEncodingSize,
                  "batch header encoding is 70 bytes");
      // ParseUuid takes either case of hex; FormatUuid writes lowercase.
      fuzz::Check(absl::EqualsIgnoreCase(FormatUuid(h->device_id), sealed.header().device_id()),
                  "a parsed device id formats back to its text, up to case");
    }
  }
  absl::StatusOr<server::OpenedBatch> opened =
      server::OpenSealedBatch(sealed, sealed.ByteSizeLong(), fuzz::DevicePushKeys(), limits);
  if (sealed_here && !opened.ok()) {
    // Sealed and signed with the right keys: only the plaintext may fail.
    fuzz::Check(
        opened.status().code() == absl::StatusCode::kInvalidArgument,
        "a batch sealed and signed by the enrolled device fails other than on its plaintext");
  }
  if (!opened.ok()) return 0;
  fuzz::Check(opened->payload_sha256 == crypto::ToString(protocol::SealedPayloadDigest(
                                            sealed.enc(), sealed.ciphertext())),
              "opened digest is SHA-256(enc || ciphertext)");
  fuzz::Check(opened->payload->changes_size() <= static_cast<int>(limits.max_changes),
              "opened payload within max_changes");
  // The opened payload survives a serialize / parse round trip.
  v1::BatchPayload again;
  fuzz::Check(again.ParseFromString(opened->payload->SerializeAsString()),
              "an opened payload re-parses");
  return 0;
}
