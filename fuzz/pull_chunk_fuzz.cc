// Fuzzes a tablet's opening of a pull chunk (protocol/sealed_batch.h
// OpenPullChunk): what a device parses from the server, or from whoever
// sits between them.
//
// Input: one mode byte, then
//   mode even: a serialized PullChunk, opened as is with the fixed device's
//              receiving key (the HPKE and cursor checks);
//   mode odd:  plaintext that the target seals to the device first (its
//              clear cursor fields copied from the plaintext when it parses
//              as PulledChanges, with a mismatch when bit 1 is set), so that
//              the PulledChanges parser and the cursor agreement checks see
//              the bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/bytes.h"
#include "fuzz/fuzz_fixtures.h"
#include "protocol/sealed_batch.h"
#include "server/sealed_batch.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const Uuid device = *ParseUuid(fuzz::kDeviceId);

  v1::PullChunk chunk;
  const bool sealed_here = (mode & 1) != 0;
  bool consistent = false;
  if (sealed_here) {
    v1::PulledChanges inner;
    uint64_t next = 0;
    bool caught_up = false;
    if (inner.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) {
      next = inner.next_cursor();
      caught_up = inner.caught_up();
      consistent = (mode & 2) == 0;
      if (!consistent) next ^= 1;
    }
    fuzz::CounterRandom random(mode);
    chunk = fuzz::SealPullChunkPlaintext(rest, /*cursor=*/7, next, caught_up, random);
  } else if (!chunk.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) {
    return 0;
  }
  absl::StatusOr<v1::PulledChanges> opened =
      protocol::OpenPullChunk(chunk, device, fuzz::DeviceReceivingKey());
  if (consistent) {
    fuzz::Check(opened.ok(), "a chunk sealed to the device with its own cursors opens");
  }
  if (!opened.ok()) {
    fuzz::Check(opened.status().code() == absl::StatusCode::kInvalidArgument,
                "a chunk that does not open is kInvalidArgument");
    return 0;
  }
  fuzz::Check(
      opened->next_cursor() == chunk.next_cursor() && opened->caught_up() == chunk.caught_up(),
      "an opened chunk's cursor fields agree with the clear copies");
  // The server's sealing of the same changes opens to the same changes.
  fuzz::CounterRandom random(0x5eed);
  absl::StatusOr<v1::PullChunk> resealed = protocol::SealPullChunk(
      *opened, device, chunk.cursor(),
      crypto::AsStringView(fuzz::DeviceReceivingKey().public_key()), random);
  fuzz::Check(resealed.ok(), "the server seals what a device opened");
  absl::StatusOr<v1::PulledChanges> reopened =
      protocol::OpenPullChunk(*resealed, device, fuzz::DeviceReceivingKey());
  fuzz::Check(reopened.ok() && reopened->SerializeAsString() == opened->SerializeAsString(),
              "seal then open returns the same changes");
  return 0;
}
