// What the container providers share for driving their CLIs (docker,
// compose, kubectl, ctr): argv only, never a shell, each command logged on
// stderr, slow ones timed.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace prevue::providers {

using Millis = std::chrono::milliseconds;

struct Command {
  int exit_code = -1;
  std::string out, err;
  bool stopped = false;  // cut short because the provider was asked to stop
  bool ok() const { return exit_code == 0; }
  // What went wrong, for a message: stderr's last lines (else stdout's, else the exit code).
  std::string why() const;
  // stdout's first non-empty line (empty when none).
  std::string first_line() const;
};

Command run(const std::vector<std::string>& argv, Millis timeout = Millis(120'000), const std::filesystem::path& cwd = {},
            std::map<std::string, std::string> env = {}, std::string stdin_data = {});

// From now on, every command `run` starts is stopped with `signal` (then
// SIGKILL after `grace`) once `*requested` turns true, as on its timeout: a
// provider asked to stop passes the request on (terraform gets SIGINT and
// releases its state lock). Without it, commands get SIGTERM and 10 s.
void stop_commands_when(const std::atomic<bool>* requested, int signal, Millis grace);

std::string sha256_hex(const std::string& data);

}  // namespace prevue::providers
