#include "plan/plan.h"

namespace prevue {

const char* to_string(PlanAction action) {
  switch (action) {
    case PlanAction::kCreate: return "create";
    case PlanAction::kUpdate: return "update";
    case PlanAction::kResume: return "resume";
  }
  return "unknown";
}

const char* to_string(StepKind kind) {
  switch (kind) {
    case StepKind::kAllocate: return "allocate";
    case StepKind::kRender: return "render";
    case StepKind::kApply: return "apply";
    case StepKind::kSeed: return "seed";
    case StepKind::kRoutes: return "routes";
    case StepKind::kPrune: return "prune";
    case StepKind::kReady: return "ready";
  }
  return "unknown";
}

Plan make_plan(const Manifest& manifest, const std::string& commit, const CurrentEnvironment* current,
               const std::map<std::string, std::string>& service_revisions) {
  Plan plan;
  plan.commit = commit;
  bool fresh = current == nullptr || current->state == EnvState::kPending || current->state == EnvState::kDestroyed ||
               current->deployed_sha.empty();
  if (fresh) plan.action = PlanAction::kCreate;
  else if (current->state == EnvState::kReady && current->deployed_sha != commit) plan.action = PlanAction::kUpdate;
  else plan.action = PlanAction::kResume;  // same commit again, or a run that failed or was interrupted

  plan.steps.push_back(PlanStep{StepKind::kAllocate, "allocate", {}, -1});
  plan.steps.push_back(PlanStep{StepKind::kRender, "render", {}, -1});

  PlanStep apply{StepKind::kApply, "apply", {}, -1};
  for (const auto& service : manifest.services) {
    bool changed = true;
    if (!fresh && current->state == EnvState::kReady) {
      auto before = current->service_revisions.find(service.name);
      auto after = service_revisions.find(service.name);
      changed = before == current->service_revisions.end() || after == service_revisions.end() || before->second != after->second;
    }
    if (changed) apply.services.push_back(service.name);
    else plan.unchanged_services.push_back(service.name);
  }
  plan.steps.push_back(apply);

  // Seeding creates data once; later pushes keep what reviewers entered.
  bool seed = fresh || !current->seeded;
  for (size_t i = 0; seed && i < manifest.seed.size(); ++i)
    plan.steps.push_back(PlanStep{StepKind::kSeed, "seed: " + manifest.seed[i].name, {}, static_cast<int>(i)});
  plan.steps.push_back(PlanStep{StepKind::kRoutes, "routes", {}, -1});
  // A provider that updates without downtime keeps the replaced versions
  // serving until the routes point at the new ones; they stop here.
  plan.steps.push_back(PlanStep{StepKind::kPrune, "prune", {}, -1});
  plan.steps.push_back(PlanStep{StepKind::kReady, "ready", {}, -1});
  return plan;
}

std::string describe_plan(const Plan& plan) {
  std::string out = std::string(to_string(plan.action)) + " at " + plan.commit.substr(0, 12) + "\n";
  int n = 1;
  for (const auto& step : plan.steps) {
    out += "  " + std::to_string(n++) + ". " + step.name;
    if (step.kind == StepKind::kApply) {
      out += " (start or restart:";
      for (const auto& s : step.services) out += " " + s;
      if (step.services.empty()) out += " none";
      out += ")";
    }
    out += "\n";
  }
  if (!plan.unchanged_services.empty()) {
    out += "  unchanged, left running:";
    for (const auto& s : plan.unchanged_services) out += " " + s;
    out += "\n";
  }
  return out;
}

}  // namespace prevue
