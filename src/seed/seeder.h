// Seeds an environment's data after apply and before it is reported ready.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "git/git_mirror.h"
#include "manifest/manifest.h"
#include "manifest/render.h"
#include "provider/process_runner.h"

namespace prevue {

struct SeedContext {
  const GitMirror& git;
  std::string commit;
  std::filesystem::path env_dir;
  const RenderContext& render;                  // for command argv
  std::map<std::string, std::string> env;       // the environment's variables, for commands
  ProcessRunner& runner;
};

// Runs one step. Appends what it did (and any command output) to `log`.
Status run_seed_step(const SeedStep& step, const SeedContext& context, std::string& log);

}  // namespace prevue
