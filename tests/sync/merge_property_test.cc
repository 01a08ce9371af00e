// The merge's central property (docs/MERGE.md §1), checked over real
// RocksDB stores: the final state and the set of open conflicts depend only
// on the set of accepted changes (each device's in its own order), never on
// how the devices' batches interleave.
//
// Each scenario first builds a shared history in one fixed order (cases,
// follow-ups, concurrent writes that leave conflicts, a DELETE), then lets
// six devices work offline from that history — field writes, equal-value
// writes, one device re-editing a field several times, DELETEs, writes to
// deleted records (revivals), writes by a device to a record it deleted
// itself, CLOSE/REOPEN, concurrent creation of one record — while a
// supervisor resolves the shared history's conflicts (keep, take, new
// value). The same work is pushed in several interleavings, one store per
// interleaving; the stores' state, with log positions named by the change
// that holds them, must be identical. FIELDSYNC_TEST_SEED repeats a run;
// FIELDSYNC_MERGE_SCENARIOS sets the number of scenarios (default 1000).
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "storage/key_codec.h"
#include "storage/keyed_sums.h"
#include "sync/case_entries.h"
#include "sync/change_feed.h"
#include "sync/heads.h"
#include "sync/ingest.h"
#include "sync/log_codec.h"
#include "sync/rebuild.h"
#include "sync/record_state.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync {
namespace {

using ::fieldsync::testing::IsOk;
using testing::DateValue;
using testing::Enum;
using testing::HlcAt;
using testing::Id;
using testing::Str;

constexpr int64_t kNowMicros = int64_t{1795000000} * 1000000;
constexpr int kOrders = 3;
constexpr int kDevices = 6;
constexpr int kCases = 2;
constexpr int kFollowUps = 2;  // per case, made by the shared history

int ScenarioCount() {
  const char* env = std::getenv("FIELDSYNC_MERGE_SCENARIOS");
  return env != nullptr ? std::atoi(env) : 1000;
}

// A base version named by what it points at, resolved against each store
// when the shared history is done (positions may differ between stores).
struct BaseRef {
  std::string record_id;
  std::string field;  // "" = the record version
};

struct ChangeTemplate {
  v1::RecordChange change;
  std::vector<std::optional<BaseRef>> field_bases;  // per FieldWrite
  std::optional<BaseRef> record_base;
};

struct DeviceBatch {
  std::string device;
  uint64_t sequence = 0;
  std::vector<ChangeTemplate> changes;
};

struct ResolveStep {
  std::string case_id;
  int choice = 0;  // 0 keep, 1 take losing 0, 2 new value
};

using Step = std::variant<DeviceBatch, ResolveStep>;

struct Scenario {
  std::vector<DeviceBatch> history;      // pushed first, in this order
  std::vector<std::vector<Step>> lanes;  // one per device, and the supervisor's
};

using Node = testing::SyncNode;

// What the run exercised, summed over every store.
struct Seen {
  std::map<v1::ChangeOutcome, int> outcomes;
  std::map<v1::RejectReason, int> rejections;
  int revivals = 0;
  int resolutions = 0;
};

class MergePropertyTest : public ::testing::Test {
 protected:
  Node MakeNode(const std::string& name) {
    return testing::OpenSyncNode(dir_.Sub(name), schema_.get(), &sealer_, &clock_,
                                 /*sync_writes=*/false);
  }

  std::string NextChangeId() { return Id(++change_no_); }
  v1::Hlc NextHlc(int64_t* clock) {
    *clock += 1 + static_cast<int64_t>(gen_.Uniform(3));  // ties across devices happen
    return HlcAt(*clock);
  }

  Scenario Generate(int k) {
    static const char* kNames[] = {"Amina", "Aminata", "Mina"};
    static const char* kDistricts[] = {"northern_1", "northern_2"};
    static const char* kNationality[] = {"national", "refugee", "migrant"};
    static const char* kNotes[] = {"seen", "not home", "moved"};
    const std::string prefix = absl::StrFormat("s%d-", k);
    std::vector<std::string> cases, follow_ups;
    for (int c = 0; c < kCases; ++c) {
      cases.push_back(Id(k * 100 + c + 1));
      for (int f = 0; f < kFollowUps; ++f) follow_ups.push_back(Id(k * 100 + 10 + c * 10 + f));
    }
    auto case_of = [&](size_t follow_up) { return cases[follow_up / kFollowUps]; };
    Scenario s;
    int64_t seed_clock = kNowMicros - 100000000;
    // The shared history: cases and follow-ups, then two devices setting
    // nationality concurrently (a conflict per case) and one DELETE.
    DeviceBatch seed{prefix + "seed", 1, {}};
    for (const std::string& c : cases) {
      seed.changes.push_back({testing::NewCase(NextChangeId(), c, "northern", NextHlc(&seed_clock)),
                              {std::nullopt},
                              std::nullopt});
    }
    for (size_t f = 0; f < follow_ups.size(); ++f) {
      seed.changes.push_back(
          {testing::Upsert(NextChangeId(), case_of(f), follow_ups[f], "follow_up",
                           {{"follow_up_date", DateValue(2026, 1, 1)}, {"notes", Str("first")}}, 0,
                           NextHlc(&seed_clock)),
           {std::nullopt, std::nullopt},
           std::nullopt});
    }
    s.history.push_back(std::move(seed));
    for (int d = 0; d < 2; ++d) {
      DeviceBatch b{prefix + absl::StrFormat("a%d", d), 1, {}};
      for (const std::string& c : cases) {
        b.changes.push_back(
            {testing::Upsert(NextChangeId(), c, c, "case_registration",
                             {{"nationality", Enum(kNationality[d])}}, 0, NextHlc(&seed_clock)),
             {std::nullopt},
             std::nullopt});
      }
      s.history.push_back(std::move(b));
    }
    {
      DeviceBatch del{prefix + "a0", 2, {}};
      v1::RecordChange ch;
      ch.set_change_id(NextChangeId());
      ch.set_case_id(case_of(0));
      ch.set_record_id(follow_ups[0]);
      ch.set_record_type("follow_up");
      ch.set_kind(v1::CHANGE_KIND_DELETE);
      *ch.mutable_hlc() = NextHlc(&seed_clock);
      del.changes.push_back({ch, {}, BaseRef{follow_ups[0], ""}});
      s.history.push_back(std::move(del));
    }

    // Offline work of each device, from the shared history.
    for (int d = 0; d < kDevices; ++d) {
      const std::string device = prefix + absl::StrFormat("d%d", d);
      int64_t clock = kNowMicros - 50000000 + static_cast<int64_t>(gen_.Uniform(20));
      std::vector<Step> lane;
      std::optional<std::pair<std::string, std::string>> last;  // (record, field) last written
      const int batches = 1 + static_cast<int>(gen_.Uniform(3));
      for (int b = 1; b <= batches; ++b) {
        DeviceBatch batch{device, static_cast<uint64_t>(b), {}};
        const int n = 1 + static_cast<int>(gen_.Uniform(4));
        for (int i = 0; i < n; ++i) {
          batch.changes.push_back(OfflineChange(cases, follow_ups, case_of, &clock, &last, kNames,
                                                kDistricts, kNotes, k));
        }
        lane.push_back(std::move(batch));
      }
      s.lanes.push_back(std::move(lane));
    }
    std::vector<Step> supervisor;
    for (const std::string& c : cases) {
      if (gen_.Uniform(3) == 0) continue;
      supervisor.push_back(ResolveStep{c, static_cast<int>(gen_.Uniform(3))});
    }
    s.lanes.push_back(std::move(supervisor));
    return s;
  }

  template <typename CaseOf>
  ChangeTemplate OfflineChange(const std::vector<std::string>& cases,
                               const std::vector<std::string>& follow_ups, CaseOf case_of,
                               int64_t* clock,
                               std::optional<std::pair<std::string, std::string>>* last,
                               const char* const* names, const char* const* districts,
                               const char* const* notes, int k) {
    const uint64_t roll = gen_.Uniform(100);
    const v1::Hlc hlc = NextHlc(clock);
    auto seen = [&](const std::string& record, const std::string& field) {
      // Most writes saw the shared history; some come from a device that
      // never did (base 0).
      return gen_.Uniform(5) == 0 ? std::nullopt : std::optional<BaseRef>(BaseRef{record, field});
    };
    // A device re-editing what it last wrote, several times offline.
    if (last->has_value() && roll < 25) {
      const auto& [record, field] = **last;
      const bool is_case = std::find(cases.begin(), cases.end(), record) != cases.end();
      v1::FieldValue value = field == "given_name" ? Str(names[gen_.Uniform(3)])
                             : field == "district" ? Enum(districts[gen_.Uniform(2)])
                                                   : Str(notes[gen_.Uniform(3)]);
      const std::string case_id =
          is_case
              ? record
              : case_of(static_cast<size_t>(
                    std::find(follow_ups.begin(), follow_ups.end(), record) - follow_ups.begin()));
      return {
          testing::Upsert(NextChangeId(), case_id, record,
                          is_case ? "case_registration" : "follow_up", {{field, value}}, 0, hlc),
          {seen(record, field)},
          BaseRef{record, ""}};
    }
    if (roll < 55) {  // a registration field: identifying (encrypted) or a dimension
      const std::string& c = cases[gen_.Uniform(cases.size())];
      const bool name = gen_.Uniform(2) == 0;
      const std::string field = name ? "given_name" : "district";
      *last = std::make_pair(c, field);
      return {testing::Upsert(
                  NextChangeId(), c, c, "case_registration",
                  {{field, name ? Str(names[gen_.Uniform(3)]) : Enum(districts[gen_.Uniform(2)])}},
                  0, hlc),
              {seen(c, field)},
              BaseRef{c, ""}};
    }
    const size_t f = gen_.Uniform(follow_ups.size());
    const std::string& record = follow_ups[f];
    if (roll < 75) {  // a follow-up's notes (the shared history deleted one)
      *last = std::make_pair(record, std::string("notes"));
      return {testing::Upsert(NextChangeId(), case_of(f), record, "follow_up",
                              {{"notes", Str(notes[gen_.Uniform(3)])}}, 0, hlc),
              {seen(record, "notes")},
              BaseRef{record, ""}};
    }
    if (roll < 85) {  // DELETE, having seen the record, or not
      v1::RecordChange ch;
      ch.set_change_id(NextChangeId());
      ch.set_case_id(case_of(f));
      ch.set_record_id(record);
      ch.set_record_type("follow_up");
      ch.set_kind(v1::CHANGE_KIND_DELETE);
      *ch.mutable_hlc() = hlc;
      return {ch, {}, gen_.Uniform(4) == 0 ? std::nullopt : std::optional<BaseRef>({record, ""})};
    }
    if (roll < 93) {  // CLOSE or REOPEN
      const std::string& c = cases[gen_.Uniform(cases.size())];
      v1::RecordChange ch;
      ch.set_change_id(NextChangeId());
      ch.set_case_id(c);
      ch.set_record_id(c);
      ch.set_record_type("case_registration");
      ch.set_kind(gen_.Uniform(2) == 0 ? v1::CHANGE_KIND_CLOSE_CASE : v1::CHANGE_KIND_REOPEN_CASE);
      *ch.mutable_hlc() = hlc;
      return {ch, {}, BaseRef{c, "case_status"}};
    }
    // Several devices create the same new follow-up.
    const int n = static_cast<int>(gen_.Uniform(2));
    const std::string c = cases[static_cast<size_t>(n) % cases.size()];
    return {testing::Upsert(NextChangeId(), c, Id(k * 100 + 80 + n), "follow_up",
                            {{"follow_up_date", DateValue(2026, 2, 1 + gen_.Uniform(2))},
                             {"notes", Str(notes[gen_.Uniform(3)])}},
                            0, hlc),
            {std::nullopt, std::nullopt},
            std::nullopt};
  }

  // The version a BaseRef names in `node`'s current state.
  uint64_t Resolve(Node& node, const std::string& case_id, const BaseRef& ref) {
    absl::StatusOr<Uuid> c = ParseUuid(case_id), r = ParseUuid(ref.record_id);
    absl::StatusOr<std::optional<RecordState>> record =
        ReadRecord(node.store.get(), nullptr, *c, *r);
    if (!record.ok() || !record->has_value()) return 0;
    if (ref.field.empty()) return (*record)->header.record_version();
    const v1::FieldState* state = (*record)->Find(ref.field);
    return state != nullptr ? state->version() : 0;
  }

  // The open nationality conflict of a case and the version a supervisor
  // sees for it (as ListConflicts gives it, without listing the region).
  std::optional<std::pair<v1::ConflictId, uint64_t>> NationalityConflict(Node& node,
                                                                         const std::string& c) {
    absl::StatusOr<Uuid> id = ParseUuid(c);
    v1::ConflictRecord rec;
    absl::StatusOr<std::optional<RecordState>> record =
        ReadRecord(node.store.get(), nullptr, *id, *id);
    if (!record.ok() || !record->has_value() || (*record)->Find("nationality") == nullptr) {
      return std::nullopt;
    }
    const v1::FieldState state = *(*record)->Find("nationality");
    const v1::RecordHeader header = (*record)->header;
    if (state.conflict_position() == 0) return std::nullopt;
    absl::StatusOr<std::string> raw =
        node.store->Get(storage::Cf::kConflicts,
                        storage::EncodeConflictKey(*id, state.conflict_position(), "nationality"));
    if (!raw.ok() || !rec.ParseFromString(*raw)) return std::nullopt;
    return std::make_pair(rec.id(), ConflictVersion(rec, state, header));
  }

  v1::RecordChange Materialize(Node& node, const ChangeTemplate& t) {
    v1::RecordChange ch = t.change;
    for (size_t i = 0; i < t.field_bases.size(); ++i) {
      const auto& ref = t.field_bases[i];
      ch.mutable_fields(static_cast<int>(i))
          ->set_base_version(ref ? Resolve(node, ch.case_id(), *ref) : 0);
    }
    if (t.record_base) {
      const uint64_t v = Resolve(node, ch.case_id(), *t.record_base);
      ch.set_base_version(v);
    }
    return ch;
  }

  void PushBatch(Node& node, const std::vector<v1::RecordChange>& changes, const DeviceBatch& b,
                 Seen* seen) {
    BatchMeta meta;
    meta.device_id = b.device;
    meta.officer_id = "officer-1";
    meta.batch_id = Id(0x4000000 + ++batch_no_);
    meta.sequence = b.sequence;
    v1::BatchPayload payload;
    for (const v1::RecordChange& c : changes) *payload.add_changes() = c;
    absl::StatusOr<PushResult> r = node.ingest->Push(meta, payload);
    ASSERT_THAT(r, IsOk());
    for (const v1::ChangeResult& cr : r->result.results()) {
      ++seen->outcomes[cr.outcome()];
      if (cr.outcome() == v1::CHANGE_OUTCOME_REJECTED) ++seen->rejections[cr.reject_reason()];
      seen->revivals += cr.revived();
    }
  }

  // Phase B, in one interleaving: bases were resolved when the shared
  // history was done.
  void RunOrder(Node& node, const Scenario& s,
                const std::map<std::string, uint64_t>& conflict_versions,
                const std::vector<std::vector<std::vector<v1::RecordChange>>>& materialized,
                Seen* seen) {
    std::vector<size_t> next(s.lanes.size(), 0);
    for (;;) {
      std::vector<size_t> ready;
      for (size_t l = 0; l < s.lanes.size(); ++l) {
        if (next[l] < s.lanes[l].size()) ready.push_back(l);
      }
      if (ready.empty()) return;
      const size_t l = ready[order_gen_.Uniform(ready.size())];
      const size_t i = next[l]++;
      if (const auto* b = std::get_if<DeviceBatch>(&s.lanes[l][i])) {
        PushBatch(node, materialized[l][i], *b, seen);
        continue;
      }
      const auto& r = std::get<ResolveStep>(s.lanes[l][i]);
      auto target = NationalityConflict(node, r.case_id);
      ASSERT_TRUE(target.has_value()) << "seed " << gen_.seed();
      v1::FieldValue value = Enum("stateless");
      absl::StatusOr<v1::ChangeResult> res =
          node.ingest->ResolveConflict(StaffActor{"sup"}, target->first, r.case_id,
                                       r.choice == 0   ? Ingest::Resolution::kKeepCurrent
                                       : r.choice == 1 ? Ingest::Resolution::kTakeLosing
                                                       : Ingest::Resolution::kNewValue,
                                       0, value, conflict_versions.at(r.case_id));
      ASSERT_THAT(res, IsOk()) << "seed " << gen_.seed();
      ++seen->resolutions;
    }
  }

  // The state with every log position replaced by the change id of the
  // entry at that position, values in plaintext, heads as sets of writes,
  // and only open conflicts (closed ones are history whose positions
  // depend on arrival order).
  std::map<std::string, std::string> Normalized(Node& node) {
    std::map<uint64_t, std::string> change_at;
    for (const auto& [key, value] : testing::DumpCf(node.store.get(), storage::Cf::kCaseLog)) {
      v1::CaseLogEntry e;
      EXPECT_THAT(DecodeLogEntry(value, *storage::DecodeCaseLogKey(key), node.store->names(), &e),
                  IsOk());
      // Server-side changes are named by their position: name them by kind.
      change_at[e.position()] =
          e.change_id().starts_with("server:") ? v1::ChangeKind_Name(e.kind()) : e.change_id();
    }
    auto cid = [&](uint64_t p) { return p == 0 ? std::string("0") : change_at[p]; };
    auto plain = [&](const v1::StoredValue& v, const std::string& c, const std::string& r,
                     const std::string& f) {
      if (v.cleared()) return std::string("<cleared>");
      if (!v.encrypted()) return v.data();
      absl::StatusOr<std::string> p = sealer_.Open(FieldAddress{c, r, f}, v.data());
      return p.ok() ? *p : std::string("<does not open>");
    };
    auto writes = [&](const v1::FieldHead& h) {
      std::vector<std::string> out;
      for (const v1::HeadWrite& w : h.writes()) {
        out.push_back(absl::StrFormat("%s@%d.%d:%s%s", w.writer(), w.hlc().wall_micros(),
                                      w.hlc().logical(), cid(w.position()),
                                      w.is_delete() ? ":del>" + cid(w.delete_base()) : ""));
      }
      return absl::StrJoin(out, ",");
    };
    auto losing = [&](const std::string& c, const std::string& r, const std::string& f,
                      uint64_t at) -> std::string {
      if (at == 0) return "";
      absl::StatusOr<Uuid> cu = ParseUuid(c);
      absl::StatusOr<std::string> raw =
          node.store->Get(storage::Cf::kConflicts, storage::EncodeConflictKey(*cu, at, f));
      v1::ConflictRecord rec;
      if (!raw.ok() || !rec.ParseFromString(*raw)) return "<missing conflict>";
      std::string out = rec.status() == v1::CONFLICT_STATUS_OPEN ? " open:" : " closed?:";
      for (const v1::FieldHead& h : rec.losing()) {
        out +=
            absl::StrCat(" [", f.empty() ? "" : plain(h.value(), c, r, f), " by ", writes(h), "]");
      }
      return out;
    };
    std::map<std::string, std::string> out;
    std::set<Uuid> cases;
    for (const auto& [key, value] : testing::DumpCf(node.store.get(), storage::Cf::kRecords)) {
      absl::StatusOr<storage::RecordsKey> k = storage::DecodeRecordsKey(key);
      if (!k.ok()) {
        out["<bad key>"] = key;
        continue;
      }
      cases.insert(k->case_id);
      const std::string c = FormatUuid(k->case_id), r = FormatUuid(k->record_id);
      if (!k->is_state) {
        out["<layout 1 key>"] = key;
        continue;
      }
      absl::StatusOr<std::optional<RecordState>> record =
          ReadRecord(node.store.get(), nullptr, k->case_id, k->record_id);
      if (!record.ok() || !record->has_value()) {
        out["<record does not read>"] = key;
        continue;
      }
      const v1::RecordHeader& h = (*record)->header;
      v1::FieldHead marks;
      *marks.mutable_writes() = h.marks();
      out[c + "/" + r] = absl::StrCat(h.record_type(), h.deleted() ? " deleted" : "", " marks ",
                                      writes(marks), losing(c, r, "", h.conflict_position()));
      for (const auto& [field, s] : (*record)->fields) {
        const v1::FieldHead head = CurrentHead(s);
        std::vector<v1::FieldHead> one{head};
        SortHeads(&one);
        out[c + "/" + r + "/" + field] =
            absl::StrCat(plain(s.value(), c, r, field), " by ", writes(one[0]),
                         losing(c, r, field, s.conflict_position()));
      }
    }
    // A case's entries are the same changes in every order, at other
    // positions (which of them created a record, and so has no entry key,
    // depends on the order).
    CaseEntryReader entries(node.store.get(), nullptr);
    for (const Uuid& c : cases) {
      std::vector<uint64_t> positions;
      bool more = false;
      if (!entries.Read(c, 0, 0, 1u << 20, &positions, &more).ok()) {
        out["<entries do not read>/" + FormatUuid(c)] = "";
        continue;
      }
      for (uint64_t p : positions) out[absl::StrCat("entry/", FormatUuid(c), "/", cid(p))] = "";
    }
    for (const auto& [key, value] : testing::DumpCf(node.store.get(), storage::Cf::kCaseIndex)) {
      if (storage::DecodeCaseEntryKey(key).ok()) continue;  // read above
      if (!storage::DecodeCaseScopeListKey(key).ok()) {
        out["index/" + absl::BytesToHexString(key)] = value;
        continue;
      }
      // A scope list by its members: whether an arrival order ever moved a
      // case through a list (leaving it empty) does not matter.
      const std::string& list = key;  // a lambda cannot capture a structured binding
      absl::Status s = storage::ForEachKeyedSum(value, [&](std::string_view member, int64_t sum) {
        out[absl::StrCat("list/", absl::BytesToHexString(list), "/",
                         absl::BytesToHexString(absl::string_view(member.data(), member.size())))] =
            absl::StrCat(sum);
        return absl::OkStatus();
      });
      if (!s.ok()) out["<list does not read>/" + absl::BytesToHexString(key)] = "";
    }
    for (const auto& [key, value] : testing::DumpCf(node.store.get(), storage::Cf::kConflicts)) {
      absl::StatusOr<storage::OpenConflictKey> open = storage::DecodeOpenConflictKey(key);
      if (!open.ok()) continue;  // a conflict record, covered above
      // Which entry opened a conflict depends on arrival order; that it
      // is open, and where it is listed, does not.
      out[absl::StrCat("open/", open->region, "/", FormatUuid(open->conflict.case_id), "/",
                       open->conflict.field, "/", cid(0))] += "+";
    }
    return out;
  }

  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SeededRandom random_;
  fieldsync::testing::SeededRandom gen_{random_.seed()};
  fieldsync::testing::SeededRandom order_gen_{random_.seed() + 1};
  fieldsync::testing::SimulatedClock clock_{absl::FromUnixMicros(kNowMicros)};
  testing::TestFieldSealer sealer_{&random_};
  std::unique_ptr<Schema> schema_ = testing::LoadDefaultSchemaOrDie();
  int change_no_ = 0;
  int batch_no_ = 0;
};

TEST_F(MergePropertyTest, EveryInterleavingGivesTheSameStateAndOpenConflicts) {
  std::vector<Node> nodes;
  for (int o = 0; o < kOrders; ++o) nodes.push_back(MakeNode(absl::StrFormat("order%d", o)));
  const int scenarios = ScenarioCount();
  Seen seen;
  for (int k = 0; k < scenarios; ++k) {
    const Scenario s = Generate(k);
    for (Node& node : nodes) {
      for (const DeviceBatch& b : s.history) {
        std::vector<v1::RecordChange> changes;
        for (const ChangeTemplate& t : b.changes) changes.push_back(Materialize(node, t));
        PushBatch(node, changes, b, &seen);
      }
      // Bases as each device saw the shared history, and the conflict
      // versions the supervisor saw.
      std::vector<std::vector<std::vector<v1::RecordChange>>> materialized(s.lanes.size());
      for (size_t l = 0; l < s.lanes.size(); ++l) {
        for (const Step& step : s.lanes[l]) {
          std::vector<v1::RecordChange> changes;
          if (const auto* b = std::get_if<DeviceBatch>(&step)) {
            for (const ChangeTemplate& t : b->changes) changes.push_back(Materialize(node, t));
          }
          materialized[l].push_back(std::move(changes));
        }
      }
      std::map<std::string, uint64_t> conflict_versions;
      for (const auto& lane : s.lanes) {
        for (const Step& step : lane) {
          if (const auto* r = std::get_if<ResolveStep>(&step)) {
            auto c = NationalityConflict(node, r->case_id);
            ASSERT_TRUE(c.has_value()) << "seed " << random_.seed();
            conflict_versions[r->case_id] = c->second;
          }
        }
      }
      RunOrder(node, s, conflict_versions, materialized, &seen);
      if (HasFatalFailure()) return;
    }
  }
  const std::map<std::string, std::string> first = Normalized(nodes[0]);
  EXPECT_GT(first.size(), static_cast<size_t>(scenarios * 20));
  for (int o = 1; o < kOrders; ++o) {
    const std::map<std::string, std::string> other = Normalized(nodes[static_cast<size_t>(o)]);
    // The first few differences, each naming its scenario's case.
    int shown = 0;
    for (const auto& [key, value] : first) {
      auto it = other.find(key);
      if (it != other.end() && it->second == value) continue;
      ADD_FAILURE() << key << "\n order 0: " << value << "\n order " << o << ": "
                    << (it == other.end() ? "<absent>" : it->second) << "\n seed "
                    << random_.seed();
      if (++shown == 5) break;
    }
    for (const auto& [key, value] : other) {
      if (shown >= 5) break;
      if (first.contains(key)) continue;
      ADD_FAILURE() << key << "\n order 0: <absent>\n order " << o << ": " << value << "\n seed "
                    << random_.seed();
      ++shown;
    }
  }
  // The run exercised every kind of change and outcome.
  EXPECT_GT(seen.outcomes[v1::CHANGE_OUTCOME_APPLIED], 0);
  EXPECT_GT(seen.outcomes[v1::CHANGE_OUTCOME_CONVERGED], 0);
  EXPECT_GT(seen.outcomes[v1::CHANGE_OUTCOME_SUPERSEDED], 0);
  EXPECT_GT(seen.outcomes[v1::CHANGE_OUTCOME_CONFLICT], 0);
  EXPECT_GT(seen.rejections[v1::REJECT_REASON_RECORD_DELETED], 0);
  EXPECT_GT(seen.revivals, 0);
  EXPECT_GT(seen.resolutions, 0);
  // Nothing else was refused.
  int rejected = 0;
  for (const auto& [reason, n] : seen.rejections) rejected += n;
  EXPECT_EQ(rejected, seen.rejections[v1::REJECT_REASON_RECORD_DELETED]);

  // Replaying each store's log gives its state byte for byte.
  Node rebuilt = MakeNode("rebuilt");
  ASSERT_THAT(RebuildStateFromLog(*schema_, nodes[1].store.get(), rebuilt.store.get(), 100),
              IsOk());
  for (storage::Cf cf : {storage::Cf::kRecords, storage::Cf::kCaseIndex, storage::Cf::kConflicts}) {
    EXPECT_EQ(testing::DumpCf(rebuilt.store.get(), cf), testing::DumpCf(nodes[1].store.get(), cf))
        << storage::CfName(cf) << " seed " << random_.seed();
  }
}

// No device is ever its own opponent: in every open conflict, and between
// a conflict and the current value, each writer appears once.
TEST_F(MergePropertyTest, NoConflictSetsADeviceAgainstItself) {
  Node node = MakeNode("single");
  Seen seen;
  for (int k = 0; k < 200; ++k) {
    const Scenario s = Generate(k);
    for (const DeviceBatch& b : s.history) {
      std::vector<v1::RecordChange> changes;
      for (const ChangeTemplate& t : b.changes) changes.push_back(Materialize(node, t));
      PushBatch(node, changes, b, &seen);
    }
    for (const auto& lane : s.lanes) {
      for (const Step& step : lane) {
        const auto* b = std::get_if<DeviceBatch>(&step);
        if (b == nullptr) continue;
        std::vector<v1::RecordChange> changes;
        for (const ChangeTemplate& t : b->changes) changes.push_back(Materialize(node, t));
        PushBatch(node, changes, *b, &seen);
      }
    }
  }
  absl::StatusOr<v1::ListConflictsResponse> list =
      node.feed->ListConflicts("northern", 1000, "", ReadScope::AllClasses());
  ASSERT_THAT(list, IsOk());
  ASSERT_GT(list->conflicts_size(), 0);
  for (const v1::Conflict& c : list->conflicts()) {
    std::multiset<std::string> writers;
    if (!c.field().empty()) writers.insert(c.current_writer());
    for (const v1::LosingValue& v : c.losing_values()) {
      for (const v1::ConflictWrite& w : v.writes()) writers.insert(w.writer());
    }
    for (const std::string& w : writers) {
      EXPECT_EQ(writers.count(w), 1u) << w << " in conflict " << c.id().position() << "/"
                                      << c.id().field() << " seed " << random_.seed();
    }
  }
}

}  // namespace
}  // namespace fieldsync::sync
