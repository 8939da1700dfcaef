// The plan is data: a pure function of (manifest at the target commit, the
// environment's current record, the services' revisions) that an executor
// walks. Nothing here touches git, the store or a process. `up` starts with
// the steps that find the manifest (fetch, resolve, manifest, plan); the
// plan step appends the rest. `down` and `sleep` are planned from the
// environment's recorded layers.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/env_state.h"
#include "manifest/manifest.h"

namespace prevue {

enum class PlanAction { kCreate, kUpdate, kResume, kDestroy, kSleep };
const char* to_string(PlanAction action);

enum class StepKind {
  kFetch, kResolve, kManifest, kPlan,  // up: finding what to run
  kRetire,                             // up: a provider the manifest no longer uses destroys what it ran
  kAllocate, kRender, kApply, kSeed, kRoutes, kPrune, kReady,
  kDestroy, kUnroute,                  // down
  kSleep,                              // sleep
};
const char* to_string(StepKind kind);

struct PlanStep {
  StepKind kind;
  std::string name;                   // shown in logs and timelines ("seed: items", "apply: app")
  int layer = -1;                     // allocate, render, apply, prune: index into manifest.layers
  EnvironmentLayer target;            // retire, destroy, sleep: the recorded layer acted on
  std::vector<std::string> services;  // apply: the services it (re)starts
  std::vector<int> templates;         // render: indices into manifest.templates rendered here
  int seed_index = -1;                // seed: index into manifest.seed
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
  std::vector<EnvironmentLayer> layers;                  // as recorded
};

// The first steps of every `up`: they find the commit and its manifest.
std::vector<PlanStep> up_prelude();

// The steps after `plan`. A provider the environment used that no layer
// uses now is retired first, and then everything starts afresh.
// `template_layers[t]` is the last layer whose outputs template t names
// (Manifest::last_output_layer of its text; -1 or absent: none): it is
// rendered after that layer's apply.
Plan make_plan(const Manifest& manifest, const std::string& commit, const CurrentEnvironment* current,
               const std::map<std::string, std::string>& service_revisions, const std::vector<int>& template_layers = {});

// Teardown: each layer's provider destroys what it ran, last layer first;
// then prevue's routes and lease go.
Plan make_down_plan(const std::vector<EnvironmentLayer>& layers);
// Sleep: each layer's provider stops what it runs, last layer first.
Plan make_sleep_plan(const std::vector<EnvironmentLayer>& layers);

// The environment's recorded layers for a manifest.
std::vector<EnvironmentLayer> recorded_layers(const Manifest& manifest);

std::string describe_plan(const Plan& plan);

}  // namespace prevue
