#include "plan/plan.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

Manifest two_services(bool with_seed = true) {
  Manifest m;
  m.services.push_back(ServiceSpec{.name = "web", .run = {"web"}});
  m.services.push_back(ServiceSpec{.name = "api", .run = {"api"}});
  if (with_seed) m.seed.push_back(SeedStep{.kind = SeedKind::kSql, .name = "items", .database = "d.db", .files = {"a.sql"}});
  m.routes.push_back(RouteSpec{"web", "web"});
  m.layers.push_back(Layer{"main", "local", "{}", {"web", "api"}});
  return m;
}

// infra (no services, outputs) then app (web), the way a Terraform layer feeds an app.
Manifest two_layers() {
  Manifest m;
  m.short_form = false;
  m.services.push_back(ServiceSpec{.name = "web", .run = {"web"}});
  m.routes.push_back(RouteSpec{"web", "web"});
  m.templates = {TemplateFile{"plain.tmpl", "plain"}, TemplateFile{"db.tmpl", "db.conf"}, TemplateFile{"late.tmpl", "late"}};
  m.layers.push_back(Layer{"infra", "scripted", "{}", {}});
  m.layers.push_back(Layer{"app", "local", "{}", {"web"}});
  return m;
}

std::vector<std::string> step_names(const Plan& p) {
  std::vector<std::string> names;
  for (const auto& s : p.steps) names.push_back(s.name);
  return names;
}

const PlanStep& apply_step(const Plan& p) {
  for (const auto& s : p.steps)
    if (s.kind == StepKind::kApply) return s;
  throw std::logic_error("no apply step");
}

TEST(Plan, NewEnvironmentGetsEverything) {
  Plan p = make_plan(two_services(), "c1", nullptr, {{"web", "w1"}, {"api", "a1"}});
  EXPECT_EQ(p.action, PlanAction::kCreate);
  EXPECT_EQ(step_names(p), (std::vector<std::string>{"allocate", "render", "apply", "seed: items", "routes", "prune", "ready"}));
  EXPECT_EQ(apply_step(p).services, (std::vector<std::string>{"web", "api"}));
}

TEST(Plan, PostgresSeedsRunOnEveryPushOnAServerBeforeTheLayersInTheirOwnServiceAfter) {
  Manifest m = two_services();
  m.seed.push_back(SeedStep{.kind = SeedKind::kPostgres, .name = "shared"});
  m.seed.push_back(SeedStep{.kind = SeedKind::kPostgres, .name = "own", .service = "api"});
  CurrentEnvironment seeded{EnvState::kReady, "c1", true, {{"web", "w1"}, {"api", "a1"}}};
  Plan p = make_plan(m, "c2", &seeded, {{"web", "w2"}, {"api", "a1"}});
  EXPECT_EQ(step_names(p), (std::vector<std::string>{"seed: shared", "allocate", "render", "apply", "seed: own", "routes", "prune", "ready"}));
  Plan fresh = make_plan(m, "c1", nullptr, {{"web", "w1"}, {"api", "a1"}});
  EXPECT_EQ(step_names(fresh),
            (std::vector<std::string>{"seed: shared", "allocate", "render", "apply", "seed: items", "seed: own", "routes", "prune", "ready"}));
}

TEST(Plan, UpdateRestartsOnlyChangedServicesAndKeepsData) {
  CurrentEnvironment current{EnvState::kReady, "c1", true, {{"web", "w1"}, {"api", "a1"}}};
  Plan p = make_plan(two_services(), "c2", &current, {{"web", "w2"}, {"api", "a1"}});
  EXPECT_EQ(p.action, PlanAction::kUpdate);
  EXPECT_EQ(apply_step(p).services, std::vector<std::string>{"web"});
  EXPECT_EQ(p.unchanged_services, std::vector<std::string>{"api"});
  EXPECT_EQ(step_names(p), (std::vector<std::string>{"allocate", "render", "apply", "routes", "prune", "ready"}));
}

TEST(Plan, FailedEnvironmentIsResumedWholeAndSeededIfNeverSeeded) {
  CurrentEnvironment current{EnvState::kFailed, "c1", false, {{"web", "w1"}, {"api", "a1"}}};
  Plan p = make_plan(two_services(), "c1", &current, {{"web", "w1"}, {"api", "a1"}});
  EXPECT_EQ(p.action, PlanAction::kResume);
  EXPECT_EQ(apply_step(p).services, (std::vector<std::string>{"web", "api"}));
  EXPECT_EQ(step_names(p)[3], "seed: items");
}

TEST(Plan, InterruptedProvisioningIsResumed) {
  CurrentEnvironment current{EnvState::kProvisioning, "", false, {}};
  Plan p = make_plan(two_services(), "c1", &current, {{"web", "w1"}, {"api", "a1"}});
  EXPECT_EQ(p.action, PlanAction::kCreate);
  EXPECT_EQ(apply_step(p).services.size(), 2u);
}

TEST(Plan, DescribeMentionsEveryStep) {
  CurrentEnvironment current{EnvState::kReady, "c1", true, {{"web", "w1"}, {"api", "a1"}}};
  std::string text = describe_plan(make_plan(two_services(), "abcdef1234567890", &current, {{"web", "w1"}, {"api", "a2"}}));
  EXPECT_NE(text.find("update at abcdef123456"), std::string::npos) << text;
  EXPECT_NE(text.find("apply (start or restart: api)"), std::string::npos) << text;
  EXPECT_NE(text.find("unchanged, left running: web"), std::string::npos) << text;
}

TEST(Plan, LayersApplyInOrderAndTemplatesRenderOnceTheirOutputsExist) {
  // plain.tmpl names no output, db.tmpl names infra's, late.tmpl app's.
  Plan p = make_plan(two_layers(), "c1", nullptr, {{"web", "w1"}}, {-1, 0, 1});
  EXPECT_EQ(step_names(p), (std::vector<std::string>{"allocate: app", "render", "apply: infra", "render: app", "apply: app",
                                                     "render: after app", "routes", "prune: app", "prune: infra", "ready"}));
  EXPECT_EQ(p.steps[1].templates, std::vector<int>{0});
  EXPECT_EQ(p.steps[3].templates, std::vector<int>{1});
  EXPECT_EQ(p.steps[5].templates, std::vector<int>{2});
  EXPECT_EQ(p.steps[4].services, std::vector<std::string>{"web"});
}

TEST(Plan, AProviderNoLayerUsesIsRetiredFirstAndEverythingStartsAfresh) {
  CurrentEnvironment current{EnvState::kReady, "c1", true, {{"web", "w1"}}, {{"main", "old"}, {"app", "local"}}};
  Plan p = make_plan(two_layers(), "c2", &current, {{"web", "w1"}});
  ASSERT_EQ(p.steps.front().kind, StepKind::kRetire);
  EXPECT_EQ(p.steps.front().name, "retire old");
  EXPECT_EQ(p.steps.front().target, (EnvironmentLayer{"main", "old"}));
  EXPECT_EQ(p.action, PlanAction::kCreate);
  EXPECT_EQ(apply_step(p).services.size(), 0u);  // infra's apply: no services; app's restarts web
  EXPECT_EQ(p.steps[5].name, "apply: app");
  EXPECT_EQ(p.steps[5].services, std::vector<std::string>{"web"});
}

TEST(Plan, TeardownAndSleepGoLastLayerFirst) {
  std::vector<EnvironmentLayer> layers{{"infra", "scripted"}, {"app", "local"}};
  EXPECT_EQ(step_names(make_down_plan(layers)), (std::vector<std::string>{"destroy: app", "destroy: infra", "routes"}));
  EXPECT_EQ(step_names(make_sleep_plan(layers)), (std::vector<std::string>{"sleep: app", "sleep: infra"}));
  EXPECT_EQ(step_names(make_down_plan({{"main", "local"}})), (std::vector<std::string>{"destroy", "routes"}));
}

}  // namespace
}  // namespace prevue
