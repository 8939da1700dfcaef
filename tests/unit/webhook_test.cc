// Every payload in tests/fixtures/webhooks (prevue's own, shaped as the
// hosts document them) normalised into prevue's event; a folder of the
// hosts' own payloads too when PREVUE_HOST_PAYLOADS names one (an extra
// check, same file names); the documented HMAC test vectors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "webhook/normalize.h"
#include "webhook/signature.h"

namespace prevue {
namespace {

std::string fixture_from(const std::string& dir, const std::string& rel) {
  std::ifstream in(dir + "/" + rel, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << dir << "/" << rel;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string fixture(const std::string& rel) { return fixture_from(PREVUE_FIXTURES_DIR, rel); }

struct Case {
  const char* file;
  WebhookHost host;
  std::map<std::string, std::string> headers;
  NormalizedWebhook::Kind kind;
  const char* action;
  long pr;
  const char* head_sha;
};

using K = NormalizedWebhook::Kind;
const std::map<std::string, std::string> kGitHubPr{{"x-github-event", "pull_request"}, {"x-github-delivery", "d-1"}};
const std::map<std::string, std::string> kGitLabMr{{"x-gitlab-event", "Merge Request Hook"}, {"x-gitlab-event-uuid", "u-1"}};
const std::map<std::string, std::string> kGiteaPr{{"x-gitea-event", "pull_request"}, {"x-gitea-delivery", "g-1"}};
std::map<std::string, std::string> bitbucket(const char* key) { return {{"x-event-key", key}, {"x-request-uuid", "b-1"}}; }

const Case kCases[] = {
    {"github/pull_request-opened.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "opened", 2, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
    {"github/pull_request-opened-null-body.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "opened", 2, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
    {"github/pull_request-synchronize.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "updated", 2, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
    {"github/pull_request-reopened.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "opened", 2, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
    {"github/pull_request-closed-unmerged.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "closed", 2, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
    {"github/pull_request-labeled.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "labels", 2, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
    {"github/pull_request-closed-merged.json", WebhookHost::kGitHub, kGitHubPr, K::kPullRequest, "merged", 62, "c88b9ee719285134957cbc698c9b7ef9b78007bf"},
    {"github/ping.json", WebhookHost::kGitHub, {{"x-github-event", "ping"}, {"x-github-delivery", "p"}}, K::kPing, "", 0, ""},
    {"github/push-branch-created.json", WebhookHost::kGitHub, {{"x-github-event", "push"}}, K::kIgnored, "", 0, ""},
    {"github/push-tag-deleted.json", WebhookHost::kGitHub, {{"x-github-event", "push"}}, K::kIgnored, "", 0, ""},
    {"github/installation-created.json", WebhookHost::kGitHub, {{"x-github-event", "installation"}}, K::kIgnored, "", 0, ""},
    {"gitlab/merge_request-open.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "opened", 1, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
    {"gitlab/merge_request-open-captured.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "opened", 3, "2f7670508b771e7e77839402be8b34b13787aba8"},
    {"gitlab/merge_request-update-push.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "updated", 3, "c136499ec574e1034b24c5d306de9acda3005367"},
    {"gitlab/merge_request-update-labels.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "labels", 3, "2f7670508b771e7e77839402be8b34b13787aba8"},
    {"gitlab/merge_request-close.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "closed", 4, "3e4db3586b65dd401de8c77b3ac343fd24cbf89b"},
    {"gitlab/merge_request-reopen.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "opened", 1, "36b5813240a9d2daa29b05046d56a53e18f39a3e"},
    {"gitlab/merge_request-merge.json", WebhookHost::kGitLab, kGitLabMr, K::kPullRequest, "merged", 4, "3e4db3586b65dd401de8c77b3ac343fd24cbf89b"},
    {"gitea/pull_request-opened.json", WebhookHost::kGitea, kGiteaPr, K::kPullRequest, "opened", 1, "2eba238e33607c1fa49253182e9fff42baafa1eb"},
    {"gitea/pull_request-synchronized.json", WebhookHost::kGitea, kGiteaPr, K::kPullRequest, "updated", 2, "788ed8d02d3b7fcfcf6386dbcbca696aa1d4dc25"},
    {"gitea/pull_request-reopened.json", WebhookHost::kGitea, kGiteaPr, K::kPullRequest, "opened", 1, "36b5813240a9d2daa29b05046d56a53e18f39a3e"},
    {"gitea/pull_request-closed-unmerged.json", WebhookHost::kGitea, kGiteaPr, K::kPullRequest, "closed", 1, "d555a5dd07f4d0148a58d4686ec381502ae6a2d4"},
    {"gitea/pull_request-closed-merged.json", WebhookHost::kGitea, kGiteaPr, K::kPullRequest, "merged", 1, "d555a5dd07f4d0148a58d4686ec381502ae6a2d4"},
    {"gitea/pull_request-label_updated.json", WebhookHost::kGitea, kGiteaPr, K::kPullRequest, "labels", 7, "07977177c2cd7d46bad37b8472a9d50e7acb9d1f"},
    {"gitea/push.json", WebhookHost::kGitea, {{"x-gitea-event", "push"}}, K::kIgnored, "", 0, ""},
    {"bitbucket/cloud-pullrequest-created.json", WebhookHost::kBitbucket, bitbucket("pullrequest:created"), K::kPullRequest, "opened", 1, "507a576e59b3"},
    {"bitbucket/cloud-pullrequest-updated.json", WebhookHost::kBitbucket, bitbucket("pullrequest:updated"), K::kPullRequest, "updated", 1, "0704fc5beccc"},
    {"bitbucket/cloud-pullrequest-fulfilled.json", WebhookHost::kBitbucket, bitbucket("pullrequest:fulfilled"), K::kPullRequest, "merged", 1, "0704fc5beccc"},
    {"bitbucket/cloud-pullrequest-rejected.json", WebhookHost::kBitbucket, bitbucket("pullrequest:rejected"), K::kPullRequest, "closed", 2, "6ca9fe26898a"},
    {"bitbucket/datacenter-pr-opened.json", WebhookHost::kBitbucket, bitbucket("pr:opened"), K::kPullRequest, "opened", 125, "1c7589876bc8b5e83122b1656925d679915193d4"},
    {"bitbucket/datacenter-pr-from_ref_updated.json", WebhookHost::kBitbucket, bitbucket("pr:from_ref_updated"), K::kPullRequest, "updated", 2, "c00d0f269a9844dd168f72f6a9d78a9cff49a318"},
    {"bitbucket/datacenter-pr-merged.json", WebhookHost::kBitbucket, bitbucket("pr:merged"), K::kPullRequest, "merged", 111, "993203acecdb65ffe947424d0917768b0e5c3903"},
    {"bitbucket/datacenter-pr-declined.json", WebhookHost::kBitbucket, bitbucket("pr:declined"), K::kPullRequest, "closed", 2, "b9eaed50a03c073b20dfa82e5e753d295e7f0e56"},
};

void expect_every_fixture_normalises(const std::string& dir) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.file);
    std::string body = fixture_from(dir, c.file);
    auto w = normalize_webhook(c.host, c.headers, body);
    ASSERT_TRUE(w.ok()) << w.error().message;
    EXPECT_EQ(w->kind, c.kind) << w->reason;
    if (c.kind != K::kPullRequest) continue;
    EXPECT_EQ(w->action, c.action);
    EXPECT_EQ(w->pr, c.pr);
    EXPECT_EQ(w->head_sha, c.head_sha);
    EXPECT_FALSE(w->head_ref.empty());
    EXPECT_FALSE(w->base_ref.empty());
    EXPECT_FALSE(w->repository_names.empty());
    EXPECT_FALSE(w->fork) << "these fixtures are same-repository pull requests";
    EXPECT_FALSE(w->delivery_id.empty());
  }
}

TEST(Webhook, EveryFixtureNormalises) { expect_every_fixture_normalises(PREVUE_FIXTURES_DIR); }

TEST(Webhook, TheHostsOwnPayloadsNormaliseWhenGiven) {
  const char* dir = std::getenv("PREVUE_HOST_PAYLOADS");
  if (!dir || !std::filesystem::is_directory(dir)) GTEST_SKIP() << "PREVUE_HOST_PAYLOADS names no folder of the hosts' payloads";
  expect_every_fixture_normalises(dir);
}

TEST(Webhook, TruncatedOrGarbledBodiesAreParseErrors) {
  for (const auto& c : kCases) {
    std::string body = fixture(c.file);
    auto w = normalize_webhook(c.host, c.headers, body.substr(0, body.size() / 2));
    ASSERT_FALSE(w.ok()) << c.file;
    EXPECT_EQ(w.error().code, ErrorCode::kParse);
  }
  EXPECT_FALSE(normalize_webhook(WebhookHost::kGitHub, kGitHubPr, "[1, 2]").ok());
  auto no_number = normalize_webhook(WebhookHost::kGitHub, kGitHubPr, R"({"action": "opened"})");
  ASSERT_FALSE(no_number.ok());
  EXPECT_NE(no_number.error().message.find("without a pull request number"), std::string::npos);
}

TEST(Webhook, ForkDetection) {
  std::string body = fixture("github/pull_request-opened.json");
  auto pos = body.find("\"full_name\": \"Codertocat/Hello-World\"");
  ASSERT_NE(pos, std::string::npos);
  body.replace(pos, std::string("\"full_name\": \"Codertocat/Hello-World\"").size(), "\"full_name\": \"mallory/Hello-World\"");
  auto w = normalize_webhook(WebhookHost::kGitHub, kGitHubPr, body);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->fork);
}

TEST(Webhook, DeliveryIdsAreStablePerDelivery) {
  std::string body = fixture("github/pull_request-opened.json");
  auto a = normalize_webhook(WebhookHost::kGitHub, kGitHubPr, body);
  auto b = normalize_webhook(WebhookHost::kGitHub, kGitHubPr, body);
  EXPECT_EQ(a->delivery_id, "github:d-1");
  EXPECT_EQ(a->delivery_id, b->delivery_id);
  auto no_header = normalize_webhook(WebhookHost::kGitHub, {{"x-github-event", "pull_request"}}, body);
  EXPECT_EQ(no_header->delivery_id.rfind("sha256:", 0), 0u);
}

TEST(Signature, GitHubDocumentedVector) {
  const std::string secret = "It's a Secret to Everybody";
  const std::string payload = "Hello, World!";
  EXPECT_EQ(hmac_sha256_hex(secret, payload), "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  EXPECT_TRUE(verify_prefixed_hmac("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", secret, payload));
  EXPECT_TRUE(verify_hex_hmac("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", secret, payload));
  EXPECT_FALSE(verify_prefixed_hmac("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18", secret, payload));
  EXPECT_FALSE(verify_prefixed_hmac("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", secret, payload));
  EXPECT_FALSE(verify_prefixed_hmac("", secret, payload));
  EXPECT_FALSE(verify_prefixed_hmac("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "", payload));
  EXPECT_FALSE(verify_prefixed_hmac("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", secret, payload + " "));
}

TEST(Signature, StandardWebhooksVector) {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  EXPECT_TRUE(verify_standard_webhook("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                      secret, R"({"test": 2432232314})"));
  EXPECT_TRUE(verify_standard_webhook("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                      "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", secret, R"({"test": 2432232314})"));
  EXPECT_FALSE(verify_standard_webhook("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                       secret, R"({"test": 2432232314})"));
}

TEST(Signature, GitLabTokenIsComparedWhole) {
  EXPECT_TRUE(verify_token("s3cret", "s3cret"));
  EXPECT_FALSE(verify_token("s3cre", "s3cret"));
  EXPECT_FALSE(verify_token("", ""));
}

}  // namespace
}  // namespace prevue
