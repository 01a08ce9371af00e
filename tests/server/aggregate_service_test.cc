// AggregateService through a real fieldsyncd over mutual TLS: scoping of
// analysts and supervisors to their regions, suppression on the wire, the
// roles that may not ask, and errors with reasons. Cases are committed by
// the real ingest (with the counter observer) into the deployment's store
// before the server starts, as if devices had pushed them.
#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "admin/deployment.h"
#include "aggregates/counters.h"
#include "aggregates/metrics.h"
#include "common/file_io.h"
#include "fieldsync/v1/admin.grpc.pb.h"
#include "fieldsync/v1/aggregates.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "protocol/events.h"
#include "server/server.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "sync/ingest.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::IsOk;
using ::testing::HasSubstr;

using Credentials = ::fieldsync::testing::ClientCredentials;

class AggregateServiceTest : public ::fieldsync::testing::ServerHarness {
 protected:
  AggregateServiceTest() : ServerHarness(611) {}

  void SetUp() override {
    ServerHarness::SetUp();
    Populate();
    StartServer();
  }

  // Open cases: northern 12 (8 female, 4 male), eastern 3, western 9.
  void Populate() {
    std::unique_ptr<sync::Schema> schema = sync::testing::LoadDefaultSchemaOrDie();
    absl::StatusOr<v1::MetricsConfig> config =
        aggregates::ParseMetricsConfig(*ReadFile(paths_->metrics));
    ASSERT_THAT(config, IsOk());
    auto metrics = aggregates::Metrics::Create(*config, schema.get());
    ASSERT_THAT(metrics, IsOk());
    storage::StoreOptions o;
    o.path = paths_->db;
    auto store = storage::Store::Open(o);
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT(
        aggregates::PrepareCounters(store->get(), **metrics, *schema, paths_->db + "-recount.tmp"),
        IsOk());
    sync::testing::TestFieldSealer sealer(&random_);
    aggregates::CounterObserver observer(metrics->get());
    sync::Ingest::Options io;
    io.store = store->get();
    io.schema = schema.get();
    io.sealer = &sealer;
    io.clock = &clock_;
    io.observers = {&observer};
    sync::Ingest ingest(io);
    v1::BatchPayload payload;
    int n = 0;
    auto add = [&](const std::string& region, const std::string& sex, int count) {
      for (int i = 0; i < count; ++i, ++n) {
        std::string id = sync::testing::Id(100 + n);
        v1::RecordChange c = sync::testing::NewCase(
            sync::testing::Id(5000 + n), id, region,
            sync::testing::HlcAt(absl::ToUnixMicros(clock_.Now()) - 1000000 + n));
        for (v1::FieldWrite& w : *c.mutable_fields()) {
          if (w.field() == "sex") *w.mutable_value() = sync::testing::Enum(sex);
        }
        *payload.add_changes() = c;
      }
    };
    add("northern", "female", 8);
    add("northern", "male", 4);
    add("eastern", "female", 3);
    add("western", "male", 9);
    sync::BatchMeta meta;
    meta.device_id = sync::testing::Id(9999);
    meta.officer_id = "officer-1";
    meta.batch_id = sync::testing::Id(8888);
    meta.sequence = 1;
    absl::StatusOr<sync::PushResult> r = ingest.Push(meta, payload);
    ASSERT_THAT(r, IsOk());
  }

  grpc::Status Query(const Credentials& who, const v1::QueryRequest& request,
                     v1::QueryResponse* response) {
    auto stub = v1::AggregateService::NewStub(Channel(&who));
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub->Query(&context, request, response);
  }

  static v1::QueryRequest OpenCasesBy(std::vector<std::string> group_by) {
    v1::QueryRequest r;
    r.set_metric("open_cases");
    for (auto& g : group_by) r.add_group_by(g);
    return r;
  }

  static std::map<std::string, std::string> Column(const v1::QueryResponse& r) {
    std::map<std::string, std::string> out;
    for (const v1::AggregateCell& c : r.cells()) {
      std::string key = c.coordinates(0).total() ? "*" : c.coordinates(0).value();
      out[key] = c.suppressed() ? "suppressed" : std::to_string(c.count());
    }
    return out;
  }
};

TEST_F(AggregateServiceTest, AnAnalystSeesOnlyItsRegions) {
  Credentials north = AddStaff("ana.north", v1::ROLE_ANALYST, {"northern"});
  v1::QueryResponse r;
  grpc::Status s = Query(north, OpenCasesBy({"region"}), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(r.regions(), ::testing::ElementsAre("northern"));
  EXPECT_EQ(Column(r), (std::map<std::string, std::string>{{"northern", "12"}, {"*", "12"}}));
  // Grouping by another dimension still covers the northern cases only.
  ASSERT_TRUE(Query(north, OpenCasesBy({"sex"}), &r).ok());
  EXPECT_EQ(Column(r)["*"], "12");
  // 4 male cases are withheld, and so is the 8 that, with the total of
  // 12, would give them away.
  EXPECT_EQ(Column(r)["male"], "suppressed");
  EXPECT_EQ(Column(r)["female"], "suppressed");
  // Naming another region is refused with the reason.
  v1::QueryRequest east = OpenCasesBy({});
  v1::DimensionFilter* f = east.add_filters();
  f->set_dimension("region");
  f->add_values("eastern");
  s = Query(north, east, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("eastern"));
}

TEST_F(AggregateServiceTest, SmallCountsNeverLeaveTheServer) {
  Credentials east = AddStaff("ana.east", v1::ROLE_ANALYST, {"eastern"});
  v1::QueryResponse r;
  ASSERT_TRUE(Query(east, OpenCasesBy({"sex"}), &r).ok());
  for (const v1::AggregateCell& c : r.cells()) {
    if (!c.suppressed()) {
      EXPECT_TRUE(c.count() == 0 || c.count() >= 5) << c.count();
    } else {
      EXPECT_FALSE(c.has_count());
    }
  }
  EXPECT_EQ(Column(r)["*"], "suppressed");
  EXPECT_EQ(Column(r)["female"], "suppressed");
}

TEST_F(AggregateServiceTest, EveryAnsweredQueryIsInTheAuditLogWithoutItsCounts) {
  Credentials north = AddStaff("ana.north", v1::ROLE_ANALYST, {"northern"});
  v1::QueryResponse r;
  v1::QueryRequest q = OpenCasesBy({"sex"});
  v1::DimensionFilter* f = q.add_filters();
  f->set_dimension("region");
  f->add_values("northern");
  ASSERT_TRUE(Query(north, q, &r).ok());
  ASSERT_TRUE(Query(north, OpenCasesBy({"region"}), &r).ok());
  // A refused query answers nothing and is not recorded as answered.
  v1::QueryRequest east = OpenCasesBy({});
  v1::DimensionFilter* e = east.add_filters();
  e->set_dimension("region");
  e->add_values("eastern");
  EXPECT_FALSE(Query(north, east, &r).ok());

  // Shutting down appends what the trail still holds.
  ASSERT_THAT(server_->Shutdown(), IsOk());
  server_.reset();
  storage::StoreOptions o;
  o.path = paths_->db;
  absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(o);
  ASSERT_THAT(store, IsOk());
  std::vector<protocol::AdminAction> queries;
  std::unique_ptr<storage::Iterator> it =
      (*store)->NewIterator(storage::Cf::kAuditLeaves, storage::AuditLeafKeyPrefix(),
                            storage::PrefixUpperBound(storage::AuditLeafKeyPrefix()));
  for (; it->Valid(); it->Next()) {
    absl::StatusOr<protocol::Event> event = protocol::DecodeEvent(it->value());
    ASSERT_THAT(event, IsOk());
    const auto* a = std::get_if<protocol::AdminAction>(&event->body);
    if (a != nullptr && a->action == "aggregates.query") queries.push_back(*a);
  }
  ASSERT_EQ(queries.size(), 2u);
  EXPECT_EQ(queries[0].actor, "fieldsync://staff/ana.north");
  EXPECT_THAT(queries[0].subject_ids, ::testing::IsSupersetOf({"metric=open_cases", "group_by=sex",
                                                               "filter=region:northern"}));
  EXPECT_THAT(queries[1].subject_ids, ::testing::Contains("group_by=region"));
  for (const protocol::AdminAction& a : queries) {
    for (const std::string& subject : a.subject_ids) {
      EXPECT_EQ(subject.find("12"), std::string::npos) << "a count in " << subject;
    }
  }
}

TEST_F(AggregateServiceTest, ASupervisorIsScopedLikeAnAnalyst) {
  Credentials sup = AddStaff("sup.west", v1::ROLE_SUPERVISOR, {"western"});
  v1::QueryResponse r;
  ASSERT_TRUE(Query(sup, OpenCasesBy({"region"}), &r).ok());
  EXPECT_EQ(Column(r), (std::map<std::string, std::string>{{"western", "9"}, {"*", "9"}}));
}

TEST_F(AggregateServiceTest, OtherRolesMayNotAsk) {
  Credentials auditor = AddStaff("aud", v1::ROLE_AUDITOR, {});
  v1::QueryResponse r;
  EXPECT_EQ(Query(admin_, OpenCasesBy({}), &r).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Query(auditor, OpenCasesBy({}), &r).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AggregateServiceTest, ListMetricsAndBadQueries) {
  Credentials north = AddStaff("ana.north", v1::ROLE_ANALYST, {"northern"});
  auto stub = v1::AggregateService::NewStub(Channel(&north));
  grpc::ClientContext context;
  v1::ListMetricsResponse list;
  ASSERT_TRUE(stub->ListMetrics(&context, v1::ListMetricsRequest(), &list).ok());
  EXPECT_GE(list.metrics_size(), 6);
  EXPECT_EQ(list.min_cell_count(), 5u);
  EXPECT_EQ(list.region_dimension(), "region");
  EXPECT_THAT(list.scope_regions(), ::testing::ElementsAre("northern"));
  v1::QueryResponse r;
  v1::QueryRequest unknown;
  unknown.set_metric("no_such_metric");
  grpc::Status s = Query(north, unknown, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown metric"));
  s = Query(north, OpenCasesBy({"region", "sex", "age_band", "priority", "district"}), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace fieldsync::server
