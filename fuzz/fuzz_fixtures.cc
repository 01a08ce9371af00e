#include "fuzz/fuzz_fixtures.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "crypto/bytes.h"
#include "crypto/hash.h"
#include "crypto/hpke.h"
#include "crypto/secret.h"
#include "protocol/batch_header.h"
#include "protocol/sealed_batch.h"

namespace fieldsync::fuzz {
namespace {

template <typename T>
T OrDie(absl::StatusOr<T> v, std::string_view what) {
  if (!v.ok()) {
    std::fprintf(stderr, "fuzz fixture %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                 v.status().ToString().c_str());
    std::abort();
  }
  return *std::move(v);
}

std::array<uint8_t, 32> Bytes(int first) {
  std::array<uint8_t, 32> b{};
  for (int i = 0; i < 32; ++i) b[i] = static_cast<uint8_t>(first + i);
  return b;
}

std::array<uint8_t, 32> Filled(uint8_t v) {
  std::array<uint8_t, 32> b{};
  b.fill(v);
  return b;
}

}  // namespace

absl::Time FixedNow() { return absl::FromUnixSeconds(1795000000); }

const crypto::Ed25519Signer& DeviceSigner() {
  static const auto* signer =
      new crypto::Ed25519Signer(OrDie(crypto::Ed25519Signer::Create(Filled(0x42)), "device key"));
  return *signer;
}

const crypto::X25519PrivateKey& DeviceReceivingKey() {
  static const auto* key = new crypto::X25519PrivateKey(
      OrDie(crypto::X25519PrivateKey::Create(Bytes(65)), "receiving key"));
  return *key;
}

const admin::SealingKeySet& ServerSealingKeys() {
  static const auto* keys = new std::shared_ptr<const admin::SealingKeySet>(
      OrDie(admin::SealingKeySet::Single(kSealingKeyId, Bytes(1)), "sealing key"));
  return **keys;
}

server::PushKeys DevicePushKeys() {
  server::PushKeys k;
  k.device_id = kDeviceId;
  k.signing_public_key = crypto::AsStringView(DeviceSigner().public_key());
  k.sealing_keys = &ServerSealingKeys();
  k.now = FixedNow();
  return k;
}

const protocol::NoteSigner& AuditSigner() {
  static const auto* signer = new protocol::NoteSigner(
      OrDie(protocol::NoteSigner::Create(kAuditOrigin, Filled(0x07)), "audit key"));
  return *signer;
}

v1::SealedBatch SealBatchPlaintext(std::string_view plaintext, v1::PayloadCompression compression,
                                   uint64_t sequence, Random& random) {
  v1::SealedBatch sealed;
  v1::BatchHeader* h = sealed.mutable_header();
  h->set_device_id(std::string(kDeviceId));
  h->set_batch_id(absl::StrFormat("aaaaaaaa-bbbb-4ccc-8ddd-%012x", sequence & 0xffffffffffff));
  h->set_sequence(sequence);
  h->set_sealing_key_id(kSealingKeyId);
  sealed.set_compression(compression);
  const protocol::BatchHeader header = OrDie(server::ParseBatchHeader(*h), "batch header");
  const std::string aad = protocol::EncodeBatchHeader(header);
  crypto::HpkeCiphertext ct =
      OrDie(crypto::HpkeSeal(ServerSealingKeys().current().public_key,
                             crypto::AsBytes(protocol::kBatchSealInfo), crypto::AsBytes(aad),
                             crypto::AsBytes(plaintext), random),
            "batch seal");
  sealed.set_enc(ct.enc);
  sealed.set_ciphertext(ct.ciphertext);
  const std::string message = protocol::EncodeBatchSignedMessage(
      header, compression, protocol::SealedPayloadDigest(sealed.enc(), sealed.ciphertext()));
  sealed.set_signature(crypto::ToString(DeviceSigner().Sign(crypto::AsBytes(message))));
  return sealed;
}

v1::PullChunk SealPullChunkPlaintext(std::string_view plaintext, uint64_t cursor,
                                     uint64_t next_cursor, bool caught_up, Random& random) {
  const Uuid device = OrDie(ParseUuid(kDeviceId), "device id");
  const std::string aad = protocol::EncodePullChunkHeader(device, cursor, next_cursor, caught_up);
  crypto::HpkeCiphertext ct = OrDie(
      crypto::HpkeSeal(DeviceReceivingKey().public_key(), crypto::AsBytes(protocol::kPullSealInfo),
                       crypto::AsBytes(aad), crypto::AsBytes(plaintext), random),
      "chunk seal");
  v1::PullChunk chunk;
  chunk.set_enc(ct.enc);
  chunk.set_ciphertext(ct.ciphertext);
  chunk.set_cursor(cursor);
  chunk.set_next_cursor(next_cursor);
  chunk.set_caught_up(caught_up);
  return chunk;
}

void CounterRandom::Fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const std::string block = absl::StrFormat("fieldsync/fuzz-random/%d", counter_++);
    const crypto::Sha256Digest d = crypto::Sha256(block);
    const size_t n = std::min(out.size() - done, d.size());
    std::copy_n(d.begin(), n, out.begin() + done);
    done += n;
  }
}

void Check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace fieldsync::fuzz
