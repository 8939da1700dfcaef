#include "daemon/route_view.h"

#include <set>

#include "core/redact.h"
#include "engine/maintenance.h"

namespace prevue {

namespace {

std::string short_commit(const std::string& sha) { return sha.substr(0, 12); }

// What a holding page says of the operation running for a preview.
void show_progress(ProxyRoute& route, const RunningOperation& op) {
  if (!op.sha.empty()) route.commit = short_commit(op.sha);
  route.since_ms = op.started_ms;
  route.step = op.step;
}

}  // namespace

RouteView route_view(const std::vector<EnvironmentRecord>& environments, const std::vector<RouteRecord>& routes,
                     const std::map<PrKey, RunningOperation>& running,
                     const std::function<std::string(PrKey, const std::string& ref)>& slug_for, const std::string& domain,
                     const AccessFor& access_for) {
  RouteView view;
  std::map<std::int64_t, const EnvironmentRecord*> by_id;
  for (const auto& e : environments) by_id[e.id] = &e;
  for (const LiveHost& live : live_hosts(environments, routes, domain)) {
    const EnvironmentRecord& e = *by_id.at(live.env_id);
    ProxyRoute route;
    route.env_id = e.id;
    route.slug = e.slug;
    if (access_for) route.access = access_for(e.repo_id, e.id);
    route.commit = short_commit(e.commit_sha);
    auto op = running.find({e.repo_id, e.pr});
    if (op != running.end() && op->second.up) show_progress(route, op->second);
    switch (e.state) {
      case EnvState::kReady: route.kind = ProxyRoute::Kind::kReady; break;
      case EnvState::kSleeping: route.kind = ProxyRoute::Kind::kSleeping; break;
      case EnvState::kFailed:
        route.kind = ProxyRoute::Kind::kFailed;
        // Shown to anyone who opens the link: no paths of this server.
        route.detail = without_server_paths(e.failed_step + ": " + e.error, e.dir);
        break;
      default:
        if (op != running.end() && op->second.from_sleep) {
          // Waking: nothing answers on the old upstream yet, so requests wait as they do while it sleeps.
          route.kind = ProxyRoute::Kind::kSleeping;
          break;
        }
        // An update keeps serving the running version; a first build shows the building page.
        route.kind = e.deployed_sha.empty() ? ProxyRoute::Kind::kBuilding : ProxyRoute::Kind::kReady;
        if (!e.deployed_sha.empty() && e.commit_sha != e.deployed_sha) route.updating_to = short_commit(e.commit_sha);
        break;
    }
    if (live.route && !live.route->upstream.empty()) route.upstream = live.route->upstream;
    else if (route.kind == ProxyRoute::Kind::kReady) route.kind = ProxyRoute::Kind::kBuilding;
    view.routes[live.host] = route;
    view.hosts[live.host] = e.id;
  }
  // First builds whose environment the engine has not recorded yet.
  std::set<PrKey> recorded;
  for (const auto& e : environments)
    if (e.state != EnvState::kDestroyed) recorded.insert({e.repo_id, e.pr});
  for (const auto& [key, op] : running) {
    if (!op.up || recorded.count(key)) continue;
    std::string slug = slug_for(key, op.ref);
    std::string host = slug + "." + domain;
    if (view.routes.count(host)) continue;
    ProxyRoute route;
    route.kind = ProxyRoute::Kind::kBuilding;
    route.slug = slug;
    show_progress(route, op);
    if (access_for) route.access = access_for(key.first, 0);
    view.routes[host] = route;
    view.hosts[host] = 0;  // no environment id yet
  }
  return view;
}

}  // namespace prevue
