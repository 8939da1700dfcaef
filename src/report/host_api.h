// What prevue tells a git host about a preview, in each host's documented
// REST API: GitHub deployments + deployment statuses (or a commit status)
// and one pull-request comment; GitLab a commit status and one MR note;
// Gitea/Forgejo a commit status and one comment; Bitbucket Cloud and Data
// Center a build status. No network here: requests go through a transport.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"
#include "report/http_client.h"
#include "store/store.h"

namespace prevue {

enum class ReportState { kPending, kSuccess, kFailure, kInactive };
const char* to_string(ReportState state);

// The preview as the pull request should show it.
struct PreviewReport {
  ReportState state = ReportState::kPending;
  std::string sha;     // the commit the status belongs to (full)
  std::string url;     // the preview's link (success)
  std::string slug;
  std::string reason;  // failure: the step and a short error; inactive: why it was removed
  bool sleeping = false;
  std::int64_t lease_expires_at_ms = 0;  // 0: no TTL
  std::int64_t idle_ms = 0;              // 0: no idle limit
  bool pinned = false;
  std::string lease_end = "destroy";     // destroy | sleep
  std::string extend_hint;               // how to extend, e.g. "prevue extend <slug> 1d"
  std::int64_t ends_soon_at_ms = 0;      // the lease ends within the warning window, at this time (0: not soon)
};

struct HostApiSettings {
  std::string host;      // github, gitlab, gitea, bitbucket, bitbucket-datacenter
  std::string api_url;   // e.g. https://api.github.com, https://gitlab.example.com/api/v4
  std::string token;     // never logged
  bool deployments = true;  // GitHub: deployments + statuses; false: a commit status
  bool comment = true;      // GitHub, GitLab, Gitea: one comment, created once and edited afterwards
  std::string context = "prevue";  // the status's name
};

// The API base a host uses when the config names none ("" for self-hosted-only hosts).
std::string default_api_url(const std::string& host);

// The comment's Markdown: state, link, commit, when the lease ends and how to extend it.
std::string comment_body(const PreviewReport& report);

// Sends what changed since `record` (the status, the comment, or both) and
// records the host's ids and what it accepted in `record`. An error names
// the request that failed; `record` keeps whatever did succeed.
Status send_report(const HostApiSettings& settings, ReportRecord& record, const PreviewReport& report,
                   const HttpTransport& transport);

}  // namespace prevue
