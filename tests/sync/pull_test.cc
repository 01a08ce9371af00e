#include "sync/pull.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "crypto/master_key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/case_keys.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "storage/store.h"
#include "sync/case_entries.h"
#include "sync/case_key_sealer.h"
#include "sync/change_feed.h"
#include "sync/errors.h"
#include "sync/ingest.h"
#include "sync/log_codec.h"
#include "sync/rebuild.h"
#include "sync/scope.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::StatusIs;
using ::testing::ElementsAre;
using testing::HlcAt;
using testing::Id;
using ::testing::IsEmpty;
using testing::NewCase;
using testing::Str;
using testing::Upsert;

constexpr int64_t kStart = int64_t{1795000000} * 1000000;

// A real store, ingest and feed, with the production sealer over a real
// case key store (so that erasure is the real one).
class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    schema_ = testing::LoadDefaultSchemaOrDie();
    storage::StoreOptions o;
    o.path = dir_.Sub("db");
    o.create_if_missing = true;
    store_ = *storage::Store::Open(o);
    keys_ = std::make_unique<keys::CaseKeyStore>(store_.get(), &ring_);
    sealer_ = std::make_unique<CaseKeySealer>(store_.get(), keys_.get(), &random_);
    Ingest::Options io;
    io.store = store_.get();
    io.schema = schema_.get();
    io.sealer = sealer_.get();
    io.clock = &clock_;
    ingest_ = std::make_unique<Ingest>(io);
    feed_ = std::make_unique<ChangeFeed>(store_.get(), schema_.get(), sealer_.get());
  }

  // Device `device` (of `officer`) pushes `changes` as its next batch.
  void PushAs(const std::string& device, const std::string& officer,
              const std::vector<v1::RecordChange>& changes) {
    BatchMeta meta;
    meta.device_id = device;
    meta.officer_id = officer;
    meta.sequence = ++sequences_[device];
    meta.batch_id = Id(0x500000 + static_cast<int>(++batches_));
    v1::BatchPayload payload;
    for (const v1::RecordChange& c : changes) *payload.add_changes() = c;
    absl::StatusOr<PushResult> r = ingest_->Push(meta, payload);
    ASSERT_THAT(r, IsOk());
    for (const v1::ChangeResult& c : r->result.results()) {
      ASSERT_NE(c.outcome(), v1::CHANGE_OUTCOME_REJECTED) << c.detail();
    }
  }
  // A new case `n` in `region` for `officer` (its device registers it).
  void NewCaseOf(const std::string& officer, int n, const std::string& region) {
    ++changes_;
    PushAs("dev-" + officer, officer,
           {NewCase(Id(0x100000 + changes_), Id(n), region, HlcAt(kStart + changes_))});
  }
  // An edit of case `n`'s registration by `officer`'s device.
  void EditOf(const std::string& officer, int n) {
    ++changes_;
    PushAs("dev-" + officer, officer,
           {Upsert(Id(0x100000 + changes_), Id(n), Id(n), "case_registration",
                   {{"given_name", Str("Name " + std::to_string(changes_))}}, 0,
                   HlcAt(kStart + changes_))});
  }
  // A follow-up record of case `n` (not the registration).
  void FollowUpOf(const std::string& officer, int n) {
    ++changes_;
    PushAs("dev-" + officer, officer,
           {Upsert(Id(0x100000 + changes_), Id(n), Id(0x200000 + changes_), "follow_up",
                   {{"follow_up_date", testing::DateValue(2026, 11, 3)}, {"notes", Str("seen")}}, 0,
                   HlcAt(kStart + changes_))});
  }

  static ReadScope OfficerScope(const std::string& officer) {
    ReadScope s;
    s.officer_id = officer;
    s.readable = ReadScope::AllClasses();
    return s;
  }
  static ReadScope RegionScope(std::initializer_list<std::string> regions) {
    ReadScope s;
    s.regions.insert(regions.begin(), regions.end());
    s.readable = ReadScope::AllClasses();
    return s;
  }

  // The positions in (after, through] a reader of `scope` may get now,
  // decided entry by entry from the whole log and the scope rule.
  std::vector<uint64_t> Reference(const ReadScope& scope, uint64_t after, uint64_t through) {
    std::vector<uint64_t> out;
    std::unique_ptr<storage::Iterator> it =
        store_->NewIterator(storage::Cf::kCaseLog, storage::EncodeCaseLogKey(after + 1),
                            storage::EncodeCaseLogKey(through + 1), nullptr);
    for (; it->Valid(); it->Next()) {
      v1::CaseLogEntry entry;
      EXPECT_THAT(DecodeLogEntry(it->value(), *storage::DecodeCaseLogKey(it->key()),
                                 store_->names(), &entry),
                  IsOk());
      absl::StatusOr<CaseOwner> owner =
          ReadCaseOwner(store_.get(), *schema_, *ParseUuid(entry.case_id()), nullptr);
      EXPECT_THAT(owner.status(), IsOk());
      if (Reaches(scope, *owner)) out.push_back(*storage::DecodeCaseLogKey(it->key()));
    }
    return out;
  }
  uint64_t Last() { return *feed_->LastPosition(nullptr); }

  static std::vector<uint64_t> Positions(const v1::PulledChanges& changes) {
    std::vector<uint64_t> out;
    for (const v1::PulledChange& c : changes.changes()) out.push_back(c.position());
    return out;
  }

  // Reads one chunk and checks it is exact for the state it was read in:
  // every in-scope entry after the cursor up to where it stops, nothing
  // else.
  v1::PulledChanges CheckedChunk(ScopedLogReader& reader, const ReadScope& scope, uint64_t cursor,
                                 size_t max_changes) {
    absl::StatusOr<v1::PulledChanges> chunk = reader.Next(max_changes, 1 << 20);
    EXPECT_THAT(chunk.status(), IsOk());
    if (!chunk.ok()) return {};
    EXPECT_EQ(Positions(*chunk), Reference(scope, cursor, chunk->next_cursor()));
    EXPECT_LE(chunk->changes_size(), static_cast<int>(max_changes));
    if (chunk->caught_up()) {
      EXPECT_EQ(chunk->next_cursor(), Last());
    }
    return *std::move(chunk);
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SeededRandom random_;
  fieldsync::testing::SimulatedClock clock_{absl::FromUnixMicros(kStart)};
  crypto::MasterKeyRing ring_ = crypto::MasterKeyRing::Generate(random_);
  std::unique_ptr<Schema> schema_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<keys::CaseKeyStore> keys_;
  std::unique_ptr<CaseKeySealer> sealer_;
  std::unique_ptr<Ingest> ingest_;
  std::unique_ptr<ChangeFeed> feed_;
  std::map<std::string, uint64_t> sequences_;
  int changes_ = 0;
  int batches_ = 0;
};

TEST_F(PullTest, EachRoleGetsExactlyItsCasesInLogOrder) {
  NewCaseOf("officer-1", 1, "northern");
  NewCaseOf("officer-2", 2, "northern");
  NewCaseOf("officer-3", 3, "eastern");
  NewCaseOf("officer-1", 4, "eastern");
  for (int round = 0; round < 3; ++round) {
    EditOf("officer-1", 1);
    FollowUpOf("officer-2", 2);
    EditOf("officer-3", 3);
    FollowUpOf("officer-1", 4);
  }

  struct Case {
    ReadScope scope;
    std::set<std::string> cases;
  };
  for (const auto& [scope, cases] :
       std::vector<Case>{{OfficerScope("officer-1"), {Id(1), Id(4)}},
                         {OfficerScope("officer-2"), {Id(2)}},
                         {OfficerScope("nobody"), {}},
                         {RegionScope({"northern"}), {Id(1), Id(2)}},
                         {RegionScope({"eastern"}), {Id(3), Id(4)}},
                         {RegionScope({"northern", "eastern"}), {Id(1), Id(2), Id(3), Id(4)}}}) {
    ScopedLogReader reader(feed_.get(), scope, {});
    v1::PulledChanges chunk = CheckedChunk(reader, scope, 0, 1000);
    EXPECT_TRUE(chunk.caught_up());
    std::set<std::string> seen;
    for (const v1::PulledChange& c : chunk.changes()) seen.insert(c.case_id());
    EXPECT_EQ(seen, cases);
    EXPECT_EQ(chunk.next_cursor(), Last());
  }
}

TEST_F(PullTest, ChunksResumeExactlyInOneStreamAndAcrossReconnects) {
  for (int n = 1; n <= 12; ++n) NewCaseOf(n % 3 == 0 ? "officer-2" : "officer-1", n, "northern");
  for (int n = 1; n <= 12; ++n) EditOf(n % 3 == 0 ? "officer-2" : "officer-1", n);
  const ReadScope scope = OfficerScope("officer-1");
  const std::vector<uint64_t> all = Reference(scope, 0, Last());
  ASSERT_EQ(all.size(), 16u);

  // One stream, chunks of 3.
  std::vector<uint64_t> streamed;
  ScopedLogReader reader(feed_.get(), scope, {});
  uint64_t cursor = 0;
  int chunks = 0;
  for (bool done = false; !done; ++chunks) {
    v1::PulledChanges c = CheckedChunk(reader, scope, cursor, 3);
    for (uint64_t p : Positions(c)) streamed.push_back(p);
    cursor = c.next_cursor();
    done = c.caught_up();
  }
  EXPECT_EQ(streamed, all);
  EXPECT_GE(chunks, 6);
  EXPECT_EQ(reader.streams_seeded(), 1u);  // the index was read once

  // A new stream (a reconnect) after every chunk.
  std::vector<uint64_t> resumed;
  cursor = 0;
  for (bool done = false; !done;) {
    ScopedLogReader fresh(feed_.get(), scope, {.cursor = cursor});
    v1::PulledChanges c = CheckedChunk(fresh, scope, cursor, 3);
    for (uint64_t p : Positions(c)) resumed.push_back(p);
    cursor = c.next_cursor();
    done = c.caught_up();
  }
  EXPECT_EQ(resumed, all);
}

// The cases ForEachListedCase gives under `prefix` after `after`, and
// their positions.
std::vector<std::pair<std::string, std::string>> Listed(storage::Store* store,
                                                        std::string_view prefix,
                                                        std::string_view after = "") {
  std::vector<std::pair<std::string, std::string>> out;
  EXPECT_THAT(ForEachListedCase(store, nullptr, prefix, after,
                                [&](const Uuid& id, std::string_view position) {
                                  out.emplace_back(FormatUuid(id), std::string(position));
                                  return true;
                                }),
              IsOk());
  return out;
}

TEST_F(PullTest, ScopeListsHoldEachCaseOnceAndAGroupWritesOneOperandPerList) {
  NewCaseOf("officer-1", 1, "northern");  // names its fields in the dictionary
  auto ops = [&] { return ingest_->Stats().write_ops; };
  uint64_t before = ops();
  NewCaseOf("officer-1", 2, "northern");
  const uint64_t one_case = ops() - before;
  before = ops();
  ++changes_;
  PushAs("dev-officer-1", "officer-1",
         {NewCase(Id(0x100000 + changes_), Id(3), "northern", HlcAt(kStart + changes_)),
          NewCase(Id(0x100001 + changes_), Id(4), "northern", HlcAt(kStart + changes_ + 1)),
          NewCase(Id(0x100002 + changes_), Id(5), "northern", HlcAt(kStart + changes_ + 2))});
  changes_ += 2;
  const uint64_t three_cases = ops() - before;
  // Each further new case adds its log entry, record state and case key;
  // the scope list is one operand for the group.
  EXPECT_EQ(three_cases - one_case, 2u * 3u);

  const std::string north_1 = storage::EncodeCaseScopeListKey("northern", "officer-1");
  auto ids = [](const std::vector<std::pair<std::string, std::string>>& listed) {
    std::vector<std::string> out;
    for (const auto& [id, position] : listed) out.push_back(id);
    return out;
  };
  EXPECT_THAT(ids(Listed(store_.get(), north_1)), ElementsAre(Id(1), Id(2), Id(3), Id(4), Id(5)));

  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(2), "officer-2", 0), IsOk());
  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(4), "officer-2", 0), IsOk());
  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(4), "officer-1", 0), IsOk());
  const std::vector<std::pair<std::string, std::string>> listed = Listed(store_.get(), north_1);
  EXPECT_THAT(ids(listed), ElementsAre(Id(1), Id(3), Id(4), Id(5)));
  EXPECT_THAT(ids(Listed(store_.get(), storage::CaseScopeListRegionPrefix("northern"))),
              ElementsAre(Id(1), Id(3), Id(4), Id(5), Id(2)));
  // Positions are the list's key and the id, and resume after one.
  EXPECT_EQ(listed[1].second,
            north_1 + std::string(reinterpret_cast<const char*>(ParseUuid(Id(3))->data()), 16));
  EXPECT_THAT(
      ids(Listed(store_.get(), storage::CaseScopeListRegionPrefix("northern"), listed[1].second)),
      ElementsAre(Id(4), Id(5), Id(2)));
  EXPECT_THAT(
      ids(Listed(store_.get(), storage::CaseScopeListRegionPrefix("northern"), listed[3].second)),
      ElementsAre(Id(2)));

  // A list whose member is not a case id is corrupt: the pull says so.
  storage::WriteBatch bad;
  bad.Merge(storage::Cf::kCaseIndex, north_1, storage::EncodeKeyedSums({{"short", 1}}));
  ASSERT_THAT(store_->Commit(&bad), IsOk());
  EXPECT_THAT(ForEachListedCase(store_.get(), nullptr, north_1, "",
                                [](const Uuid&, std::string_view) { return true; }),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("scope list")));
  ScopedLogReader reader(feed_.get(), OfficerScope("officer-1"), {});
  EXPECT_THAT(reader.Next(100, 1 << 20).status(), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(PullTest, ReassignmentMidStreamMovesTheCaseBetweenOfficers) {
  for (int n = 1; n <= 4; ++n) NewCaseOf("officer-1", n, "northern");
  NewCaseOf("officer-2", 5, "northern");
  EditOf("officer-2", 5);
  const ReadScope one = OfficerScope("officer-1");
  const ReadScope two = OfficerScope("officer-2");
  ScopedLogReader reader1(feed_.get(), one, {});
  ScopedLogReader reader2(feed_.get(), two, {});
  v1::PulledChanges first1 = CheckedChunk(reader1, one, 0, 2);
  v1::PulledChanges first2 = CheckedChunk(reader2, two, 0, 1);
  ASSERT_FALSE(first1.caught_up());
  ASSERT_FALSE(first2.caught_up());

  // Case 3 (not yet sent to officer-1) goes to officer-2; case 5 (half
  // sent to officer-2) to officer-1.
  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(3), "officer-2", 0), IsOk());
  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(5), "officer-1", 0), IsOk());
  EditOf("officer-1", 5);

  std::set<std::string> later1, later2;
  uint64_t cursor1 = first1.next_cursor(), cursor2 = first2.next_cursor();
  for (bool done = false; !done;) {
    v1::PulledChanges c = CheckedChunk(reader1, one, cursor1, 2);
    for (const v1::PulledChange& ch : c.changes()) later1.insert(ch.case_id());
    cursor1 = c.next_cursor();
    done = c.caught_up();
  }
  for (bool done = false; !done;) {
    v1::PulledChanges c = CheckedChunk(reader2, two, cursor2, 2);
    for (const v1::PulledChange& ch : c.changes()) later2.insert(ch.case_id());
    cursor2 = c.next_cursor();
    done = c.caught_up();
  }
  EXPECT_EQ(later1, (std::set<std::string>{Id(4), Id(5)}));  // 5's whole stream after the cursor
  EXPECT_EQ(later2, (std::set<std::string>{Id(3)}));         // never case 5 again
  EXPECT_EQ(reader1.streams_seeded(), 1u);                   // caught up from the new entries
}

TEST_F(PullTest, TransferMidStreamMovesTheCaseBetweenRegions) {
  for (int n = 1; n <= 3; ++n) NewCaseOf("officer-1", n, "northern");
  const ReadScope north = RegionScope({"northern"});
  const ReadScope east = RegionScope({"eastern"});
  ScopedLogReader north_reader(feed_.get(), north, {});
  ScopedLogReader east_reader(feed_.get(), east, {});
  v1::PulledChanges n1 = CheckedChunk(north_reader, north, 0, 1);
  v1::PulledChanges e1 = CheckedChunk(east_reader, east, 0, 10);
  EXPECT_THAT(e1.changes(), IsEmpty());
  EXPECT_TRUE(e1.caught_up());

  ASSERT_THAT(
      ingest_->TransferCase(StaffActor{"sup-1"}, Id(2), "eastern", "eastern_1", "officer-3", 0),
      IsOk());
  FollowUpOf("officer-3", 2);

  v1::PulledChanges n2 = CheckedChunk(north_reader, north, n1.next_cursor(), 10);
  v1::PulledChanges e2 = CheckedChunk(east_reader, east, e1.next_cursor(), 10);
  for (const v1::PulledChange& c : n2.changes()) EXPECT_NE(c.case_id(), Id(2));
  ASSERT_GE(e2.changes_size(), 1);
  for (const v1::PulledChange& c : e2.changes()) EXPECT_EQ(c.case_id(), Id(2));
  EXPECT_TRUE(n2.caught_up());
  EXPECT_TRUE(e2.caught_up());
}

TEST_F(PullTest, AnErasedCaseStaysInScopeWithItsProtectedFieldsWithheld) {
  NewCaseOf("officer-1", 1, "northern");
  NewCaseOf("officer-1", 2, "northern");
  ASSERT_THAT(keys_->Erase(*ParseUuid(Id(1))), IsOk());
  const ReadScope scope = OfficerScope("officer-1");

  ScopedLogReader reader(feed_.get(), scope, {});
  v1::PulledChanges chunk = CheckedChunk(reader, scope, 0, 10);

  ASSERT_EQ(chunk.changes_size(), 2);
  const v1::PulledChange& erased = chunk.changes(0);
  EXPECT_EQ(erased.case_id(), Id(1));
  EXPECT_GT(erased.withheld_fields(), 0u);
  for (const v1::PulledField& f : erased.fields()) EXPECT_NE(f.field(), "given_name");
  bool named = false;
  for (const v1::PulledField& f : chunk.changes(1).fields()) named |= f.field() == "given_name";
  EXPECT_TRUE(named);
  EXPECT_EQ(chunk.changes(1).withheld_fields(), 0u);
}

TEST_F(PullTest, ManyNewEntriesBetweenChunksRereadTheScope) {
  for (int n = 1; n <= 5; ++n) NewCaseOf(n % 2 ? "officer-1" : "officer-2", n, "northern");
  const ReadScope scope = OfficerScope("officer-1");
  ScopedLogReader reader(feed_.get(), scope, {.max_catch_up = 3});
  v1::PulledChanges c = CheckedChunk(reader, scope, 0, 1);
  for (int n = 1; n <= 5; ++n) EditOf(n % 2 ? "officer-1" : "officer-2", n);
  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(2), "officer-1", 0), IsOk());

  std::vector<uint64_t> got = Positions(c);
  for (uint64_t cursor = c.next_cursor(); !c.caught_up(); cursor = c.next_cursor()) {
    c = CheckedChunk(reader, scope, cursor, 2);
    for (uint64_t p : Positions(c)) got.push_back(p);
  }
  EXPECT_EQ(got, Reference(scope, 0, Last()));
  EXPECT_EQ(reader.streams_seeded(), 2u);
}

TEST_F(PullTest, AChangeOverTheByteBoundIsSentAlone) {
  NewCaseOf("officer-1", 1, "northern");
  NewCaseOf("officer-1", 2, "northern");
  ScopedLogReader reader(feed_.get(), OfficerScope("officer-1"), {});

  absl::StatusOr<v1::PulledChanges> one = reader.Next(100, 1);
  ASSERT_THAT(one.status(), IsOk());
  EXPECT_EQ(one->changes_size(), 1);
  EXPECT_FALSE(one->caught_up());
  absl::StatusOr<v1::PulledChanges> two = reader.Next(100, 1);
  ASSERT_THAT(two.status(), IsOk());
  EXPECT_EQ(two->changes_size(), 1);
  EXPECT_TRUE(two->caught_up());
}

TEST_F(PullTest, BackfillSendsTheNewCasesHistoryUpToTheCursorThenGoesOn) {
  NewCaseOf("officer-1", 1, "northern");
  NewCaseOf("officer-2", 2, "northern");
  EditOf("officer-2", 2);
  EditOf("officer-1", 1);
  const uint64_t cursor = Last();  // officer-1's device is caught up here
  ASSERT_THAT(ingest_->AssignCase(StaffActor{"sup-1"}, Id(2), "officer-1", 0), IsOk());
  EditOf("officer-1", 2);

  PullStream::Request request;
  request.cursor = cursor;
  request.backfill_case_ids = {absl::AsciiStrToUpper(Id(2))};
  request.max_changes = 1;
  absl::StatusOr<std::unique_ptr<PullStream>> stream =
      PullStream::Start(feed_.get(), OfficerScope("officer-1"), request);
  ASSERT_THAT(stream.status(), IsOk());
  std::vector<uint64_t> backfilled, after;
  while (!(*stream)->done()) {
    absl::StatusOr<std::unique_ptr<PullStream::Chunk>> chunk = (*stream)->Next();
    ASSERT_THAT(chunk.status(), IsOk());
    if ((*chunk)->changes->next_cursor() == cursor && (*chunk)->cursor == cursor &&
        !(*chunk)->changes->caught_up()) {
      for (uint64_t p : Positions(*(*chunk)->changes)) backfilled.push_back(p);
    } else {
      for (uint64_t p : Positions(*(*chunk)->changes)) after.push_back(p);
    }
  }
  EXPECT_EQ(backfilled, (std::vector<uint64_t>{2, 3}));  // case 2 up to the cursor
  EXPECT_EQ(after, (std::vector<uint64_t>{cursor + 1, cursor + 2}));
}

TEST_F(PullTest, BackfillOfACaseOutOfScopeOrNotAUuidIsRefused) {
  NewCaseOf("officer-1", 1, "northern");
  NewCaseOf("officer-2", 2, "northern");
  PullStream::Request request;
  request.cursor = Last();
  request.backfill_case_ids = {Id(2)};
  absl::StatusOr<std::unique_ptr<PullStream>> out =
      PullStream::Start(feed_.get(), OfficerScope("officer-1"), request);
  EXPECT_THAT(out.status(), StatusIs(absl::StatusCode::kPermissionDenied));
  ASSERT_TRUE(GetSyncErrorDetail(out.status()).has_value());
  EXPECT_EQ(GetSyncErrorDetail(out.status())->reason(), v1::SYNC_ERROR_REASON_OUT_OF_SCOPE);
  EXPECT_EQ(GetSyncErrorDetail(out.status())->case_id(), Id(2));

  request.backfill_case_ids = {Id(9)};  // no such case
  EXPECT_THAT(PullStream::Start(feed_.get(), OfficerScope("officer-1"), request).status(),
              StatusIs(absl::StatusCode::kPermissionDenied));
  request.backfill_case_ids = {"not-a-uuid"};
  EXPECT_THAT(PullStream::Start(feed_.get(), OfficerScope("officer-1"), request).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PullTest, TheScopeRuleAnswersForCaseReads) {
  NewCaseOf("officer-1", 1, "northern");
  EXPECT_THAT(feed_->Reach(RegionScope({"northern"}), *ParseUuid(Id(1))),
              ::fieldsync::testing::IsOkAndHolds(CaseReach::kInScope));
  EXPECT_THAT(feed_->Reach(RegionScope({"eastern"}), *ParseUuid(Id(1))),
              ::fieldsync::testing::IsOkAndHolds(CaseReach::kOutOfScope));
  EXPECT_THAT(feed_->Reach(OfficerScope("officer-1"), *ParseUuid(Id(1))),
              ::fieldsync::testing::IsOkAndHolds(CaseReach::kInScope));
  EXPECT_THAT(feed_->Reach(OfficerScope("officer-2"), *ParseUuid(Id(1))),
              ::fieldsync::testing::IsOkAndHolds(CaseReach::kOutOfScope));
  EXPECT_THAT(feed_->Reach(RegionScope({"northern"}), *ParseUuid(Id(7))),
              ::fieldsync::testing::IsOkAndHolds(CaseReach::kNoSuchCase));

  v1::ConflictId id;
  id.set_position(1);
  EXPECT_THAT(feed_->CaseOfConflict(id), ::fieldsync::testing::IsOkAndHolds(Id(1)));
  id.set_position(99);
  EXPECT_THAT(feed_->CaseOfConflict(id).status(), StatusIs(absl::StatusCode::kNotFound));
}

class PullUpgradeTest : public PullTest, public ::testing::WithParamInterface<int> {};

TEST_P(PullUpgradeTest, ACaseIndexOfEarlierRulesIsRebuiltAtStartAndPullsByScope) {
  for (int n = 1; n <= 4; ++n) NewCaseOf(n % 2 ? "officer-1" : "officer-2", n, "northern");
  for (int n = 1; n <= 4; ++n) EditOf(n % 2 ? "officer-1" : "officer-2", n);
  const ReadScope scope = OfficerScope("officer-1");
  const std::vector<uint64_t> expected = Reference(scope, 0, Last());
  // A state written under merge rules 3 or 4 (its case index in that form).
  ASSERT_EQ(GetParam() == 3 ? testing::RewriteCaseIndexAsMergeRules3(store_.get())
                            : testing::RewriteCaseIndexAsMergeRules4(store_.get()),
            4);
  {
    ScopedLogReader without(feed_.get(), scope, {});
    absl::StatusOr<v1::PulledChanges> nothing = without.Next(100, 1 << 20);
    ASSERT_THAT(nothing.status(), IsOk());
    EXPECT_THAT(nothing->changes(), IsEmpty());  // the pull reads the index, not the log
  }

  absl::StatusOr<StateUpgrade> up = BringStateToCurrentRules(*schema_, store_.get());

  ASSERT_THAT(up.status(), IsOk());
  EXPECT_TRUE(up->rebuilt);
  ScopedLogReader reader(feed_.get(), scope, {});
  v1::PulledChanges chunk = CheckedChunk(reader, scope, 0, 100);
  EXPECT_EQ(Positions(chunk), expected);
  EXPECT_TRUE(chunk.caught_up());
}

INSTANTIATE_TEST_SUITE_P(Rules, PullUpgradeTest, ::testing::Values(3, 4));

TEST_F(PullTest, ACasesEntriesAreItsRecordsCreationsAndItsEntryKeys) {
  NewCaseOf("officer-1", 1, "northern");  // 1
  NewCaseOf("officer-2", 2, "northern");  // 2
  FollowUpOf("officer-1", 1);             // 3, a new record of case 1
  EditOf("officer-1", 1);                 // 4
  FollowUpOf("officer-1", 1);             // 5, another
  EditOf("officer-2", 2);                 // 6
  EditOf("officer-1", 1);                 // 7
  // Only the entries that did not create a record have an entry key.
  std::vector<uint64_t> keyed;
  for (const auto& [key, value] : testing::DumpCf(store_.get(), storage::Cf::kCaseIndex)) {
    if (absl::StatusOr<storage::CaseEntryKey> e = storage::DecodeCaseEntryKey(key); e.ok()) {
      keyed.push_back(e->position);
    }
  }
  EXPECT_THAT(keyed, ::testing::UnorderedElementsAre(4u, 6u, 7u));

  const Uuid one = *ParseUuid(Id(1));
  CaseEntryReader reader(store_.get(), nullptr);
  std::vector<uint64_t> got;
  bool more = true;
  ASSERT_THAT(reader.Read(one, 0, 0, 100, &got, &more), IsOk());
  EXPECT_THAT(got, ElementsAre(1u, 3u, 4u, 5u, 7u));
  EXPECT_FALSE(more);
  ASSERT_THAT(reader.Read(one, 0, 0, 2, &got, &more), IsOk());
  EXPECT_THAT(got, ElementsAre(1u, 3u));
  EXPECT_TRUE(more);
  ASSERT_THAT(reader.Read(one, 3, 0, 2, &got, &more), IsOk());
  EXPECT_THAT(got, ElementsAre(4u, 5u));
  EXPECT_TRUE(more);
  ASSERT_THAT(reader.Read(one, 1, 5, 10, &got, &more), IsOk());
  EXPECT_THAT(got, ElementsAre(3u, 4u, 5u));
  EXPECT_FALSE(more);
  ASSERT_THAT(reader.Read(one, 7, 0, 10, &got, &more), IsOk());
  EXPECT_THAT(got, IsEmpty());
  ASSERT_THAT(reader.Read(*ParseUuid(Id(2)), 0, 0, 10, &got, &more), IsOk());
  EXPECT_THAT(got, ElementsAre(2u, 6u));
  ASSERT_THAT(reader.Read(*ParseUuid(Id(9)), 0, 0, 10, &got, &more), IsOk());
  EXPECT_THAT(got, IsEmpty());
  // Reading past a case's last entry never reaches the scope lists that
  // sort after the entry keys (their values would be merged for nothing;
  // a corrupt one shows it).
  storage::WriteBatch list;
  list.Merge(storage::Cf::kCaseIndex, storage::EncodeCaseScopeListKey("", ""), "\x05");
  ASSERT_THAT(store_->Commit(&list), IsOk());
  CaseEntryReader bounded(store_.get(), nullptr);
  ASSERT_THAT(bounded.Read(*ParseUuid(Id(2)), 0, 0, 10, &got, &more), IsOk());
  EXPECT_THAT(got, ElementsAre(2u, 6u));
  ASSERT_THAT(bounded.Read(*ParseUuid(Id(9)), 0, 0, 10, &got, &more), IsOk());
  EXPECT_THAT(got, IsEmpty());

  // A record state that does not parse is reported, not skipped.
  const Uuid three = *ParseUuid(Id(3));
  storage::WriteBatch bad;
  bad.Put(storage::Cf::kRecords, storage::EncodeRecordStateKey(three, three), "\x09junk");
  ASSERT_THAT(store_->Commit(&bad), IsOk());
  CaseEntryReader after_damage(store_.get(), nullptr);
  EXPECT_THAT(after_damage.Read(three, 0, 0, 10, &got, &more),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(PullTest, LastPositionFollowsTheLog) {
  EXPECT_THAT(feed_->LastPosition(nullptr), ::fieldsync::testing::IsOkAndHolds(0u));
  for (int n = 1; n <= 9; ++n) NewCaseOf("officer-1", n, "northern");
  EXPECT_THAT(feed_->LastPosition(nullptr), ::fieldsync::testing::IsOkAndHolds(9u));
  EXPECT_THAT(feed_->LastPosition(nullptr, 4), ::fieldsync::testing::IsOkAndHolds(9u));
  EXPECT_THAT(feed_->LastPosition(nullptr, 9), ::fieldsync::testing::IsOkAndHolds(9u));
  EXPECT_THAT(feed_->LastPosition(nullptr, 50), ::fieldsync::testing::IsOkAndHolds(9u));
}

}  // namespace
}  // namespace fieldsync::sync
