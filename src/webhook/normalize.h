// Each git host's pull-request webhooks, normalised into prevue's event.
// Pure: headers and body in, a NormalizedWebhook (or a parse error) out.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prevue {

enum class WebhookHost { kGitHub, kGitLab, kGitea, kBitbucket };
const char* to_string(WebhookHost host);
std::optional<WebhookHost> webhook_host_from(std::string_view name);

struct NormalizedWebhook {
  enum class Kind { kPullRequest, kPing, kIgnored };
  Kind kind = Kind::kIgnored;
  std::string reason;       // why it was ignored
  std::string delivery_id;  // the host's delivery id (a hash of the body when the host sends none)
  std::string action;       // opened, updated, closed, merged, labels
  long pr = 0;
  std::string head_sha, base_sha, head_ref, base_ref, author;
  bool fork = false;
  std::vector<std::string> labels;
  std::vector<std::string> repository_names;  // clone URLs, web URLs and full names, to find the watched repository
  // The base repository as the host's REST API names it (owner/name, a
  // GitLab project id, a Bitbucket Data Center PROJECT/slug), for reporting back.
  std::string host_repository;
  bool bitbucket_datacenter = false;  // the delivery came from Bitbucket Data Center/Server, not Cloud
};

// `headers` have lower-case names. A body that is not the JSON the host
// documents is a kParse error; an event or action prevue does not act on is
// kIgnored (with a reason), not an error.
Result<NormalizedWebhook> normalize_webhook(WebhookHost host, const std::map<std::string, std::string>& headers,
                                            std::string_view body);

}  // namespace prevue
