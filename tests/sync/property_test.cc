// Randomized, seeded property tests of ingest over real RocksDB stores
// (FIELDSYNC_TEST_SEED repeats a run; the seed is printed):
//  - the same per-device batch sequences in any interleaving give the same
//    (decrypted) field values;
//  - re-delivering any batch changes nothing;
//  - rebuilding the state from the case log gives byte-identical state.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "sync/change_feed.h"
#include "sync/ingest.h"
#include "sync/rebuild.h"
#include "sync/record_state.h"
#include "tests/sync/ingest_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using testing::Enum;
using testing::HlcAt;
using testing::Id;
using testing::kStartMicros;
using testing::Str;

constexpr int kCases = 4;
constexpr int kDevices = 3;
constexpr int kBatchesPerDevice = 5;
constexpr int kChangesPerBatch = 6;

struct Batch {
  std::string device;
  uint64_t sequence;
  std::vector<v1::RecordChange> changes;
};

using Node = testing::SyncNode;

class SyncPropertyTest : public testing::IngestFixture {
 protected:
  Node MakeNode(const std::string& name) {
    return testing::OpenSyncNode(dir_.Sub(name), schema_.get(), &sealer_, &clock_);
  }

  absl::StatusOr<PushResult> PushTo(Node& node, const Batch& b) {
    BatchMeta meta;
    meta.device_id = b.device;
    meta.officer_id = "officer-1";
    meta.batch_id = BatchId(b.device, b.sequence);
    meta.sequence = b.sequence;
    v1::BatchPayload payload;
    for (const v1::RecordChange& c : b.changes) *payload.add_changes() = c;
    return node.ingest->Push(meta, payload);
  }

  // The seed batch: kCases cases (positions 1..kCases), pushed first.
  Batch SeedBatch() {
    Batch b{"dev-seed", 1, {}};
    for (int i = 0; i < kCases; ++i) {
      b.changes.push_back(
          testing::NewCase(Id(500 + i), Id(1 + i), "northern", HlcAt(kStartMicros - 10000000)));
    }
    return b;
  }

  // Offline work: every device edits the seeded cases from the seed
  // versions, with random values from small pools (so that values collide
  // and converge), and creates follow-ups under shared record ids.
  std::vector<std::vector<Batch>> DeviceWork() {
    static const char* kNames[] = {"Amina", "Aminata", "Mina", "Ami"};
    static const char* kDistricts[] = {"northern_1", "northern_2"};
    static const char* kPriority[] = {"high", "medium", "low"};
    std::vector<std::vector<Batch>> work(kDevices);
    int change_no = 10000;
    for (int d = 0; d < kDevices; ++d) {
      const std::string device = absl::StrFormat("dev-%d", d);
      int64_t hlc = kStartMicros - 5000000 + static_cast<int64_t>(random_.Uniform(1000));
      for (int s = 1; s <= kBatchesPerDevice; ++s) {
        Batch b{device, static_cast<uint64_t>(s), {}};
        for (int c = 0; c < kChangesPerBatch; ++c) {
          hlc += 1 + static_cast<int64_t>(random_.Uniform(3));  // ties across devices happen
          const int k = static_cast<int>(random_.Uniform(kCases));
          const std::string case_id = Id(1 + k);
          const uint64_t seed_version = static_cast<uint64_t>(1 + k);
          if (random_.Uniform(4) == 0) {
            const std::string record = Id(9000 + k * 10 + static_cast<int>(random_.Uniform(2)));
            b.changes.push_back(testing::Upsert(
                Id(change_no++), case_id, record, "follow_up",
                {{"follow_up_date", testing::DateValue(2026, 1, 1 + random_.Uniform(3))},
                 {"notes", Str(kNames[random_.Uniform(4)])}},
                0, HlcAt(hlc)));
            continue;
          }
          std::vector<std::pair<std::string, v1::FieldValue>> fields;
          if (random_.Uniform(2)) fields.push_back({"given_name", Str(kNames[random_.Uniform(4)])});
          if (random_.Uniform(2))
            fields.push_back({"district", Enum(kDistricts[random_.Uniform(2)])});
          if (fields.empty() || random_.Uniform(2)) {
            fields.push_back({"priority", Enum(kPriority[random_.Uniform(3)])});
          }
          // given_name was set by the seed (its version); the others never.
          v1::RecordChange ch = testing::Upsert(Id(change_no++), case_id, case_id,
                                                "case_registration", fields, 0, HlcAt(hlc));
          for (v1::FieldWrite& w : *ch.mutable_fields()) {
            if (w.field() == "given_name") w.set_base_version(seed_version);
          }
          b.changes.push_back(std::move(ch));
        }
        work[d].push_back(std::move(b));
      }
    }
    return work;
  }

  // A random interleaving that keeps each device's batches in order.
  std::vector<Batch> Interleave(const std::vector<std::vector<Batch>>& work) {
    std::vector<size_t> next(work.size(), 0);
    std::vector<Batch> out;
    for (;;) {
      std::vector<size_t> ready;
      for (size_t d = 0; d < work.size(); ++d) {
        if (next[d] < work[d].size()) ready.push_back(d);
      }
      if (ready.empty()) return out;
      size_t d = ready[random_.Uniform(ready.size())];
      out.push_back(work[d][next[d]++]);
    }
  }

  // (case, record, field) -> serialized plaintext value, and deleted flags.
  std::map<std::string, std::string> DecryptedState(Node& node) {
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : testing::DumpCf(node.store.get(), storage::Cf::kRecords)) {
      absl::StatusOr<storage::RecordsKey> k = storage::DecodeRecordsKey(key);
      EXPECT_THAT(k, IsOk());
      if (!k.ok()) continue;
      const std::string c = FormatUuid(k->case_id), r = FormatUuid(k->record_id);
      EXPECT_TRUE(k->is_state) << "a layout 1 key";
      absl::StatusOr<std::optional<RecordState>> record =
          ReadRecord(node.store.get(), nullptr, k->case_id, k->record_id);
      EXPECT_THAT(record, IsOk());
      if (!record.ok() || !record->has_value()) continue;
      out[c + "/" + r + "/deleted"] = (*record)->header.deleted() ? "1" : "0";
      for (const auto& [field, state] : (*record)->fields) {
        absl::StatusOr<std::optional<v1::FieldValue>> v = node.feed->ReadField(c, r, field);
        EXPECT_THAT(v, IsOk());
        out[c + "/" + r + "/" + field] = v.ok() && v->has_value() ? (*v)->SerializeAsString() : "";
      }
    }
    return out;
  }
};

TEST_F(SyncPropertyTest, AnyInterleavingGivesTheSameFieldValues) {
  const std::vector<std::vector<Batch>> work = DeviceWork();
  Node a = MakeNode("a"), b = MakeNode("b");
  ASSERT_THAT(PushTo(a, SeedBatch()), IsOk());
  ASSERT_THAT(PushTo(b, SeedBatch()), IsOk());

  for (const Batch& batch : Interleave(work)) ASSERT_THAT(PushTo(a, batch), IsOk());
  for (const Batch& batch : Interleave(work)) ASSERT_THAT(PushTo(b, batch), IsOk());

  std::map<std::string, std::string> state_a = DecryptedState(a);
  EXPECT_GT(state_a.size(), static_cast<size_t>(kCases * 5));
  EXPECT_EQ(state_a, DecryptedState(b)) << "seed " << random_.seed();
}

TEST_F(SyncPropertyTest, RedeliveringAnyBatchChangesNothing) {
  const std::vector<std::vector<Batch>> work = DeviceWork();
  Node a = MakeNode("a");
  ASSERT_THAT(PushTo(a, SeedBatch()), IsOk());
  std::vector<Batch> order = Interleave(work);
  std::vector<PushResult> answers;
  for (const Batch& batch : order) {
    absl::StatusOr<PushResult> r = PushTo(a, batch);
    ASSERT_THAT(r, IsOk());
    answers.push_back(*r);
  }
  std::vector<std::vector<std::pair<std::string, std::string>>> before;
  for (storage::Cf cf : storage::kAllCfs) before.push_back(testing::DumpCf(a.store.get(), cf));

  for (int i = 0; i < 10; ++i) {
    const size_t k = random_.Uniform(order.size());
    absl::StatusOr<PushResult> r = PushTo(a, order[k]);
    ASSERT_THAT(r, IsOk());
    EXPECT_TRUE(r->is_retry_answer);
    EXPECT_EQ(r->result.SerializeAsString(), answers[k].result.SerializeAsString());
  }

  for (size_t i = 0; i < storage::kAllCfs.size(); ++i) {
    EXPECT_EQ(testing::DumpCf(a.store.get(), storage::kAllCfs[i]), before[i])
        << storage::CfName(storage::kAllCfs[i]) << " seed " << random_.seed();
  }
}

TEST_F(SyncPropertyTest, RebuildingStateFromTheLogGivesByteIdenticalState) {
  const std::vector<std::vector<Batch>> work = DeviceWork();
  Node a = MakeNode("a");
  ASSERT_THAT(PushTo(a, SeedBatch()), IsOk());
  for (const Batch& batch : Interleave(work)) ASSERT_THAT(PushTo(a, batch), IsOk());
  // Server-side changes too: a transfer moves indexes and open conflicts.
  ASSERT_THAT(
      a.ingest->TransferCase(StaffActor{"sup"}, Id(1), "eastern", "eastern_1", "officer-2", 0),
      IsOk());
  ASSERT_THAT(a.ingest->SetCaseStatus(StaffActor{"sup"}, Id(2), true, "goals_achieved", 0), IsOk());
  Node fresh = MakeNode("rebuilt");

  absl::StatusOr<uint64_t> replayed =
      RebuildStateFromLog(*schema_, a.store.get(), fresh.store.get(), /*entries_per_commit=*/7);

  ASSERT_THAT(replayed, IsOk());
  EXPECT_EQ(*replayed + 1, *a.ingest->NextLogPosition());
  for (storage::Cf cf : {storage::Cf::kRecords, storage::Cf::kCaseIndex, storage::Cf::kConflicts}) {
    auto original = testing::DumpCf(a.store.get(), cf);
    EXPECT_FALSE(original.empty()) << storage::CfName(cf);
    EXPECT_EQ(testing::DumpCf(fresh.store.get(), cf), original)
        << storage::CfName(cf) << " seed " << random_.seed();
  }
}

}  // namespace
}  // namespace fieldsync::sync
