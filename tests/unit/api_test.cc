// The daemon's REST API (Api, the unit `prevue serve` answers with) on a
// real store, with the running daemon's part recorded: what a script or
// an operator gets for each call, and what needs the token.
#include "daemon/api.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

using json = nlohmann::json;

struct RecordingDaemon final : ApiDaemon {
  std::vector<std::string> calls;
  size_t operations_in_flight() const override { return 2; }
  std::string metrics_text() override { return "prevue_environments{state=\"ready\"} 1\n"; }
  json dns_of(const EnvironmentRecord&) const override { return json{{"state", "published"}}; }
  void destroy(const EnvironmentRecord& e, const std::string& why) override { calls.push_back("destroy " + e.slug + ": " + why); }
  void lease_changed(const EnvironmentRecord& e, const LeaseRecord& lease, bool renewed) override {
    calls.push_back("lease " + e.slug + (renewed ? " renewed" : "") + (lease.pinned ? " pinned" : ""));
  }
  int poll(const std::string& wanted) override {
    calls.push_back("poll " + wanted);
    return wanted == "nope" ? 0 : 1;
  }
  AccessMode mode = AccessMode::kLink;
  AccessMode access_of(const EnvironmentRecord&) const override { return mode; }
  std::string share_token(const EnvironmentRecord& e, const ShareLinkRecord& link) const override { return "token-" + e.slug + "-" + link.id; }
  void share_links_changed() override { calls.push_back("links changed"); }
  Result<Accepted> create(const std::string& repo, long pr, const std::string& ref, const std::string&) override {
    calls.push_back("create " + repo + " " + std::to_string(pr) + " " + ref);
    if (repo == "/missing") return make_error(ErrorCode::kNotFound, "repository '/missing' is neither an existing path nor a URL");
    return Accepted{repo, "api:1:" + std::to_string(pr)};
  }
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Store::open(":memory:", clock_).value();
    auto repo = store_->upsert_repository("/srv/git/app", "app", "/m").value();
    EnvironmentRecord e;
    e.repo_id = repo.id;
    e.pr = 4;
    e.slug = "pr-4-login-abc123";
    e.dir = "/envs/pr-4";
    e = store_->insert_environment(e).value();
    for (EnvState s : {EnvState::kProvisioning, EnvState::kReady}) {
      e.state = s;
      e.layers = {{"main", "local"}};
      e.url = "http://pr-4-login-abc123.prevue.test/";
      ASSERT_TRUE(store_->update_environment(e).ok());
    }
    ASSERT_TRUE(store_->replace_routes(e.id, {{"pr-4-login-abc123.prevue.test", e.id, "web", "web", Endpoint{"127.0.0.1", 4100}}}).ok());
    std::int64_t now = clock_.now_ms();
    ASSERT_TRUE(store_->upsert_lease(LeaseRecord{e.id, 3'600'000, 600'000, EndAction::kDestroy, 0, now + 3'600'000, now, false, 0}).ok());
    env_ = e;
    api_ = std::make_unique<Api>(*store_, clock_, "s3cret", daemon_);
  }

  HttpResponse call(const std::string& method, const std::string& target, const std::string& body = "", bool with_token = true) {
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    if (with_token) r.headers["authorization"] = "Bearer s3cret";
    return api_->handle(r);
  }

  FakeClock clock_;
  std::unique_ptr<Store> store_;
  EnvironmentRecord env_;
  RecordingDaemon daemon_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, AnEnvironmentShowsItsStateLayersLeaseDnsAndRoutes) {
  HttpResponse r = call("GET", "/api/v1/environments/pr-4-login-abc123", "", false);  // reading needs no token
  ASSERT_EQ(r.status, 200) << r.body;
  json e = json::parse(r.body);
  EXPECT_EQ(e["state"], "ready");
  EXPECT_EQ(e["repo"], "/srv/git/app");
  EXPECT_EQ(e["layers"], json::parse(R"([{"name": "main", "provider": "local"}])"));
  EXPECT_EQ(e["lease"]["deadline_ms"], clock_.now_ms() + 600'000);
  EXPECT_EQ(e["dns"]["state"], "published");
  EXPECT_EQ(e["routes"][0]["upstream"], "127.0.0.1:4100");
  EXPECT_EQ(json::parse(call("GET", "/api/v1/environments").body).size(), 1u);
  EXPECT_EQ(call("GET", "/api/v1/environments/nope").status, 404);
  EXPECT_EQ(json::parse(call("GET", "/healthz").body)["in_flight"], 2);
  EXPECT_EQ(call("GET", "/metrics").body, "prevue_environments{state=\"ready\"} 1\n");
}

TEST_F(ApiTest, ShareLinksAreMadeListedAndRevokedOnlyForLinkModePreviews) {
  const std::string links = "/api/v1/environments/pr-4-login-abc123/links";
  EXPECT_EQ(call("POST", links, R"({"ttl": "2h"})", false).status, 401);
  HttpResponse made = call("POST", links, R"({"ttl": "2h", "note": "for the designer"})");
  ASSERT_EQ(made.status, 201) << made.body;
  json link = json::parse(made.body);
  const std::string id = link["id"];
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(link["url"], "http://pr-4-login-abc123.prevue.test/__prevue/link?t=token-pr-4-login-abc123-" + id);
  EXPECT_EQ(link["expires_at_ms"], clock_.now_ms() + 2 * 3'600'000);
  EXPECT_EQ(daemon_.calls.back(), "links changed");
  EXPECT_EQ(store_->live_share_links(clock_.now_ms()).value().at(env_.id), std::vector<std::string>{id});

  json listed = json::parse(call("GET", links, "", false).body);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["note"], "for the designer");
  EXPECT_FALSE(listed[0].contains("url"));  // the token is shown once, when it is made

  EXPECT_EQ(call("DELETE", links + "/" + id, "", false).status, 401);
  EXPECT_EQ(call("DELETE", links + "/" + id).status, 200);
  EXPECT_EQ(call("DELETE", links + "/" + id).status, 404);  // already revoked
  EXPECT_TRUE(store_->live_share_links(clock_.now_ms()).value().empty());
  EXPECT_EQ(call("POST", links, R"({"ttl": "0s"})").status, 400);
  EXPECT_EQ(call("POST", links, R"({"ttl": "soon"})").status, 400);

  daemon_.mode = AccessMode::kPublic;
  HttpResponse refused = call("POST", links, "{}");
  EXPECT_EQ(refused.status, 409);
  EXPECT_NE(refused.body.find("opens by public"), std::string::npos) << refused.body;
}

TEST_F(ApiTest, ChangesNeedTheTokenAndAreOffWithoutOne) {
  EXPECT_EQ(call("DELETE", "/api/v1/environments/pr-4-login-abc123", "", false).status, 401);
  HttpRequest forged;
  forged.method = "DELETE";
  forged.target = "/api/v1/environments/pr-4-login-abc123";
  forged.headers["authorization"] = "Bearer s3cre";
  EXPECT_EQ(api_->handle(forged).status, 401);
  Api without_token(*store_, clock_, "", daemon_);
  forged.headers["authorization"] = "Bearer ";
  EXPECT_EQ(without_token.handle(forged).status, 403);
  EXPECT_TRUE(daemon_.calls.empty());
}

TEST_F(ApiTest, DeleteExtendAndPinAskTheDaemon) {
  EXPECT_EQ(call("DELETE", "/api/v1/environments/pr-4-login-abc123").status, 202);
  HttpResponse extended = call("POST", "/api/v1/environments/pr-4-login-abc123/extend", R"({"duration": "2h"})");
  ASSERT_EQ(extended.status, 200) << extended.body;
  EXPECT_EQ(store_->lease_of(env_.id).value()->expires_at, clock_.now_ms() + 3'600'000 + 7'200'000);
  EXPECT_EQ(call("POST", "/api/v1/environments/pr-4-login-abc123/pin", R"({"pinned": true})").status, 200);
  EXPECT_EQ(daemon_.calls, (std::vector<std::string>{"destroy pr-4-login-abc123: deleted through the API",
                                                     "lease pr-4-login-abc123 renewed", "lease pr-4-login-abc123 pinned"}));
  auto timeline = store_->timeline_of(env_.id).value();
  EXPECT_EQ(timeline.front().detail, "delete through the API");
}

TEST_F(ApiTest, BadRequestsSayWhatIsWrong) {
  EXPECT_EQ(call("POST", "/api/v1/environments/pr-4-login-abc123/extend", R"({"duration": "soon"})").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/environments/pr-4-login-abc123/pin", R"({"pinned": "yes"})").status, 400);
  HttpResponse malformed = call("POST", "/api/v1/environments", "{not json");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(malformed.body.find("malformed JSON body"), std::string::npos);
  EXPECT_EQ(call("POST", "/api/v1/environments", R"({"repo": "/srv/git/app", "pr": 0, "ref": "x"})").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/environments", R"({"repo": "/srv/git/app", "pr": 5, "ref": "x", "sha": "y"})").status, 400);
  HttpResponse missing = call("POST", "/api/v1/environments", R"({"repo": "/missing", "pr": 5, "ref": "x"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(missing.body.find("neither an existing path"), std::string::npos);
  EXPECT_EQ(call("POST", "/api/v1/repositories/poll", R"({"repo": "nope"})").status, 404);
  EXPECT_EQ(call("PUT", "/api/v1/nothing").status, 404);
}

TEST_F(ApiTest, APreviewAskedForByHandIsAcceptedUnderItsEventId) {
  HttpResponse r = call("POST", "/api/v1/environments", R"({"repo": "/srv/git/app", "pr": 5, "ref": "feature"})");
  ASSERT_EQ(r.status, 202) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["delivery_id"], "api:1:5");
  EXPECT_EQ(body["see"], "/api/v1/events");
  EXPECT_EQ(daemon_.calls, std::vector<std::string>{"create /srv/git/app 5 feature"});
}

}  // namespace
}  // namespace prevue
