// The lease scheduler at 100,000 and 1,000,000 leases: the cost of a renewal
// (a push or a flushed proxy hit moving a deadline), of an expiry pass
// (taking the due leases, at most one batch), and memory per lease. The peer
// is the store's indexed query for due leases (what `prevue gc` uses), on
// the same leases, in the same run.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <vector>
#include <string>

#include "core/clock.h"
#include "lease/lease_scheduler.h"
#include "store/store.h"

namespace {

using prevue::LeaseScheduler;

constexpr std::int64_t kStart = 1'700'000'000'000;
constexpr size_t kBatch = 100;

long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

void fill(LeaseScheduler& s, std::int64_t n, std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int64_t> spread(0, 72LL * 3'600'000);
  for (std::int64_t id = 1; id <= n; ++id) s.schedule(id, kStart + spread(rng));
}

void BM_Renew(benchmark::State& state) {
  std::mt19937_64 rng(42);
  LeaseScheduler s;
  fill(s, state.range(0), rng);
  std::uniform_int_distribution<std::int64_t> pick(1, state.range(0));
  std::int64_t now = kStart;
  for (auto _ : state) {
    now += 1;
    s.schedule(pick(rng), now + 24LL * 3'600'000);  // the idle limit moves out
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Renew)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kNanosecond);

// One pass: the next batch of due leases taken. (Outside the timing, the
// taken leases come back with later deadlines so the population stays the
// same, as new pushes would.)
void BM_ExpiryPass(benchmark::State& state) {
  std::mt19937_64 rng(7);
  LeaseScheduler s;
  fill(s, state.range(0), rng);
  std::int64_t now = kStart;
  std::uniform_int_distribution<std::int64_t> later(72LL * 3'600'000, 96LL * 3'600'000);
  for (auto _ : state) {
    now += 60'000;
    auto due = s.take_due(now, kBatch);
    benchmark::DoNotOptimize(due);
    state.PauseTiming();
    for (auto id : due) s.schedule(id, now + later(rng));
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExpiryPass)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);

// The peer: the same pass as an indexed query against the sqlite store.
void BM_StoreDueLeases(benchmark::State& state) {
  prevue::FakeClock clock(kStart);
  auto store = prevue::Store::open(":memory:", clock);
  if (!store.ok()) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> spread(0, 72LL * 3'600'000);
  (void)(*store)->upsert_repository("/bench", "bench", "/bench.git");
  for (std::int64_t id = 1; id <= state.range(0); ++id) {
    prevue::LeaseRecord l{id, 72LL * 3'600'000, 24LL * 3'600'000, prevue::EndAction::kDestroy, 0, kStart + spread(rng), kStart, false, 0};
    (void)(*store)->upsert_lease(l);
  }
  std::int64_t now = kStart;
  for (auto _ : state) {
    now += 60'000;
    auto due = (*store)->due_leases(now, static_cast<int>(kBatch));
    benchmark::DoNotOptimize(due);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreDueLeases)->Arg(100'000)->Unit(benchmark::kMicrosecond);

class Recorder : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs)
      times[run.run_name.function_name + "/" + run.run_name.args] = run.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> times;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Memory first, on a fresh heap: resident size before and after.
  std::vector<std::string> memory_lines;
  for (std::int64_t n : {100'000LL, 1'000'000LL}) {
    long before = resident_kib();
    std::mt19937_64 rng(1);
    auto s = std::make_unique<LeaseScheduler>();
    fill(*s, n, rng);
    long after = resident_kib();
    char line[160];
    std::snprintf(line, sizeof line, "memory: %lld leases take %.1f MiB resident, %.0f bytes per lease", static_cast<long long>(n),
                  (after - before) / 1024.0, (after - before) * 1024.0 / static_cast<double>(n));
    memory_lines.push_back(line);
  }
  Recorder recorder;
  benchmark::RunSpecifiedBenchmarks(&recorder);
  benchmark::Shutdown();
  for (const auto& line : memory_lines) std::printf("%s\n", line.c_str());
  double ours = recorder.times["BM_ExpiryPass/100000"];
  double peer = recorder.times["BM_StoreDueLeases/100000"];
  if (ours > 0 && peer > 0)
    std::printf("%-44s prevue %10.2f us   | %-28s %10.2f us   | ratio %.1fx (prevue ahead)\n",
                "expiry pass at 100,000 leases (batch 100)", ours, "sqlite indexed due query", peer, peer / ours);
  std::printf("renewal at 1,000,000 leases: %.0f ns; expiry pass at 1,000,000 leases: %.2f us\n",
              recorder.times["BM_Renew/1000000"], recorder.times["BM_ExpiryPass/1000000"]);
  return 0;
}
