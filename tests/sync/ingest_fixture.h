// A test fixture over a real store: Ingest and ChangeFeed on the default
// schema, a SimulatedClock, a SeededRandom and the test sealer, with a
// FaultyFileSystem under RocksDB for fault injection.
#ifndef FIELDSYNC_TESTS_SYNC_INGEST_FIXTURE_H_
#define FIELDSYNC_TESTS_SYNC_INGEST_FIXTURE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "storage/store.h"
#include "sync/change_feed.h"
#include "sync/ingest.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/seeded_random.h"
#include "tests/testing/simulated_clock.h"
#include "tests/testing/temp_dir.h"

namespace fieldsync::sync::testing {

inline constexpr int64_t kStartMicros = int64_t{1795000000} * 1000000;

class IngestFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    schema_ = LoadDefaultSchemaOrDie();
    fs_ = std::make_shared<fieldsync::testing::FaultyFileSystem>();
    env_ = fieldsync::testing::NewFaultyEnv(fs_);
    ASSERT_TRUE(OpenStore().ok());
  }
  void TearDown() override { CloseStore(); }

  absl::Status OpenStore(const std::string& name = "db") {
    storage::StoreOptions o;
    o.path = dir_.Sub(name);
    o.create_if_missing = true;
    o.env = env_.get();
    absl::StatusOr<std::unique_ptr<storage::Store>> s = storage::Store::Open(o);
    if (!s.ok()) return s.status();
    store_ = *std::move(s);
    Ingest::Options io;
    io.store = store_.get();
    io.schema = schema_.get();
    io.sealer = &sealer_;
    io.clock = &clock_;
    io.observers = observers_;
    io.max_concurrent_prepares = max_concurrent_prepares_;
    ingest_ = std::make_unique<Ingest>(io);
    feed_ = std::make_unique<ChangeFeed>(store_.get(), schema_.get(), &sealer_);
    return absl::OkStatus();
  }
  void CloseStore() {
    feed_.reset();
    ingest_.reset();
    store_.reset();
  }
  void ReopenStore() {
    CloseStore();
    fs_->Reset();
    ASSERT_TRUE(OpenStore().ok());
  }

  // Pushes `changes` as device `device`'s batch `sequence`; the batch id is
  // derived from device and sequence unless given.
  absl::StatusOr<PushResult> Push(const std::string& device, uint64_t sequence,
                                  const std::vector<v1::RecordChange>& changes,
                                  std::string batch_id = "") {
    BatchMeta meta;
    meta.device_id = device;
    meta.officer_id = OfficerOf(device);
    meta.batch_id = batch_id.empty() ? BatchId(device, sequence) : batch_id;
    meta.sequence = sequence;
    v1::BatchPayload payload;
    for (const v1::RecordChange& c : changes) *payload.add_changes() = c;
    return ingest_->Push(meta, payload);
  }
  static std::string BatchId(const std::string& device, uint64_t sequence) {
    return Id(static_cast<int>(std::hash<std::string>()(device) % 100000) * 10000 +
              static_cast<int>(sequence) + 0x1000000);
  }
  // Device "dev-c" works for officer-2, every other device for officer-1.
  static std::string OfficerOf(const std::string& device) {
    return device == "dev-c" ? "officer-2" : "officer-1";
  }

  std::optional<v1::FieldValue> Read(const std::string& case_id, const std::string& record_id,
                                     const std::string& field) {
    absl::StatusOr<std::optional<v1::FieldValue>> v = feed_->ReadField(case_id, record_id, field);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }
  std::string ReadString(const std::string& case_id, const std::string& record_id,
                         const std::string& field) {
    std::optional<v1::FieldValue> v = Read(case_id, record_id, field);
    if (!v.has_value()) return "<absent>";
    return v->has_string_value() ? v->string_value() : v->enum_value();
  }

  std::unique_ptr<Schema> schema_;
  fieldsync::testing::ScopedTempDir dir_;
  fieldsync::testing::SeededRandom random_;
  fieldsync::testing::SimulatedClock clock_{absl::FromUnixMicros(kStartMicros)};
  TestFieldSealer sealer_{&random_};
  std::shared_ptr<fieldsync::testing::FaultyFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::vector<CommitObserver*> observers_;
  int max_concurrent_prepares_ = 0;  // as Ingest::Options has it
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Ingest> ingest_;
  std::unique_ptr<ChangeFeed> feed_;
};

}  // namespace fieldsync::sync::testing

#endif  // FIELDSYNC_TESTS_SYNC_INGEST_FIXTURE_H_
