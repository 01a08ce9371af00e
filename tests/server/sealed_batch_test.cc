// The server's checks of server/sealed_batch.h over the encodings of
// protocol/sealed_batch.h: the worked example of docs/PROTOCOL.md §9 byte for
// byte, and every byte of a sealed batch flipped in turn giving a clean
// refusal.
#include "server/sealed_batch.h"

#include <zstd.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "common/uuid.h"
#include "crypto/bytes.h"
#include "crypto/ed25519.h"
#include "crypto/hpke.h"
#include "crypto/x25519.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/errors.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using crypto::AsBytes;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using protocol::EncodeBatchSignedMessage;
using protocol::EncodePullChunkHeader;
using protocol::kBatchSealInfo;
using protocol::SealedPayloadDigest;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Hex(std::string_view s) {
  return absl::BytesToHexString(absl::string_view(s.data(), s.size()));
}
template <size_t N>
std::string Hex(const std::array<uint8_t, N>& a) {
  return Hex(crypto::AsStringView(a));
}

// The bytes printed in PROTOCOL.md §9 (hex).
constexpr char kExampleHeader[] =
    "6669656c6473796e632f62617463682d6865616465722f763100111111112222"
    "43338444555555555555aaaaaaaabbbb4ccc8dddeeeeeeeeeeee000000000000"
    "000100000001";
constexpr char kExamplePayload[] =
    "0aa9010a2463303030303030302d303030302d343030302d383030302d303030"
    "303030303030303031122463613030303030302d303030302d343030302d3830"
    "30302d3030303030303030303030311a2463613030303030302d303030302d34"
    "3030302d383030302d3030303030303030303030312211636173655f72656769"
    "7374726174696f6e2a090880c097d1edff960330013a150a0a676976656e5f6e"
    "616d6512070a05416d696e61";
constexpr char kExampleEnc[] = "5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b";
constexpr char kExampleCiphertext[] =
    "71afeefdd5f1f6390fad127d75c7260b248d3ed712390f633671b2f6a76c52fa"
    "d591d9e5e7d0a87f73cadd6221910cc97f103da25ec37f7c9d1339acfc670295"
    "0e81df3348f856f7b55563742e53ac7bbbd9b4e251cf5d55eb9ab65d69e518e7"
    "5eb54e3be5fe28db83027a92591880400d0473cee5df9d3aebbbdb99bc72d49f"
    "5cd94335755114c9afa4c192ebba9409362bb7c7b96a398b85bac0e10f83b1c8"
    "895c5a786e594f979c3c2b96a2fc8bb8f6ed0ea04d3927296a410ac3";
constexpr char kExampleSigned[] =
    "6669656c6473796e632f62617463682d7369676e61747572652f763100666965"
    "6c6473796e632f62617463682d6865616465722f763100111111112222433384"
    "44555555555555aaaaaaaabbbb4ccc8dddeeeeeeeeeeee000000000000000100"
    "00000100d1f362257a2de4519a1cb10467205fb99969124fb75fe3b7959a7e3e"
    "cad8aad0";
constexpr char kExampleSignature[] =
    "27132cd3e151999337c29bcb7f08e4a34fa301189f45e53b104d7aec7fe322db"
    "12559115edf83adcb39e31d1c7f8e495417c69e398fe786ce56c070cb95c8500";

// The fixed inputs of the worked example (PROTOCOL.md §9).
struct Example {
  crypto::SecretBytes server_private{32};
  crypto::SecretBytes ephemeral_private{32};
  crypto::SecretBytes device_seed{32};
  v1::SealedBatch sealed;
  std::string payload;
  std::string header_encoding;
  std::string signed_message;
  crypto::X25519PublicKey server_public{};
  crypto::Ed25519PublicKey device_public{};

  Example() {
    for (int i = 0; i < 32; ++i) {
      server_private.data()[i] = static_cast<uint8_t>(i + 1);
      ephemeral_private.data()[i] = static_cast<uint8_t>(i + 33);
      device_seed.data()[i] = 0x42;
    }
    server_public = *crypto::X25519PublicFromPrivate(server_private.span());
    device_public = crypto::Ed25519FromSeed(device_seed.span())->public_key;
    v1::BatchPayload p;
    v1::RecordChange* c = p.add_changes();
    c->set_change_id("c0000000-0000-4000-8000-000000000001");
    c->set_case_id("ca000000-0000-4000-8000-000000000001");
    c->set_record_id("ca000000-0000-4000-8000-000000000001");
    c->set_record_type("case_registration");
    c->mutable_hlc()->set_wall_micros(1790000000000000);
    c->set_kind(v1::CHANGE_KIND_UPSERT);
    v1::FieldWrite* w = c->add_fields();
    w->set_field("given_name");
    w->mutable_value()->set_string_value("Amina");
    payload = p.SerializeAsString();

    v1::BatchHeader* h = sealed.mutable_header();
    h->set_device_id("11111111-2222-4333-8444-555555555555");
    h->set_batch_id("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    h->set_sequence(1);
    h->set_sealing_key_id(1);
    protocol::BatchHeader header = *ParseBatchHeader(*h);
    header_encoding = protocol::EncodeBatchHeader(header);
    auto setup = crypto::HpkeSetupBaseSWithEphemeralKeyForTesting(
        server_public, AsBytes(kBatchSealInfo), ephemeral_private);
    sealed.set_enc(setup->enc);
    sealed.set_ciphertext(*setup->context->Seal(AsBytes(header_encoding), AsBytes(payload)));
    signed_message =
        EncodeBatchSignedMessage(header, v1::PAYLOAD_COMPRESSION_NONE,
                                 SealedPayloadDigest(sealed.enc(), sealed.ciphertext()));
    sealed.set_signature(
        crypto::ToString(*crypto::Ed25519Sign(device_seed, AsBytes(signed_message))));
  }

  // The server's keys: key 1 (the example's) alone, current.
  PushKeys Keys() {
    if (key_set == nullptr) key_set = *admin::SealingKeySet::Single(1, server_private.span());
    PushKeys k;
    k.device_id = "11111111-2222-4333-8444-555555555555";
    k.signing_public_key = crypto::AsStringView(device_public);
    k.sealing_keys = key_set.get();
    k.now = absl::FromUnixSeconds(1795000000);
    return k;
  }
  std::shared_ptr<const admin::SealingKeySet> key_set;
};

// `plain` as one zstd frame, with or without the content size in its
// header (a streaming compressor that is not told the size leaves it out).
std::string ZstdFrame(std::string_view plain, bool with_content_size) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, with_content_size ? 1 : 0);
  std::string frame(ZSTD_compressBound(plain.size()), '\0');
  const size_t n = ZSTD_compress2(cctx, frame.data(), frame.size(), plain.data(), plain.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  frame.resize(n);
  return frame;
}

// The example's batch carrying `frame` as its zstd-compressed payload,
// sealed and signed as a device would.
v1::SealedBatch SealZstd(const Example& e, const std::string& frame) {
  v1::SealedBatch sealed = e.sealed;
  sealed.set_compression(v1::PAYLOAD_COMPRESSION_ZSTD);
  auto setup = crypto::HpkeSetupBaseSWithEphemeralKeyForTesting(
      e.server_public, AsBytes(kBatchSealInfo), e.ephemeral_private);
  sealed.set_enc(setup->enc);
  sealed.set_ciphertext(*setup->context->Seal(AsBytes(e.header_encoding), AsBytes(frame)));
  std::string message =
      EncodeBatchSignedMessage(*ParseBatchHeader(sealed.header()), v1::PAYLOAD_COMPRESSION_ZSTD,
                               SealedPayloadDigest(sealed.enc(), sealed.ciphertext()));
  sealed.set_signature(crypto::ToString(*crypto::Ed25519Sign(e.device_seed, AsBytes(message))));
  return sealed;
}

TEST(SealedBatchTest, ZstdFrameWithContentSizeOpens) {
  Example e;
  v1::SealedBatch sealed = SealZstd(e, ZstdFrame(e.payload, /*with_content_size=*/true));

  absl::StatusOr<OpenedBatch> opened =
      OpenSealedBatch(sealed, sealed.ByteSizeLong(), e.Keys(), BatchLimits{});

  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->payload->SerializeAsString(), e.payload);
}

TEST(SealedBatchTest, ZstdFrameWithoutContentSizeDoesNotOpen) {
  Example e;
  const std::string frame = ZstdFrame(e.payload, /*with_content_size=*/false);
  ASSERT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  v1::SealedBatch sealed = SealZstd(e, frame);

  absl::StatusOr<OpenedBatch> opened =
      OpenSealedBatch(sealed, sealed.ByteSizeLong(), e.Keys(), BatchLimits{});

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("the zstd payload does not decode: reseal it")));
  ASSERT_TRUE(sync::GetSyncErrorDetail(opened.status()).has_value());
  EXPECT_EQ(sync::GetSyncErrorDetail(opened.status())->reason(),
            v1::SYNC_ERROR_REASON_SEAL_DOES_NOT_OPEN);
}

TEST(SealedBatchTest, WorkedExampleMatchesProtocolDocument) {
  Example e;
  if (std::getenv("FIELDSYNC_PRINT_EXAMPLE") != nullptr) {
    std::cout << "server_public " << Hex(e.server_public) << "\n"
              << "device_public " << Hex(e.device_public) << "\n"
              << "payload " << Hex(e.payload) << "\n"
              << "header " << Hex(e.header_encoding) << "\n"
              << "enc " << Hex(e.sealed.enc()) << "\n"
              << "ciphertext " << Hex(e.sealed.ciphertext()) << "\n"
              << "signed " << Hex(e.signed_message) << "\n"
              << "signature " << Hex(e.sealed.signature()) << "\n"
              << "pull_aad "
              << Hex(EncodePullChunkHeader(*ParseUuid("11111111-2222-4333-8444-555555555555"), 0, 7,
                                           true))
              << "\n";
  }
  EXPECT_EQ(Hex(e.header_encoding), kExampleHeader);
  EXPECT_EQ(Hex(e.payload), kExamplePayload);
  EXPECT_EQ(Hex(e.sealed.enc()), kExampleEnc);
  EXPECT_EQ(Hex(e.sealed.ciphertext()), kExampleCiphertext);
  EXPECT_EQ(Hex(e.signed_message), kExampleSigned);
  EXPECT_EQ(Hex(e.sealed.signature()), kExampleSignature);
  std::cout << "checked 1 worked example (6 byte strings)\n";
}

TEST(SealedBatchTest, WorkedExampleOpens) {
  Example e;
  absl::StatusOr<OpenedBatch> opened =
      OpenSealedBatch(e.sealed, e.sealed.ByteSizeLong(), e.Keys(), BatchLimits{});
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->payload->SerializeAsString(), e.payload);
}

// Ids are read in either case of hex and signed as their 16 bytes, so a
// header written in capitals opens and names the same device and batch.
TEST(SealedBatchTest, HeaderIdsInCapitalsOpenAsTheSameIds) {
  Example e;
  v1::SealedBatch sealed = e.sealed;
  sealed.mutable_header()->set_device_id(absl::AsciiStrToUpper(e.sealed.header().device_id()));
  sealed.mutable_header()->set_batch_id(absl::AsciiStrToUpper(e.sealed.header().batch_id()));
  absl::StatusOr<OpenedBatch> opened =
      OpenSealedBatch(sealed, sealed.ByteSizeLong(), e.Keys(), BatchLimits{});
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(FormatUuid(opened->header.device_id), e.sealed.header().device_id());
  EXPECT_EQ(FormatUuid(opened->header.batch_id), e.sealed.header().batch_id());
  EXPECT_EQ(opened->payload->SerializeAsString(), e.payload);
}

TEST(SealedBatchTest, EveryFlippedByteIsRefusedCleanly) {
  Example e;
  std::string wire = e.sealed.SerializeAsString();
  int refused = 0;
  for (size_t i = 0; i < wire.size(); ++i) {
    std::string flipped = wire;
    flipped[i] ^= 0x01;
    v1::SealedBatch sealed;
    if (!sealed.ParseFromString(flipped)) {
      ++refused;  // the proto layer refuses it before us
      continue;
    }
    absl::StatusOr<OpenedBatch> opened =
        OpenSealedBatch(sealed, flipped.size(), e.Keys(), BatchLimits{});
    EXPECT_FALSE(opened.ok()) << "byte " << i;
    if (!opened.ok()) {
      EXPECT_TRUE(sync::GetSyncErrorDetail(opened.status()).has_value()) << "byte " << i;
      ++refused;
    }
  }
  EXPECT_EQ(refused, static_cast<int>(wire.size()));
}

TEST(SealedBatchTest, TruncatedCiphertextIsRefused) {
  Example e;
  for (size_t n : {size_t{0}, size_t{1}, e.sealed.ciphertext().size() - 1}) {
    v1::SealedBatch sealed = e.sealed;
    sealed.mutable_ciphertext()->resize(n);
    EXPECT_FALSE(OpenSealedBatch(sealed, 100, e.Keys(), BatchLimits{}).ok()) << n;
  }
}

// --- Sealing keys and their cutoffs -----------------------------------------

// The server holds key 2 (retiring at kCutoff) and key 3 (current); key 1
// was deleted at the rotation that made key 3.
class SealingKeyCutoffTest : public ::testing::Test {
 protected:
  static constexpr absl::Time kCutoff = absl::FromUnixSeconds(1796000000);

  SealingKeyCutoffTest() {
    std::vector<admin::SealingKeyPair> keys(2);
    for (uint32_t i = 0; i < 2; ++i) {
      crypto::X25519KeyPair pair = crypto::GenerateX25519(random_);
      keys[i].key_id = i + 2;
      keys[i].private_key = std::move(pair.private_key);
      keys[i].public_key = pair.public_key;
    }
    keys[0].not_after = kCutoff;
    set_ = *admin::SealingKeySet::Prepare(keys);
  }

  // The example's payload sealed to key `key_id` with `public_key`.
  v1::SealedBatch SealTo(uint32_t key_id, const crypto::X25519PublicKey& public_key) {
    protocol::BatchSealParams params;
    params.header.device_id = *ParseUuid("11111111-2222-4333-8444-555555555555");
    params.header.batch_id = *ParseUuid("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    params.header.sequence = 1;
    params.header.sealing_key_id = key_id;
    params.sealing_public_key = crypto::AsStringView(public_key);
    params.signer = &signer_;
    v1::BatchPayload payload;
    payload.ParseFromString(e_.payload);
    return *protocol::SealBatch(payload, params, random_);
  }

  absl::StatusOr<OpenedBatch> Open(const v1::SealedBatch& sealed, absl::Time now) {
    PushKeys keys = e_.Keys();
    keys.sealing_keys = set_.get();
    keys.now = now;
    return OpenSealedBatch(sealed, sealed.ByteSizeLong(), keys, BatchLimits{});
  }

  const crypto::X25519PublicKey& PublicOf(uint32_t key_id) {
    return set_->keys()[key_id - 2].public_key;
  }

  Example e_;
  fieldsync::testing::SeededRandom random_{2024};
  crypto::Ed25519Signer signer_ = *crypto::Ed25519Signer::Create(e_.device_seed.span());
  std::shared_ptr<const admin::SealingKeySet> set_;
};

TEST_F(SealingKeyCutoffTest, BatchSealedToThePreviousKeyOpensUntilItsCutoff) {
  v1::SealedBatch sealed = SealTo(2, PublicOf(2));

  EXPECT_THAT(Open(sealed, kCutoff - absl::Hours(24)), IsOk());
  EXPECT_THAT(Open(sealed, kCutoff), IsOk());
}

TEST_F(SealingKeyCutoffTest, BatchSealedToThePreviousKeyAfterItsCutoffIsRetired) {
  v1::SealedBatch sealed = SealTo(2, PublicOf(2));

  absl::StatusOr<OpenedBatch> opened = Open(sealed, kCutoff + absl::Microseconds(1));

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kFailedPrecondition,
                               AllOf(HasSubstr("sealing key 2 is retired since "
                                               "2026-11-30T00:53:20Z"),
                                     HasSubstr("fetch the current keys (GetSealingKeys)"),
                                     HasSubstr("reseal the batch to key 3"))));
  std::optional<v1::SyncErrorDetail> detail = sync::GetSyncErrorDetail(opened.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->reason(), v1::SYNC_ERROR_REASON_SEALING_KEY_RETIRED);
  EXPECT_EQ(detail->sealing_key_id(), 2u);
  EXPECT_EQ(detail->batch_id(), "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
}

TEST_F(SealingKeyCutoffTest, BatchSealedToTheCurrentKeyOpensLongAfter) {
  EXPECT_THAT(Open(SealTo(3, PublicOf(3)), kCutoff + absl::Hours(24 * 3650)), IsOk());
}

TEST_F(SealingKeyCutoffTest, BatchSealedToADeletedEarlierKeyIsRetired) {
  crypto::X25519KeyPair gone = crypto::GenerateX25519(random_);

  absl::StatusOr<OpenedBatch> opened = Open(SealTo(1, gone.public_key), kCutoff);

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("sealing key 1 is retired: fetch")));
  EXPECT_EQ(sync::GetSyncErrorDetail(opened.status())->reason(),
            v1::SYNC_ERROR_REASON_SEALING_KEY_RETIRED);
}

TEST_F(SealingKeyCutoffTest, KeyIdThatWasNeverTheServersIsUnknown) {
  for (uint32_t id : {0u, 4u, 977u}) {
    absl::StatusOr<OpenedBatch> opened = Open(SealTo(id, PublicOf(3)), kCutoff);

    EXPECT_THAT(opened, StatusIs(absl::StatusCode::kFailedPrecondition,
                                 HasSubstr("is not a key of this server")))
        << id;
    std::optional<v1::SyncErrorDetail> detail = sync::GetSyncErrorDetail(opened.status());
    ASSERT_TRUE(detail.has_value());
    EXPECT_EQ(detail->reason(), v1::SYNC_ERROR_REASON_UNKNOWN_SEALING_KEY);
    EXPECT_EQ(detail->sealing_key_id(), id);
  }
}

TEST_F(SealingKeyCutoffTest, BatchNamingOneKeySealedToAnotherDoesNotOpen) {
  absl::StatusOr<OpenedBatch> opened = Open(SealTo(2, PublicOf(3)), kCutoff);

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(sync::GetSyncErrorDetail(opened.status())->reason(),
            v1::SYNC_ERROR_REASON_SEAL_DOES_NOT_OPEN);
}

}  // namespace
}  // namespace fieldsync::server
