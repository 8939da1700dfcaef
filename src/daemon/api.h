// The daemon's REST API (docs/api.md) on its main thread: reads from the
// store, changes through the bearer token, and what only the running
// daemon can do (dispatch a teardown, poll, start a build from a request,
// reschedule a lease, render its metrics) asked of it through ApiDaemon.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/duration.h"
#include "core/result.h"
#include "daemon/sessions.h"
#include "http/http.h"
#include "store/store.h"

namespace prevue {

class ApiDaemon {
 public:
  virtual ~ApiDaemon() = default;
  virtual size_t operations_in_flight() const = 0;
  virtual std::string metrics_text() = 0;
  // The environment's DNS step as the API shows it ({"state": ...}); null when there is nothing to say.
  virtual nlohmann::json dns_of(const EnvironmentRecord& environment) const = 0;
  // Tear the environment down (a DELETE); the caller has recorded why.
  virtual void destroy(const EnvironmentRecord& environment, const std::string& why) = 0;
  // A lease the API changed (extend, pin): its new deadline, and the PR told.
  virtual void lease_changed(const EnvironmentRecord& environment, const LeaseRecord& lease, bool renewed) = 0;
  // Who may open the environment's preview, as its repository's access says.
  virtual AccessMode access_of(const EnvironmentRecord& environment) const = 0;
  // A share link's token (signed with the proxy's key); the routes are told of a link made or revoked.
  virtual std::string share_token(const EnvironmentRecord& environment, const ShareLinkRecord& link) const = 0;
  virtual void share_links_changed() = 0;
  // Polls the watched repositories `wanted` names (all when empty); how many.
  virtual int poll(const std::string& wanted) = 0;
  struct Accepted {
    std::string repo_key;
    std::string delivery_id;
  };
  // A preview asked for by hand: the event is recorded under `delivery_id` once its commit is resolved.
  virtual Result<Accepted> create(const std::string& repo, long pr, const std::string& ref, const std::string& sha) = 0;
  // A failed preview built again at its pull request's head, without waiting out its retry backoff.
  virtual Status redeploy(const EnvironmentRecord& environment) = 0;
  // A ready preview put to sleep now, as if its lease had ended with `sleep`; the caller has recorded why.
  virtual void put_to_sleep(const EnvironmentRecord& environment, const std::string& why) = 0;
  // A sleeping preview woken now, as a visit would (its lease renewed).
  virtual void wake(const EnvironmentRecord& environment) = 0;
};

// Reads need the bearer token or a dashboard session (when a token is
// configured; without one the API is read-only and open, as before sign-in
// existed). Changes need a role (write: extend, pin, redeploy, create, poll,
// share links; admin: destroy), and from a session its CSRF token.
class Api {
 public:
  Api(Store& store, const Clock& clock, Sessions& sessions, ApiDaemon& daemon, std::shared_ptr<ChangeFeed> changes,
      Millis default_link_ttl = Millis(7LL * 24 * 3'600'000))
      : store_(store), clock_(clock), sessions_(sessions), daemon_(daemon), changes_(std::move(changes)), default_link_ttl_(default_link_ttl) {}

  HttpResponse handle(const HttpRequest& request);
  // An environment as GET /api/v1/environments/{slug} shows it.
  nlohmann::json environment_json(const EnvironmentRecord& e);

 private:
  // What the list of every environment reads once for all of them (not three queries each).
  struct Related {
    std::map<std::int64_t, std::string> repositories;  // id -> key
    std::map<std::int64_t, LeaseRecord> leases;        // by environment
    std::map<std::int64_t, std::vector<RouteRecord>> routes;
  };
  nlohmann::json environment_json(const EnvironmentRecord& e, const Related& related);
  Result<Related> related_of(const std::vector<EnvironmentRecord>& environments);
  HttpResponse handle_as(const HttpRequest& request, const Viewer& viewer);
  HttpResponse create(const nlohmann::json& body);
  HttpResponse share_links(const HttpRequest& request, const EnvironmentRecord& e, const std::string& link_id, const Viewer& viewer);
  HttpResponse run_log(const EnvironmentRecord& e);

  Store& store_;
  const Clock& clock_;
  Sessions& sessions_;
  ApiDaemon& daemon_;
  std::shared_ptr<ChangeFeed> changes_;
  const Millis default_link_ttl_;
};

// "who (how)" as the timeline records an action: "api token", "alice (dashboard)".
std::string actor(const Viewer& viewer);
// A destroy's timeline entry (kind "received") starts with this, then the actor.
inline constexpr std::string_view kDeleteBy = "delete by ";

}  // namespace prevue
