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

}  // namespace
}  // namespace prevue
