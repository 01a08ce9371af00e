#include "sync/case_key_sealer.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/master_key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/case_keys.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;

class CaseKeySealerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    store_ = *storage::Store::Open(o);
    keys_ = std::make_unique<keys::CaseKeyStore>(store_.get(), &ring_);
    sealer_ = std::make_unique<CaseKeySealer>(store_.get(), keys_.get(), &random_);
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SeededRandom random_;
  crypto::MasterKeyRing ring_ = crypto::MasterKeyRing::Generate(random_);
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<keys::CaseKeyStore> keys_;
  std::unique_ptr<CaseKeySealer> sealer_;
};

const std::string kCase = testing::Id(1);
const std::string kRecord = testing::Id(2);

// Commits `writes` as the commit step does: Keep, put, commit, AfterCommit.
void CommitKeys(CaseKeySealer& sealer, storage::Store& store, std::vector<KeyWrite> writes) {
  ASSERT_THAT(sealer.Keep(&writes), IsOk());
  storage::WriteBatch batch;
  for (const KeyWrite& w : writes) batch.Put(storage::Cf::kKeys, w.key, w.value);
  const absl::Status committed = store.Commit(&batch);
  sealer.AfterCommit(writes, committed);
  ASSERT_THAT(committed, IsOk());
}

TEST_F(CaseKeySealerTest, SealedValueOpensOnlyAtItsAddressOnceItsKeyIsCommitted) {
  std::vector<KeyWrite> writes;
  absl::StatusOr<std::string> sealed =
      sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &writes);
  ASSERT_THAT(sealed, IsOk());
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].key, storage::EncodeCaseDekKey(*ParseUuid(kCase)));
  // Nothing is in the store until the caller commits the key with the value.
  EXPECT_THAT(store_->Get(storage::Cf::kKeys, writes[0].key),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              StatusIs(absl::StatusCode::kNotFound));

  CommitKeys(*sealer_, *store_, writes);

  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              IsOkAndHolds(std::string("Amina")));
  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "family_name"}, *sealed),
              StatusIs(absl::StatusCode::kDataLoss));
  // A fresh sealer (a restart) opens it from the store alone.
  CaseKeySealer fresh(store_.get(), keys_.get(), &random_);
  EXPECT_THAT(fresh.Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              IsOkAndHolds(std::string("Amina")));
}

TEST_F(CaseKeySealerTest, EveryUnitUsingAPendingKeyCarriesItOnceUntilOneCommits) {
  std::vector<KeyWrite> first, second;
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &first), IsOk());
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "family_name"}, "Okello", &first), IsOk());
  ASSERT_THAT(sealer_->Digest(kCase, "given_name", "Amina", &first), IsOk());
  absl::StatusOr<std::string> later =
      sealer_->Seal(FieldAddress{kCase, kRecord, "village"}, "Hill", &second);
  ASSERT_THAT(later, IsOk());

  ASSERT_EQ(first.size(), 1u);  // once per key per vector
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first[0].value, second[0].value);  // the same key, not a second one
  EXPECT_EQ(sealer_->pending_keys(), 1u);

  // The first unit fails to commit (its writes are dropped): the second
  // still carries the key, so its value opens after its own commit.
  CommitKeys(*sealer_, *store_, second);
  EXPECT_EQ(sealer_->pending_keys(), 0u);
  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "village"}, *later),
              IsOkAndHolds(std::string("Hill")));
  // Once durable, sealing adds no key write.
  std::vector<KeyWrite> third;
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "sex"}, "f", &third), IsOk());
  EXPECT_TRUE(third.empty());
}

TEST_F(CaseKeySealerTest, KeepDropsAKeyThatBecameDurableOrWasErased) {
  std::vector<KeyWrite> a, b;
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &a), IsOk());
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "family_name"}, "Okello", &b), IsOk());
  CommitKeys(*sealer_, *store_, a);
  // b's copy is stale: the key is durable already.
  ASSERT_THAT(sealer_->Keep(&b), IsOk());
  EXPECT_TRUE(b.empty());

  // A key pending while its case is erased is never written over the
  // erasure marker.
  const std::string other = testing::Id(7);
  std::vector<KeyWrite> c;
  ASSERT_THAT(sealer_->Seal(FieldAddress{other, other, "given_name"}, "Joy", &c), IsOk());
  ASSERT_EQ(c.size(), 1u);
  ASSERT_THAT(keys_->Erase(*ParseUuid(other)), IsOk());
  ASSERT_THAT(sealer_->Keep(&c), IsOk());
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(sealer_->pending_keys(), 0u);
}

TEST_F(CaseKeySealerTest, DigestIsDeterministicPerCaseAndField) {
  std::vector<KeyWrite> w;
  absl::StatusOr<std::string> a = sealer_->Digest(kCase, "given_name", "Amina", &w);
  ASSERT_THAT(a, IsOk());

  EXPECT_THAT(sealer_->Digest(kCase, "given_name", "Amina", &w), IsOkAndHolds(*a));
  EXPECT_NE(*sealer_->Digest(kCase, "family_name", "Amina", &w), *a);
  EXPECT_NE(*sealer_->Digest(testing::Id(9), "given_name", "Amina", &w), *a);
  // The same after the key is committed.
  CommitKeys(*sealer_, *store_, w);
  std::vector<KeyWrite> none;
  EXPECT_THAT(sealer_->Digest(kCase, "given_name", "Amina", &none), IsOkAndHolds(*a));
  EXPECT_TRUE(none.empty());
}

TEST_F(CaseKeySealerTest, ScopedSealsAndDigestsMatchUnscopedOnesAndCarryTheKeyOnce) {
  std::vector<KeyWrite> w;
  std::unique_ptr<SealScope> scope = sealer_->NewScope();
  ASSERT_NE(scope, nullptr);
  absl::StatusOr<std::string> sealed =
      sealer_->SealIn(scope.get(), FieldAddress{kCase, kRecord, "given_name"}, "Amina", &w);
  ASSERT_THAT(sealed, IsOk());
  absl::StatusOr<std::string> digest =
      sealer_->DigestIn(scope.get(), kCase, "given_name", "Amina", &w);
  ASSERT_THAT(digest, IsOk());
  ASSERT_THAT(
      sealer_->SealIn(scope.get(), FieldAddress{kCase, kRecord, "family_name"}, "Okello", &w),
      IsOk());
  absl::StatusOr<std::string> other_case =
      sealer_->DigestIn(scope.get(), testing::Id(9), "given_name", "Amina", &w);
  ASSERT_THAT(other_case, IsOk());

  // One key write per new case, however many fields the scope sealed.
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].key, storage::EncodeCaseDekKey(*ParseUuid(kCase)));
  EXPECT_EQ(w[1].key, storage::EncodeCaseDekKey(*ParseUuid(testing::Id(9))));
  std::vector<KeyWrite> unscoped;
  EXPECT_THAT(sealer_->Digest(kCase, "given_name", "Amina", &unscoped), IsOkAndHolds(*digest));
  EXPECT_NE(*other_case, *digest);
  CommitKeys(*sealer_, *store_, w);
  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              IsOkAndHolds(std::string("Amina")));
  // A scope made after the commit derives the same digest from the
  // durable key, and adds no key write.
  std::unique_ptr<SealScope> later = sealer_->NewScope();
  std::vector<KeyWrite> none;
  EXPECT_THAT(sealer_->DigestIn(later.get(), kCase, "given_name", "Amina", &none),
              IsOkAndHolds(*digest));
  EXPECT_TRUE(none.empty());
}

// A scope remembers the ids it parsed last: fields of two cases and two
// records sealed in turn, with a malformed id between them, each open at
// their own address only.
TEST_F(CaseKeySealerTest, ScopedSealsOfInterleavedIdsEachOpenAtTheirOwnAddress) {
  const std::string other_case = testing::Id(9), other_record = testing::Id(10);
  const std::vector<FieldAddress> addresses = {
      {kCase, kRecord, "given_name"},         {kCase, kRecord, "family_name"},
      {other_case, other_case, "given_name"}, {kCase, other_record, "given_name"},
      {other_case, kRecord, "given_name"},    {kCase, kRecord, "age"}};
  std::vector<KeyWrite> w;
  std::unique_ptr<SealScope> scope = sealer_->NewScope();
  std::vector<std::string> sealed;
  for (size_t i = 0; i < addresses.size(); ++i) {
    absl::StatusOr<std::string> s =
        sealer_->SealIn(scope.get(), addresses[i], absl::StrCat("value ", i), &w);
    ASSERT_THAT(s, IsOk());
    sealed.push_back(*s);
    EXPECT_THAT(sealer_->SealIn(scope.get(), FieldAddress{"not-a-uuid", kRecord, "x"}, "x", &w),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(sealer_->DigestIn(scope.get(), "not-a-uuid", "x", "x", &w),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  CommitKeys(*sealer_, *store_, w);
  for (size_t i = 0; i < addresses.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(sealer_->Open(addresses[i], sealed[i]), IsOkAndHolds(absl::StrCat("value ", i)));
    const FieldAddress& next = addresses[(i + 1) % addresses.size()];
    EXPECT_FALSE(sealer_->Open(next, sealed[i]).ok());
  }
}

TEST_F(CaseKeySealerTest, ScopedSealOfAnErasedCaseIsRefused) {
  std::vector<KeyWrite> w;
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &w), IsOk());
  CommitKeys(*sealer_, *store_, w);
  ASSERT_THAT(keys_->Erase(*ParseUuid(kCase)), IsOk());

  std::unique_ptr<SealScope> scope = sealer_->NewScope();
  std::vector<KeyWrite> after;
  EXPECT_THAT(sealer_->SealIn(scope.get(), FieldAddress{kCase, kRecord, "given_name"}, "x", &after),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(sealer_->DigestIn(scope.get(), kCase, "given_name", "x", &after),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(after.empty());
}

TEST_F(CaseKeySealerTest, ErasedCaseNoLongerOpens) {
  std::vector<KeyWrite> w;
  absl::StatusOr<std::string> sealed =
      sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &w);
  ASSERT_THAT(sealed, IsOk());
  CommitKeys(*sealer_, *store_, w);

  ASSERT_THAT(keys_->Erase(*ParseUuid(kCase)), IsOk());

  EXPECT_THAT(sealer_->Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              StatusIs(absl::StatusCode::kNotFound));
  std::vector<KeyWrite> after;
  EXPECT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "x", &after),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(after.empty());
}

// A new case sealed before a master key rotation and committed after its
// rewrap pass: the key is committed under the new version, and the values
// sealed before the rotation open.
TEST_F(CaseKeySealerTest, KeyPendingAcrossAMasterKeyRotationCommitsUnderTheNewVersion) {
  std::vector<KeyWrite> w;
  absl::StatusOr<std::string> sealed =
      sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &w);
  ASSERT_THAT(sealed, IsOk());
  ASSERT_EQ(w.size(), 1u);
  ASSERT_THAT(crypto::MasterKeyRing::WrappedVersion(w[0].value), IsOkAndHolds(1u));
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  ASSERT_THAT(keys_->RewrapAll(random_), IsOk());

  CommitKeys(*sealer_, *store_, w);

  EXPECT_THAT(keys_->WrappedVersion(*ParseUuid(kCase)), IsOkAndHolds(2u));
  EXPECT_EQ(sealer_->pending_keys(), 0u);
  CaseKeySealer fresh(store_.get(), keys_.get(), &random_);
  EXPECT_THAT(fresh.Open(FieldAddress{kCase, kRecord, "given_name"}, *sealed),
              IsOkAndHolds(std::string("Amina")));
}

// A group that fails to commit ends its hold on the rewrap pass (a later
// rotation is not held up) and leaves the key pending for the next unit.
TEST_F(CaseKeySealerTest, FailedCommitReleasesTheRewrapPassAndKeepsTheKeyPending) {
  std::vector<KeyWrite> failed, next;
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "given_name"}, "Amina", &failed), IsOk());
  ASSERT_THAT(sealer_->Seal(FieldAddress{kCase, kRecord, "village"}, "Hill", &next), IsOk());
  ASSERT_THAT(sealer_->Keep(&failed), IsOk());
  ASSERT_EQ(failed.size(), 1u);
  sealer_->AfterCommit(failed, absl::UnavailableError("injected: the group did not commit"));
  EXPECT_EQ(sealer_->pending_keys(), 1u);

  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  ASSERT_THAT(keys_->RewrapAll(random_), IsOk());  // returns: nothing holds it
  CommitKeys(*sealer_, *store_, next);

  EXPECT_EQ(sealer_->pending_keys(), 0u);
  EXPECT_THAT(keys_->WrappedVersion(*ParseUuid(kCase)), IsOkAndHolds(2u));
}

}  // namespace
}  // namespace fieldsync::sync
