// The daemon's REST API (docs/api.md) on its main thread: reads from the
// store, changes through the bearer token, and what only the running
// daemon can do (dispatch a teardown, poll, start a build from a request,
// reschedule a lease, render its metrics) asked of it through ApiDaemon.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/duration.h"
#include "core/result.h"
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
};

class Api {
 public:
  Api(Store& store, const Clock& clock, std::string token, ApiDaemon& daemon, Millis default_link_ttl = Millis(7LL * 24 * 3'600'000))
      : store_(store), clock_(clock), token_(std::move(token)), daemon_(daemon), default_link_ttl_(default_link_ttl) {}

  HttpResponse handle(const HttpRequest& request);
  // An environment as GET /api/v1/environments/{slug} shows it.
  nlohmann::json environment_json(const EnvironmentRecord& e);

 private:
  bool authorized(const HttpRequest& request) const;
  HttpResponse create(const nlohmann::json& body);
  HttpResponse share_links(const HttpRequest& request, const EnvironmentRecord& e, const std::string& link_id);

  Store& store_;
  const Clock& clock_;
  const std::string token_;  // empty: changes through the API are disabled
  ApiDaemon& daemon_;
  const Millis default_link_ttl_;
};

}  // namespace prevue
