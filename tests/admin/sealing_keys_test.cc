// The batch-sealing keys' storage (admin/server_keys.h: the id list, kept
// keys) and their rotation (admin/sealing_keys.h) over a real RocksDB store
// in a temp dir, a real master key ring and audit log, and a simulated
// clock.
#include "admin/sealing_keys.h"

#include <memory>
#include <string>
#include <variant>

#include "admin/server_keys.h"
#include "audit/log.h"
#include "crypto/hpke.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::admin {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kT = absl::FromUnixMicros(1798000000000000);

SealingKeyCutoff At(absl::Time t) { return SealingKeyCutoff{t, std::nullopt}; }
SealingKeyCutoff After(absl::Duration d) { return SealingKeyCutoff{std::nullopt, d}; }

// --- The id list -----------------------------------------------------------

TEST(SealingKeyIdsTest, TheSingleIdOfAStoreFromBeforeRotationReadsAsTheCurrentKey) {
  EXPECT_THAT(ParseSealingKeyIds("1"),
              ::fieldsync::testing::IsOkAndHolds(ElementsAre(SealingKeyId{1})));
}

TEST(SealingKeyIdsTest, RoundTripsEveryKeyWithItsCutoff) {
  const std::vector<SealingKeyId> ids = {{2, kT}, {5, kT + absl::Hours(1)}, {6}};

  const std::string text = EncodeSealingKeyIds(ids);

  EXPECT_EQ(text, "2@1798000000000000,5@1798003600000000,6");
  EXPECT_THAT(ParseSealingKeyIds(text), ::fieldsync::testing::IsOkAndHolds(ids));
}

TEST(SealingKeyIdsTest, MalformedListsAreDataLossNamingTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},
      {"0", "entry 1"},
      {"a", "entry 1"},
      {"+1", "entry 1"},
      {" 1", "entry 1"},
      {"1 ", "entry 1"},
      {"4294967296", "entry 1"},
      {"1,", "entry 2"},
      {",1", "entry 1"},
      {"1,1", "ids must ascend"},
      {"2@5,1", "ids must ascend"},
      {"1@5", "current key 1 has a cutoff"},
      {"1,2", "key 1 is not the current key but has no cutoff"},
      {"1@,2", "key 1: the cutoff"},
      {"1@-5,2", "key 1: the cutoff"},
      {"1@5@6,2", "key 1: the cutoff"},
      {"1@99999999999999999999,2", "key 1: the cutoff"},
      {"01", "entry 1"},
      {"1@0179,2", "key 1: the cutoff"},
  };
  for (const auto& [text, why] : cases) {
    EXPECT_THAT(ParseSealingKeyIds(text), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(why)))
        << "\"" << text << "\"";
  }
}

TEST(SealingKeyIdsTest, EveryTruncationAndFlippedByteIsRefusedOrStaysWellFormed) {
  const std::string valid = "2@1798000000000000,3";
  for (size_t n = 0; n < valid.size(); ++n) {
    absl::StatusOr<std::vector<SealingKeyId>> parsed = ParseSealingKeyIds(valid.substr(0, n));
    // A prefix can be a valid list ("2@17..." is not: the last has a cutoff).
    if (parsed.ok()) {
      EXPECT_EQ(parsed->back().not_after, absl::InfiniteFuture()) << n;
    }
  }
  for (size_t i = 0; i < valid.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = valid;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      absl::StatusOr<std::vector<SealingKeyId>> parsed = ParseSealingKeyIds(flipped);
      if (!parsed.ok()) {
        EXPECT_THAT(parsed, StatusIs(absl::StatusCode::kDataLoss)) << i << ":" << bit;
        continue;
      }
      // What still parses re-encodes to the same bytes: no lenient reading.
      EXPECT_EQ(EncodeSealingKeyIds(*parsed), flipped) << i << ":" << bit;
    }
  }
}

// --- Kept keys and rotation --------------------------------------------------

class SealingKeyRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions options;
    options.path = dir_.Sub("db");
    options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(options);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    audit::AuditLogOptions audit;
    audit.store = store_.get();
    audit.clock = &clock_;
    absl::StatusOr<std::unique_ptr<audit::AuditLog>> log = audit::AuditLog::Open(audit);
    ASSERT_THAT(log, IsOk());
    audit_ = *std::move(log);

    // Key 1, as `fieldsync init` writes it.
    crypto::X25519KeyPair pair = crypto::GenerateX25519(random_);
    std::vector<SealingKeyPair> keys(1);
    keys[0].key_id = 1;
    keys[0].private_key = std::move(pair.private_key);
    keys[0].public_key = pair.public_key;
    storage::WriteBatch batch;
    ASSERT_THAT(PutSealingKey(keys[0], ring_, random_, &batch), IsOk());
    PutSealingKeyIds(keys, &batch);
    ASSERT_THAT(store_->Commit(&batch), IsOk());
    absl::StatusOr<std::shared_ptr<const SealingKeySet>> set = SealingKeySet::Prepare(keys);
    ASSERT_THAT(set, IsOk());
    live_ = std::make_unique<LiveSealingKeys>(*std::move(set));

    SealingKeyRotationOptions o;
    o.store = store_.get();
    o.ring = &ring_;
    o.audit = audit_.get();
    o.clock = &clock_;
    o.random = &random_;
    o.live = live_.get();
    o.default_overlap = absl::Hours(24 * 30);
    rotation_ = std::make_unique<SealingKeyRotation>(std::move(o));
  }

  std::string Meta(std::string_view name) {
    absl::StatusOr<std::string> v =
        store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey(name));
    return v.ok() ? *v : v.status().ToString();
  }

  bool HasPrivateKey(uint32_t id) {
    return store_
        ->Get(storage::Cf::kKeys,
              storage::KeyBuilder().String(absl::StrCat("server/hpke-sealing/", id)).Finish())
        .ok();
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SeededRandom random_{1313};
  fieldsync::testing::SimulatedClock clock_;
  crypto::MasterKeyRing ring_ = crypto::MasterKeyRing::Generate(random_);
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<LiveSealingKeys> live_;
  std::unique_ptr<SealingKeyRotation> rotation_;
};

TEST_F(SealingKeyRotationTest, NewKeyIsCurrentAndThePreviousOneKeepsTheDefaultOverlap) {
  absl::StatusOr<SealingKeyRotationResult> r = rotation_->Rotate("fieldsync://staff/admin", {});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->old_key_id, 1u);
  EXPECT_EQ(r->new_key_id, 2u);
  EXPECT_EQ(r->previous_until, clock_.Now() + absl::Hours(24 * 30));
  EXPECT_EQ(Meta("hpke_sealing_key_ids"),
            absl::StrCat("1@", absl::ToUnixMicros(r->previous_until), ",2"));
  // The running set changed without a reload.
  std::shared_ptr<const SealingKeySet> now = live_->Snapshot();
  EXPECT_EQ(now->current().key_id, 2u);
  EXPECT_EQ(now->current().public_key, r->new_public_key);
  ASSERT_EQ(now->keys().size(), 2u);
  EXPECT_EQ(now->keys()[0].not_after, r->previous_until);
}

TEST_F(SealingKeyRotationTest, StoredKeysLoadBackAsTheInstalledSet) {
  absl::StatusOr<SealingKeyRotationResult> r =
      rotation_->Rotate("fieldsync://staff/admin", At(clock_.Now() + absl::Hours(48)));
  ASSERT_THAT(r, IsOk());

  absl::StatusOr<std::vector<SealingKeyPair>> loaded = LoadSealingKeys(*store_, ring_);

  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].key_id, 1u);
  EXPECT_EQ((*loaded)[0].not_after, clock_.Now() + absl::Hours(48));
  EXPECT_EQ((*loaded)[0].public_key, live_->Snapshot()->keys()[0].public_key);
  EXPECT_EQ((*loaded)[1].key_id, 2u);
  EXPECT_EQ((*loaded)[1].not_after, absl::InfiniteFuture());
  EXPECT_EQ((*loaded)[1].public_key, r->new_public_key);
}

TEST_F(SealingKeyRotationTest, RotationIsAuditedWithTheNewPublicKeyInTheSameCommit) {
  const uint64_t before = audit_->size();

  absl::StatusOr<SealingKeyRotationResult> r = rotation_->Rotate("fieldsync://staff/admin", {});

  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(audit_->size(), before + 1);
  EXPECT_EQ(r->audit_leaf_index, before);
  std::string entry;
  ASSERT_THAT(audit_->ReadEntries(before, before + 1,
                                  [&](uint64_t, std::string_view e) {
                                    entry = std::string(e);
                                    return absl::OkStatus();
                                  }),
              IsOk());
  absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(entry);
  ASSERT_THAT(event, IsOk());
  const protocol::KeyRotated* rotated = std::get_if<protocol::KeyRotated>(&event->body);
  ASSERT_NE(rotated, nullptr);
  EXPECT_EQ(rotated->actor, "fieldsync://staff/admin");
  EXPECT_EQ(rotated->purpose, "hpke-sealing");
  EXPECT_EQ(rotated->old_version, 1u);
  EXPECT_EQ(rotated->new_version, 2u);
  EXPECT_EQ(rotated->new_public_key,
            std::string(r->new_public_key.begin(), r->new_public_key.end()));
}

TEST_F(SealingKeyRotationTest, CutoffInThePastOrBeyondAYearIsRefusedAndChangesNothing) {
  const std::string ids_before = Meta("hpke_sealing_key_ids");
  const uint64_t audit_before = audit_->size();

  EXPECT_THAT(rotation_->Rotate("a", At(clock_.Now() - absl::Seconds(1))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is in the past")));
  EXPECT_THAT(rotation_->Rotate("a", At(clock_.Now() + absl::Hours(24 * 365) + absl::Seconds(1))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 365 days")));
  EXPECT_THAT(rotation_->Rotate("a", After(absl::Hours(24 * 366))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 365 days")));

  EXPECT_EQ(Meta("hpke_sealing_key_ids"), ids_before);
  EXPECT_EQ(audit_->size(), audit_before);
  EXPECT_EQ(live_->Snapshot()->current().key_id, 1u);
  EXPECT_FALSE(HasPrivateKey(2));
}

TEST_F(SealingKeyRotationTest, KeysPastTheirCutoffAreDeletedAtTheNextRotation) {
  ASSERT_THAT(rotation_->Rotate("a", At(clock_.Now() + absl::Hours(1))), IsOk());   // 1 until +1h
  ASSERT_THAT(rotation_->Rotate("a", At(clock_.Now() + absl::Hours(48))), IsOk());  // 2 until +48h
  EXPECT_TRUE(HasPrivateKey(1)) << "key 1 is still within its cutoff";
  clock_.Advance(absl::Hours(2));

  absl::StatusOr<SealingKeyRotationResult> r = rotation_->Rotate("a", {});

  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->deleted_key_ids, ElementsAre(1u));
  EXPECT_FALSE(HasPrivateKey(1));
  EXPECT_TRUE(absl::IsNotFound(
      store_->Get(storage::Cf::kMetadata, storage::EncodeMetadataKey("hpke_sealing_public/1"))
          .status()));
  EXPECT_TRUE(HasPrivateKey(2));
  EXPECT_TRUE(HasPrivateKey(3));
  EXPECT_TRUE(HasPrivateKey(4));
  std::shared_ptr<const SealingKeySet> set = live_->Snapshot();
  ASSERT_EQ(set->keys().size(), 3u);
  EXPECT_EQ(set->keys()[0].key_id, 2u);
  // The deleted key is still known as one of ours: retired, not unknown.
  const PreparedSealingKey* key = nullptr;
  std::optional<absl::Time> retired_at;
  EXPECT_EQ(set->Check(1, clock_.Now(), &key, &retired_at), SealingKeyVerdict::kRetired);
  EXPECT_EQ(retired_at, std::nullopt);
}

TEST_F(SealingKeyRotationTest, RotateNowRetiresThePreviousKeyAtOnce) {
  ASSERT_THAT(rotation_->Rotate("a", After(absl::ZeroDuration())), IsOk());
  clock_.Advance(absl::Microseconds(1));

  const PreparedSealingKey* key = nullptr;
  std::optional<absl::Time> retired_at;
  EXPECT_EQ(live_->Snapshot()->Check(1, clock_.Now(), &key, &retired_at),
            SealingKeyVerdict::kRetired);
  EXPECT_EQ(key, nullptr);
  EXPECT_EQ(retired_at, clock_.Now() - absl::Microseconds(1));
}

TEST_F(SealingKeyRotationTest, ListedKeyWithoutItsPrivateHalfIsDataLoss) {
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey("hpke_sealing_key_ids"),
            "1@1798000000000000,2");
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  EXPECT_THAT(LoadSealingKeys(*store_, ring_),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("sealing key 2 is listed in hpke_sealing_key_ids but its private "
                                 "key is missing")));
}

TEST_F(SealingKeyRotationTest, PublicKeyNotMatchingThePrivateOneIsDataLoss) {
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kMetadata, storage::EncodeMetadataKey("hpke_sealing_public/1"),
            std::string(32, 'x'));
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  EXPECT_THAT(LoadSealingKeys(*store_, ring_),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("does not match")));
}

// --- The verdicts --------------------------------------------------------------

TEST(SealingKeySetTest, VerdictPerKeyAndCutoff) {
  fieldsync::testing::SeededRandom random(77);
  std::vector<SealingKeyPair> keys(2);
  for (uint32_t i = 0; i < 2; ++i) {
    crypto::X25519KeyPair pair = crypto::GenerateX25519(random);
    keys[i].key_id = i + 3;  // 1 and 2 were deleted
    keys[i].private_key = std::move(pair.private_key);
    keys[i].public_key = pair.public_key;
  }
  keys[0].not_after = kT;
  absl::StatusOr<std::shared_ptr<const SealingKeySet>> set = SealingKeySet::Prepare(keys);
  ASSERT_THAT(set, IsOk());
  auto verdict = [&](uint32_t id, absl::Time now) {
    const PreparedSealingKey* key = nullptr;
    std::optional<absl::Time> retired_at;
    SealingKeyVerdict v = (*set)->Check(id, now, &key, &retired_at);
    EXPECT_EQ(key != nullptr, v == SealingKeyVerdict::kAccepted) << id;
    if (key != nullptr) {
      EXPECT_EQ(key->key_id, id);
    }
    return v;
  };

  EXPECT_EQ(verdict(3, kT), SealingKeyVerdict::kAccepted);
  EXPECT_EQ(verdict(3, kT + absl::Microseconds(1)), SealingKeyVerdict::kRetired);
  EXPECT_EQ(verdict(4, kT + absl::Hours(24 * 1000)), SealingKeyVerdict::kAccepted);
  EXPECT_EQ(verdict(1, kT), SealingKeyVerdict::kRetired);
  EXPECT_EQ(verdict(2, kT), SealingKeyVerdict::kRetired);
  EXPECT_EQ(verdict(0, kT), SealingKeyVerdict::kUnknown);
  EXPECT_EQ(verdict(5, kT), SealingKeyVerdict::kUnknown);
}

}  // namespace
}  // namespace fieldsync::admin
