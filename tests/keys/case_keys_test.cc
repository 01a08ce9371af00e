#include "keys/case_keys.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "crypto/bytes.h"
#include "crypto/field_cipher.h"
#include "crypto/master_key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/column_families.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::keys {
namespace {

using crypto::AsBytes;
using crypto::FieldAddress;
using crypto::FieldCipher;
using crypto::MasterKeyRing;
using crypto::SecretBytes;
using crypto::ToString;

using ::fieldsync::testing::FilesContaining;
using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::ScopedTempDir;
using ::fieldsync::testing::SeededRandom;
using ::fieldsync::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Str(const SecretBytes& s) { return ToString(s.span()); }

class CaseKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<storage::Store>> s = storage::Store::Open(o);
    ASSERT_THAT(s, IsOk());
    store_ = *std::move(s);
    keys_ = std::make_unique<CaseKeyStore>(store_.get(), &ring_, options_);
  }

  void TearDown() override {
    keys_.reset();
    if (store_ != nullptr) {
      EXPECT_THAT(store_->Close(), IsOk());
    }
  }

  Uuid NewCase() { return NewUuid(random_); }

  // Creates and commits a DEK for `case_id`; returns it.
  SecretBytes Create(const Uuid& case_id) {
    storage::WriteBatch batch;
    absl::StatusOr<SecretBytes> dek = keys_->CreateDek(case_id, random_, &batch);
    EXPECT_THAT(dek, IsOk());
    EXPECT_THAT(store_->Commit(&batch), IsOk());
    return dek.ok() ? *std::move(dek) : SecretBytes();
  }

  std::string StoredWrapped(const Uuid& case_id) {
    absl::StatusOr<std::string> v =
        store_->Get(storage::Cf::kKeys, storage::EncodeCaseDekKey(case_id));
    EXPECT_THAT(v, IsOk());
    return v.ok() ? *v : "";
  }

  FieldAddress Address(const Uuid& case_id, std::string_view field) {
    FieldAddress a;
    a.case_id = case_id;
    a.record_id = case_id;
    a.field_name = field;
    a.key_version = kCaseDekVersion;
    return a;
  }

  SeededRandom random_;
  MasterKeyRing ring_ = MasterKeyRing::Generate(random_);
  CaseKeyStoreOptions options_;
  ScopedTempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<CaseKeyStore> keys_;
};

TEST_F(CaseKeyStoreTest, CreatedDekReadsBackAfterCommit) {
  const Uuid c = NewCase();
  storage::WriteBatch batch;
  absl::StatusOr<SecretBytes> dek = keys_->CreateDek(c, random_, &batch);
  ASSERT_THAT(dek, IsOk());
  EXPECT_EQ(dek->size(), 32u);
  // Not committed yet: no key, and nothing cached.
  EXPECT_THAT(keys_->GetDek(c), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no data key")));
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  absl::StatusOr<SecretBytes> got = keys_->GetDek(c);

  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(*got, *dek);
}

TEST_F(CaseKeyStoreTest, StoredValueIsTheDekWrappedForItsCase) {
  const Uuid c = NewCase();
  const SecretBytes dek = Create(c);
  const std::string wrapped = StoredWrapped(c);

  EXPECT_EQ(wrapped.size(), MasterKeyRing::kWrapOverhead + 32);
  EXPECT_EQ(wrapped.find(Str(dek)), std::string::npos);
  EXPECT_THAT(MasterKeyRing::WrappedVersion(wrapped), IsOkAndHolds(1u));
  absl::StatusOr<SecretBytes> unwrapped = ring_.Unwrap(CaseKeyStore::WrapPurpose(c), wrapped);
  ASSERT_THAT(unwrapped, IsOk());
  EXPECT_EQ(*unwrapped, dek);
  // Bound to its case: the purpose of another case does not open it.
  EXPECT_THAT(ring_.Unwrap(CaseKeyStore::WrapPurpose(NewCase()), wrapped),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(CaseKeyStoreTest, WrappedDekMovedToAnotherCaseDoesNotOpen) {
  const Uuid a = NewCase();
  const Uuid b = NewCase();
  Create(a);
  Create(b);
  storage::WriteBatch swap;
  swap.Put(storage::Cf::kKeys, storage::EncodeCaseDekKey(b), StoredWrapped(a));
  ASSERT_THAT(store_->Commit(&swap), IsOk());

  EXPECT_THAT(keys_->GetDek(b), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(CaseKeyStoreTest, SecondCreateForACaseIsAlreadyExists) {
  const Uuid c = NewCase();
  Create(c);
  storage::WriteBatch batch;
  EXPECT_THAT(keys_->CreateDek(c, random_, &batch), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(batch.Count(), 0);
}

TEST_F(CaseKeyStoreTest, CacheIsBoundedAndEvictsLeastRecentlyUsed) {
  keys_ = std::make_unique<CaseKeyStore>(store_.get(), &ring_,
                                         CaseKeyStoreOptions{.cache_capacity = 3});
  std::vector<Uuid> cases;
  std::vector<SecretBytes> deks;
  for (int i = 0; i < 5; ++i) {
    cases.push_back(NewCase());
    deks.push_back(Create(cases.back()));
  }
  for (int i = 0; i < 5; ++i) ASSERT_THAT(keys_->GetDek(cases[i]), IsOk());
  EXPECT_EQ(keys_->cached_count(), 3u);
  // Every key still reads correctly, cached or not.
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<SecretBytes> got = keys_->GetDek(cases[i]);
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(*got, deks[i]);
  }
  EXPECT_EQ(keys_->cached_count(), 3u);
}

TEST_F(CaseKeyStoreTest, FieldCipherOfACaseOpensWhatItsDekSealed) {
  const Uuid c = NewCase();
  const SecretBytes dek = Create(c);
  absl::StatusOr<std::string> sealed =
      EncryptField(dek, Address(c, "given_name"), AsBytes("Ana"), random_);
  ASSERT_THAT(sealed, IsOk());

  absl::StatusOr<std::shared_ptr<const FieldCipher>> cipher = keys_->GetFieldCipher(c);

  ASSERT_THAT(cipher, IsOk());
  EXPECT_THAT((*cipher)->Decrypt(Address(c, "given_name"), *sealed), IsOkAndHolds("Ana"));
}

// Creates DEKs under KEK version 1, rotates, and checks that every key is
// re-wrapped under version 2 while each field sealed before still opens.
TEST_F(CaseKeyStoreTest, RotationRewrapsEveryDekAndKeepsFieldsReadable) {
  keys_ = std::make_unique<CaseKeyStore>(store_.get(), &ring_,
                                         CaseKeyStoreOptions{.rewrap_batch_size = 7});
  constexpr int kCases = 50;
  std::vector<Uuid> cases;
  std::vector<std::string> sealed;
  for (int i = 0; i < kCases; ++i) {
    cases.push_back(NewCase());
    const SecretBytes dek = Create(cases.back());
    absl::StatusOr<std::string> s = EncryptField(dek, Address(cases.back(), "name"),
                                                 AsBytes("child " + std::to_string(i)), random_);
    ASSERT_THAT(s, IsOk());
    sealed.push_back(*s);
  }
  ASSERT_THAT(keys_->Erase(cases[0]), IsOk());
  ASSERT_THAT(keys_->GetDek(cases[1]), IsOk());  // one cached across the rotation
  const std::string before = StoredWrapped(cases[1]);
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());

  absl::StatusOr<RewrapCounts> counts = keys_->RewrapAll(random_);

  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->examined, size_t{kCases});
  EXPECT_EQ(counts->rewrapped, size_t{kCases - 1});
  EXPECT_EQ(counts->erased, 1u);
  EXPECT_EQ(counts->already_current, 0u);
  // Keys are visited in key order, 7 per step; a step commits only when it
  // has something to rewrap, so the step holding nothing but the erased case
  // (possible when it sorts last, alone in the final step) commits nothing.
  std::vector<std::string> key_order;
  for (const Uuid& c : cases) key_order.push_back(storage::EncodeCaseDekKey(c));
  std::sort(key_order.begin(), key_order.end());
  const std::string erased_key = storage::EncodeCaseDekKey(cases[0]);
  size_t expected_batches = 0;
  for (size_t begin = 0; begin < key_order.size(); begin += 7) {
    const size_t end = std::min(begin + 7, key_order.size());
    const bool only_erased = end - begin == 1 && key_order[begin] == erased_key;
    if (!only_erased) ++expected_batches;
  }
  EXPECT_EQ(counts->batches, expected_batches);
  EXPECT_NE(StoredWrapped(cases[1]), before);
  // A fresh store (empty cache) unwraps every key under version 2.
  CaseKeyStore fresh(store_.get(), &ring_);
  for (int i = 1; i < kCases; ++i) {
    EXPECT_THAT(MasterKeyRing::WrappedVersion(StoredWrapped(cases[i])), IsOkAndHolds(2u));
    absl::StatusOr<std::shared_ptr<const FieldCipher>> cipher = fresh.GetFieldCipher(cases[i]);
    ASSERT_THAT(cipher, IsOk());
    EXPECT_THAT((*cipher)->Decrypt(Address(cases[i], "name"), sealed[i]),
                IsOkAndHolds("child " + std::to_string(i)));
  }
  // A second pass finds nothing to do.
  absl::StatusOr<RewrapCounts> again = keys_->RewrapAll(random_);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->rewrapped, 0u);
  EXPECT_EQ(again->already_current, size_t{kCases - 1});
  EXPECT_EQ(again->batches, 0u);
}

TEST_F(CaseKeyStoreTest, RotationRunsWhileOtherThreadsReadKeys) {
  constexpr int kCases = 40;
  std::vector<Uuid> cases;
  std::vector<SecretBytes> deks;
  for (int i = 0; i < kCases; ++i) {
    cases.push_back(NewCase());
    deks.push_back(Create(cases.back()));
  }
  keys_ = std::make_unique<CaseKeyStore>(
      store_.get(), &ring_, CaseKeyStoreOptions{.cache_capacity = 4, .rewrap_batch_size = 3});
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      for (int i = t; !stop.load(); i = (i + 1) % kCases) {
        absl::StatusOr<SecretBytes> got = keys_->GetDek(cases[i]);
        if (!got.ok() || !(*got == deks[i])) failures.fetch_add(1);
      }
    });
  }

  absl::StatusOr<RewrapCounts> counts = keys_->RewrapAll(random_);
  stop.store(true);
  for (std::thread& t : readers) t.join();

  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->rewrapped, size_t{kCases});
  EXPECT_EQ(failures.load(), 0);
}

// A new case's key made under version 1 and committed only after a whole
// rotation to version 2 (its rewrap pass found nothing to do for it) is
// committed under version 2, and still holds the same DEK.
TEST_F(CaseKeyStoreTest, NewKeyMadeBeforeARotationAndCommittedAfterItEndsUnderTheNewVersion) {
  const Uuid c = NewCase();
  absl::StatusOr<CaseKeyStore::NewDek> made = keys_->MakeDek(c, random_);
  ASSERT_THAT(made, IsOk());
  ASSERT_THAT(MasterKeyRing::WrappedVersion(made->wrapped), IsOkAndHolds(1u));
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  absl::StatusOr<RewrapCounts> counts = keys_->RewrapAll(random_);
  ASSERT_THAT(counts, IsOk());
  ASSERT_EQ(counts->examined, 0u);

  {
    CaseKeyStore::NewKeyCommit commit = keys_->BeginNewKeyCommit();
    absl::StatusOr<std::string> value = commit.Current(made->store_key, made->wrapped, random_);
    ASSERT_THAT(value, IsOk());
    storage::WriteBatch batch;
    batch.Put(storage::Cf::kKeys, made->store_key, *value);
    ASSERT_THAT(store_->Commit(&batch), IsOk());
  }

  EXPECT_THAT(keys_->WrappedVersion(c), IsOkAndHolds(2u));
  absl::StatusOr<SecretBytes> dek = keys_->GetDek(c);
  ASSERT_THAT(dek, IsOk());
  EXPECT_EQ(Str(*dek), Str(made->dek));
}

// The interleaving of a push with a rotation: a new key's commit is under
// way (its wrapping chosen under version 1) when the rotation installs
// version 2 and starts its rewrap pass. The pass waits for that commit to
// land and then rewraps the key, instead of scanning past it.
TEST_F(CaseKeyStoreTest, RewrapPassWaitsForANewKeyCommitUnderWayAndRewrapsTheKey) {
  absl::Mutex mu;
  bool rotation_waits_or_ended = false;  // guarded by mu
  options_.on_rewrap_waits = [&] {
    absl::MutexLock lock(&mu);
    rotation_waits_or_ended = true;
  };
  keys_ = std::make_unique<CaseKeyStore>(store_.get(), &ring_, options_);
  const Uuid c = NewCase();
  absl::StatusOr<CaseKeyStore::NewDek> made = keys_->MakeDek(c, random_);
  ASSERT_THAT(made, IsOk());
  std::optional<CaseKeyStore::NewKeyCommit> commit = keys_->BeginNewKeyCommit();
  absl::StatusOr<std::string> value = commit->Current(made->store_key, made->wrapped, random_);
  ASSERT_THAT(value, IsOk());
  ASSERT_THAT(MasterKeyRing::WrappedVersion(*value), IsOkAndHolds(1u));

  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  absl::StatusOr<RewrapCounts> counts;
  std::thread rotation([&] {
    counts = keys_->RewrapAll(random_);
    absl::MutexLock lock(&mu);
    rotation_waits_or_ended = true;
  });
  // The rewrap pass is waiting for the commit (or, were it not to wait,
  // has scanned already): only now does the key land.
  mu.LockWhen(absl::Condition(&rotation_waits_or_ended));
  mu.Unlock();
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kKeys, made->store_key, *value);
  const absl::Status committed = store_->Commit(&batch);
  commit.reset();
  rotation.join();

  ASSERT_THAT(committed, IsOk());
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->rewrapped, 1u);
  EXPECT_THAT(keys_->WrappedVersion(c), IsOkAndHolds(2u));
  absl::StatusOr<SecretBytes> dek = keys_->GetDek(c);
  ASSERT_THAT(dek, IsOk());
  EXPECT_EQ(Str(*dek), Str(made->dek));
}

TEST_F(CaseKeyStoreTest, ErasedCaseKeyIsNotFoundAndCannotBeRecreated) {
  const Uuid c = NewCase();
  const SecretBytes dek = Create(c);
  absl::StatusOr<std::string> sealed =
      EncryptField(dek, Address(c, "name"), AsBytes("Ana"), random_);
  ASSERT_THAT(sealed, IsOk());
  ASSERT_THAT(keys_->GetDek(c), IsOk());
  ASSERT_EQ(keys_->cached_count(), 1u);

  ASSERT_THAT(keys_->Erase(c), IsOk());

  EXPECT_EQ(keys_->cached_count(), 0u);
  EXPECT_THAT(keys_->GetDek(c),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("case key erased")));
  EXPECT_THAT(keys_->GetFieldCipher(c),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("case key erased")));
  storage::WriteBatch batch;
  EXPECT_THAT(keys_->CreateDek(c, random_, &batch),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Erasing again is harmless.
  EXPECT_THAT(keys_->Erase(c), IsOk());
  EXPECT_THAT(keys_->GetDek(c), StatusIs(absl::StatusCode::kNotFound, HasSubstr("erased")));
}

TEST_F(CaseKeyStoreTest, EraseCommitsTheCallersBatchWithTheMarker) {
  const Uuid c = NewCase();
  Create(c);
  storage::WriteBatch batch;
  batch.Put(storage::Cf::kMetadata, "erasure-audit", "event");

  ASSERT_THAT(keys_->Erase(c, &batch), IsOk());

  EXPECT_THAT(store_->Get(storage::Cf::kMetadata, "erasure-audit"), IsOkAndHolds("event"));
  EXPECT_THAT(keys_->GetDek(c), StatusIs(absl::StatusCode::kNotFound));
}

// The wrapped DEK reaches the WAL at commit and an SST file at flush; after
// Erase no file in the store's directory holds it (nor the DEK itself),
// while the other cases' keys are intact.
TEST_F(CaseKeyStoreTest, ErasureRemovesTheWrappedDekFromEveryFile) {
  const Uuid erased = NewCase();
  const Uuid kept = NewCase();
  const SecretBytes dek = Create(erased);
  const SecretBytes kept_dek = Create(kept);
  const std::string wrapped = StoredWrapped(erased);
  const std::string db = store_->path();
  ASSERT_THAT(FilesContaining(db, wrapped), Not(IsEmpty())) << "in the WAL";
  ASSERT_THAT(store_->Flush(), IsOk());
  ASSERT_THAT(FilesContaining(db, wrapped), Not(IsEmpty())) << "in an SST file";
  // A second copy only in the WAL (a rewrap's), and a later unflushed write
  // elsewhere that keeps that WAL file in use.
  ASSERT_THAT(ring_.AddVersion(random_), IsOk());
  ASSERT_THAT(keys_->RewrapAll(random_), IsOk());
  const std::string rewrapped = StoredWrapped(erased);
  storage::WriteBatch other;
  other.Put(storage::Cf::kRecords, "unflushed", "keeps the WAL busy");
  ASSERT_THAT(store_->Commit(&other), IsOk());
  ASSERT_THAT(FilesContaining(db, rewrapped), Not(IsEmpty()));

  ASSERT_THAT(keys_->Erase(erased), IsOk());

  EXPECT_THAT(FilesContaining(db, wrapped), IsEmpty());
  EXPECT_THAT(FilesContaining(db, rewrapped), IsEmpty());
  EXPECT_THAT(FilesContaining(db, Str(dek)), IsEmpty());
  absl::StatusOr<SecretBytes> kept_now = keys_->GetDek(kept);
  ASSERT_THAT(kept_now, IsOk());
  EXPECT_EQ(*kept_now, kept_dek);
  EXPECT_THAT(store_->Get(storage::Cf::kRecords, "unflushed"), IsOk());
}

// A snapshot older than the erasure pins the old value in the files; a
// second Erase after it is released removes it (docs/SECURITY.md).
TEST_F(CaseKeyStoreTest, SnapshotOlderThanErasureDelaysShreddingUntilReleased) {
  const Uuid c = NewCase();
  Create(c);
  const std::string wrapped = StoredWrapped(c);
  std::unique_ptr<storage::Snapshot> snap = store_->GetSnapshot();

  ASSERT_THAT(keys_->Erase(c), IsOk());
  EXPECT_THAT(FilesContaining(store_->path(), wrapped), Not(IsEmpty()));
  snap.reset();
  ASSERT_THAT(keys_->Erase(c), IsOk());

  EXPECT_THAT(FilesContaining(store_->path(), wrapped), IsEmpty());
}

TEST_F(CaseKeyStoreTest, KeyWrappedUnderAVersionTheRingLacksIsFailedPrecondition) {
  const Uuid c = NewCase();
  SeededRandom other_random(7);
  MasterKeyRing newer = MasterKeyRing::Generate(other_random);
  ASSERT_THAT(newer.AddVersion(other_random), IsOk());
  CaseKeyStore writer(store_.get(), &newer);
  storage::WriteBatch batch;
  ASSERT_THAT(writer.CreateDek(c, random_, &batch), IsOk());
  ASSERT_THAT(store_->Commit(&batch), IsOk());

  EXPECT_THAT(keys_->GetDek(c), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace fieldsync::keys
