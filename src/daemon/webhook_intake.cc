#include "daemon/webhook_intake.h"

#include <algorithm>

#include "daemon/json_responses.h"
#include "daemon/logger.h"
#include "webhook/normalize.h"
#include "webhook/signature.h"

namespace prevue {

using json = nlohmann::json;

WebhookIntake::WebhookIntake(std::map<std::string, WebhookSettings> hosts, const std::vector<Repository>& repositories,
                             InboxWriter& inbox, const Clock& clock, Metrics& metrics, OnDelivery on_delivery)
    : hosts_(std::move(hosts)), inbox_(inbox), clock_(clock), metrics_(metrics), on_delivery_(std::move(on_delivery)) {
  for (const auto& repo : repositories) {
    Repository comparable{repo.id, {}};
    for (const auto& name : repo.names) comparable.names.push_back(comparable_name(name));
    repositories_.push_back(std::move(comparable));
  }
}

std::string WebhookIntake::comparable_name(std::string text) {
  while (!text.empty() && text.back() == '/') text.pop_back();
  if (text.size() > 4 && text.compare(text.size() - 4, 4, ".git") == 0) text.resize(text.size() - 4);
  return text;
}

std::optional<std::int64_t> WebhookIntake::watched_repository(const std::vector<std::string>& names) const {
  for (const auto& theirs : names) {
    if (theirs.empty()) continue;
    std::string name = comparable_name(theirs);
    for (const auto& ours : repositories_)
      if (std::find(ours.names.begin(), ours.names.end(), name) != ours.names.end()) return ours.id;
  }
  return std::nullopt;
}

HttpResponse WebhookIntake::handle(const HttpRequest& r) const {
  std::string path = r.target.substr(0, r.target.find('?'));
  if (r.method != "POST") return error_response(405, "webhooks are POSTed");
  std::string host_name = path.substr(std::string("/hooks/").size());
  auto host = webhook_host_from(host_name);
  if (!host) return error_response(404, "no webhook endpoint for '" + host_name + "' (github, gitlab, gitea, bitbucket)");
  auto settings_it = hosts_.find(to_string(*host));
  if (settings_it == hosts_.end()) return error_response(404, std::string("webhooks from ") + to_string(*host) + " are not configured");
  const WebhookSettings& settings = settings_it->second;
  bool verified = false;
  switch (*host) {
    case WebhookHost::kGitHub:
      verified = verify_prefixed_hmac(r.header("x-hub-signature-256"), settings.secret, r.body);
      break;
    case WebhookHost::kGitea: {
      std::string sig = r.header("x-forgejo-signature");
      if (sig.empty()) sig = r.header("x-gitea-signature");
      verified = verify_hex_hmac(sig, settings.secret, r.body);
      break;
    }
    case WebhookHost::kBitbucket:
      verified = verify_prefixed_hmac(r.header("x-hub-signature"), settings.secret, r.body);
      break;
    case WebhookHost::kGitLab:
      verified = settings.signing_secret.empty()
                     ? verify_token(r.header("x-gitlab-token"), settings.secret)
                     : verify_standard_webhook(r.header("webhook-id"), r.header("webhook-timestamp"), r.header("webhook-signature"),
                                               settings.signing_secret, r.body);
      break;
  }
  if (!verified) {
    log_event("webhook.rejected", std::string("host=") + to_string(*host) + " reason=signature remote=" + r.remote);
    return error_response(401, "missing or wrong webhook signature");
  }
  auto normalized = normalize_webhook(*host, r.headers, r.body);
  if (!normalized.ok()) return error_response(400, normalized.error().message);
  const NormalizedWebhook& w = *normalized;
  if (w.kind == NormalizedWebhook::Kind::kPing) return json_response(200, json{{"status", "pong"}});

  EventRecord e;
  e.delivery_id = w.delivery_id;
  e.source = to_string(*host);
  std::string ignored_reason = w.reason;
  std::optional<std::int64_t> repo_id;
  if (w.kind == NormalizedWebhook::Kind::kPullRequest) {
    repo_id = watched_repository(w.repository_names);
    if (!repo_id)
      ignored_reason = "no watched repository is named " + (w.repository_names.empty() ? std::string("(none)") : w.repository_names.front());
  }
  if (!repo_id) {
    // Kept too, so `prevue events` shows every delivery and what became of it.
    e.action = "ignored";
    e.status = "ignored";
    e.note = ignored_reason;
    e.processed_at = clock_.now_ms();
    auto kept = inbox_.write([&](Store& st) -> Result<IngestResult> {
      auto inserted = st.insert_event(e);
      if (!inserted.ok()) return inserted.error();
      return IngestResult{!*inserted, ignored_reason};
    });
    if (!kept.ok()) return error_response(503, "could not record the delivery: " + kept.error().message);
    if (kept->duplicate) return json_response(200, json{{"status", "duplicate"}, {"delivery", w.delivery_id}});
    return json_response(202, json{{"status", "ignored"}, {"reason", ignored_reason}});
  }

  e.repo_id = *repo_id;
  e.pr = w.pr;
  // A label change re-evaluates the PR at the head it already has.
  e.action = w.action == "labels" ? kEventUpdated : w.action;
  e.head_sha = w.head_sha;
  e.base_sha = w.base_sha;
  e.head_ref = w.head_ref;
  e.base_ref = w.base_ref;
  e.author = w.author;
  e.fork = w.fork;
  e.labels = w.labels;
  std::string report_host = w.bitbucket_datacenter ? "bitbucket-datacenter" : to_string(*host);
  bool report_target = settings.report && !w.host_repository.empty();
  std::int64_t now = clock_.now_ms();
  // The event, its effect on the pull request and where to report it: one commit, shared with concurrent deliveries.
  auto ingested = inbox_.write([&](Store& st) -> Result<IngestResult> {
    auto applied = apply_event(st, e, now);
    if (applied.ok() && !applied->duplicate && report_target) PREVUE_TRY(st.set_report_target(e.repo_id, e.pr, report_host, w.host_repository));
    return applied;
  });
  if (!ingested.ok()) return error_response(503, "could not record the delivery: " + ingested.error().message);
  if (ingested->duplicate) {
    metrics_.events_duplicate++;
    return json_response(200, json{{"status", "duplicate"}, {"delivery", w.delivery_id}});
  }
  metrics_.events_received++;
  log_event("event.ingested", std::string("source=") + to_string(*host) + " delivery=" + json_quoted(w.delivery_id) +
                                  " note=" + json_quoted(ingested->note));
  on_delivery_(e.repo_id, e.pr, w.action == "labels" && report_target);
  return json_response(202, json{{"status", "accepted"}, {"delivery", w.delivery_id}, {"note", ingested->note}});
}

}  // namespace prevue
