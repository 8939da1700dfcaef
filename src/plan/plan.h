// The plan is data: a pure function of (manifest at the target commit, the
// environment's current record, the services' revisions) that an executor
// walks. Nothing here touches git, the store or a process.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/env_state.h"
#include "manifest/manifest.h"

namespace prevue {

enum class PlanAction { kCreate, kUpdate, kResume };
const char* to_string(PlanAction action);

enum class StepKind { kAllocate, kRender, kApply, kSeed, kRoutes, kPrune, kReady };
const char* to_string(StepKind kind);

struct PlanStep {
  StepKind kind;
  std::string name;         // shown in logs and timelines ("seed: items")
  std::vector<std::string> services;  // apply: the services it (re)starts
  int seed_index = -1;      // seed: index into manifest.seed
};

struct Plan {
  PlanAction action = PlanAction::kCreate;
  std::string commit;
  std::vector<PlanStep> steps;
  std::vector<std::string> unchanged_services;  // left running as they are
};

// What the planner knows of the environment as stored (absent for a new one).
struct CurrentEnvironment {
  EnvState state = EnvState::kPending;
  std::string deployed_sha;
  bool seeded = false;
  std::map<std::string, std::string> service_revisions;  // as last deployed
};

Plan make_plan(const Manifest& manifest, const std::string& commit, const CurrentEnvironment* current,
               const std::map<std::string, std::string>& service_revisions);

std::string describe_plan(const Plan& plan);

}  // namespace prevue
