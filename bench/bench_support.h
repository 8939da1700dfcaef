// Shared by the benchmarks: running commands and printing a figure beside
// the peer it must beat, as a ratio.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "provider/process_runner.h"

namespace prevue::bench {

// Runs argv, failing the benchmark program loudly on a non-zero exit.
ProcessOutcome run_or_die(const std::vector<std::string>& argv, const std::filesystem::path& cwd = {},
                          const std::string& stdin_data = {});

std::filesystem::path scratch_dir(const std::string& name);

void print_comparison(const std::string& figure, double ours, const std::string& peer, double theirs,
                      const std::string& unit, bool lower_is_better);

double median(std::vector<double> values);
double percentile(std::vector<double> values, double p);

}  // namespace prevue::bench
