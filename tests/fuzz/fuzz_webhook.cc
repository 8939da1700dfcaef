// Each host's webhook normalisation and signature checks, on any bytes.
// Input: host selector byte, then header value \xff body.
#include <cstdlib>

#include "fuzz_input.h"
#include "webhook/normalize.h"
#include "webhook/signature.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const prevue::WebhookHost kHosts[] = {prevue::WebhookHost::kGitHub, prevue::WebhookHost::kGitLab, prevue::WebhookHost::kGitea,
                                               prevue::WebhookHost::kBitbucket};
  prevue::WebhookHost host = kHosts[data[0] % 4];
  auto parts = prevue::fuzz::split_input(data + 1, size - 1, 2);
  std::string event(parts[0]);
  std::string body(parts[1]);
  static const char* kEventHeaders[] = {"x-github-event", "x-gitlab-event", "x-gitea-event", "x-event-key"};
  std::map<std::string, std::string> headers{{kEventHeaders[data[0] % 4], event}, {"x-github-delivery", event}};
  auto w = prevue::normalize_webhook(host, headers, body);
  if (w.ok() && w->kind == prevue::NormalizedWebhook::Kind::kPullRequest && w->pr <= 0) std::abort();  // the parser promises a number
  (void)prevue::verify_prefixed_hmac(event, "secret", body);
  (void)prevue::verify_hex_hmac(event, "secret", body);
  (void)prevue::verify_token(event, "secret");
  (void)prevue::verify_standard_webhook(event, event, event, "whsec_c2VjcmV0", body);
  return 0;
}
