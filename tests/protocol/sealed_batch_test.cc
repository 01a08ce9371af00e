// protocol/sealed_batch.h against the server's side (server/sealed_batch.h):
// a batch the device seals opens on the server, compressed or not; a
// tampered signature, another signer, another sealing key and a changed
// header are refused with their reasons; a pull chunk the server seals opens
// on the device and nowhere else.
#include "protocol/sealed_batch.h"

#include "absl/strings/str_format.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/x25519.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "server/sealed_batch.h"
#include "sync/errors.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::protocol {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;

constexpr char kDevice[] = "11111111-2222-4333-8444-555555555555";
constexpr char kBatch[] = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

v1::BatchPayload Payload() {
  v1::BatchPayload p;
  v1::RecordChange* c = p.add_changes();
  c->set_change_id("c0000000-0000-4000-8000-000000000001");
  c->set_case_id("ca000000-0000-4000-8000-000000000001");
  c->set_record_id("ca000000-0000-4000-8000-000000000001");
  c->set_record_type("case_registration");
  c->mutable_hlc()->set_wall_micros(1790000000000000);
  c->set_kind(v1::CHANGE_KIND_UPSERT);
  v1::FieldWrite* w = c->add_fields();
  w->set_field("priority");
  w->mutable_value()->set_enum_value("high");
  return p;
}

v1::SyncErrorReason ReasonOf(const absl::Status& s) {
  std::optional<v1::SyncErrorDetail> d = sync::GetSyncErrorDetail(s);
  return d.has_value() ? d->reason() : v1::SYNC_ERROR_REASON_UNSPECIFIED;
}

class DeviceSealedBatchTest : public ::testing::Test {
 protected:
  DeviceSealedBatchTest()
      : server_pair_(crypto::GenerateX25519(random_)),
        server_keys_(*admin::SealingKeySet::Single(7, server_pair_.private_key.span())),
        device_pair_(crypto::GenerateEd25519(random_)),
        signer_(*crypto::Ed25519Signer::Create(device_pair_.seed.span())) {}

  BatchSealParams Params() {
    BatchSealParams p;
    p.header.device_id = *ParseUuid(kDevice);
    p.header.batch_id = *ParseUuid(kBatch);
    p.header.sequence = 1;
    p.header.sealing_key_id = 7;
    sealing_public_ = crypto::ToString(server_pair_.public_key);
    p.sealing_public_key = sealing_public_;
    p.signer = &signer_;
    return p;
  }

  absl::StatusOr<server::OpenedBatch> Open(const v1::SealedBatch& sealed) {
    server::PushKeys keys;
    keys.device_id = kDevice;
    keys.signing_public_key = crypto::AsStringView(device_pair_.public_key);
    keys.sealing_keys = server_keys_.get();
    keys.now = absl::FromUnixSeconds(1795000000);
    return server::OpenSealedBatch(sealed, sealed.ByteSizeLong(), keys, server::BatchLimits{});
  }

  fieldsync::testing::SeededRandom random_{4242};
  crypto::X25519KeyPair server_pair_;
  std::shared_ptr<const admin::SealingKeySet> server_keys_;
  crypto::Ed25519KeyPair device_pair_;
  crypto::Ed25519Signer signer_;
  std::string sealing_public_;
};

TEST_F(DeviceSealedBatchTest, SealedBatchOpensOnTheServer) {
  absl::StatusOr<v1::SealedBatch> sealed = SealBatch(Payload(), Params(), random_);
  ASSERT_THAT(sealed, IsOk());

  absl::StatusOr<server::OpenedBatch> opened = Open(*sealed);

  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->payload->SerializeAsString(), Payload().SerializeAsString());
  EXPECT_EQ(opened->header.sequence, 1u);
  EXPECT_EQ(sealed->header().device_id(), kDevice);
  EXPECT_EQ(sealed->header().batch_id(), kBatch);
}

TEST_F(DeviceSealedBatchTest, CompressedBatchOpensOnTheServer) {
  BatchSealParams params = Params();
  params.compression = v1::PAYLOAD_COMPRESSION_ZSTD;
  absl::StatusOr<v1::SealedBatch> sealed = SealBatch(Payload(), params, random_);
  ASSERT_THAT(sealed, IsOk());
  EXPECT_EQ(sealed->compression(), v1::PAYLOAD_COMPRESSION_ZSTD);

  absl::StatusOr<server::OpenedBatch> opened = Open(*sealed);

  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->payload->SerializeAsString(), Payload().SerializeAsString());
}

TEST_F(DeviceSealedBatchTest, EveryTamperedSignatureByteIsRefused) {
  absl::StatusOr<v1::SealedBatch> sealed = SealBatch(Payload(), Params(), random_);
  ASSERT_THAT(sealed, IsOk());
  for (size_t i = 0; i < sealed->signature().size(); ++i) {
    v1::SealedBatch tampered = *sealed;
    (*tampered.mutable_signature())[i] ^= 0x01;

    absl::StatusOr<server::OpenedBatch> opened = Open(tampered);

    EXPECT_THAT(opened, StatusIs(absl::StatusCode::kUnauthenticated)) << "byte " << i;
    EXPECT_EQ(ReasonOf(opened.status()), v1::SYNC_ERROR_REASON_BAD_SIGNATURE) << "byte " << i;
  }
}

TEST_F(DeviceSealedBatchTest, BatchSignedByAnotherKeyIsRefused) {
  crypto::Ed25519KeyPair other = crypto::GenerateEd25519(random_);
  crypto::Ed25519Signer other_signer = *crypto::Ed25519Signer::Create(other.seed.span());
  BatchSealParams params = Params();
  params.signer = &other_signer;
  absl::StatusOr<v1::SealedBatch> sealed = SealBatch(Payload(), params, random_);
  ASSERT_THAT(sealed, IsOk());

  absl::StatusOr<server::OpenedBatch> opened = Open(*sealed);

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(ReasonOf(opened.status()), v1::SYNC_ERROR_REASON_BAD_SIGNATURE);
}

TEST_F(DeviceSealedBatchTest, ChangedHeaderBreaksTheSignature) {
  absl::StatusOr<v1::SealedBatch> sealed = SealBatch(Payload(), Params(), random_);
  ASSERT_THAT(sealed, IsOk());
  sealed->mutable_header()->set_sequence(2);

  EXPECT_EQ(ReasonOf(Open(*sealed).status()), v1::SYNC_ERROR_REASON_BAD_SIGNATURE);
}

TEST_F(DeviceSealedBatchTest, BatchSealedToAnotherKeyDoesNotOpen) {
  crypto::X25519KeyPair other = crypto::GenerateX25519(random_);
  std::string other_public = crypto::ToString(other.public_key);
  BatchSealParams params = Params();
  params.sealing_public_key = other_public;
  absl::StatusOr<v1::SealedBatch> sealed = SealBatch(Payload(), params, random_);
  ASSERT_THAT(sealed, IsOk());

  absl::StatusOr<server::OpenedBatch> opened = Open(*sealed);

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ReasonOf(opened.status()), v1::SYNC_ERROR_REASON_SEAL_DOES_NOT_OPEN);
}

TEST_F(DeviceSealedBatchTest, MissingSignerOrZeroSequenceIsInvalid) {
  BatchSealParams no_signer = Params();
  no_signer.signer = nullptr;
  BatchSealParams zero = Params();
  zero.header.sequence = 0;
  BatchSealParams bad_key = Params();
  bad_key.sealing_public_key = "short";

  EXPECT_THAT(SealBatch(Payload(), no_signer, random_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SealBatch(Payload(), zero, random_), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SealBatch(Payload(), bad_key, random_), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PullChunkHeaderTest, IsFiftySevenBytesWithTheDomainFirst) {
  std::string h = EncodePullChunkHeader(*ParseUuid(kDevice), 0, 7, true);
  EXPECT_EQ(h.size(), 57u);
  EXPECT_EQ(h.substr(0, 24), std::string("fieldsync/pull-chunk/v1") + '\0');
  EXPECT_EQ(h.back(), '\x01');
}

class DevicePullChunkTest : public ::testing::Test {
 protected:
  DevicePullChunkTest()
      : receiving_(crypto::GenerateX25519(random_)),
        key_(*crypto::X25519PrivateKey::Create(receiving_.private_key.span())),
        device_(*ParseUuid(kDevice)) {
    v1::PulledChange* c = changes_.add_changes();
    c->set_position(5);
    c->set_case_id("ca000000-0000-4000-8000-000000000001");
    c->set_record_type("case_registration");
    changes_.set_next_cursor(9);
    changes_.set_caught_up(true);
  }

  v1::PullChunk Chunk() {
    absl::StatusOr<v1::PullChunk> chunk = protocol::SealPullChunk(
        changes_, device_, 4, crypto::AsStringView(receiving_.public_key), random_);
    EXPECT_THAT(chunk, IsOk());
    return *chunk;
  }

  fieldsync::testing::SeededRandom random_{777};
  crypto::X25519KeyPair receiving_;
  crypto::X25519PrivateKey key_;
  Uuid device_;
  v1::PulledChanges changes_;
};

TEST_F(DevicePullChunkTest, ChunkSealedByTheServerOpens) {
  absl::StatusOr<v1::PulledChanges> opened = OpenPullChunk(Chunk(), device_, key_);

  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->SerializeAsString(), changes_.SerializeAsString());
}

// A chunk of thousands of changes (megabytes) is sealed from its exact
// deterministic serialization: nothing more (the ciphertext is that size
// plus the tag) and nothing less (it opens to the same changes).
TEST_F(DevicePullChunkTest, ALargeChunkSealsItsExactSerialization) {
  for (int i = 0; i < 3000; ++i) {
    v1::PulledChange* c = changes_.add_changes();
    c->set_position(static_cast<uint64_t>(10 + i));
    c->set_case_id(absl::StrFormat("ca000000-0000-4000-8000-%012d", i));
    c->set_record_type(std::string(static_cast<size_t>(200 + i % 700), 'r'));
  }
  std::string deterministic;
  {
    google::protobuf::io::StringOutputStream stream(&deterministic);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    ASSERT_TRUE(changes_.SerializeToCodedStream(&coded));
  }
  ASSERT_GT(deterministic.size(), size_t{1} << 20);

  const v1::PullChunk chunk = Chunk();
  EXPECT_EQ(chunk.ciphertext().size(), deterministic.size() + 16);
  absl::StatusOr<v1::PulledChanges> opened = OpenPullChunk(chunk, device_, key_);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->SerializeAsString(), changes_.SerializeAsString());
}

TEST_F(DevicePullChunkTest, ChangedClearCursorIsRefused) {
  v1::PullChunk chunk = Chunk();
  chunk.set_next_cursor(10);

  EXPECT_THAT(OpenPullChunk(chunk, device_, key_), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(DevicePullChunkTest, ChunkForAnotherDeviceDoesNotOpen) {
  Uuid other = *ParseUuid("22222222-2222-4333-8444-555555555555");

  EXPECT_THAT(OpenPullChunk(Chunk(), other, key_), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(DevicePullChunkTest, EveryFlippedCiphertextByteIsRefused) {
  v1::PullChunk chunk = Chunk();
  for (size_t i = 0; i < chunk.ciphertext().size(); ++i) {
    v1::PullChunk flipped = chunk;
    (*flipped.mutable_ciphertext())[i] ^= 0x80;
    EXPECT_THAT(OpenPullChunk(flipped, device_, key_), StatusIs(absl::StatusCode::kInvalidArgument))
        << "byte " << i;
  }
}

}  // namespace
}  // namespace fieldsync::protocol
