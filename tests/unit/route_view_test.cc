// What a reviewer's browser gets for each preview, from the store's
// records and the operations in flight (route_view, which the daemon
// publishes to its proxy and DNS).
#include "daemon/route_view.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

const std::string kDomain = "prevue.test";

EnvironmentRecord env(std::int64_t id, long pr, EnvState state, const std::string& deployed = "", const std::string& commit = "") {
  EnvironmentRecord e;
  e.id = id;
  e.repo_id = 1;
  e.pr = pr;
  e.slug = "pr-" + std::to_string(pr);
  e.dir = "/var/lib/prevue/envs/" + e.slug;
  e.state = state;
  e.deployed_sha = deployed;
  e.commit_sha = commit.empty() ? deployed : commit;
  return e;
}

RouteRecord route(const EnvironmentRecord& e, unsigned short port) {
  return RouteRecord{e.slug + "." + kDomain, e.id, "web", "web", Endpoint{"127.0.0.1", port}};
}

RouteView view(const std::vector<EnvironmentRecord>& envs, const std::vector<RouteRecord>& routes,
               const std::map<PrKey, RunningOperation>& running = {}) {
  return route_view(envs, routes, running, [](PrKey key, const std::string& ref) { return "pr-" + std::to_string(key.second) + "-" + ref; },
                    kDomain);
}

TEST(RouteView, AReadyPreviewIsServedFromItsUpstream) {
  auto e = env(7, 1, EnvState::kReady, "aaaa");
  RouteView v = view({e}, {route(e, 4100)});
  const ProxyRoute& r = v.routes.at("pr-1.prevue.test");
  EXPECT_EQ(r.kind, ProxyRoute::Kind::kReady);
  EXPECT_EQ(r.upstream, (Endpoint{"127.0.0.1", 4100}));
  EXPECT_TRUE(r.updating_to.empty());
  EXPECT_EQ(v.hosts.at("pr-1.prevue.test"), 7);
}

TEST(RouteView, AnUpdateKeepsServingTheRunningVersionAndSaysWhatComes) {
  auto e = env(7, 1, EnvState::kProvisioning, "aaaa111122223333", "bbbb111122223333");
  RouteView v = view({e}, {route(e, 4100)}, {{{1, 1}, RunningOperation{true, false, "feature", "bbbb111122223333"}}});
  const ProxyRoute& r = v.routes.at("pr-1.prevue.test");
  EXPECT_EQ(r.kind, ProxyRoute::Kind::kReady);
  EXPECT_EQ(r.upstream.port, 4100);
  EXPECT_EQ(r.updating_to, "bbbb11112222");
  EXPECT_EQ(r.commit, "bbbb11112222");
}

TEST(RouteView, AWakingPreviewHoldsRequestsInsteadOfSendingThemToNothing) {
  auto e = env(7, 1, EnvState::kProvisioning, "aaaa");
  RouteView v = view({e}, {route(e, 4100)}, {{{1, 1}, RunningOperation{true, true, "feature", "aaaa"}}});
  EXPECT_EQ(v.routes.at("pr-1.prevue.test").kind, ProxyRoute::Kind::kSleeping);
}

TEST(RouteView, AFirstBuildShowsTheBuildingPageAndItsNameResolvesAtOnce) {
  // Known to the daemon (an up in flight) before the engine recorded anything.
  auto step = std::make_shared<SharedText>();
  RouteView v = view({}, {}, {{{1, 5}, RunningOperation{true, false, "feature", "cccc111122223333", 1'700'000'000'000, step}}});
  const ProxyRoute& r = v.routes.at("pr-5-feature.prevue.test");
  EXPECT_EQ(r.kind, ProxyRoute::Kind::kBuilding);
  // The page says which commit, since when and (as the run moves on, without a new route) at which step.
  EXPECT_EQ(r.commit, "cccc11112222");
  EXPECT_EQ(r.since_ms, 1'700'000'000'000);
  ASSERT_TRUE(r.step);
  step->set("apply main");
  EXPECT_EQ(r.step->get(), "apply main");
  EXPECT_EQ(v.hosts.at("pr-5-feature.prevue.test"), 0);
  // Recorded but not yet deployed: still the building page, under its recorded name.
  auto e = env(9, 5, EnvState::kProvisioning);
  v = view({e}, {}, {{{1, 5}, RunningOperation{true, false, "feature", "cccc"}}});
  EXPECT_EQ(v.routes.at("pr-5.prevue.test").kind, ProxyRoute::Kind::kBuilding);
  EXPECT_FALSE(v.routes.count("pr-5-feature.prevue.test"));
}

TEST(RouteView, AFailedPreviewShowsItsErrorWithoutThisServersPaths) {
  auto e = env(7, 1, EnvState::kFailed);
  e.failed_step = "apply";
  e.commit_sha = "dddd111122223333";
  e.error = "cannot start web in /var/lib/prevue/envs/pr-1/app: exit 1";
  RouteView v = view({e}, {});
  const ProxyRoute& r = v.routes.at("pr-1.prevue.test");
  EXPECT_EQ(r.kind, ProxyRoute::Kind::kFailed);
  EXPECT_EQ(r.detail.find("/var/lib/prevue"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("apply: cannot start web"), std::string::npos) << r.detail;
  EXPECT_EQ(r.commit, e.commit_sha.substr(0, 12));
  EXPECT_EQ(r.since_ms, 0);  // nothing running: no "so far"
}

TEST(RouteView, ReadyWithoutAnUpstreamIsNotA502) {
  auto e = env(7, 1, EnvState::kReady, "aaaa");
  RouteView v = view({e}, {});
  EXPECT_EQ(v.routes.at("pr-1.prevue.test").kind, ProxyRoute::Kind::kBuilding);
}

TEST(RouteView, ADownInFlightIsNoFirstBuild) {
  RouteView v = view({}, {}, {{{1, 5}, RunningOperation{false, false, "", ""}}});
  EXPECT_TRUE(v.routes.empty());
  EXPECT_TRUE(v.hosts.empty());
}

}  // namespace
}  // namespace prevue
