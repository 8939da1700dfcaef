#include "bench_support.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace prevue::bench {

ProcessOutcome run_or_die(const std::vector<std::string>& argv, const std::filesystem::path& cwd, const std::string& stdin_data) {
  static SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.stdin_data = stdin_data;
  spec.timeout = std::chrono::minutes(5);
  auto out = runner.run(spec);
  if (!out.ok() || out->exit_code != 0) {
    std::fprintf(stderr, "bench: %s failed: %s%s\n", describe_argv(argv).c_str(),
                 out.ok() ? out->stderr_data.c_str() : out.error().message.c_str(), out.ok() ? out->stdout_data.c_str() : "");
    std::exit(1);
  }
  return *out;
}

std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("prevue-bench-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void print_comparison(const std::string& figure, double ours, const std::string& peer, double theirs, const std::string& unit,
                      bool lower_is_better) {
  double ratio = lower_is_better ? theirs / ours : ours / theirs;
  std::printf("%-44s prevue %10.3f %-4s | %-28s %10.3f %-4s | ratio %.2fx %s\n", figure.c_str(), ours, unit.c_str(),
              peer.c_str(), theirs, unit.c_str(), ratio, ratio >= 1.0 ? "(prevue ahead)" : "(prevue behind)");
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

double median(std::vector<double> values) { return percentile(std::move(values), 0.5); }

}  // namespace prevue::bench
