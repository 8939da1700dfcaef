#include "report/host_api.h"

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <nlohmann/json.hpp>

#include <ctime>

#include "core/duration.h"
#include "core/slug.h"

namespace prevue {

using json = nlohmann::json;

const char* to_string(ReportState state) {
  switch (state) {
    case ReportState::kPending: return "pending";
    case ReportState::kSuccess: return "success";
    case ReportState::kFailure: return "failure";
    case ReportState::kInactive: return "inactive";
  }
  return "unknown";
}

std::string default_api_url(const std::string& host) {
  if (host == "github") return "https://api.github.com";
  if (host == "gitlab") return "https://gitlab.com/api/v4";
  if (host == "bitbucket") return "https://api.bitbucket.org/2.0";
  return {};  // Gitea/Forgejo and Bitbucket Data Center are self-hosted
}

namespace {

// At most `limit` bytes, never cutting a UTF-8 sequence in two.
std::string clip(const std::string& text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t cut = limit - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

std::string utc(std::int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// Path segments come from webhook payloads: each is percent-encoded, so a
// name can never climb out of the path it is put in.
std::string encode_segment(const std::string& text) { return boost::urls::encode(text, boost::urls::unreserved_chars); }

// "owner/name" → "owner/name" with each part encoded; anything else is refused.
Result<std::string> owner_and_name(const std::string& host_repo) {
  size_t slash = host_repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == host_repo.size() || host_repo.find('/', slash + 1) != std::string::npos)
    return make_error(ErrorCode::kInvalidArgument, "repository '" + host_repo + "' is not owner/name");
  return encode_segment(host_repo.substr(0, slash)) + "/" + encode_segment(host_repo.substr(slash + 1));
}

bool is_hex_sha(const std::string& sha) {
  return sha.size() >= 7 && sha.size() <= 64 && is_hex(sha) && sha.find_first_of("ABCDEF") == std::string::npos;
}

std::string base(const HostApiSettings& s) {
  std::string b = s.api_url.empty() ? default_api_url(s.host) : s.api_url;
  while (!b.empty() && b.back() == '/') b.pop_back();
  return b;
}

ClientRequest make_request(const HostApiSettings& s, const std::string& method, const std::string& url, const json& body) {
  ClientRequest r;
  r.method = method;
  r.url = url;
  r.body = body.dump();
  r.headers = {{"User-Agent", "prevue/0.1"}, {"Content-Type", "application/json"}};
  if (s.host == "github") {
    r.headers.emplace_back("Accept", "application/vnd.github+json");
    r.headers.emplace_back("X-GitHub-Api-Version", "2022-11-28");
    r.headers.emplace_back("Authorization", "Bearer " + s.token);
  } else if (s.host == "gitlab") {
    r.headers.emplace_back("Accept", "application/json");
    r.headers.emplace_back("PRIVATE-TOKEN", s.token);
  } else if (s.host == "gitea") {
    r.headers.emplace_back("Accept", "application/json");
    r.headers.emplace_back("Authorization", "token " + s.token);
  } else {
    r.headers.emplace_back("Accept", "application/json");
    r.headers.emplace_back("Authorization", "Bearer " + s.token);
  }
  return r;
}

// The host's answer as a status, with the request named (never its headers: they hold the token).
Result<json> expect(const Result<ClientResponse>& response, const ClientRequest& request, std::initializer_list<int> wanted) {
  if (!response.ok()) return response.error();
  for (int code : wanted)
    if (response->status == code) {
      json body = json::parse(response->body, nullptr, false);
      return body.is_discarded() ? json::object() : body;
    }
  return make_error(ErrorCode::kProvider, request.method + " " + request.url + " answered " + std::to_string(response->status) + ": " +
                                              clip(response->body, 200));
}

std::string id_of(const json& body) {
  if (!body.is_object() || !body.contains("id")) return {};
  const json& id = body["id"];
  if (id.is_number_integer()) return std::to_string(id.get<std::int64_t>());
  if (id.is_string()) return id.get<std::string>();
  return {};
}

std::string description(const PreviewReport& r) {
  switch (r.state) {
    case ReportState::kPending: return "Building the preview";
    case ReportState::kSuccess: return r.sleeping ? "Preview asleep: the first visit wakes it" : "Preview ready";
    case ReportState::kFailure: return clip("Preview failed: " + r.reason, 140);
    case ReportState::kInactive: return clip("Preview removed" + (r.reason.empty() ? std::string() : ": " + r.reason), 140);
  }
  return {};
}

// ---- statuses ------------------------------------------------------------------

Status github_deployment(const HostApiSettings& s, ReportRecord& rec, const PreviewReport& r, const std::string& repo,
                         const HttpTransport& send) {
  if (r.state == ReportState::kInactive && rec.deployment_id.empty()) return {};  // nothing was deployed
  if (rec.deployment_id.empty() || rec.deployment_sha != r.sha) {
    json body{{"ref", r.sha},
              {"environment", "preview/pr-" + std::to_string(rec.pr)},
              {"description", "prevue preview of PR #" + std::to_string(rec.pr)},
              {"auto_merge", false},
              {"required_contexts", json::array()},
              {"transient_environment", true},
              {"production_environment", false},
              {"payload", {{"slug", r.slug}}}};
    ClientRequest req = make_request(s, "POST", base(s) + "/repos/" + repo + "/deployments", body);
    auto created = expect(send(req), req, {201});
    if (!created.ok()) return created.error();
    std::string id = id_of(*created);
    if (id.empty()) return make_error(ErrorCode::kProvider, "POST " + req.url + ": the answer carries no deployment id");
    rec.deployment_id = id;
    rec.deployment_sha = r.sha;
  }
  static const char* states[] = {"in_progress", "success", "failure", "inactive"};
  json body{{"state", states[static_cast<int>(r.state)]}, {"description", description(r)}, {"auto_inactive", true}};
  if (!r.url.empty() && r.state != ReportState::kInactive) {
    body["environment_url"] = r.url;
    body["log_url"] = r.url;
  }
  ClientRequest req = make_request(s, "POST", base(s) + "/repos/" + repo + "/deployments/" + encode_segment(rec.deployment_id) + "/statuses", body);
  auto done = expect(send(req), req, {201});
  return done.ok() ? Status{} : Status{done.error()};
}

// GitHub's and Gitea's commit status share a shape.
Status commit_status(const HostApiSettings& s, const PreviewReport& r, const std::string& repo, const HttpTransport& send) {
  // A commit status has no "inactive": the last word on a removed preview is a success without a link.
  static const char* states[] = {"pending", "success", "failure", "success"};
  json body{{"state", states[static_cast<int>(r.state)]}, {"description", description(r)}, {"context", s.context}};
  if (!r.url.empty() && r.state != ReportState::kInactive) body["target_url"] = r.url;
  ClientRequest req = make_request(s, "POST", base(s) + "/repos/" + repo + "/statuses/" + r.sha, body);
  auto done = expect(send(req), req, {200, 201});
  return done.ok() ? Status{} : Status{done.error()};
}

Status gitlab_status(const HostApiSettings& s, const ReportRecord& rec, const PreviewReport& r, const HttpTransport& send) {
  static const char* states[] = {"running", "success", "failed", "canceled"};
  json body{{"state", states[static_cast<int>(r.state)]}, {"name", s.context}, {"description", description(r)}};
  if (!r.url.empty() && r.state != ReportState::kInactive) body["target_url"] = r.url;
  ClientRequest req = make_request(s, "POST", base(s) + "/projects/" + encode_segment(rec.host_repo) + "/statuses/" + r.sha, body);
  auto response = send(req);
  // GitLab refuses a transition to the state a status already has; that is not a failure.
  if (response.ok() && response->status == 400 && response->body.find("Cannot transition status") != std::string::npos) return {};
  auto done = expect(response, req, {200, 201});
  return done.ok() ? Status{} : Status{done.error()};
}

Status bitbucket_status(const HostApiSettings& s, const ReportRecord& rec, const PreviewReport& r, const HttpTransport& send) {
  bool datacenter = s.host == "bitbucket-datacenter";
  static const char* cloud[] = {"INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"};
  static const char* dc[] = {"INPROGRESS", "SUCCESSFUL", "FAILED", "CANCELLED"};
  json body{{"key", s.context},
            {"state", (datacenter ? dc : cloud)[static_cast<int>(r.state)]},
            {"name", "Preview of PR #" + std::to_string(rec.pr)},
            {"url", r.url},  // required by both
            {"description", description(r)}};
  auto repo = owner_and_name(rec.host_repo);
  if (!repo.ok()) return repo.error();
  std::string path = datacenter ? "/rest/api/latest/projects/" + repo->substr(0, repo->find('/')) + "/repos/" +
                                      repo->substr(repo->find('/') + 1) + "/commits/" + r.sha + "/builds"
                                : "/repositories/" + *repo + "/commit/" + r.sha + "/statuses/build";
  ClientRequest req = make_request(s, "POST", base(s) + path, body);
  auto done = expect(send(req), req, {200, 201, 204});
  return done.ok() ? Status{} : Status{done.error()};
}

// ---- the one comment -------------------------------------------------------------

struct CommentUrls {
  std::string create;                       // POST
  std::string edit_prefix;                  // + id
  const char* edit_method = "PATCH";
};

Result<CommentUrls> comment_urls(const HostApiSettings& s, const ReportRecord& rec) {
  std::string number = std::to_string(rec.pr);
  if (s.host == "github" || s.host == "gitea") {
    auto repo = owner_and_name(rec.host_repo);
    if (!repo.ok()) return repo.error();
    return CommentUrls{base(s) + "/repos/" + *repo + "/issues/" + number + "/comments", base(s) + "/repos/" + *repo + "/issues/comments/"};
  }
  if (s.host == "gitlab") {
    std::string mr = base(s) + "/projects/" + encode_segment(rec.host_repo) + "/merge_requests/" + number + "/notes";
    return CommentUrls{mr, mr + "/", "PUT"};
  }
  return make_error(ErrorCode::kInvalidArgument, s.host + " gets a build status, not a comment");
}

Status upsert_comment(const HostApiSettings& s, ReportRecord& rec, const std::string& text, const HttpTransport& send) {
  auto urls = comment_urls(s, rec);
  if (!urls.ok()) return urls.error();
  json body{{"body", text}};
  if (!rec.comment_id.empty()) {
    ClientRequest req = make_request(s, urls->edit_method, urls->edit_prefix + encode_segment(rec.comment_id), body);
    auto response = send(req);
    // Deleted by someone on the host: write a new one rather than give up.
    if (!(response.ok() && response->status == 404)) {
      auto done = expect(response, req, {200});
      return done.ok() ? Status{} : Status{done.error()};
    }
    rec.comment_id.clear();
  }
  ClientRequest req = make_request(s, "POST", urls->create, body);
  auto created = expect(send(req), req, {201});
  if (!created.ok()) return created.error();
  rec.comment_id = id_of(*created);
  if (rec.comment_id.empty()) return make_error(ErrorCode::kProvider, "POST " + req.url + ": the answer carries no comment id");
  return {};
}

}  // namespace

std::string comment_body(const PreviewReport& r) {
  std::string short_sha = r.sha.substr(0, 12);
  std::string out = "<!-- prevue: this comment is edited in place as the preview changes -->\n";
  switch (r.state) {
    case ReportState::kPending:
      out += "**Preview: building** commit `" + short_sha + "`";
      if (!r.url.empty()) out += " at " + r.url;
      out += "\n";
      break;
    case ReportState::kSuccess:
      out += std::string("**Preview: ") + (r.sleeping ? "asleep" : "ready") + "** " + r.url + "\n\nCommit `" + short_sha + "`." +
             (r.sleeping ? " The first visit wakes it." : "") + "\n";
      break;
    case ReportState::kFailure:
      out += "**Preview: failed** for commit `" + short_sha + "`\n\n```\n" + clip(r.reason, 1000) + "\n```\n";
      break;
    case ReportState::kInactive:
      out += "**Preview: removed**" + (r.reason.empty() ? std::string() : " (" + r.reason + ")") + ". It was at " +
             (r.url.empty() ? std::string("(no link)") : r.url) + "\n";
      return out;
  }
  std::string end = r.lease_end == "sleep" ? "goes to sleep" : "is removed";
  // A time, never "in 3 hours": the text changes once, when the warning starts, not on every report.
  if (r.ends_soon_at_ms)
    out += "\n**Ending soon:** the preview " + end + " on " + utc(r.ends_soon_at_ms) + "." +
           (r.extend_hint.empty() ? std::string() : " Keep it longer with `" + r.extend_hint + "`.") + "\n";
  if (r.pinned) {
    out += "\nThe preview is pinned: it stays until the pull request closes.\n";
  } else if (r.idle_ms || r.lease_expires_at_ms) {
    out += "\nThe preview " + end;
    if (r.idle_ms) out += " after " + format_duration(Millis(r.idle_ms)) + " without visits";
    if (r.idle_ms && r.lease_expires_at_ms) out += ", or";
    if (r.lease_expires_at_ms) out += " on " + utc(r.lease_expires_at_ms) + " at the latest";
    out += ".";
    if (!r.extend_hint.empty()) out += " Extend it with `" + r.extend_hint + "`.";
    out += "\n";
  }
  return out;
}

Status send_report(const HostApiSettings& settings, ReportRecord& rec, const PreviewReport& report, const HttpTransport& transport) {
  if (!is_hex_sha(report.sha)) return make_error(ErrorCode::kInvalidArgument, "no commit to report on ('" + report.sha + "')");
  std::string status_key = std::string(to_string(report.state)) + "@" + report.sha;
  if (rec.sent_status != status_key) {
    Status s;
    if (settings.host == "github" || settings.host == "gitea") {
      auto repo = owner_and_name(rec.host_repo);
      if (!repo.ok()) return repo.error();
      s = settings.host == "github" && settings.deployments ? github_deployment(settings, rec, report, *repo, transport)
                                                            : commit_status(settings, report, *repo, transport);
    } else if (settings.host == "gitlab") {
      s = gitlab_status(settings, rec, report, transport);
    } else if (settings.host == "bitbucket" || settings.host == "bitbucket-datacenter") {
      s = bitbucket_status(settings, rec, report, transport);
    } else {
      return make_error(ErrorCode::kInvalidArgument, "no reporting for host '" + settings.host + "'");
    }
    if (!s.ok()) return s;
    rec.sent_status = status_key;
  }
  bool has_comments = settings.host == "github" || settings.host == "gitea" || settings.host == "gitlab";
  if (settings.comment && has_comments) {
    std::string text = comment_body(report);
    std::string digest = std::to_string(stable_hash(text));
    // No comment is started for a preview that is already gone.
    if (rec.sent_comment != digest && !(rec.comment_id.empty() && report.state == ReportState::kInactive)) {
      PREVUE_TRY(upsert_comment(settings, rec, text, transport));
      rec.sent_comment = digest;
    }
  }
  return {};
}

}  // namespace prevue
