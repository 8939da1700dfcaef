// Runs a child process from an argv array (never through a shell) with a
// working directory, an environment, stdin data and a timeout; the child
// leads its own process group, and the whole group is stopped on timeout or
// cancellation: a signal, a grace period, then SIGKILL.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/result.h"

namespace prevue {

struct ProcessSpec {
  std::vector<std::string> argv;                 // argv[0] is looked up in PATH unless it holds a '/'
  std::filesystem::path cwd;                     // empty: inherit
  std::map<std::string, std::string> env;        // added to (and overriding) the inherited environment
  bool inherit_env = true;
  std::string stdin_data;
  Millis timeout = Millis(300'000);
  size_t max_output = 16 * 1024 * 1024;          // per stream: its first quarter and last three quarters are kept, the middle noted
  // How the group is stopped on timeout or cancellation: `stop_signal`
  // first, then SIGKILL once `stop_grace` has passed (a killed terraform
  // leaves its state locked; a signalled one releases it).
  int stop_signal = 9;                           // SIGKILL: no grace
  Millis stop_grace{0};
  const std::atomic<bool>* cancelled = nullptr;  // polled; once true, the group is stopped as on timeout
};

struct ProcessOutcome {
  int exit_code = -1;     // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  bool killed_after_grace = false;  // it ignored the stop signal for the whole grace period
  std::string stdout_data;
  std::string stderr_data;
  Millis elapsed{0};
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // An error only when the process could not be started at all; a non-zero
  // exit or a timeout is an outcome.
  virtual Result<ProcessOutcome> run(const ProcessSpec& spec) = 0;
  // Wall time spent in run() since construction (for prevue's own-time figure).
  std::chrono::nanoseconds child_time() const { return std::chrono::nanoseconds(child_ns_.load()); }

 protected:
  void add_child_time(std::chrono::nanoseconds t) { child_ns_ += t.count(); }

 private:
  std::atomic<long long> child_ns_{0};
};

class SubprocessRunner final : public ProcessRunner {
 public:
  Result<ProcessOutcome> run(const ProcessSpec& spec) override;
};

// Where `name` runs from: itself when it holds a '/', else the first
// executable of that name on PATH (the env's, else this process's when
// `inherit`); empty when none.
std::string find_in_path(const std::string& name, const std::map<std::string, std::string>& env = {}, bool inherit = true);

// The argv rendered for a log line (quoted where needed); display only.
std::string describe_argv(const std::vector<std::string>& argv);

}  // namespace prevue
