// `prevue up` on the reference app, split into prevue's own time and the
// time spent in child processes (provider, builds, seeds, health waits).
// Own time = the whole `prevue up` process's wall time (start-up included)
// minus the wall time prevue spent waiting on children. Target: < 20 ms.
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>

#include "bench_support.h"

namespace {

using prevue::bench::run_or_die;
namespace fs = std::filesystem;

constexpr double kTargetOwnMs = 20.0;

struct Fixture {
  fs::path dir = prevue::bench::scratch_dir("up");
  fs::path repo = dir / "repo";
  fs::path state = dir / "state";
  Fixture() {
    fs::copy(PREVUE_TEMPLATE_DIR, repo, fs::copy_options::recursive);
    git({"init", "-q", "-b", "main"});
    git({"add", "-A"});
    git({"commit", "-q", "-m", "reference app"});
  }
  ~Fixture() { fs::remove_all(dir); }
  void git(std::vector<std::string> args) {
    std::vector<std::string> argv = {"git", "-c", "user.name=bench", "-c", "user.email=bench@prevue.invalid"};
    argv.insert(argv.end(), args.begin(), args.end());
    run_or_die(argv, repo);
  }
  std::vector<std::string> prevue(std::vector<std::string> args) const {
    std::vector<std::string> argv = {PREVUE_BIN, "--state-dir", state.string(), "--provider-dir", PREVUE_PROVIDER_DIR};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
};

Fixture* fixture = nullptr;
std::map<std::string, std::vector<double>> own_ms, child_ms, total_ms, init_ms, startup_ms;

// One `prevue up`; returns (own, children, total) in ms.
void timed_up(const std::string& name, long pr) {
  auto started = std::chrono::steady_clock::now();
  auto out = run_or_die(fixture->prevue({"up", "--repo", fixture->repo.string(), "--pr", std::to_string(pr), "--ref", "main", "--json"}));
  double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  auto result = nlohmann::json::parse(out.stdout_data);
  double children = result["timing_ms"]["children"].get<double>();
  double engine_total = result["timing_ms"]["total"].get<double>();
  own_ms[name].push_back(wall - children);
  init_ms[name].push_back(result["timing_ms"]["libgit2_init"].get<double>());
  startup_ms[name].push_back(wall - engine_total);  // exec, dynamic linking, store open, exit
  child_ms[name].push_back(children);
  total_ms[name].push_back(wall);
}

void BM_UpNewEnvironment(benchmark::State& state) {
  long pr = 1000;
  for (auto _ : state) {
    ++pr;
    timed_up("new environment", pr);
    state.SetIterationTime(own_ms["new environment"].back() / 1000.0);
    state.PauseTiming();
    run_or_die(fixture->prevue({"down", "--repo", fixture->repo.string(), "--pr", std::to_string(pr)}));
    state.ResumeTiming();
  }
}
BENCHMARK(BM_UpNewEnvironment)->UseManualTime()->Iterations(8)->Unit(benchmark::kMillisecond);

void BM_UpAgainNoChange(benchmark::State& state) {
  run_or_die(fixture->prevue({"up", "--repo", fixture->repo.string(), "--pr", "1", "--ref", "main"}));
  for (auto _ : state) {
    timed_up("up again, nothing changed", 1);
    state.SetIterationTime(own_ms["up again, nothing changed"].back() / 1000.0);
  }
  run_or_die(fixture->prevue({"down", "--repo", fixture->repo.string(), "--pr", "1"}));
}
BENCHMARK(BM_UpAgainNoChange)->UseManualTime()->Iterations(15)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Fixture f;
  fixture = &f;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  using prevue::bench::median;
  std::printf("\nprevue up, reference app (medians; own = process wall time - time in child processes)\n");
  for (const auto& [name, values] : own_ms) {
    std::vector<double> engine_own;
    for (size_t i = 0; i < values.size(); ++i) engine_own.push_back(values[i] - startup_ms[name][i] - init_ms[name][i]);
    std::printf("  %s: wall %.1f ms = children %.1f ms + prevue's own %.1f ms (p90 %.1f)\n", name.c_str(),
                median(total_ms[name]), median(child_ms[name]), median(values), prevue::bench::percentile(values, 0.9));
    std::printf("    own = process start/exit %.1f ms + libgit2 init %.1f ms + the engine's own work %.1f ms\n",
                median(startup_ms[name]), median(init_ms[name]), median(engine_own));
    prevue::bench::print_comparison("own time, " + name, median(values), "target", kTargetOwnMs, "ms", true);
    prevue::bench::print_comparison("engine's own work, " + name, median(engine_own), "target", kTargetOwnMs, "ms", true);
  }
  return 0;
}
