// What the compose provider's two modes (a compose project, a swarm stack)
// share: running the docker CLI (and compose), argv only, never a shell,
// each command logged on stderr, slow ones timed; and how a wait for health
// sees one service.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace prevue::compose {

using Millis = std::chrono::milliseconds;

struct Command {
  int exit_code = -1;
  std::string out, err;
  bool ok() const { return exit_code == 0; }
  // What went wrong, for a message: stderr's last lines (else stdout's, else the exit code).
  std::string why() const;
  // stdout's first non-empty line (empty when none).
  std::string first_line() const;
};

Command run(const std::vector<std::string>& argv, Millis timeout = Millis(120'000), const std::filesystem::path& cwd = {},
            std::map<std::string, std::string> env = {});

// `docker compose` (v2) where the plugin answers, else `docker-compose` (v1).
const std::vector<std::string>& compose_binary();

// BuildKit (and its layer cache) where the engine has the buildx component.
bool buildkit_available();

std::string sha256_hex(const std::string& data);

// One service as a wait for health sees it.
struct ServiceProbe {
  bool ready = false;    // running (and healthy, where it has a healthcheck)
  std::string failure;   // it exited, or its task failed or was rejected: why
  std::string state;     // for a message: "running starting", "1/1 running", ...
};

}  // namespace prevue::compose
