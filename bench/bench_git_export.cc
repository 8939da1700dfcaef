// Reading a template directory at a commit, from a repository with 10,000
// files and 1,000 commits: prevue (libgit2, straight from the object
// database) against `git archive <sha> <dir> | tar -x`, in the same run.
// Target: at least 5x faster.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>
#include <sstream>

#include "bench_support.h"
#include "git/git_mirror.h"

namespace {

namespace fs = std::filesystem;
using prevue::bench::run_or_die;

constexpr int kFiles = 10'000;
constexpr int kCommits = 1'000;
constexpr int kTemplateFiles = 200;  // under templates/, the directory read

// Builds the repository with one `git fast-import` stream: fast, and real.
std::string make_repository(const fs::path& repo) {
  run_or_die({"git", "init", "-q", "-b", "main", repo.string()});
  std::ostringstream stream;
  int mark = 0;
  auto blob = [&](const std::string& content) {
    stream << "blob\nmark :" << ++mark << "\ndata " << content.size() << "\n" << content << "\n";
    return mark;
  };
  auto path_of = [](int i) {
    if (i < kTemplateFiles) return "templates/app/" + std::to_string(i % 10) + "/file" + std::to_string(i) + ".tmpl";
    return "src/module" + std::to_string(i % 97) + "/part" + std::to_string(i % 13) + "/file" + std::to_string(i) + ".cc";
  };
  std::vector<int> first(kFiles);
  for (int i = 0; i < kFiles; ++i) first[i] = blob("// file " + std::to_string(i) + "\n" + std::string(200 + i % 500, 'x') + "\n");
  for (int c = 0; c < kCommits; ++c) {
    std::vector<std::pair<int, int>> changes;  // (file, blob mark)
    if (c == 0) {
      for (int i = 0; i < kFiles; ++i) changes.emplace_back(i, first[i]);
    } else {
      for (int k = 0; k < 5; ++k) {
        int file = (c * 37 + k * 101) % kFiles;
        changes.emplace_back(file, blob("// file " + std::to_string(file) + " rev " + std::to_string(c) + "\n"));
      }
    }
    std::string message = "commit " + std::to_string(c);
    stream << "commit refs/heads/main\nmark :" << ++mark << "\ncommitter bench <bench@prevue.invalid> "
           << (1700000000 + c) << " +0000\ndata " << message.size() << "\n" << message << "\n";
    for (const auto& [file, blob_mark] : changes) stream << "M 100644 :" << blob_mark << " " << path_of(file) << "\n";
    stream << "\n";
  }
  run_or_die({"git", "fast-import", "--quiet"}, repo, stream.str());
  return run_or_die({"git", "rev-parse", "main"}, repo).stdout_data.substr(0, 40);
}

struct Fixture {
  fs::path dir = prevue::bench::scratch_dir("git-export");
  // Output on tmpfs where there is one: the figure is reading the tree, not
  // this machine's disk (mounted with `discard`, its file creation times
  // vary several-fold from run to run for both sides alike).
  fs::path out = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") / ("prevue-bench-export-" + std::to_string(::getpid())) : dir / "out";
  fs::path repo = dir / "repo.git";
  std::string sha;
  std::optional<prevue::GitMirror> mirror;
  Fixture() {
    sha = make_repository(repo);
    auto opened = prevue::GitMirror::open(dir / "mirror.git", repo.string());
    if (!opened.ok() || !opened->fetch().ok()) {
      std::fprintf(stderr, "bench: cannot mirror %s\n", repo.c_str());
      std::exit(1);
    }
    mirror.emplace(std::move(opened).value());
    auto files = mirror->list_files(sha, "templates");
    std::printf("repository: %d files, %d commits; templates/ holds %zu files\n", kFiles, kCommits, files.ok() ? files->size() : 0);
  }
  ~Fixture() {
    fs::remove_all(dir);
    fs::remove_all(out);
  }
};

Fixture* fixture = nullptr;
int counter = 0;

// Every iteration writes into a new directory and nothing is deleted until
// the end: deleting between iterations makes this disk (mounted with
// `discard`) slow down whichever side happens to run next.
fs::path fresh_target() {
  fs::path target = fixture->out / ("out-" + std::to_string(++counter));
  fs::create_directories(target);
  return target;
}

void BM_PrevueExport(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    fs::path target = fresh_target();
    state.ResumeTiming();
    auto files = fixture->mirror->export_tree(fixture->sha, "templates", target);
    if (!files.ok()) state.SkipWithError(files.error().message.c_str());
  }
}
BENCHMARK(BM_PrevueExport)->Unit(benchmark::kMillisecond)->MinTime(1.0);

void BM_GitArchiveTar(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    fs::path target = fresh_target();
    state.ResumeTiming();
    // The peer as a user would run it; fixed arguments, no untrusted text.
    run_or_die({"sh", "-c", "git -C \"$0\" archive \"$1\" templates | tar -x -C \"$2\"", fixture->repo.string(), fixture->sha,
                target.string()});
  }
}
BENCHMARK(BM_GitArchiveTar)->Unit(benchmark::kMillisecond)->MinTime(1.0);

class Recorder : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) times[run.run_name.function_name] = run.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> times;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Fixture f;
  fixture = &f;
  Recorder recorder;
  benchmark::RunSpecifiedBenchmarks(&recorder);
  benchmark::Shutdown();
  double ours = recorder.times["BM_PrevueExport"];
  double theirs = recorder.times["BM_GitArchiveTar"];
  if (ours > 0 && theirs > 0)
    prevue::bench::print_comparison("read templates/ at a commit (target 5x)", ours, "git archive | tar -x", theirs, "ms", true);
  return 0;
}
