// The daemon's webhook intake (the unit `prevue serve` runs on its webhook
// threads) with a real store and inbox, fed GitHub's own payload: signed
// deliveries are recorded once, forged ones and strangers are turned away.
#include "daemon/webhook_intake.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "webhook/signature.h"

namespace prevue {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(PREVUE_FIXTURES_DIR) + "/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class WebhookIntakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("prevue-intake-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::string path = (dir_ / "prevue.db").string();
    store_ = Store::open(path, clock_).value();
    repo_id_ = store_->upsert_repository("/srv/git/hello", "hello", "/m").value().id;
    inbox_ = std::make_unique<InboxWriter>(Store::open(path, clock_).value());
    WebhookSettings github;
    github.enabled = true;
    github.secret = kSecret;
    intake_ = std::make_unique<WebhookIntake>(
        std::map<std::string, WebhookSettings>{{"github", github}},
        std::vector<WebhookIntake::Repository>{{repo_id_, {"Codertocat/Hello-World", "/srv/git/hello"}}}, *inbox_, clock_, metrics_,
        [this](std::int64_t repo, long pr, bool labels) { deliveries_.push_back({repo, pr, labels}); });
  }
  void TearDown() override {
    intake_.reset();
    inbox_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  HttpResponse deliver(const std::string& body, const std::string& delivery, const std::string& event = "pull_request",
                       std::string signature = "") {
    HttpRequest r;
    r.method = "POST";
    r.target = "/hooks/github";
    r.body = body;
    r.remote = "127.0.0.1";
    r.headers = {{"x-github-event", event}, {"x-github-delivery", delivery}, {"content-type", "application/json"}};
    r.headers["x-hub-signature-256"] = signature.empty() ? "sha256=" + hmac_sha256_hex(kSecret, body) : signature;
    return intake_->handle(r);
  }

  static constexpr const char* kSecret = "It's a Secret to Everybody";
  struct Delivery {
    std::int64_t repo;
    long pr;
    bool labels;
    bool operator==(const Delivery&) const = default;
  };
  FakeClock clock_;
  Metrics metrics_;
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::int64_t repo_id_ = 0;
  std::unique_ptr<InboxWriter> inbox_;
  std::unique_ptr<WebhookIntake> intake_;
  std::vector<Delivery> deliveries_;
};

TEST_F(WebhookIntakeTest, ASignedDeliveryIsRecordedOnceAndReconciled) {
  std::string body = fixture("github/pull_request-opened.json");
  HttpResponse first = deliver(body, "d-1");
  EXPECT_EQ(first.status, 202) << first.body;
  auto pr = store_->find_pull_request(repo_id_, 2);
  ASSERT_TRUE(pr.ok() && pr->has_value());
  EXPECT_EQ((*pr)->head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
  EXPECT_EQ(deliveries_, (std::vector<Delivery>{{repo_id_, 2, false}}));
  EXPECT_EQ(metrics_.events_received.load(), 1u);

  HttpResponse again = deliver(body, "d-1");  // GitHub's redelivery: same id
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(nlohmann::json::parse(again.body)["status"], "duplicate");
  EXPECT_EQ(deliveries_.size(), 1u);
  EXPECT_EQ(metrics_.events_duplicate.load(), 1u);
}

TEST_F(WebhookIntakeTest, AForgedOrUnsignedDeliveryChangesNothing) {
  std::string body = fixture("github/pull_request-opened.json");
  EXPECT_EQ(deliver(body, "d-2", "pull_request", "sha256=" + std::string(64, '0')).status, 401);
  HttpRequest unsigned_request;
  unsigned_request.method = "POST";
  unsigned_request.target = "/hooks/github";
  unsigned_request.body = body;
  EXPECT_EQ(intake_->handle(unsigned_request).status, 401);
  EXPECT_TRUE(store_->recent_events(10)->empty());
  EXPECT_TRUE(deliveries_.empty());
}

TEST_F(WebhookIntakeTest, ADeliveryForNoWatchedRepositoryIsKeptAsIgnored) {
  std::string body = fixture("github/pull_request-opened.json");
  auto doc = nlohmann::json::parse(body);
  doc["repository"]["full_name"] = "someone/else";
  doc["repository"]["clone_url"] = "https://github.com/someone/else.git";
  doc["repository"]["html_url"] = "https://github.com/someone/else";
  HttpResponse r = deliver(doc.dump(), "d-3");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["status"], "ignored");
  auto events = store_->recent_events(10);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].status, "ignored");
  EXPECT_TRUE(deliveries_.empty());
}

TEST_F(WebhookIntakeTest, WrongMethodsHostsAndPingsAnswerPlainly) {
  HttpRequest get;
  get.method = "GET";
  get.target = "/hooks/github";
  EXPECT_EQ(intake_->handle(get).status, 405);
  HttpRequest elsewhere;
  elsewhere.method = "POST";
  elsewhere.target = "/hooks/sourceforge";
  EXPECT_EQ(intake_->handle(elsewhere).status, 404);
  elsewhere.target = "/hooks/gitlab";  // known host, not configured here
  EXPECT_EQ(intake_->handle(elsewhere).status, 404);
  HttpResponse pong = deliver(R"({"zen": "Keep it logically awesome.", "hook_id": 1})", "d-4", "ping");
  EXPECT_EQ(pong.status, 200) << pong.body;
}

TEST(WebhookNames, CloneAndWebUrlsNameOneRepository) {
  EXPECT_EQ(WebhookIntake::comparable_name("https://github.com/o/r.git/"), "https://github.com/o/r");
  EXPECT_EQ(WebhookIntake::comparable_name("https://github.com/o/r"), "https://github.com/o/r");
  EXPECT_EQ(WebhookIntake::comparable_name("o/r"), "o/r");
}

}  // namespace
}  // namespace prevue
