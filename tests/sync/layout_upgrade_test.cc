// Upgrading a store made in state layout 1 to layout 2 (sync/layout_upgrade.h):
// a deployment's history is ingested, its store written back in layout 1
// (headers and field states with their values, 32-byte digests, log entries
// as serialized messages, no name dictionary), and upgraded in place.
#include "sync/layout_upgrade.h"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "sync/batch_answer.h"
#include "sync/log_codec.h"
#include "sync/rebuild.h"
#include "sync/record_state.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using ::fieldsync::testing::IsOkAndHolds;
using ::fieldsync::testing::StatusIs;
using storage::Cf;
using testing::DateValue;
using testing::HlcAt;
using testing::Id;
using testing::kStartMicros;
using testing::NewCase;
using testing::Str;
using testing::Upsert;

const std::string kCase = Id(1);
const std::string kOther = Id(2);
const std::string kFollowUp = Id(50);

class LayoutUpgradeTest : public testing::IngestFixture {
 protected:
  // Two cases; a name written concurrently by two tablets (an open
  // conflict); a follow-up deleted by one and written by the other, who had
  // not seen the delete (a revival and a record-level conflict); an edit of
  // an encrypted field.
  void MakeHistory() {
    ASSERT_THAT(Push("dev-a", 1,
                     {NewCase(Id(100), kCase, "northern", HlcAt(kStartMicros - 1000)),
                      NewCase(Id(101), kOther, "northern", HlcAt(kStartMicros - 999)),
                      Upsert(Id(102), kCase, kFollowUp, "follow_up",
                             {{"follow_up_date", DateValue(2026, 1, 1)}, {"notes", Str("first")}},
                             0, HlcAt(kStartMicros - 998))}),
                IsOk());
    ASSERT_THAT(Push("dev-a", 2,
                     {Upsert(Id(103), kCase, kCase, "case_registration",
                             {{"given_name", Str("Aminata")}}, 1, HlcAt(kStartMicros))}),
                IsOk());
    ASSERT_THAT(Push("dev-b", 1,
                     {Upsert(Id(104), kCase, kCase, "case_registration",
                             {{"given_name", Str("Mina")}}, 1, HlcAt(kStartMicros + 5))}),
                IsOk());
    v1::RecordChange del;
    del.set_change_id(Id(105));
    del.set_case_id(kCase);
    del.set_record_id(kFollowUp);
    del.set_record_type("follow_up");
    del.set_kind(v1::CHANGE_KIND_DELETE);
    del.set_base_version(3);
    *del.mutable_hlc() = HlcAt(kStartMicros + 10);
    ASSERT_THAT(Push("dev-a", 3, {del}), IsOk());
    v1::RecordChange notes = Upsert(Id(106), kCase, kFollowUp, "follow_up",
                                    {{"notes", Str("second")}}, 3, HlcAt(kStartMicros + 11));
    notes.set_base_version(3);
    ASSERT_THAT(Push("dev-b", 2, {notes}), IsOk());
    ASSERT_THAT(Push("dev-a", 4,
                     {Upsert(Id(107), kOther, kOther, "case_registration",
                             {{"given_name", Str("Fatou")}}, 2, HlcAt(kStartMicros + 20))}),
                IsOk());
  }

  std::string Plain(const v1::StoredValue& v, const std::string& c, const std::string& r,
                    const std::string& f) {
    if (v.cleared()) return "<cleared>";
    if (!v.encrypted()) return v.data();
    absl::StatusOr<std::string> p = sealer_.Open(FieldAddress{c, r, f}, v.data());
    return p.ok() ? *p : "<does not open>";
  }
  // The full 32-byte digest layout 1 stored.
  std::string FullDigest(const v1::StoredValue& v, const std::string& c, const std::string& r,
                         const std::string& f) {
    std::vector<KeyWrite> unused;
    absl::StatusOr<std::string> d = sealer_.Digest(c, f, Plain(v, c, r, f), &unused);
    EXPECT_THAT(d, IsOk());
    return d.ok() ? *d : "";
  }

  // The sync state as a reader sees it: every record's header and field
  // states with plaintext values, every conflict with plaintext losing
  // values, every index entry.
  std::map<std::string, std::string> Semantic() {
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kRecords)) {
      absl::StatusOr<storage::RecordsKey> k = storage::DecodeRecordsKey(key);
      EXPECT_THAT(k, IsOk());
      if (!k.ok()) continue;
      EXPECT_TRUE(k->is_state) << "a layout-1 key remains";
      const std::string c = FormatUuid(k->case_id), r = FormatUuid(k->record_id);
      absl::StatusOr<std::optional<RecordState>> rec =
          ReadRecord(store_.get(), nullptr, k->case_id, k->record_id);
      EXPECT_THAT(rec, IsOk());
      if (!rec.ok() || !rec->has_value()) continue;
      out[c + "/" + r] = (*rec)->header.DebugString();
      for (auto [field, state] : (*rec)->fields) {
        const std::string plain = Plain(state.value(), c, r, field);
        state.clear_value();
        out[c + "/" + r + "/" + field] = plain + " | " + state.DebugString();
      }
    }
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kConflicts)) {
      v1::ConflictRecord rec;
      if (value.empty() || !rec.ParseFromString(value)) {
        out["index " + key] = value;
        continue;
      }
      std::string plains;
      for (v1::FieldHead& h : *rec.mutable_losing()) {
        if (h.has_value()) plains += Plain(h.value(), rec.case_id(), rec.record_id(), rec.field());
        plains += ";";
        h.clear_value();
      }
      out["conflict " + key] = plains + " | " + rec.DebugString();
    }
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kCaseIndex)) {
      out["case index " + key] = value;
    }
    return out;
  }

  // Writes the store back as layout 1 wrote it.
  void WriteLayoutOne() {
    storage::WriteBatch b;
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kRecords)) {
      absl::StatusOr<storage::RecordsKey> k = storage::DecodeRecordsKey(key);
      ASSERT_THAT(k, IsOk());
      const std::string c = FormatUuid(k->case_id), r = FormatUuid(k->record_id);
      absl::StatusOr<std::optional<RecordState>> rec =
          ReadRecord(store_.get(), nullptr, k->case_id, k->record_id);
      ASSERT_THAT(rec, IsOk());
      b.Delete(Cf::kRecords, key);
      b.Put(Cf::kRecords, storage::EncodeRecordHeaderKey(k->case_id, k->record_id),
            (*rec)->header.SerializeAsString());
      for (auto [field, state] : (*rec)->fields) {
        if (state.value().encrypted()) {
          state.mutable_value()->set_digest(FullDigest(state.value(), c, r, field));
        }
        b.Put(Cf::kRecords, storage::EncodeFieldStateKey(k->case_id, k->record_id, field),
              state.SerializeAsString());
      }
    }
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kCaseLog)) {
      v1::CaseLogEntry e;
      ASSERT_THAT(DecodeLogEntry(value, *storage::DecodeCaseLogKey(key), store_->names(), &e),
                  IsOk());
      for (v1::EntryField& f : *e.mutable_fields()) {
        if (f.value().encrypted()) {
          f.mutable_value()->set_digest(
              FullDigest(f.value(), e.case_id(), e.record_id(), f.field()));
        }
      }
      b.Put(Cf::kCaseLog, key, e.SerializeAsString());
    }
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kConflicts)) {
      v1::ConflictRecord rec;
      if (value.empty() || !rec.ParseFromString(value)) continue;
      for (v1::FieldHead& h : *rec.mutable_losing()) {
        if (h.value().encrypted()) {
          h.mutable_value()->set_digest(
              FullDigest(h.value(), rec.case_id(), rec.record_id(), rec.field()));
        }
      }
      b.Put(Cf::kConflicts, key, rec.SerializeAsString());
    }
    // Batch answers in their full form.
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kBatches)) {
      if (key.empty() || static_cast<uint8_t>(key[0]) != storage::kBatchTag) continue;
      v1::BatchRecord rec;
      ASSERT_TRUE(rec.ParseFromString(value));
      absl::StatusOr<v1::BatchResult> full = RebuildBatchResult(
          rec, [&](uint64_t at, v1::CaseLogEntry* e) { return ReadLogEntry(store_.get(), at, e); });
      ASSERT_THAT(full, IsOk());
      v1::BatchRecord old;
      old.set_payload_hash(rec.payload_hash());
      old.set_sequence(rec.sequence());
      *old.mutable_result() = *full;
      b.Put(Cf::kBatches, key, old.SerializeAsString());
    }
    for (const auto& [key, value] : testing::DumpCf(store_.get(), Cf::kMetadata)) {
      if (!key.empty() && static_cast<uint8_t>(key[0]) == storage::kNameKeyTag) {
        b.Delete(Cf::kMetadata, key);
      }
    }
    b.Delete(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName));
    ASSERT_THAT(store_->Commit(&b), IsOk());
    ReopenStore();
  }

  absl::StatusOr<LayoutUpgrade> Upgrade(
      std::function<absl::Status(std::string_view)> before_step = nullptr) {
    LayoutUpgradeOptions o;
    o.scratch_dir = dir_.Sub("layout-scratch");
    o.before_step = std::move(before_step);
    return UpgradeStateLayout(*schema_, store_.get(), o);
  }

  void MarkRules() {
    // The rules today's state was built with (a store's first start records
    // them).
    ASSERT_THAT(BringStateToCurrentRules(*schema_, store_.get()).status(), IsOk());
  }
};

TEST_F(LayoutUpgradeTest, LayoutOneStoreUpgradesToTheSameStateAndKeepsMerging) {
  MarkRules();
  MakeHistory();
  const std::map<std::string, std::string> before = Semantic();
  ASSERT_GT(before.size(), 25u);
  const auto answers = testing::DumpCf(store_.get(), Cf::kBatches);
  WriteLayoutOne();
  ASSERT_NE(testing::DumpCf(store_.get(), Cf::kBatches), answers);
  const auto log = testing::DumpCf(store_.get(), Cf::kCaseLog);
  const auto audit = testing::DumpCf(store_.get(), Cf::kAuditLeaves);

  absl::StatusOr<LayoutUpgrade> up = Upgrade();
  ASSERT_THAT(up, IsOk());
  EXPECT_TRUE(up->upgraded);
  EXPECT_EQ(up->entries, 8u);
  EXPECT_EQ(up->records, 3u);
  EXPECT_GE(up->conflicts, 2u);
  EXPECT_EQ(Semantic(), before);
  EXPECT_EQ(up->batch_answers, 6u);
  EXPECT_EQ(testing::DumpCf(store_.get(), Cf::kBatches), answers) << "answers compact again";
  EXPECT_EQ(testing::DumpCf(store_.get(), Cf::kCaseLog), log) << "the log is not rewritten";
  EXPECT_EQ(testing::DumpCf(store_.get(), Cf::kAuditLeaves), audit);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("layout-scratch")));
  // Once upgraded, nothing more to do.
  absl::StatusOr<LayoutUpgrade> again = Upgrade();
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->upgraded);

  // A tablet that never saw the current name writes the same name: it
  // converges with the value a layout-1 entry holds (32-byte digest).
  ReopenStore();
  absl::StatusOr<PushResult> same =
      Push("dev-b", 3,
           {Upsert(Id(108), kOther, kOther, "case_registration", {{"given_name", Str("Fatou")}}, 0,
                   HlcAt(kStartMicros + 30))});
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ(same->result.results(0).outcome(), v1::CHANGE_OUTCOME_CONVERGED);
  // And the rebuilt state replays from the mixed log.
  const auto state = testing::DumpCf(store_.get(), Cf::kRecords);
  fieldsync::testing::ScopedTempDir other;
  storage::StoreOptions so;
  so.path = other.Sub("rebuilt");
  so.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<storage::Store>> rebuilt = storage::Store::Open(so);
  ASSERT_THAT(rebuilt, IsOk());
  ASSERT_THAT(RebuildStateFromLog(*schema_, store_.get(), rebuilt->get()), IsOk());
  EXPECT_EQ(testing::DumpCf(rebuilt->get(), Cf::kRecords), state)
      << "rebuilt from the log, byte for byte";
}

TEST_F(LayoutUpgradeTest, InterruptedUpgradeResumesAtItsStep) {
  MarkRules();
  MakeHistory();
  const std::map<std::string, std::string> before = Semantic();
  WriteLayoutOne();
  for (const std::string stop : {"verify", "replace", "mark"}) {
    absl::StatusOr<LayoutUpgrade> cut = Upgrade([&](std::string_view step) {
      return step == stop ? absl::UnavailableError("power cut") : absl::OkStatus();
    });
    EXPECT_THAT(cut, StatusIs(absl::StatusCode::kUnavailable)) << stop;
    ReopenStore();
  }
  absl::StatusOr<LayoutUpgrade> up = Upgrade();
  ASSERT_THAT(up, IsOk());
  EXPECT_TRUE(up->upgraded);
  EXPECT_EQ(Semantic(), before);
  absl::StatusOr<std::string> step =
      store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutStepName));
  EXPECT_TRUE(absl::IsNotFound(step.status()));
}

TEST_F(LayoutUpgradeTest, StateThatDiffersFromItsLogStopsTheUpgradeAndChangesNothing) {
  MarkRules();
  MakeHistory();
  WriteLayoutOne();
  // A field state whose version no entry gives it.
  const std::string key =
      storage::EncodeFieldStateKey(*ParseUuid(kOther), *ParseUuid(kOther), "given_name");
  absl::StatusOr<std::string> raw = store_->Get(Cf::kRecords, key);
  ASSERT_THAT(raw, IsOk());
  v1::FieldState s;
  ASSERT_TRUE(s.ParseFromString(*raw));
  s.set_version(s.version() + 1);
  storage::WriteBatch b;
  b.Put(Cf::kRecords, key, s.SerializeAsString());
  ASSERT_THAT(store_->Commit(&b), IsOk());
  const auto records = testing::DumpCf(store_.get(), Cf::kRecords);

  absl::StatusOr<LayoutUpgrade> up = Upgrade();
  EXPECT_THAT(up, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_NE(up.status().message().find(kOther), std::string::npos) << up.status();
  EXPECT_NE(up.status().message().find("given_name"), std::string::npos) << up.status();
  EXPECT_EQ(up.status().message().find("Fatou"), std::string::npos) << "no value in the error";
  EXPECT_EQ(testing::DumpCf(store_.get(), Cf::kRecords), records);
  EXPECT_TRUE(absl::IsNotFound(
      store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName)).status()));
}

TEST_F(LayoutUpgradeTest, NewStoreIsMarkedAndAStoreOfNewerLayoutIsRefused) {
  absl::StatusOr<LayoutUpgrade> up = Upgrade();
  ASSERT_THAT(up, IsOk());
  EXPECT_FALSE(up->upgraded);
  EXPECT_THAT(store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName)),
              ::testing::Not(StatusIs(absl::StatusCode::kNotFound)));
  storage::WriteBatch b;
  b.Put(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName), std::to_string(kStateLayout + 1));
  ASSERT_THAT(store_->Commit(&b), IsOk());
  absl::StatusOr<LayoutUpgrade> newer = Upgrade();
  EXPECT_THAT(newer, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(newer.status().message()), ::testing::HasSubstr("run the release"));
}

// A store of layout 2 reads as it is: it is marked with this release's
// layout (so that a layout-2 release refuses it) and nothing else changes.
TEST_F(LayoutUpgradeTest, LayoutTwoStoreIsMarkedWithoutARebuild) {
  MakeHistory();
  storage::WriteBatch b;
  b.Put(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName), "2");
  ASSERT_THAT(store_->Commit(&b), IsOk());
  const std::map<std::string, std::string> before = Semantic();
  const auto records = testing::DumpCf(store_.get(), Cf::kRecords);
  const auto log = testing::DumpCf(store_.get(), Cf::kCaseLog);

  absl::StatusOr<LayoutUpgrade> up = Upgrade();

  ASSERT_THAT(up, IsOk());
  EXPECT_FALSE(up->upgraded);
  EXPECT_EQ(up->entries, 0u) << "nothing is replayed";
  EXPECT_THAT(store_->Get(Cf::kMetadata, storage::EncodeMetadataKey(kLayoutName)),
              IsOkAndHolds(std::to_string(kStateLayout)));
  EXPECT_EQ(kStateLayout, 3u);
  EXPECT_EQ(testing::DumpCf(store_.get(), Cf::kRecords), records);
  EXPECT_EQ(testing::DumpCf(store_.get(), Cf::kCaseLog), log);
  EXPECT_EQ(Semantic(), before);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("layout-scratch")));
}

}  // namespace
}  // namespace fieldsync::sync
