// Audit log benchmarks (issue #5; figures in docs/BENCHMARKS.md, "Audit
// log"): raw append throughput into RocksDB, proof latency at 10 million
// leaves (p50/p99 as counters), and the offline verifier's speed.
//
//   build-x/bench/audit_bench                          all
//   AUDIT_BENCH_LEAVES=1000000 build-x/bench/audit_bench   a smaller proof store
//   AUDIT_BENCH_CACHE_LEVEL=64 ...    AuditLogOptions::cached_node_min_level
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>

#include "audit/export.h"
#include "audit/log.h"
#include "benchmark/benchmark.h"
#include "common/clock.h"
#include "protocol/events.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/audit/audit_test_util.h"

namespace fieldsync::audit {

using protocol::Checkpoint;
using protocol::CompactMerkleTree;
using protocol::EncodeEvent;
using protocol::Event;
using protocol::Hash;
using protocol::LeafHash;
using protocol::NodeHash;
using protocol::NoteSigner;
using protocol::SignCheckpoint;

namespace {

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/fieldsync-audit-bench-" + name + "-" +
         std::to_string(::getpid());
}

struct OpenLog {
  std::string path;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<AuditLog> log;
  RealClock clock;

  explicit OpenLog(const std::string& name) : path(TempPath(name)) {
    std::filesystem::remove_all(path);
    storage::StoreOptions options;
    options.path = path;
    options.create_if_missing = true;
    options.sync_writes = false;  // throughput of the log, not of fsync
    options.block_cache_bytes = 256 << 20;
    store = *storage::Store::Open(options);
    AuditLogOptions log_options;
    log_options.store = store.get();
    log_options.clock = &clock;
    if (const char* env = std::getenv("AUDIT_BENCH_CACHE_LEVEL")) {
      log_options.cached_node_min_level = std::atoi(env);
    }
    log = *AuditLog::Open(log_options);
  }
  ~OpenLog() {
    log.reset();
    (void)store->Close();
    store.reset();
    std::filesystem::remove_all(path);
  }
  // Appends `n` events in commits of `per_commit`.
  void Append(const std::vector<Event>& pool, uint64_t n, uint64_t per_commit) {
    for (uint64_t done = 0; done < n;) {
      storage::WriteBatch batch;
      AuditSession session(log.get(), &batch);
      for (uint64_t i = 0; i < per_commit && done < n; ++i, ++done) {
        (void)session.Append(pool[done % pool.size()]);
      }
      if (!store->Commit(&batch).ok()) std::abort();
      session.Committed();
    }
  }
  // The same with one AppendAll per commit (a commit is cut short where
  // the pool wraps around).
  void AppendAll(const std::vector<Event>& pool, uint64_t n, uint64_t per_commit) {
    for (uint64_t done = 0; done < n;) {
      const uint64_t start = done % pool.size();
      const uint64_t count = std::min({per_commit, n - done, pool.size() - start});
      done += count;
      storage::WriteBatch batch;
      AuditSession session(log.get(), &batch);
      if (!session.AppendAll(std::span(pool).subspan(start, count)).ok()) std::abort();
      if (!store->Commit(&batch).ok()) std::abort();
      session.Committed();
    }
  }
};

// The two hashes of the tree (crypto::Sha256 underneath): a node (65
// bytes) and the leaf of a small event entry (its size is a counter).
void BM_NodeHash(benchmark::State& state) {
  Hash left{}, right{};
  left[0] = 1;
  for (auto _ : state) {
    left = NodeHash(left, right);
    benchmark::DoNotOptimize(left);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NodeHash);

void BM_LeafHash(benchmark::State& state) {
  const std::string entry = *EncodeEvent(testing::MixedEvents(8, 1)[4]);
  for (auto _ : state) benchmark::DoNotOptimize(LeafHash(entry));
  state.SetItemsProcessed(state.iterations());
  state.counters["entry_bytes"] = static_cast<double>(entry.size());
}
BENCHMARK(BM_LeafHash);

// Leaves per commit: a commit group's worth.
void BM_AppendThroughput(benchmark::State& state) {
  std::vector<Event> pool = testing::MixedEvents(4096, 16);
  OpenLog log("append");
  for (auto _ : state) log.Append(pool, state.range(0), state.range(0));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AppendThroughput)->Arg(1)->Arg(64)->Arg(1000)->Unit(benchmark::kMicrosecond);

// The same leaves through AppendAll: one call (and one tree-size write) per
// commit.
void BM_AppendAllThroughput(benchmark::State& state) {
  std::vector<Event> pool = testing::MixedEvents(4096, 16);
  OpenLog log("append-all");
  for (auto _ : state) log.AppendAll(pool, state.range(0), state.range(0));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AppendAllThroughput)->Arg(64)->Arg(1000)->Unit(benchmark::kMicrosecond);

// One 10M-leaf store shared by the proof benchmarks; main() removes it.
OpenLog* proof_store = nullptr;

OpenLog& ProofStore() {
  static OpenLog* log = [] {
    uint64_t leaves = 10'000'000;
    if (const char* env = std::getenv("AUDIT_BENCH_LEAVES"))
      leaves = std::strtoull(env, nullptr, 10);
    auto* l = new OpenLog("proofs");
    std::vector<Event> pool = testing::MixedEvents(4096, 16);
    auto start = std::chrono::steady_clock::now();
    l->Append(pool, leaves, 10000);
    (void)l->store->Flush();
    std::fprintf(stderr, "built %llu leaves in %.1f s\n", static_cast<unsigned long long>(leaves),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    proof_store = l;
    return l;
  }();
  return *log;
}

template <typename F>
void Latency(benchmark::State& state, F&& one) {
  std::vector<double> us;
  us.reserve(1 << 16);
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    one();
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
  state.counters["max_us"] = us.back();
}

void BM_InclusionProof(benchmark::State& state) {
  OpenLog& l = ProofStore();
  const uint64_t n = l.log->size();
  std::mt19937_64 rng(1);
  Latency(state, [&] {
    uint64_t size = n - rng() % 1000;
    benchmark::DoNotOptimize(l.log->InclusionProof(rng() % size, size));
  });
  state.counters["leaves"] = static_cast<double>(n);
}
BENCHMARK(BM_InclusionProof)->Iterations(20000)->Unit(benchmark::kMicrosecond);

void BM_ConsistencyProof(benchmark::State& state) {
  OpenLog& l = ProofStore();
  const uint64_t n = l.log->size();
  std::mt19937_64 rng(2);
  Latency(state, [&] {
    uint64_t size2 = n - rng() % 1000;
    benchmark::DoNotOptimize(l.log->ConsistencyProof(1 + rng() % size2, size2));
  });
}
BENCHMARK(BM_ConsistencyProof)->Iterations(20000)->Unit(benchmark::kMicrosecond);

void BM_RootAt(benchmark::State& state) {
  OpenLog& l = ProofStore();
  const uint64_t n = l.log->size();
  std::mt19937_64 rng(3);
  Latency(state, [&] { benchmark::DoNotOptimize(l.log->RootAt(1 + rng() % n)); });
}
BENCHMARK(BM_RootAt)->Iterations(20000)->Unit(benchmark::kMicrosecond);

// The store reads under the proofs: `range(0)` random tree nodes of levels
// below 4 (as a proof's lower levels are) in one Store::MultiGet, and the
// same with one Get each.
void BM_NodeReads(benchmark::State& state) {
  OpenLog& l = ProofStore();
  const uint64_t n = l.log->size();
  std::mt19937_64 rng(4);
  const bool multi = state.range(1) != 0;
  std::vector<std::string> keys(state.range(0));
  std::vector<std::string_view> views(keys.size());
  for (auto _ : state) {
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint8_t level = static_cast<uint8_t>(i % 4);
      keys[i] = storage::EncodeAuditNodeKey(level, rng() % (n >> level));
      views[i] = keys[i];
    }
    if (multi) {
      benchmark::DoNotOptimize(l.store->MultiGet(storage::Cf::kAuditNodes, views));
    } else {
      for (std::string_view k : views) {
        benchmark::DoNotOptimize(l.store->Get(storage::Cf::kAuditNodes, k));
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_NodeReads)
    ->Args({1, 0})
    ->Args({8, 0})
    ->Args({8, 1})
    ->Args({16, 1})
    ->Unit(benchmark::kMicrosecond);

// The verifier over an export of `n` mixed entries (half of them device
// batches, each with an Ed25519 signature to check), with `threads`.
void BM_VerifyExport(benchmark::State& state) {
  const uint64_t n = state.range(0);
  std::array<uint8_t, 32> seed;
  seed.fill(7);
  NoteSigner signer = *NoteSigner::Create("bench.example/log", seed);
  std::string file(kExportMagic);
  CompactMerkleTree tree;
  std::string entries;
  {
    std::vector<Event> events = testing::MixedEvents(n, 64);
    for (uint64_t i = 0; i < n; ++i) {
      std::string e = *EncodeEvent(events[i]);
      (void)tree.Append(LeafHash(e), nullptr);
      entries += ExportEntryRecord(i, e);
    }
  }
  Checkpoint cp{"bench.example/log", n, tree.Root(), {}};
  file += ExportHeadRecord(*SignCheckpoint(cp, signer));
  file += entries;
  file += ExportEndRecord(n, 1);
  entries.clear();
  for (auto _ : state) {
    std::istringstream in(file);
    VerifyOptions options;
    options.key = &signer.verifier();
    options.threads = static_cast<int>(state.range(1));
    VerifyReport r = VerifyExport(in, options);
    if (!r.ok) state.SkipWithError(r.error.c_str());
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["file_MB"] = file.size() / 1e6;
}
BENCHMARK(BM_VerifyExport)
    ->Args({1'000'000, 2})
    ->Args({1'000'000, 1})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fieldsync::audit

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete fieldsync::audit::proof_store;  // closes the store and removes its directory
  return 0;
}
