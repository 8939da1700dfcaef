#include "daemon/api.h"

#include "core/duration.h"
#include "core/redact.h"
#include "daemon/json_responses.h"
#include "engine/maintenance.h"
#include "lease/lease_scheduler.h"
#include "webhook/signature.h"

namespace prevue {

using json = nlohmann::json;

std::string actor(const Viewer& viewer) { return viewer.by_session() ? viewer.who + " (dashboard)" : viewer.who; }

namespace {

// What each role may do, and the refusal that names what is missing.
std::optional<HttpResponse> refused_for(const Viewer& viewer, Role needed, const std::string& what) {
  if (static_cast<int>(viewer.role) >= static_cast<int>(needed)) return std::nullopt;
  return error_response(403, what + " needs the " + to_string(needed) + " role; " + viewer.who + " has " + to_string(viewer.role));
}

}  // namespace

// POST /api/v1/environments {"repo", "pr", "ref" | "sha"}: an event from the API.
HttpResponse Api::create(const json& body) {
  if (!body.is_object() || !body.contains("repo") || !body["repo"].is_string() || !body.contains("pr") ||
      !body["pr"].is_number_integer() || body["pr"].get<long>() <= 0)
    return error_response(400, "body must be {\"repo\": PATH_OR_URL, \"pr\": N, \"ref\": BRANCH} (or \"sha\")");
  std::string ref = body.value("ref", ""), sha = body.value("sha", "");
  if (ref.empty() == sha.empty()) return error_response(400, "give exactly one of \"ref\" or \"sha\"");
  long pr = body["pr"].get<long>();
  auto accepted = daemon_.create(body["repo"].get<std::string>(), pr, ref, sha);
  if (!accepted.ok()) return error_response(400, accepted.error().message);
  return json_response(202, json{{"repo", accepted->repo_key}, {"pr", pr}, {"status", "accepted"},
                                 {"delivery_id", accepted->delivery_id}, {"see", "/api/v1/events"}});
}

json Api::environment_json(const EnvironmentRecord& e) {
  auto related = related_of({e});
  return environment_json(e, related.ok() ? *related : Related{});
}

Result<Api::Related> Api::related_of(const std::vector<EnvironmentRecord>& environments) {
  Related related;
  if (environments.size() == 1) {  // one environment: its own rows
    const EnvironmentRecord& e = environments.front();
    if (auto repo = store_.find_repository(e.repo_id); repo.ok() && repo->has_value()) related.repositories[e.repo_id] = (*repo)->key;
    if (auto lease = store_.lease_of(e.id); lease.ok() && lease->has_value()) related.leases[e.id] = **lease;
    if (auto routes = store_.routes_of(e.id); routes.ok()) related.routes[e.id] = *routes;
    return related;
  }
  auto repositories = store_.list_repositories();
  auto leases = store_.all_leases();
  auto routes = store_.all_routes();
  if (!repositories.ok()) return repositories.error();
  if (!leases.ok()) return leases.error();
  if (!routes.ok()) return routes.error();
  for (const auto& r : *repositories) related.repositories[r.id] = r.key;
  for (const auto& l : *leases) related.leases[l.env_id] = l;
  for (const auto& r : *routes) related.routes[r.env_id].push_back(r);
  return related;
}

json Api::environment_json(const EnvironmentRecord& e, const Related& related) {
  json j{{"slug", e.slug},        {"pr", e.pr},       {"state", to_string(e.state)}, {"ref", e.ref},
         {"commit", e.commit_sha}, {"deployed_commit", e.deployed_sha}, {"url", e.url},
         {"created_at_ms", e.created_at},     {"updated_at_ms", e.updated_at}};
  j["layers"] = json::array();
  for (const auto& layer : e.layers) j["layers"].push_back({{"name", layer.name}, {"provider", layer.provider}});
  if (auto repo = related.repositories.find(e.repo_id); repo != related.repositories.end()) j["repo"] = repo->second;
  if (!e.error.empty()) {
    j["failed_step"] = e.failed_step;
    j["error"] = e.error;
  }
  if (auto lease = related.leases.find(e.id); lease != related.leases.end()) {
    const LeaseRecord& l = lease->second;
    j["lease"] = {{"expires_at_ms", l.expires_at}, {"last_active_ms", l.last_active}, {"idle_ms", l.idle_ms},
                  {"end", to_string(l.end_action)},          {"pinned", l.pinned},              {"revoked_at_ms", l.revoked_at},
                  {"deadline_ms", l.deadline() == LeaseScheduler::kNever ? json(nullptr) : json(l.deadline())}};
  }
  if (json dns = daemon_.dns_of(e); !dns.is_null()) j["dns"] = dns;
  json hosts = json::array();
  if (auto routes = related.routes.find(e.id); routes != related.routes.end())
    for (const auto& r : routes->second) hosts.push_back({{"host", r.host}, {"service", r.service}, {"upstream", r.upstream.text()}});
  j["routes"] = hosts;
  return j;
}

// /api/v1/environments/{slug}/links: share links of a preview in `link`
// mode. POST {"ttl": "24h", "note": "…"} makes one (its URL is shown once:
// the list gives ids, not tokens); DELETE …/links/{id} revokes it.
HttpResponse Api::share_links(const HttpRequest& r, const EnvironmentRecord& e, const std::string& link_id, const Viewer& viewer) {
  auto link_json = [](const ShareLinkRecord& l) {
    return json{{"id", l.id},          {"created_at_ms", l.created_at}, {"expires_at_ms", l.expires_at},
                {"revoked_at_ms", l.revoked_at}, {"created_by", l.created_by}, {"note", l.note}};
  };
  if (link_id.empty() && r.method == "GET") {
    auto links = store_.share_links_of(e.id);
    if (!links.ok()) return error_response(500, links.error().message);
    json out = json::array();
    for (const auto& l : *links) out.push_back(link_json(l));
    return json_response(200, out);
  }
  if (link_id.empty() && r.method == "POST") {
    if (AccessMode mode = daemon_.access_of(e); mode != AccessMode::kLink && mode != AccessMode::kLogin)
      return error_response(409, "preview " + e.slug + " opens by " + to_string(mode) + ", not by share links (its repository's \"access\" in the config)");
    json body = json::parse(r.body.empty() ? "{}" : r.body);
    if (!body.is_object()) return error_response(400, "body must be {\"ttl\": DURATION, \"note\": TEXT}");
    Millis ttl = default_link_ttl_;
    if (body.contains("ttl")) {
      auto parsed = parse_duration(body.value("ttl", ""));
      if (!parsed.ok()) return error_response(400, parsed.error().message);
      if (parsed->count() < 1000 || *parsed > Millis(366LL * 24 * 3'600'000)) return error_response(400, "ttl must be from 1s to 366d");
      ttl = *parsed;
    }
    std::string note = body.contains("note") && body["note"].is_string() ? body["note"].get<std::string>() : "";
    if (note.size() > 200) return error_response(400, "note is at most 200 characters");
    ShareLinkRecord link;
    link.id = random_hex(16);
    link.env_id = e.id;
    link.created_at = clock_.now_ms();
    link.expires_at = link.created_at + ttl.count();
    link.created_by = actor(viewer);
    link.note = note;
    if (Status saved = store_.insert_share_link(link); !saved.ok()) return error_response(500, saved.error().message);
    (void)store_.append_timeline(e.id, "share link", "made " + link.id + " until " + std::to_string(link.expires_at / 1000) + " (" + link.created_by + ")", 0);
    daemon_.share_links_changed();
    std::string base = e.url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    json out = link_json(link);
    out["url"] = base + std::string(kLinkPath) + "?t=" + daemon_.share_token(e, link);
    return json_response(201, out);
  }
  if (!link_id.empty() && r.method == "DELETE") {
    auto revoked = store_.revoke_share_link(e.id, link_id, clock_.now_ms());
    if (!revoked.ok()) return error_response(500, revoked.error().message);
    if (!*revoked) return error_response(404, "preview " + e.slug + " has no share link '" + link_id + "' that works");
    (void)store_.append_timeline(e.id, "share link", "revoked " + link_id + " by " + actor(viewer), 0);
    daemon_.share_links_changed();
    return json_response(200, json{{"id", link_id}, {"revoked", true}});
  }
  return error_response(405, "share links: GET or POST …/links, DELETE …/links/{id}");
}

HttpResponse Api::handle(const HttpRequest& r) {
  std::string path = r.target.substr(0, r.target.find('?'));
  if (path == "/healthz") return json_response(200, json{{"ok", true}, {"in_flight", daemon_.operations_in_flight()}});
  if (path == "/metrics" && r.method == "GET") return HttpResponse{200, "text/plain; version=0.0.4", daemon_.metrics_text(), {}};
  const bool mutating = r.method != "GET" && r.method != "HEAD";
  if (mutating && !sessions_.sign_in_possible())
    return error_response(403, "changes through the API are disabled: set api.token or api.token_file in the config");
  std::optional<Viewer> viewer = sessions_.viewer(r);  // without a token, an anonymous reader
  if (!viewer)
    return HttpResponse{401, "application/json", "{\"error\": \"sign in: a bearer token, or a dashboard session\"}\n", {{"WWW-Authenticate", "Bearer"}}};
  if (mutating && !sessions_.may_change(r, *viewer))
    return error_response(403, "refused: a change from the dashboard must come from its own page, with its CSRF token");
  return handle_as(r, *viewer);
}

// The latest run's steps and logs, as `prevue logs` prints them, with no
// server paths (secrets were redacted when the logs were stored).
HttpResponse Api::run_log(const EnvironmentRecord& e) {
  json out{{"slug", e.slug}, {"state", to_string(e.state)}, {"steps", json::array()}};
  if (!e.error.empty()) out["error"] = without_server_paths(e.failed_step + ": " + e.error, e.dir);
  auto run = store_.last_run(e.id);
  if (!run.ok()) return error_response(500, run.error().message);
  if (!run->has_value()) return json_response(200, out);
  out["run"] = {{"id", (*run)->id}, {"kind", to_string((*run)->kind)}, {"state", to_string((*run)->state)}};
  auto steps = store_.steps_of_run((*run)->id);
  if (!steps.ok()) return error_response(500, steps.error().message);
  for (const auto& step : *steps)
    out["steps"].push_back({{"name", step.name},
                            {"state", to_string(step.state)},
                            {"started_at_ms", step.started_at},
                            {"duration_ms", step.finished_at ? step.finished_at - step.started_at : 0},
                            {"log", without_server_paths(step.log, e.dir)}});
  return json_response(200, out);
}

HttpResponse Api::handle_as(const HttpRequest& r, const Viewer& viewer) {
  std::string path = r.target.substr(0, r.target.find('?'));
  const std::string prefix = "/api/v1/environments";
  try {
    if (path == "/api/v1/session" && r.method == "GET")
      return json_response(200, json{{"who", viewer.who}, {"role", to_string(viewer.role)}, {"csrf", sessions_.csrf_token(viewer)}});
    if (path == "/api/v1/stream" && r.method == "GET" && changes_) {
      HttpResponse stream{200, "text/event-stream", "retry: 3000\n\n", {}};
      stream.events = changes_;
      return stream;
    }
    if (path == "/api/v1/events" && r.method == "GET") {
      json out = json::array();
      if (auto events = store_.recent_events(100); events.ok())
        for (const auto& e : *events)
          out.push_back({{"id", e.id}, {"delivery_id", e.delivery_id}, {"source", e.source}, {"pr", e.pr}, {"action", e.action},
                         {"head_sha", e.head_sha}, {"status", e.status}, {"note", e.note}, {"received_at_ms", e.received_at}});
      return json_response(200, out);
    }
    if (path == "/api/v1/repositories/poll" && r.method == "POST") {
      if (auto refused = refused_for(viewer, Role::kWrite, "polling")) return *refused;
      json body = r.body.empty() ? json::object() : json::parse(r.body);
      std::string wanted = body.value("repo", "");
      int polled = daemon_.poll(wanted);
      if (!polled) return error_response(404, "no watched repository matches '" + wanted + "'");
      return json_response(202, json{{"polling", polled}});
    }
    if (path == prefix && r.method == "GET") {
      json out = json::array();
      auto envs = store_.list_environments(false);
      if (!envs.ok()) return error_response(500, envs.error().message);
      auto related = related_of(*envs);
      if (!related.ok()) return error_response(500, related.error().message);
      for (const auto& e : *envs) out.push_back(environment_json(e, *related));
      return json_response(200, out);
    }
    if (path == prefix && r.method == "POST") {
      if (auto refused = refused_for(viewer, Role::kWrite, "creating a preview")) return *refused;
      return create(json::parse(r.body.empty() ? "{}" : r.body));
    }
    if (path.rfind(prefix + "/", 0) == 0) {
      std::string rest = path.substr(prefix.size() + 1);
      std::string slug = rest.substr(0, rest.find('/'));
      std::string sub = rest.size() > slug.size() ? rest.substr(slug.size() + 1) : "";
      auto found = store_.find_environment_by_slug(slug);
      if (!found.ok()) return error_response(500, found.error().message);
      if (!found->has_value()) return error_response(404, "no environment called '" + slug + "'");
      const EnvironmentRecord& e = **found;
      if (sub.empty() && r.method == "GET") return json_response(200, environment_json(e));
      if (sub == "log" && r.method == "GET") return run_log(e);
      if (sub == "timeline" && r.method == "GET") {
        json out = json::array();
        if (auto t = store_.timeline_of(e.id); t.ok())
          for (const auto& entry : *t)
            out.push_back({{"at_ms", entry.at}, {"kind", entry.kind}, {"detail", without_server_paths(entry.detail, e.dir)},
                           {"duration_ms", entry.duration_ms}});
        return json_response(200, out);
      }
      if (sub.empty() && r.method == "DELETE") {
        if (auto refused = refused_for(viewer, Role::kAdmin, "destroying a preview")) return *refused;
        if (e.state == EnvState::kDestroyed) return json_response(200, json{{"slug", e.slug}, {"state", "destroyed"}});
        // Like an expired lease: gone until the next push (Engine::down sees to that).
        (void)store_.append_timeline(e.id, "received", std::string(kDeleteBy) + actor(viewer), 0);
        daemon_.destroy(e, "destroyed by " + actor(viewer));
        return json_response(202, json{{"slug", e.slug}, {"state", "destroying"}});
      }
      if (sub == "extend" && r.method == "POST") {
        if (auto refused = refused_for(viewer, Role::kWrite, "extending a lease")) return *refused;
        json body = json::parse(r.body.empty() ? "{}" : r.body);
        auto by = parse_duration(body.value("duration", ""));
        if (!by.ok()) return error_response(400, by.error().message);
        auto lease = extend_lease(store_, e.slug, *by, clock_.now_ms());
        if (!lease.ok()) return error_response(lease.error().code == ErrorCode::kNotFound ? 404 : 400, lease.error().message);
        (void)store_.append_timeline(e.id, "lease", "extended by " + body.value("duration", "") + " by " + actor(viewer), 0);
        daemon_.lease_changed(e, *lease, true);  // the comment says when the lease ends
        return json_response(200, environment_json(e));
      }
      if (sub == "links" || sub.rfind("links/", 0) == 0) {
        if (r.method != "GET")
          if (auto refused = refused_for(viewer, Role::kWrite, "making or revoking share links")) return *refused;
        return share_links(r, e, sub.size() > 6 ? sub.substr(6) : "", viewer);
      }
      if (sub == "pin" && r.method == "POST") {
        if (auto refused = refused_for(viewer, Role::kWrite, "pinning a lease")) return *refused;
        json body = json::parse(r.body.empty() ? "{}" : r.body);
        if (!body.contains("pinned") || !body["pinned"].is_boolean()) return error_response(400, "body must be {\"pinned\": true|false}");
        auto lease = pin_lease(store_, e.slug, body["pinned"].get<bool>());
        if (!lease.ok()) return error_response(lease.error().code == ErrorCode::kNotFound ? 404 : 400, lease.error().message);
        (void)store_.append_timeline(e.id, "lease", std::string(body["pinned"].get<bool>() ? "pinned" : "unpinned") + " by " + actor(viewer), 0);
        daemon_.lease_changed(e, *lease, false);
        return json_response(200, environment_json(e));
      }
      if ((sub == "sleep" || sub == "wake") && r.method == "POST") {
        const bool sleep = sub == "sleep";
        if (auto refused = refused_for(viewer, Role::kWrite, sleep ? "putting a preview to sleep" : "waking a preview")) return *refused;
        const EnvState wanted = sleep ? EnvState::kReady : EnvState::kSleeping;
        if (e.state != wanted)
          return error_response(409, "preview " + e.slug + " is " + to_string(e.state) + ": only a " + to_string(wanted) + " preview is " +
                                         (sleep ? "put to sleep" : "woken"));
        (void)store_.append_timeline(e.id, "received", std::string(sleep ? "sleep" : "wake") + " by " + actor(viewer), 0);
        if (sleep) daemon_.put_to_sleep(e, "put to sleep by " + actor(viewer));
        else daemon_.wake(e);
        return json_response(202, json{{"slug", e.slug}, {"state", sleep ? "sleeping" : "waking"}});
      }
      if (sub == "redeploy" && r.method == "POST") {
        if (auto refused = refused_for(viewer, Role::kWrite, "redeploying a preview")) return *refused;
        if (e.state != EnvState::kFailed)
          return error_response(409, "preview " + e.slug + " is " + to_string(e.state) + ": only a failed preview is redeployed (a push updates the others)");
        (void)store_.append_timeline(e.id, "received", "redeploy by " + actor(viewer), 0);
        if (Status started = daemon_.redeploy(e); !started.ok()) return error_response(409, started.error().message);
        return json_response(202, json{{"slug", e.slug}, {"state", "redeploying"}});
      }
    }
  } catch (const json::exception& e) {
    return error_response(400, std::string("malformed JSON body: ") + e.what());
  }
  return error_response(404, "no such endpoint: " + r.method + " " + path);
}

}  // namespace prevue
