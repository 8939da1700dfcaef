// The daemon's REST API (Api, the unit `prevue serve` answers with) and
// its dashboard's sign-in (Sessions, Dashboard) on a real store, with the
// running daemon's part recorded: what a script, an operator or a browser
// gets for each call, and what needs the token, a session, a CSRF token.
#include "daemon/api.h"
#include "daemon/dashboard.h"

#include <gtest/gtest.h>

#include <chrono>

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
  Status redeploy(const EnvironmentRecord& e) override {
    calls.push_back("redeploy " + e.slug);
    return {};
  }
  void put_to_sleep(const EnvironmentRecord& e, const std::string& why) override { calls.push_back("sleep " + e.slug + ": " + why); }
  void wake(const EnvironmentRecord& e) override { calls.push_back("wake " + e.slug); }
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
    sessions_ = std::make_unique<Sessions>(*store_, clock_, "s3cret", key_, Millis(12LL * 3'600'000));
    api_ = std::make_unique<Api>(*store_, clock_, *sessions_, daemon_, changes_);
    dashboard_ = std::make_unique<Dashboard>(*sessions_, key_, [](const std::string& host) -> std::optional<std::string> {
      if (host == "pr-4-login-abc123.prevue.test") return std::string("pr-4-login-abc123");
      return std::nullopt;
    });
  }

  // A browser's request to the dashboard's origin (127.0.0.1:7400).
  static HttpRequest browser(const std::string& method, const std::string& target, const std::string& cookie = "",
                             const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    r.headers["host"] = "127.0.0.1:7400";
    if (method != "GET") r.headers["origin"] = "http://127.0.0.1:7400";
    if (!cookie.empty()) r.headers["cookie"] = "theme=dark; " + cookie;
    return r;
  }

  // Signs in through the login form with `token`: the cookie ("prevue_session=…"), empty when refused.
  std::string sign_in(const std::string& token) {
    auto r = dashboard_->handle(browser("POST", "/login", "", "token=" + token + "&next=%2F"));
    if (!r || r->status != 303) return "";
    for (const auto& [name, value] : r->headers)
      if (name == "Set-Cookie") return value.substr(0, value.find(';'));
    return "";
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
  std::shared_ptr<const AccessKey> key_ = std::make_shared<const AccessKey>("key-for-the-tests");
  std::shared_ptr<ChangeFeed> changes_ = std::make_shared<ChangeFeed>();
  std::unique_ptr<Sessions> sessions_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<Dashboard> dashboard_;
};

TEST_F(ApiTest, AnEnvironmentShowsItsStateLayersLeaseDnsAndRoutes) {
  EXPECT_EQ(call("GET", "/api/v1/environments/pr-4-login-abc123", "", false).status, 401);  // reading needs a sign-in
  HttpResponse r = call("GET", "/api/v1/environments/pr-4-login-abc123");
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

  json listed = json::parse(call("GET", links).body);
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
  Sessions no_sign_in(*store_, clock_, "", key_, Millis(3'600'000));
  Api without_token(*store_, clock_, no_sign_in, daemon_, changes_);
  forged.headers["authorization"] = "Bearer ";
  EXPECT_EQ(without_token.handle(forged).status, 403);
  HttpRequest read;
  read.method = "GET";
  read.target = "/api/v1/environments";
  EXPECT_EQ(without_token.handle(read).status, 200);  // without a token the API is read-only and open
  EXPECT_TRUE(daemon_.calls.empty());
}

TEST_F(ApiTest, DeleteExtendAndPinAskTheDaemon) {
  EXPECT_EQ(call("DELETE", "/api/v1/environments/pr-4-login-abc123").status, 202);
  HttpResponse extended = call("POST", "/api/v1/environments/pr-4-login-abc123/extend", R"({"duration": "2h"})");
  ASSERT_EQ(extended.status, 200) << extended.body;
  EXPECT_EQ(store_->lease_of(env_.id).value()->expires_at, clock_.now_ms() + 3'600'000 + 7'200'000);
  EXPECT_EQ(call("POST", "/api/v1/environments/pr-4-login-abc123/pin", R"({"pinned": true})").status, 200);
  EXPECT_EQ(daemon_.calls, (std::vector<std::string>{"destroy pr-4-login-abc123: destroyed by api token",
                                                     "lease pr-4-login-abc123 renewed", "lease pr-4-login-abc123 pinned"}));
  auto timeline = store_->timeline_of(env_.id).value();
  EXPECT_EQ(timeline.front().detail, "delete by api token");  // who did it is recorded
  EXPECT_EQ(timeline.back().detail, "pinned by api token");
}

TEST_F(ApiTest, AReadyPreviewIsPutToSleepAndASleepingOneWoken) {
  const std::string sleep = "/api/v1/environments/pr-4-login-abc123/sleep", wake = "/api/v1/environments/pr-4-login-abc123/wake";
  EXPECT_EQ(call("POST", sleep, "", false).status, 401);  // a change: the token or a session
  EXPECT_EQ(call("POST", wake).status, 409);  // ready: nothing to wake
  EXPECT_EQ(call("POST", sleep).status, 202);
  env_.state = EnvState::kSleeping;
  ASSERT_TRUE(store_->update_environment(env_).ok());
  EXPECT_EQ(call("POST", sleep).status, 409);  // asleep already
  EXPECT_EQ(call("POST", wake).status, 202);
  EXPECT_EQ(daemon_.calls, (std::vector<std::string>{"sleep pr-4-login-abc123: put to sleep by api token", "wake pr-4-login-abc123"}));
  auto timeline = store_->timeline_of(env_.id).value();
  EXPECT_EQ(timeline.back().detail, "wake by api token");  // who did it is recorded
}

TEST_F(ApiTest, OnlyAFailedPreviewIsRedeployed) {
  const std::string redeploy = "/api/v1/environments/pr-4-login-abc123/redeploy";
  EXPECT_EQ(call("POST", redeploy).status, 409);  // ready: a push updates it
  env_.state = EnvState::kFailed;
  env_.failed_step = "apply: web";
  env_.error = "exit 1 in /envs/pr-4/web/app.py";
  ASSERT_TRUE(store_->update_environment(env_).ok());
  EXPECT_EQ(call("POST", redeploy).status, 202);
  EXPECT_EQ(daemon_.calls, std::vector<std::string>{"redeploy pr-4-login-abc123"});
  json log = json::parse(call("GET", "/api/v1/environments/pr-4-login-abc123/log").body);
  EXPECT_EQ(log["error"], "apply: web: exit 1 in …/web/app.py");  // no server paths
}

TEST_F(ApiTest, TheDashboardSignsInWithTheTokenAndItsSessionReadsAndChanges) {
  auto home = dashboard_->handle(browser("GET", "/"));
  ASSERT_TRUE(home);
  EXPECT_EQ(home->status, 303);  // to the sign-in page
  EXPECT_EQ(sign_in("wrong"), "");
  const std::string cookie = sign_in("s3cret");
  ASSERT_EQ(cookie.rfind("prevue_session=", 0), 0u) << cookie;

  HttpResponse page = *dashboard_->handle(browser("GET", "/", cookie));
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("api token · admin"), std::string::npos);
  HttpResponse who = api_->handle(browser("GET", "/api/v1/session", cookie));
  ASSERT_EQ(who.status, 200) << who.body;
  const std::string csrf = json::parse(who.body)["csrf"];
  EXPECT_NE(page.body.find(csrf), std::string::npos);  // the page carries its token
  EXPECT_EQ(api_->handle(browser("GET", "/api/v1/environments", cookie)).status, 200);

  // A change needs the CSRF token and this origin.
  HttpRequest extend = browser("POST", "/api/v1/environments/pr-4-login-abc123/extend", cookie, R"({"duration": "1h"})");
  EXPECT_EQ(api_->handle(extend).status, 403);
  extend.headers["x-prevue-csrf"] = csrf;
  HttpRequest from_elsewhere = extend;
  from_elsewhere.headers["origin"] = "https://evil.example";
  EXPECT_EQ(api_->handle(from_elsewhere).status, 403);
  EXPECT_EQ(api_->handle(extend).status, 200);
  EXPECT_EQ(store_->timeline_of(env_.id).value().back().detail, "extended by 1h by api token (dashboard)");

  // A form post from another site (the browser sends the cookie along) is refused.
  HttpRequest forged = browser("POST", "/logout", cookie, "csrf=" + csrf);
  forged.headers["origin"] = "https://evil.example";
  EXPECT_EQ(dashboard_->handle(forged)->status, 403);
  HttpRequest signin_elsewhere = browser("POST", "/login", "", "token=s3cret");
  signin_elsewhere.headers["origin"] = "https://evil.example";
  EXPECT_EQ(dashboard_->handle(signin_elsewhere)->status, 403);

  // Signed out: the same cookie, replayed, no longer works.
  HttpResponse out = *dashboard_->handle(browser("POST", "/logout", cookie, "csrf=" + csrf));
  EXPECT_EQ(out.status, 303);
  EXPECT_EQ(api_->handle(browser("GET", "/api/v1/environments", cookie)).status, 401);
  EXPECT_EQ(dashboard_->handle(browser("GET", "/", cookie))->status, 303);
}

TEST_F(ApiTest, ASessionEndsWhenItExpiresAndAForgedCookieIsNothing) {
  const std::string cookie = sign_in("s3cret");
  ASSERT_FALSE(cookie.empty());
  const std::string id = cookie.substr(cookie.find('=') + 1, cookie.find('.') - cookie.find('=') - 1);
  EXPECT_EQ(api_->handle(browser("GET", "/api/v1/environments", "prevue_session=" + id + ".0000")).status, 401);
  AccessKey other("another key");
  EXPECT_EQ(api_->handle(browser("GET", "/api/v1/environments", "prevue_session=" + other.session_cookie_value(id))).status, 401);
  clock_.advance(Millis(12LL * 3'600'000 + 1));
  EXPECT_EQ(api_->handle(browser("GET", "/api/v1/environments", cookie)).status, 401);
}

TEST_F(ApiTest, TheStreamIsAnEventStreamOfTheDaemonsChanges) {
  HttpResponse stream = call("GET", "/api/v1/stream");
  ASSERT_EQ(stream.status, 200);
  EXPECT_EQ(stream.events, changes_);
  EXPECT_EQ(call("GET", "/api/v1/stream", "", false).status, 401);
}

TEST_F(ApiTest, ALoginPreviewIsOpenedWithATokenForItsOwnHostOnly) {
  const std::string ask = "/preview-access?host=pr-4-login-abc123.prevue.test%3A8080&scheme=http&next=%2Fcart%3Fid%3D1";
  auto signed_out = dashboard_->handle(browser("GET", ask));
  ASSERT_EQ(signed_out->status, 303);  // sign in first, then back here
  auto location = [](const HttpResponse& r) {
    for (const auto& [name, value] : r.headers)
      if (name == "Location") return value;
    return std::string();
  };
  EXPECT_EQ(location(*signed_out), "/login?next=" + url_encoded(ask));

  const std::string cookie = sign_in("s3cret");
  auto sent = dashboard_->handle(browser("GET", ask, cookie));
  ASSERT_EQ(sent->status, 303);
  const std::string to = location(*sent);
  const std::string prefix = "http://pr-4-login-abc123.prevue.test:8080/__prevue/login?t=";
  ASSERT_EQ(to.rfind(prefix, 0), 0u) << to;
  const std::string token = to.substr(prefix.size(), to.find('&') - prefix.size());
  EXPECT_EQ(form_value(to.substr(to.find('?') + 1), "next"), "/cart?id=1");
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto grant = key_->verify_login_token(token, "pr-4-login-abc123", now_s);
  ASSERT_TRUE(grant);
  EXPECT_EQ(grant->kind, AccessGrant::Kind::kLogin);
  EXPECT_FALSE(key_->verify_login_token(token, "pr-5-other-abc123", now_s));  // for that preview only
  EXPECT_FALSE(key_->verify_login_token(token, "pr-4-login-abc123", now_s + 61));  // and a minute

  // Another host (an attacker's, or a preview not in `login` mode) gets no token.
  for (const std::string bad : {"evil.example", "pr-4-login-abc123.prevue.test%3A80%2F%40evil.example", "pr-4-login-abc123.prevue.test&scheme=javascript"})
    EXPECT_EQ(dashboard_->handle(browser("GET", "/preview-access?host=" + bad, cookie))->status, 404) << bad;
}

TEST_F(ApiTest, TheDashboardsFilesAreEmbeddedAndNothingElseIsServed) {
  auto script = dashboard_->handle(browser("GET", "/ui/app.js"));
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(script->body.find("EventSource"), std::string::npos);
  EXPECT_EQ(dashboard_->handle(browser("GET", "/ui/index.html"))->status, 404);
  EXPECT_EQ(dashboard_->handle(browser("GET", "/ui/../../etc/passwd"))->status, 404);
  EXPECT_FALSE(dashboard_->handle(browser("GET", "/api/v1/environments")));  // the API's
  // After sign-in, only a path of this site: never another one.
  HttpRequest away = browser("POST", "/login", "", "token=s3cret&next=%2F%2Fevil.example%2F");
  auto r = dashboard_->handle(away);
  ASSERT_EQ(r->status, 303);
  bool home = false;
  for (const auto& [name, value] : r->headers) home |= name == "Location" && value == "/";
  EXPECT_TRUE(home);
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
