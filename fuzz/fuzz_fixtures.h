// Fixed keys and identities shared by the libFuzzer targets (fuzz/*_fuzz.cc)
// and the seed corpus generator (fuzz/seed_corpus.cc): the targets open what
// the generator sealed and signed, so both must use the same keys. Every key
// is made from constant bytes: these keys are public and for fuzzing only.
#ifndef FIELDSYNC_FUZZ_FUZZ_FIXTURES_H_
#define FIELDSYNC_FUZZ_FUZZ_FIXTURES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "admin/sealing_keys.h"
#include "common/random.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "crypto/x25519.h"
#include "fieldsync/v1/sync.pb.h"
#include "protocol/checkpoint.h"
#include "server/sealed_batch.h"

namespace fieldsync::fuzz {

// The enrolled device whose batches the targets open and to which pull
// chunks are sealed.
inline constexpr std::string_view kDeviceId = "11111111-2222-4333-8444-555555555555";
// The origin (and key name) of the audit log whose notes and exports the
// targets verify.
inline constexpr std::string_view kAuditOrigin = "fuzz.fieldsync.example/audit";
// The server's sealing key id.
inline constexpr uint32_t kSealingKeyId = 1;

// The instant sealing-key cutoffs are checked against.
absl::Time FixedNow();

// The device's Ed25519 signing key (seed 0x42 * 32).
const crypto::Ed25519Signer& DeviceSigner();
// The device's X25519 receiving key (private bytes 65..96).
const crypto::X25519PrivateKey& DeviceReceivingKey();
// The server's sealing key set: key kSealingKeyId alone (private bytes 1..32).
const admin::SealingKeySet& ServerSealingKeys();
// What OpenSealedBatch needs to open the device's batches.
server::PushKeys DevicePushKeys();
// The audit log's tree-head signer (seed 0x07 * 32), named kAuditOrigin.
const protocol::NoteSigner& AuditSigner();

// Seals `plaintext` as a batch of the device (header: kDeviceId, batch id
// from `sequence`, the sequence, kSealingKeyId) and signs it with
// DeviceSigner(). `compression` is written to the envelope as given, and the
// plaintext is not compressed here: pass a zstd frame for ZSTD. The HPKE
// ephemeral key comes from `random`.
v1::SealedBatch SealBatchPlaintext(std::string_view plaintext, v1::PayloadCompression compression,
                                   uint64_t sequence, Random& random);

// Seals `plaintext` as a pull chunk to DeviceReceivingKey(), the clear
// cursor fields as given.
v1::PullChunk SealPullChunkPlaintext(std::string_view plaintext, uint64_t cursor,
                                     uint64_t next_cursor, bool caught_up, Random& random);

// A deterministic Random (a counter through SHA-256): the same sequence of
// bytes in every run, so that the generator's output is reproducible.
class CounterRandom final : public Random {
 public:
  explicit CounterRandom(uint64_t seed) : counter_(seed << 32) {}
  void Fill(std::span<uint8_t> out) override;

 private:
  uint64_t counter_;
};

// A libFuzzer invariant check: prints `what` and aborts when `ok` is false,
// so that the input is saved as a crash.
void Check(bool ok, std::string_view what);

}  // namespace fieldsync::fuzz

#endif  // FIELDSYNC_FUZZ_FUZZ_FIXTURES_H_
