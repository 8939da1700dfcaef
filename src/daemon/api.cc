#include "daemon/api.h"

#include <openssl/crypto.h>

#include "core/duration.h"
#include "daemon/json_responses.h"
#include "engine/maintenance.h"
#include "lease/lease_scheduler.h"

namespace prevue {

using json = nlohmann::json;

bool Api::authorized(const HttpRequest& r) const {
  if (token_.empty()) return false;
  std::string expected = "Bearer " + token_;
  std::string given = r.header("authorization");
  return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

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
  json j{{"slug", e.slug},        {"pr", e.pr},       {"state", to_string(e.state)}, {"ref", e.ref},
         {"commit", e.commit_sha}, {"deployed_commit", e.deployed_sha}, {"url", e.url},
         {"created_at_ms", e.created_at},     {"updated_at_ms", e.updated_at}};
  j["layers"] = json::array();
  for (const auto& layer : e.layers) j["layers"].push_back({{"name", layer.name}, {"provider", layer.provider}});
  if (auto repo = store_.find_repository(e.repo_id); repo.ok() && repo->has_value()) j["repo"] = (*repo)->key;
  if (!e.error.empty()) {
    j["failed_step"] = e.failed_step;
    j["error"] = e.error;
  }
  if (auto lease = store_.lease_of(e.id); lease.ok() && lease->has_value()) {
    const LeaseRecord& l = **lease;
    j["lease"] = {{"expires_at_ms", l.expires_at}, {"last_active_ms", l.last_active}, {"idle_ms", l.idle_ms},
                  {"end", to_string(l.end_action)},          {"pinned", l.pinned},              {"revoked_at_ms", l.revoked_at},
                  {"deadline_ms", l.deadline() == LeaseScheduler::kNever ? json(nullptr) : json(l.deadline())}};
  }
  if (json dns = daemon_.dns_of(e); !dns.is_null()) j["dns"] = dns;
  if (auto routes_of = store_.routes_of(e.id); routes_of.ok()) {
    json hosts = json::array();
    for (const auto& r : *routes_of) hosts.push_back({{"host", r.host}, {"service", r.service}, {"upstream", r.upstream.text()}});
    j["routes"] = hosts;
  }
  return j;
}

HttpResponse Api::handle(const HttpRequest& r) {
  std::string path = r.target.substr(0, r.target.find('?'));
  const std::string prefix = "/api/v1/environments";
  bool mutating = r.method != "GET" && r.method != "HEAD";
  if (path == "/healthz") return json_response(200, json{{"ok", true}, {"in_flight", daemon_.operations_in_flight()}});
  if (path == "/metrics" && r.method == "GET") return HttpResponse{200, "text/plain; version=0.0.4", daemon_.metrics_text(), {}};
  if (mutating && !authorized(r)) {
    return token_.empty()
               ? error_response(403, "changes through the API are disabled: set api.token or api.token_file in the config")
               : HttpResponse{401, "application/json", "{\"error\": \"missing or wrong bearer token\"}\n",
                              {{"WWW-Authenticate", "Bearer"}}};
  }
  try {
    if (path == "/api/v1/events" && r.method == "GET") {
      json out = json::array();
      if (auto events = store_.recent_events(100); events.ok())
        for (const auto& e : *events)
          out.push_back({{"id", e.id}, {"delivery_id", e.delivery_id}, {"source", e.source}, {"pr", e.pr}, {"action", e.action},
                         {"head_sha", e.head_sha}, {"status", e.status}, {"note", e.note}, {"received_at_ms", e.received_at}});
      return json_response(200, out);
    }
    if (path == "/api/v1/repositories/poll" && r.method == "POST") {
      json body = r.body.empty() ? json::object() : json::parse(r.body);
      std::string wanted = body.value("repo", "");
      int polled = daemon_.poll(wanted);
      if (!polled) return error_response(404, "no watched repository matches '" + wanted + "'");
      return json_response(202, json{{"polling", polled}});
    }
    if (path == prefix && r.method == "GET") {
      json out = json::array();
      if (auto envs = store_.list_environments(false); envs.ok())
        for (const auto& e : *envs) out.push_back(environment_json(e));
      return json_response(200, out);
    }
    if (path == prefix && r.method == "POST") return create(json::parse(r.body.empty() ? "{}" : r.body));
    if (path.rfind(prefix + "/", 0) == 0) {
      std::string rest = path.substr(prefix.size() + 1);
      std::string slug = rest.substr(0, rest.find('/'));
      std::string sub = rest.size() > slug.size() ? rest.substr(slug.size() + 1) : "";
      auto found = store_.find_environment_by_slug(slug);
      if (!found.ok()) return error_response(500, found.error().message);
      if (!found->has_value()) return error_response(404, "no environment called '" + slug + "'");
      const EnvironmentRecord& e = **found;
      if (sub.empty() && r.method == "GET") return json_response(200, environment_json(e));
      if (sub == "timeline" && r.method == "GET") {
        json out = json::array();
        if (auto t = store_.timeline_of(e.id); t.ok())
          for (const auto& entry : *t)
            out.push_back({{"at_ms", entry.at}, {"kind", entry.kind}, {"detail", entry.detail}, {"duration_ms", entry.duration_ms}});
        return json_response(200, out);
      }
      if (sub.empty() && r.method == "DELETE") {
        if (e.state == EnvState::kDestroyed) return json_response(200, json{{"slug", e.slug}, {"state", "destroyed"}});
        // Like an expired lease: gone until the next push (Engine::down sees to that).
        (void)store_.append_timeline(e.id, "received", "delete through the API", 0);
        daemon_.destroy(e, "deleted through the API");
        return json_response(202, json{{"slug", e.slug}, {"state", "destroying"}});
      }
      if (sub == "extend" && r.method == "POST") {
        json body = json::parse(r.body.empty() ? "{}" : r.body);
        auto by = parse_duration(body.value("duration", ""));
        if (!by.ok()) return error_response(400, by.error().message);
        auto lease = extend_lease(store_, e.slug, *by, clock_.now_ms());
        if (!lease.ok()) return error_response(lease.error().code == ErrorCode::kNotFound ? 404 : 400, lease.error().message);
        daemon_.lease_changed(e, *lease, true);  // the comment says when the lease ends
        return json_response(200, environment_json(e));
      }
      if (sub == "pin" && r.method == "POST") {
        json body = json::parse(r.body.empty() ? "{}" : r.body);
        if (!body.contains("pinned") || !body["pinned"].is_boolean()) return error_response(400, "body must be {\"pinned\": true|false}");
        auto lease = pin_lease(store_, e.slug, body["pinned"].get<bool>());
        if (!lease.ok()) return error_response(lease.error().code == ErrorCode::kNotFound ? 404 : 400, lease.error().message);
        daemon_.lease_changed(e, *lease, false);
        return json_response(200, environment_json(e));
      }
    }
  } catch (const json::exception& e) {
    return error_response(400, std::string("malformed JSON body: ") + e.what());
  }
  return error_response(404, "no such endpoint: " + r.method + " " + path);
}

}  // namespace prevue
