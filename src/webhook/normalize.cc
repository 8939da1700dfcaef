#include "webhook/normalize.h"

#include <openssl/sha.h>
#include <simdjson.h>

#include <cstdio>

namespace prevue {

// simdjson rather than nlohmann here: a GitHub delivery is ~28 KB and this
// parse is the webhook endpoint's main cost.
using json = simdjson::dom::element;

const char* to_string(WebhookHost host) {
  switch (host) {
    case WebhookHost::kGitHub: return "github";
    case WebhookHost::kGitLab: return "gitlab";
    case WebhookHost::kGitea: return "gitea";
    case WebhookHost::kBitbucket: return "bitbucket";
  }
  return "unknown";
}

std::optional<WebhookHost> webhook_host_from(std::string_view name) {
  for (auto h : {WebhookHost::kGitHub, WebhookHost::kGitLab, WebhookHost::kGitea, WebhookHost::kBitbucket})
    if (name == to_string(h)) return h;
  if (name == "forgejo") return WebhookHost::kGitea;
  return std::nullopt;
}

namespace {

// The first of `names` the delivery carries (hosts send the same value
// under several names: Forgejo's, Gitea's, ...).
std::string header(const std::map<std::string, std::string>& headers, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (auto it = headers.find(name); it != headers.end() && !it->second.empty()) return it->second;
  return {};
}

// A string at a JSON pointer, or "" when absent or not a string.
std::string str(const json& doc, const char* pointer) {
  json v;
  if (doc.at_pointer(pointer).get(v)) return {};
  std::string_view text;
  if (!v.get_string().get(text)) return std::string(text);
  std::int64_t n;
  if (!v.get_int64().get(n)) return std::to_string(n);
  return {};
}

long number(const json& doc, const char* pointer) {
  std::int64_t n = 0;
  if (doc.at_pointer(pointer).get_int64().get(n)) return 0;
  return static_cast<long>(n);
}

bool boolean(const json& doc, const char* pointer) {
  bool b = false;
  if (doc.at_pointer(pointer).get_bool().get(b)) return false;
  return b;
}

bool has(const json& doc, const char* pointer) {
  json v;
  return !doc.at_pointer(pointer).get(v);
}

void add_names(NormalizedWebhook& w, const json& doc, std::initializer_list<const char*> pointers) {
  for (const char* p : pointers) {
    std::string v = str(doc, p);
    if (!v.empty()) w.repository_names.push_back(v);
  }
}

std::vector<std::string> label_names(const json& doc, const char* pointer, const char* field) {
  std::vector<std::string> out;
  simdjson::dom::array labels;
  if (doc.at_pointer(pointer).get_array().get(labels)) return out;
  for (json label : labels) {
    std::string_view name;
    // A name with a line break is no host's label (and would not survive the store's one-per-line list).
    if (!label[field].get_string().get(name) && !name.empty() && name.find_first_of("\r\n") == std::string_view::npos)
      out.emplace_back(name);
  }
  return out;
}

std::string body_digest(std::string_view body) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  std::string hex;
  char byte[3];
  for (unsigned char c : digest) {
    std::snprintf(byte, sizeof byte, "%02x", c);
    hex += byte;
  }
  return "sha256:" + hex;
}

NormalizedWebhook ignored(std::string reason) {
  NormalizedWebhook w;
  w.kind = NormalizedWebhook::Kind::kIgnored;
  w.reason = std::move(reason);
  return w;
}

// GitHub and Gitea/Forgejo share the pull_request payload shape.
NormalizedWebhook github_like(const json& doc, const std::string& action, bool gitea) {
  NormalizedWebhook w;
  if (action == "opened" || action == "reopened") w.action = "opened";
  else if (action == (gitea ? "synchronized" : "synchronize")) w.action = "updated";
  else if (action == "closed") w.action = boolean(doc, "/pull_request/merged") ? "merged" : "closed";
  else if (action == "labeled" || action == "unlabeled" || action == "label_updated" || action == "label_cleared") w.action = "labels";
  else return ignored("pull_request action '" + action + "' needs nothing from prevue");
  w.kind = NormalizedWebhook::Kind::kPullRequest;
  w.pr = number(doc, "/number");
  if (!w.pr) w.pr = number(doc, "/pull_request/number");
  w.head_sha = str(doc, "/pull_request/head/sha");
  w.base_sha = str(doc, "/pull_request/base/sha");
  w.head_ref = str(doc, "/pull_request/head/ref");
  w.base_ref = str(doc, "/pull_request/base/ref");
  w.author = str(doc, "/pull_request/user/login");
  std::string head_repo = str(doc, "/pull_request/head/repo/full_name");
  std::string base_repo = str(doc, "/pull_request/base/repo/full_name");
  if (!head_repo.empty() && !base_repo.empty()) {
    w.fork = head_repo != base_repo;
  } else {
    // Trimmed Gitea payloads carry only repo ids.
    long head_id = number(doc, "/pull_request/head/repo_id"), base_id = number(doc, "/pull_request/base/repo_id");
    w.fork = head_id && base_id && head_id != base_id;
  }
  w.labels = label_names(doc, "/pull_request/labels", "name");
  add_names(w, doc, {"/repository/clone_url", "/repository/ssh_url", "/repository/html_url", "/repository/git_url",
                     "/repository/full_name"});
  w.host_repository = str(doc, "/repository/full_name");
  if (w.host_repository.empty()) w.host_repository = str(doc, "/pull_request/base/repo/full_name");
  return w;
}

}  // namespace

Result<NormalizedWebhook> normalize_webhook(WebhookHost host, const std::map<std::string, std::string>& headers,
                                            std::string_view body) {
  thread_local simdjson::dom::parser parser;
  json doc;
  if (auto error = parser.parse(body.data(), body.size()).get(doc))
    return make_error(ErrorCode::kParse, std::string("malformed JSON body: ") + simdjson::error_message(error));
  if (!doc.is_object()) return make_error(ErrorCode::kParse, "the body is not a JSON object");
  NormalizedWebhook w;
  std::string delivery;
  switch (host) {
    case WebhookHost::kGitHub: {
      delivery = header(headers, {"x-github-delivery"});
      std::string event = header(headers, {"x-github-event"});
      if (event == "ping") w.kind = NormalizedWebhook::Kind::kPing;
      else if (event != "pull_request") w = ignored("event '" + event + "' needs nothing from prevue");
      else w = github_like(doc, str(doc, "/action"), false);
      break;
    }
    case WebhookHost::kGitea: {
      delivery = header(headers, {"x-forgejo-delivery", "x-gitea-delivery"});
      std::string event = header(headers, {"x-forgejo-event", "x-gitea-event"});
      if (event != "pull_request") w = ignored("event '" + event + "' needs nothing from prevue");
      else w = github_like(doc, str(doc, "/action"), true);
      break;
    }
    case WebhookHost::kGitLab: {
      delivery = header(headers, {"x-gitlab-event-uuid", "idempotency-key", "webhook-id"});
      std::string event = header(headers, {"x-gitlab-event"});
      if (event != "Merge Request Hook" || str(doc, "/object_kind") != "merge_request") {
        w = ignored("event '" + event + "' needs nothing from prevue");
        break;
      }
      std::string action = str(doc, "/object_attributes/action");
      if (action == "open" || action == "reopen") w.action = "opened";
      else if (action == "update" && !str(doc, "/object_attributes/oldrev").empty()) w.action = "updated";
      else if (action == "update" && has(doc, "/changes/labels")) w.action = "labels";
      else if (action == "merge") w.action = "merged";
      else if (action == "close") w.action = "closed";
      else {
        w = ignored("merge request action '" + action + "' needs nothing from prevue");
        break;
      }
      w.kind = NormalizedWebhook::Kind::kPullRequest;
      w.pr = number(doc, "/object_attributes/iid");
      w.head_sha = str(doc, "/object_attributes/last_commit/id");
      w.head_ref = str(doc, "/object_attributes/source_branch");
      w.base_ref = str(doc, "/object_attributes/target_branch");
      w.author = str(doc, "/user/username");
      long source = number(doc, "/object_attributes/source_project_id"), target = number(doc, "/object_attributes/target_project_id");
      w.fork = source && target && source != target;
      w.labels = label_names(doc, "/labels", "title");
      add_names(w, doc, {"/project/git_http_url", "/project/git_ssh_url", "/project/web_url", "/project/path_with_namespace",
                         "/repository/url", "/repository/homepage"});
      w.host_repository = str(doc, "/project/id");
      if (w.host_repository.empty()) w.host_repository = str(doc, "/object_attributes/target_project_id");
      if (w.host_repository.empty()) w.host_repository = str(doc, "/project/path_with_namespace");
      break;
    }
    case WebhookHost::kBitbucket: {
      delivery = header(headers, {"x-request-uuid", "x-request-id"});
      std::string key = header(headers, {"x-event-key"});
      if (key.empty()) key = str(doc, "/eventKey");
      if (key == "diagnostics:ping") {
        w.kind = NormalizedWebhook::Kind::kPing;
        break;
      }
      bool cloud = key.rfind("pullrequest:", 0) == 0;
      if (key == "pullrequest:created" || key == "pr:opened") w.action = "opened";
      else if (key == "pullrequest:updated" || key == "pr:from_ref_updated") w.action = "updated";
      else if (key == "pullrequest:fulfilled" || key == "pr:merged") w.action = "merged";
      else if (key == "pullrequest:rejected" || key == "pr:declined" || key == "pr:deleted") w.action = "closed";
      else {
        w = ignored("event '" + key + "' needs nothing from prevue");
        break;
      }
      w.kind = NormalizedWebhook::Kind::kPullRequest;
      if (cloud) {
        w.pr = number(doc, "/pullrequest/id");
        w.head_sha = str(doc, "/pullrequest/source/commit/hash");  // 12 hex digits: resolved against the mirror
        w.base_sha = str(doc, "/pullrequest/destination/commit/hash");
        w.head_ref = str(doc, "/pullrequest/source/branch/name");
        w.base_ref = str(doc, "/pullrequest/destination/branch/name");
        w.author = str(doc, "/pullrequest/author/nickname");
        if (w.author.empty()) w.author = str(doc, "/pullrequest/author/display_name");
        std::string from = str(doc, "/pullrequest/source/repository/full_name"), to = str(doc, "/pullrequest/destination/repository/full_name");
        w.fork = !from.empty() && !to.empty() && from != to;
        add_names(w, doc, {"/repository/full_name", "/repository/links/html/href"});
        w.host_repository = str(doc, "/repository/full_name");
        if (w.host_repository.empty()) w.host_repository = str(doc, "/pullrequest/destination/repository/full_name");
      } else {
        w.pr = number(doc, "/pullRequest/id");
        w.head_sha = str(doc, "/pullRequest/fromRef/latestCommit");
        w.base_sha = str(doc, "/pullRequest/toRef/latestCommit");
        w.head_ref = str(doc, "/pullRequest/fromRef/displayId");
        w.base_ref = str(doc, "/pullRequest/toRef/displayId");
        w.author = str(doc, "/pullRequest/author/user/name");
        long from = number(doc, "/pullRequest/fromRef/repository/id"), to = number(doc, "/pullRequest/toRef/repository/id");
        w.fork = from && to && from != to;
        std::string project = str(doc, "/pullRequest/toRef/repository/project/key"), slug = str(doc, "/pullRequest/toRef/repository/slug");
        if (!project.empty() && !slug.empty()) w.repository_names.push_back(project + "/" + slug);
        if (!project.empty() && !slug.empty()) w.host_repository = project + "/" + slug;
        w.bitbucket_datacenter = true;
        simdjson::dom::array clones;
        if (!doc.at_pointer("/pullRequest/toRef/repository/links/clone").get_array().get(clones))
          for (json c : clones) {
            std::string_view href;
            if (!c["href"].get_string().get(href)) w.repository_names.emplace_back(href);
          }
      }
      break;
    }
  }
  w.delivery_id = delivery.empty() ? body_digest(body) : std::string(to_string(host)) + ":" + delivery;
  if (w.kind == NormalizedWebhook::Kind::kPullRequest && w.pr <= 0)
    return make_error(ErrorCode::kParse, "pull request event without a pull request number");
  return w;
}

}  // namespace prevue
