// The tablet library on its own: this binary links fieldsync_device and
// GoogleTest only (no store, no RocksDB, no audit log, no gRPC, no server),
// and a tablet's whole round of protocol cryptography runs in it: a batch
// sealed and signed by the tablet is verified and opened with the
// protocol's server half, and a pull chunk sealed to the tablet opens.
#include <string>

#include "absl/time/time.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"
#include "crypto/system_random.h"
#include "crypto/x25519.h"
#include "device/tablet.h"
#include "gtest/gtest.h"
#include "protocol/sealed_batch.h"

namespace fieldsync::device {
namespace {

constexpr char kDevice[] = "11111111-2222-4333-8444-555555555555";
constexpr char kCase[] = "ca000000-0000-4000-8000-000000000001";

TEST(DeviceStandaloneTest, SealedBatchOpensAndPullChunkOpensWithoutTheServerLibraries) {
  crypto::SystemRandom random;
  crypto::X25519KeyPair server = crypto::GenerateX25519(random);
  crypto::Ed25519KeyPair signing = crypto::GenerateEd25519(random);
  crypto::X25519KeyPair receiving = crypto::GenerateX25519(random);
  v1::EnrollResponse enrolment;
  enrolment.set_device_id(kDevice);
  enrolment.set_officer_id("officer1");
  enrolment.set_next_sequence(1);
  v1::SealingKey* key = enrolment.add_sealing_keys();
  key->set_key_id(1);
  key->set_public_key(crypto::ToString(server.public_key));
  absl::StatusOr<Tablet> tablet =
      Tablet::Create(enrolment, *crypto::Ed25519Signer::Create(signing.seed.span()),
                     *crypto::X25519PrivateKey::Create(receiving.private_key.span()));
  ASSERT_TRUE(tablet.ok()) << tablet.status();
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  v1::FieldValue high;
  high.set_enum_value("high");
  tablet->Upsert(FormatUuid(NewUuid(random)), kCase, kCase, "case_registration",
                 {{"priority", high}}, now);

  absl::StatusOr<v1::SealedBatch> sealed = tablet->SealNext(10, NewUuid(random), random);
  ASSERT_TRUE(sealed.ok()) << sealed.status();

  protocol::BatchHeader header;
  header.device_id = *ParseUuid(sealed->header().device_id());
  header.batch_id = *ParseUuid(sealed->header().batch_id());
  header.sequence = sealed->header().sequence();
  header.sealing_key_id = sealed->header().sealing_key_id();
  const crypto::Sha256Digest digest =
      protocol::SealedPayloadDigest(sealed->enc(), sealed->ciphertext());
  EXPECT_TRUE(protocol::VerifyBatchSignature(header, sealed->compression(), digest,
                                             crypto::AsStringView(signing.public_key),
                                             sealed->signature())
                  .ok());
  header.sequence += 1;  // a header the device did not sign
  EXPECT_FALSE(protocol::VerifyBatchSignature(header, sealed->compression(), digest,
                                              crypto::AsStringView(signing.public_key),
                                              sealed->signature())
                   .ok());
  header.sequence -= 1;
  absl::StatusOr<crypto::X25519PrivateKey> server_key =
      crypto::X25519PrivateKey::Create(server.private_key.span());
  ASSERT_TRUE(server_key.ok());
  absl::StatusOr<std::string> plain =
      protocol::OpenBatchSeal(header, *server_key, sealed->enc(), sealed->ciphertext());
  ASSERT_TRUE(plain.ok()) << plain.status();
  v1::BatchPayload payload;
  ASSERT_TRUE(payload.ParseFromString(*plain));
  ASSERT_EQ(payload.changes_size(), 1);
  EXPECT_EQ(payload.changes(0).case_id(), kCase);

  v1::PulledChanges changes;
  changes.set_next_cursor(4);
  changes.set_caught_up(true);
  absl::StatusOr<v1::PullChunk> chunk = protocol::SealPullChunk(
      changes, *ParseUuid(kDevice), 0, crypto::AsStringView(receiving.public_key), random);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  ASSERT_TRUE(tablet->TakePullChunk(*chunk).ok());
  EXPECT_EQ(tablet->cursor(), 4u);
}

}  // namespace
}  // namespace fieldsync::device
