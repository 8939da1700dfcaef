// What the proxy and DNS show for every preview, as a pure function of the
// store's environments and routes and of the operations in flight: the
// building page from the moment a PR is known, the running version during
// an update, held requests while a sleeping preview wakes, the failed page
// without server paths. The daemon publishes it on every change.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/dns_publisher.h"
#include "daemon/pr_key.h"
#include "http/http.h"
#include "store/store.h"

namespace prevue {

// An operation running for a pull request, as the routes need to know it.
struct RunningOperation {
  bool up = false;          // up (create, update, wake) rather than down or sleep
  bool from_sleep = false;  // an up that wakes a sleeping preview
  std::string ref;          // up: the branch (names a first build's slug)
  std::string sha;          // up: the commit
  std::int64_t started_ms = 0;                  // when it started
  std::shared_ptr<const SharedText> step;       // the step it is at, as it moves on
};

struct RouteView {
  RouteTable::Map routes;       // what the proxy serves, by host
  DnsPublisher::HostMap hosts;  // what DNS publishes: host -> environment id (0: a first build not recorded yet)
};

// `slug_for` gives the slug the engine will give a PR's first environment;
// `access_for` who may open a repository's environment (0: a first build's).
using AccessFor = std::function<AccessPolicy(std::int64_t repo_id, std::int64_t env_id)>;
RouteView route_view(const std::vector<EnvironmentRecord>& environments, const std::vector<RouteRecord>& routes,
                     const std::map<PrKey, RunningOperation>& running,
                     const std::function<std::string(PrKey, const std::string& ref)>& slug_for, const std::string& domain,
                     const AccessFor& access_for = {});

}  // namespace prevue
