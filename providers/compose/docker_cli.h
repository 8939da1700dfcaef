// What the compose provider's two modes (a compose project, a swarm stack)
// share beside the commands (command.h): which Compose answers, and how a
// wait for health sees one service.
#pragma once

#include <string>
#include <vector>

#include "command.h"

namespace prevue::compose {

using providers::Command;
using providers::Millis;
using providers::run;
using providers::sha256_hex;

// `docker compose` (v2) where the plugin answers, else `docker-compose` (v1).
const std::vector<std::string>& compose_binary();

// One service as a wait for health sees it.
struct ServiceProbe {
  bool ready = false;    // running (and healthy, where it has a healthcheck)
  std::string failure;   // it exited, or its task failed or was rejected: why
  std::string state;     // for a message: "running starting", "1/1 running", ...
};

}  // namespace prevue::compose
