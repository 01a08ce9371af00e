// Builders of realistic audit events for tests and benchmarks: enrolled
// devices with real Ed25519 keys whose batch events carry valid signatures.
#ifndef FIELDSYNC_TESTS_AUDIT_AUDIT_TEST_UTIL_H_
#define FIELDSYNC_TESTS_AUDIT_AUDIT_TEST_UTIL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/uuid.h"
#include "crypto/ed25519.h"
#include "protocol/batch_header.h"
#include "protocol/events.h"

namespace fieldsync::audit::testing {

// A tablet: a UUID and a signing key made from `n`. Not thread-safe.
class FakeDevice {
 public:
  explicit FakeDevice(uint32_t n) {
    std::array<uint8_t, 32> seed{};
    for (int i = 0; i < 4; ++i) seed[i] = static_cast<uint8_t>(n >> (8 * i));
    seed[31] = 0xA5;
    signer_.emplace(*crypto::Ed25519Signer::Create(seed));
    for (int i = 0; i < 16; ++i) id_[i] = static_cast<uint8_t>(n * 31 + i);
    id_[6] = 0x40 | (id_[6] & 0x0F);
    id_[8] = 0x80 | (id_[8] & 0x3F);
  }

  std::string id() const { return FormatUuid(id_); }

  protocol::Event Enrolled(absl::Time t) const {
    protocol::DeviceEnrolled e;
    e.device_id = id();
    e.officer_id = "officer-7";
    e.region = "north";
    e.signing_public_key = signer_->public_key();
    e.receiving_public_key.fill(0x11);
    e.certificate_serial = "0a1b2c";
    return protocol::Event{t, e};
  }

  // The device's next batch, signed; `first_position` 0 logs nothing.
  protocol::Event Batch(absl::Time t, uint64_t first_position, uint64_t changes) {
    protocol::BatchAccepted b;
    b.device_id = id();
    for (int i = 0; i < 16; ++i) b.batch_id[i] = static_cast<uint8_t>(sequence_ + i * 3);
    b.sequence = ++sequence_;
    b.sealing_key_id = 1;
    b.compression = 1;
    b.payload_sha256 =
        protocol::SealedPayloadDigest(std::string(32, 'e'), "ciphertext" + b.device_id);
    protocol::BatchHeader header{id_, b.batch_id, b.sequence, b.sealing_key_id};
    std::string message = protocol::BatchSignedMessage(protocol::EncodeBatchHeader(header),
                                                       b.compression, b.payload_sha256);
    b.signature = signer_->Sign(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(message.data()), message.size()));
    if (first_position != 0) {
      b.first_position = first_position;
      b.last_position = first_position + changes - 1;
      b.outcomes.applied = static_cast<uint32_t>(changes);
    }
    Uuid c{};
    c[0] = static_cast<uint8_t>(sequence_);
    b.case_ids.push_back(c);
    return protocol::Event{t, b};
  }

  const crypto::Ed25519PublicKey& public_key() const { return signer_->public_key(); }

 private:
  Uuid id_{};
  std::optional<crypto::Ed25519Signer> signer_;
  uint64_t sequence_ = 0;
};

// A plausible mixed stream of `n` events from `devices` devices: the
// enrolments first, then batches (with contiguous log ranges), staff case
// changes and pulls.
inline std::vector<protocol::Event> MixedEvents(size_t n, uint32_t devices = 4) {
  std::vector<protocol::Event> out;
  std::vector<FakeDevice> fleet;
  absl::Time t = absl::FromUnixSeconds(1795000000);
  for (uint32_t d = 0; d < devices && out.size() < n; ++d) {
    fleet.emplace_back(d + 1);
    out.push_back(fleet.back().Enrolled(t));
  }
  uint64_t position = 1;
  for (size_t i = 0; out.size() < n; ++i) {
    t += absl::Seconds(1);
    switch (i % 4) {
      case 0:
      case 1: {
        out.push_back(fleet[i % fleet.size()].Batch(t, position, 3));
        position += 3;
        break;
      }
      case 2: {
        protocol::CaseChange c;
        c.actor = "fieldsync://staff/sup1";
        c.change_kind = 5;
        c.first_position = c.last_position = position++;
        c.outcomes.applied = 1;
        c.case_ids.push_back(Uuid{1, 2, 3});
        out.push_back(protocol::Event{t, c});
        break;
      }
      default: {
        protocol::CaseAccess a;
        a.principal_id = fleet[i % fleet.size()].id();
        a.from_position = 1;
        a.to_position = position - 1;
        a.case_ids.push_back(Uuid{4, 5, 6});
        out.push_back(protocol::Event{t, a});
      }
    }
  }
  return out;
}

}  // namespace fieldsync::audit::testing

#endif  // FIELDSYNC_TESTS_AUDIT_AUDIT_TEST_UTIL_H_
