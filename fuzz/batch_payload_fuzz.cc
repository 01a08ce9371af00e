// Fuzzes a pushed batch's payload and its changes through the real ingest
// (sync/ingest.h): validation against the shipped schema, reconciliation
// with what earlier inputs wrote, sealing, the canonical case log and the
// commit, on a real RocksDB store in a temporary directory.
//
// Input: a serialized BatchPayload, pushed as batch 1 of a new device (so
// that every input is accepted or refused on its own merits; the cases it
// writes stay for later inputs to update, conflict with or delete).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "admin/default_schema.h"
#include "fuzz/fuzz_fixtures.h"
#include "sync/ingest.h"
#include "sync/schema.h"
#include "tests/sync/sync_test_util.h"
#include "tests/testing/simulated_clock.h"

using namespace fieldsync;  // NOLINT: a fuzz target's one file

namespace {

// Inputs pushed into one store before it is replaced by a fresh one, so
// that a long run's disk and memory stay bounded.
constexpr uint64_t kInputsPerStore = 20000;

struct World {
  std::unique_ptr<sync::Schema> schema;
  fuzz::CounterRandom random{1};
  sync::testing::TestFieldSealer sealer{&random};
  testing::SimulatedClock clock{fuzz::FixedNow()};
  std::string dir;
  sync::testing::SyncNode node;
  uint64_t inputs = 0;

  World() {
    absl::StatusOr<v1::Schema> proto = sync::ParseSchema(admin::DefaultSchemaText());
    fuzz::Check(proto.ok(), "the shipped schema parses");
    absl::StatusOr<std::unique_ptr<sync::Schema>> s = sync::Schema::Create(*std::move(proto));
    fuzz::Check(s.ok(), "the shipped schema is valid");
    schema = *std::move(s);
    char tmpl[] = "/tmp/fieldsync-fuzz-ingest-XXXXXX";
    fuzz::Check(mkdtemp(tmpl) != nullptr, "a temporary directory");
    dir = tmpl;
    Reopen();
  }
  ~World() {
    node = {};
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  void Reopen() {
    node = {};
    std::error_code ec;
    std::filesystem::remove_all(dir + "/db", ec);
    node = sync::testing::OpenSyncNode(dir + "/db", schema.get(), &sealer, &clock,
                                       /*sync_writes=*/false);
  }
};

World* world = nullptr;

void Cleanup() { delete world; }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world = new World;
  std::atexit(Cleanup);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::BatchPayload payload;
  if (!payload.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (++world->inputs % kInputsPerStore == 0) world->Reopen();
  const uint64_t n = world->inputs;
  sync::BatchMeta meta;
  meta.device_id = absl::StrFormat("d0000000-0000-4000-8000-%012x", n);
  meta.officer_id = "officer-1";
  meta.region = world->schema->regions().empty() ? "" : world->schema->regions()[0];
  meta.batch_id = absl::StrFormat("b0000000-0000-4000-8000-%012x", n);
  meta.sequence = 1;
  world->clock.Advance(absl::Milliseconds(1));

  absl::StatusOr<sync::PushResult> r = world->node.ingest->Push(meta, payload);
  if (!r.ok()) {
    // Only a refusal of the whole batch; the store stays usable.
    fuzz::Check(r.status().code() == absl::StatusCode::kInvalidArgument,
                "a new device's first batch is refused only as invalid");
    return 0;
  }
  fuzz::Check(r->result.results_size() == payload.changes_size(), "one result per change");
  fuzz::Check(!r->is_retry_answer, "a new batch is not a retry");
  fuzz::Check(r->next_sequence == 2, "the next sequence follows the batch");
  // The same delivery again is answered from the stored result, unchanged.
  absl::StatusOr<sync::PushResult> again = world->node.ingest->Push(meta, payload);
  fuzz::Check(again.ok() && again->is_retry_answer, "a resent batch is a retry answer");
  fuzz::Check(again.ok() && again->result.SerializeAsString() == r->result.SerializeAsString(),
              "a retry answer is the stored result");
  return 0;
}
