#include "plan/plan.h"

#include <algorithm>

namespace prevue {

const char* to_string(PlanAction action) {
  switch (action) {
    case PlanAction::kCreate: return "create";
    case PlanAction::kUpdate: return "update";
    case PlanAction::kResume: return "resume";
    case PlanAction::kDestroy: return "destroy";
    case PlanAction::kSleep: return "sleep";
  }
  return "unknown";
}

const char* to_string(StepKind kind) {
  switch (kind) {
    case StepKind::kFetch: return "fetch";
    case StepKind::kResolve: return "resolve";
    case StepKind::kManifest: return "manifest";
    case StepKind::kPlan: return "plan";
    case StepKind::kRetire: return "retire";
    case StepKind::kAllocate: return "allocate";
    case StepKind::kRender: return "render";
    case StepKind::kApply: return "apply";
    case StepKind::kSeed: return "seed";
    case StepKind::kRoutes: return "routes";
    case StepKind::kPrune: return "prune";
    case StepKind::kReady: return "ready";
    case StepKind::kDestroy: return "destroy";
    case StepKind::kUnroute: return "routes";
    case StepKind::kSleep: return "sleep";
  }
  return "unknown";
}

namespace {

PlanStep step(StepKind kind, std::string name) {
  PlanStep s{kind, std::move(name)};
  return s;
}

// "apply" for the one layer of a short-form manifest, "apply: app" otherwise.
std::string layer_step_name(StepKind kind, const std::string& layer, bool one_layer) {
  return one_layer ? std::string(to_string(kind)) : std::string(to_string(kind)) + ": " + layer;
}

}  // namespace

std::vector<PlanStep> up_prelude() {
  return {step(StepKind::kFetch, "fetch"), step(StepKind::kResolve, "resolve"), step(StepKind::kManifest, "manifest"),
          step(StepKind::kPlan, "plan")};
}

std::vector<EnvironmentLayer> recorded_layers(const Manifest& manifest) {
  std::vector<EnvironmentLayer> out;
  for (const auto& layer : manifest.layers) out.push_back(EnvironmentLayer{layer.name, layer.provider});
  return out;
}

Plan make_plan(const Manifest& manifest, const std::string& commit, const CurrentEnvironment* current,
               const std::map<std::string, std::string>& service_revisions, const std::vector<int>& template_layers) {
  Plan plan;
  plan.commit = commit;
  bool fresh = current == nullptr || current->state == EnvState::kPending || current->state == EnvState::kDestroyed ||
               current->deployed_sha.empty();

  // Providers the environment ran that no layer uses now: their resources
  // go first, and the new layout starts from nothing (services, seeds, routes).
  if (current != nullptr && holds_resources(current->state)) {
    for (auto it = current->layers.rbegin(); it != current->layers.rend(); ++it) {
      bool kept = std::any_of(manifest.layers.begin(), manifest.layers.end(),
                              [&](const Layer& l) { return l.provider == it->provider; });
      if (kept) continue;
      PlanStep retire = step(StepKind::kRetire, "retire " + it->provider);
      retire.target = *it;
      plan.steps.push_back(retire);
      fresh = true;
    }
  }
  if (fresh) plan.action = PlanAction::kCreate;
  else if (current->state == EnvState::kReady && current->deployed_sha != commit) plan.action = PlanAction::kUpdate;
  else plan.action = PlanAction::kResume;  // same commit again, or a run that failed or was interrupted

  // A PostgreSQL seed's database is the app's from its first start
  // ({{ seed.NAME.url }}): it comes before anything is rendered, on every
  // run (the database is kept while the seed is unchanged). One in the
  // environment's own service comes after the layers, once that runs.
  auto on_every_run = [](const SeedStep& s) { return s.kind == SeedKind::kPostgres; };
  for (size_t i = 0; i < manifest.seed.size(); ++i) {
    if (!on_every_run(manifest.seed[i]) || !manifest.seed[i].service.empty()) continue;
    PlanStep s = step(StepKind::kSeed, "seed: " + manifest.seed[i].name);
    s.seed_index = static_cast<int>(i);
    plan.steps.push_back(s);
  }

  const bool one_layer = manifest.layers.size() == 1;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    if (manifest.layers[i].services.empty()) continue;  // nothing to reserve endpoints for
    PlanStep allocate = step(StepKind::kAllocate, layer_step_name(StepKind::kAllocate, manifest.layers[i].name, one_layer));
    allocate.layer = static_cast<int>(i);
    plan.steps.push_back(allocate);
  }

  // Each template is rendered as soon as the outputs it names exist: before
  // the first layer, or after the last layer whose outputs it reads.
  const size_t n = manifest.layers.size();
  std::vector<std::vector<int>> templates_before(n + 1);
  for (size_t t = 0; t < manifest.templates.size(); ++t) {
    int after = t < template_layers.size() ? template_layers[t] : -1;
    templates_before[static_cast<size_t>(std::clamp(after + 1, 0, static_cast<int>(n)))].push_back(static_cast<int>(t));
  }
  for (size_t i = 0; i < n; ++i) {
    const Layer& layer = manifest.layers[i];
    // The first render also writes the repository's files; later ones only
    // what the outputs so far make renderable, and the layer's services.
    if (i == 0 || !layer.services.empty() || !templates_before[i].empty()) {
      PlanStep render = step(StepKind::kRender, i == 0 ? "render" : "render: " + layer.name);
      render.layer = static_cast<int>(i);
      render.templates = std::move(templates_before[i]);
      plan.steps.push_back(render);
    }

    PlanStep apply = step(StepKind::kApply, layer_step_name(StepKind::kApply, layer.name, one_layer));
    apply.layer = static_cast<int>(i);
    for (const auto& name : layer.services) {
      bool changed = true;
      if (!fresh && current->state == EnvState::kReady) {
        auto before = current->service_revisions.find(name);
        auto after = service_revisions.find(name);
        changed = before == current->service_revisions.end() || after == service_revisions.end() || before->second != after->second;
      }
      if (changed) apply.services.push_back(name);
      else plan.unchanged_services.push_back(name);
    }
    plan.steps.push_back(apply);
  }
  if (!templates_before[n].empty()) {  // files that read the last layer's outputs (for the seeds)
    PlanStep render = step(StepKind::kRender, "render: after " + manifest.layers.back().name);
    render.layer = static_cast<int>(n);
    render.templates = std::move(templates_before[n]);
    plan.steps.push_back(render);
  }

  // Seeding creates data once; later pushes keep what reviewers entered.
  bool seed = fresh || !current->seeded;
  for (size_t i = 0; i < manifest.seed.size(); ++i) {
    const SeedStep& spec = manifest.seed[i];
    if (on_every_run(spec) ? spec.service.empty() : !seed) continue;
    PlanStep s = step(StepKind::kSeed, "seed: " + manifest.seed[i].name);
    s.seed_index = static_cast<int>(i);
    plan.steps.push_back(s);
  }
  plan.steps.push_back(step(StepKind::kRoutes, "routes"));
  // A provider that updates without downtime keeps the replaced versions
  // serving until the routes point at the new ones; they stop here.
  for (size_t i = manifest.layers.size(); i-- > 0;) {
    PlanStep prune = step(StepKind::kPrune, layer_step_name(StepKind::kPrune, manifest.layers[i].name, one_layer));
    prune.layer = static_cast<int>(i);
    plan.steps.push_back(prune);
  }
  plan.steps.push_back(step(StepKind::kReady, "ready"));
  return plan;
}

namespace {

// One `kind` step per recorded layer, last layer first.
Plan last_layer_first(PlanAction action, StepKind kind, const std::vector<EnvironmentLayer>& layers) {
  Plan plan;
  plan.action = action;
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    PlanStep s = step(kind, layer_step_name(kind, it->name, layers.size() == 1));
    s.target = *it;
    plan.steps.push_back(s);
  }
  return plan;
}

}  // namespace

Plan make_down_plan(const std::vector<EnvironmentLayer>& layers) {
  Plan plan = last_layer_first(PlanAction::kDestroy, StepKind::kDestroy, layers);
  plan.steps.push_back(step(StepKind::kUnroute, "routes"));
  return plan;
}

Plan make_sleep_plan(const std::vector<EnvironmentLayer>& layers) {
  return last_layer_first(PlanAction::kSleep, StepKind::kSleep, layers);
}

std::string describe_plan(const Plan& plan) {
  std::string out = std::string(to_string(plan.action));
  if (!plan.commit.empty()) out += " at " + plan.commit.substr(0, 12);
  out += "\n";
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
