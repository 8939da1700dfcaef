// Reporting back to the git hosts: the request shapes each host documents
// (through a recording transport), and the HTTP client against real local
// servers (retries, a server that never answers).
#include "report/host_api.h"
#include "report/http_client.h"
#include "report/preview_state.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include <sys/socket.h>

#include "http/http.h"

namespace prevue {
namespace {

using json = nlohmann::json;

const std::string kSha1 = "1111111111111111111111111111111111111111";
const std::string kSha2 = "2222222222222222222222222222222222222222";

// Records every request and answers from a script (201 {"id": N} by default).
struct Recorder {
  std::vector<ClientRequest> requests;
  std::deque<ClientResponse> script;
  int next_id = 100;

  HttpTransport transport() {
    return [this](const ClientRequest& r) -> Result<ClientResponse> {
      requests.push_back(r);
      if (!script.empty()) {
        ClientResponse out = script.front();
        script.pop_front();
        return out;
      }
      int status = r.method == "POST" ? 201 : 200;
      return ClientResponse{status, json{{"id", next_id++}}.dump(), ""};
    };
  }
  std::string header(size_t i, const std::string& name) const {
    for (const auto& [k, v] : requests.at(i).headers)
      if (k == name) return v;
    return "<absent>";
  }
  json body(size_t i) const { return json::parse(requests.at(i).body); }
  std::string line(size_t i) const { return requests.at(i).method + " " + requests.at(i).url; }
};

ReportRecord record(const std::string& host, const std::string& repo, long pr = 42) {
  ReportRecord r;
  r.repo_id = 1;
  r.pr = pr;
  r.host = host;
  r.host_repo = repo;
  return r;
}

PreviewReport preview(ReportState state, const std::string& sha) {
  PreviewReport p;
  p.state = state;
  p.sha = sha;
  p.slug = "pr-42-feature-abc123";
  p.url = "https://pr-42-feature-abc123.preview.example.com/";
  p.idle_ms = 4 * 3600 * 1000;
  p.lease_expires_at_ms = 1'900'000'000'000;
  p.extend_hint = "prevue extend pr-42-feature-abc123 1d";
  return p;
}

HostApiSettings settings(const std::string& host, const std::string& api) {
  HostApiSettings s;
  s.host = host;
  s.api_url = api;
  s.token = "tok-123";
  return s;
}

TEST(GitHubReport, DeploymentStatusesAndOneCommentEditedInPlace) {
  Recorder rec;
  auto s = settings("github", "https://ghe.example.com/api/v3/");
  ReportRecord r = record("github", "octo/app");

  ASSERT_TRUE(send_report(s, r, preview(ReportState::kPending, kSha1), rec.transport()).ok());
  ASSERT_EQ(rec.requests.size(), 3u);
  EXPECT_EQ(rec.line(0), "POST https://ghe.example.com/api/v3/repos/octo/app/deployments");
  EXPECT_EQ(rec.header(0, "Authorization"), "Bearer tok-123");
  EXPECT_EQ(rec.header(0, "Accept"), "application/vnd.github+json");
  EXPECT_EQ(rec.header(0, "X-GitHub-Api-Version"), "2022-11-28");
  EXPECT_NE(rec.header(0, "User-Agent"), "<absent>");
  json deployment = rec.body(0);
  EXPECT_EQ(deployment["ref"], kSha1);
  EXPECT_EQ(deployment["environment"], "preview/pr-42");
  EXPECT_EQ(deployment["auto_merge"], false);
  EXPECT_EQ(deployment["required_contexts"], json::array());
  EXPECT_EQ(deployment["transient_environment"], true);
  EXPECT_EQ(deployment["production_environment"], false);
  EXPECT_EQ(rec.line(1), "POST https://ghe.example.com/api/v3/repos/octo/app/deployments/100/statuses");
  EXPECT_EQ(rec.body(1)["state"], "in_progress");
  EXPECT_EQ(rec.line(2), "POST https://ghe.example.com/api/v3/repos/octo/app/issues/42/comments");
  EXPECT_NE(rec.body(2)["body"].get<std::string>().find("building"), std::string::npos);
  EXPECT_EQ(r.deployment_id, "100");
  EXPECT_EQ(r.comment_id, "102");

  // Ready: a status on the same deployment, the comment edited.
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  ASSERT_EQ(rec.requests.size(), 5u);
  EXPECT_EQ(rec.line(3), "POST https://ghe.example.com/api/v3/repos/octo/app/deployments/100/statuses");
  EXPECT_EQ(rec.body(3)["state"], "success");
  EXPECT_EQ(rec.body(3)["environment_url"], "https://pr-42-feature-abc123.preview.example.com/");
  EXPECT_EQ(rec.line(4), "PATCH https://ghe.example.com/api/v3/repos/octo/app/issues/comments/102");
  std::string ready = rec.body(4)["body"];
  EXPECT_NE(ready.find("https://pr-42-feature-abc123.preview.example.com/"), std::string::npos);
  EXPECT_NE(ready.find("4h without visits"), std::string::npos) << ready;
  EXPECT_NE(ready.find("prevue extend pr-42-feature-abc123 1d"), std::string::npos) << ready;

  // The same report again sends nothing.
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.requests.size(), 5u);

  // A push: a new deployment for the new commit, still the one comment.
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kPending, kSha2), rec.transport()).ok());
  EXPECT_EQ(rec.line(5), "POST https://ghe.example.com/api/v3/repos/octo/app/deployments");
  EXPECT_EQ(rec.body(5)["ref"], kSha2);
  EXPECT_EQ(rec.line(7), "PATCH https://ghe.example.com/api/v3/repos/octo/app/issues/comments/102");

  // Teardown: inactive.
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kInactive, kSha2), rec.transport()).ok());
  EXPECT_EQ(rec.body(8)["state"], "inactive");
  EXPECT_FALSE(rec.body(8).contains("environment_url"));
  EXPECT_NE(rec.body(9)["body"].get<std::string>().find("removed"), std::string::npos);
  int comments_created = 0;
  for (const auto& q : rec.requests) comments_created += q.method == "POST" && q.url.find("/comments") != std::string::npos;
  EXPECT_EQ(comments_created, 1);
}

TEST(GitHubReport, CommitStatusWhenDeploymentsAreOff) {
  Recorder rec;
  auto s = settings("github", "https://api.github.com");
  s.deployments = false;
  s.comment = false;
  ReportRecord r = record("github", "octo/app");
  PreviewReport failed = preview(ReportState::kFailure, kSha1);
  failed.reason = "build: exit status 2 " + std::string(300, 'x');
  ASSERT_TRUE(send_report(s, r, failed, rec.transport()).ok());
  ASSERT_EQ(rec.requests.size(), 1u);
  EXPECT_EQ(rec.line(0), "POST https://api.github.com/repos/octo/app/statuses/" + kSha1);
  json body = rec.body(0);
  EXPECT_EQ(body["state"], "failure");
  EXPECT_EQ(body["context"], "prevue");
  EXPECT_LE(body["description"].get<std::string>().size(), 140u);  // GitHub's limit
}

TEST(GitHubReport, FailureKeepsWhatTheHostAcceptedAndRetriesTheRest) {
  Recorder rec;
  auto s = settings("github", "https://api.github.com");
  ReportRecord r = record("github", "octo/app");
  rec.script = {ClientResponse{201, R"({"id": 7})", ""}, ClientResponse{500, "oops", ""}};
  Status first = send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport());
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message.find("answered 500"), std::string::npos);
  EXPECT_EQ(first.error().message.find("tok-123"), std::string::npos);
  EXPECT_EQ(r.deployment_id, "7");
  EXPECT_EQ(r.sent_status, "");
  // The next try reuses the deployment rather than making another.
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(2), "POST https://api.github.com/repos/octo/app/deployments/7/statuses");
}

TEST(GitHubReport, ACommentDeletedOnTheHostIsWrittenAnew) {
  Recorder rec;
  auto s = settings("github", "https://api.github.com");
  s.deployments = false;
  ReportRecord r = record("github", "octo/app");
  r.comment_id = "55";
  rec.script = {ClientResponse{201, "{}", ""}, ClientResponse{404, R"({"message":"Not Found"})", ""}};
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(1), "PATCH https://api.github.com/repos/octo/app/issues/comments/55");
  EXPECT_EQ(rec.line(2), "POST https://api.github.com/repos/octo/app/issues/42/comments");
  EXPECT_EQ(r.comment_id, "100");
}

TEST(GitLabReport, CommitStatusAndOneNote) {
  Recorder rec;
  auto s = settings("gitlab", "https://gitlab.example.com/api/v4");
  ReportRecord r = record("gitlab", "15", 3);
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kPending, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(0), "POST https://gitlab.example.com/api/v4/projects/15/statuses/" + kSha1);
  EXPECT_EQ(rec.header(0, "PRIVATE-TOKEN"), "tok-123");
  EXPECT_EQ(rec.header(0, "Authorization"), "<absent>");
  EXPECT_EQ(rec.body(0)["state"], "running");
  EXPECT_EQ(rec.body(0)["name"], "prevue");
  EXPECT_EQ(rec.line(1), "POST https://gitlab.example.com/api/v4/projects/15/merge_requests/3/notes");
  // GitLab refuses a repeated transition; that is no failure.
  rec.script = {ClientResponse{400, R"({"message":"Cannot transition status via :run from :running"})", ""}};
  r.sent_status.clear();
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kPending, kSha1), rec.transport()).ok());
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.requests.size(), 5u);  // the refused repeat (2), then the status (3) and the note (4)
  EXPECT_EQ(rec.body(3)["state"], "success");
  EXPECT_EQ(rec.body(3)["target_url"], "https://pr-42-feature-abc123.preview.example.com/");
  EXPECT_EQ(rec.line(4), "PUT https://gitlab.example.com/api/v4/projects/15/merge_requests/3/notes/101");
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kInactive, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.body(5)["state"], "canceled");
}

TEST(GitLabReport, AProjectPathIsOneEncodedSegment) {
  Recorder rec;
  auto s = settings("gitlab", "https://gitlab.com/api/v4");
  s.comment = false;
  ReportRecord r = record("gitlab", "group/sub/app");
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(0), "POST https://gitlab.com/api/v4/projects/group%2Fsub%2Fapp/statuses/" + kSha1);
}

TEST(GiteaReport, StatusAndCommentWithTokenAuth) {
  Recorder rec;
  auto s = settings("gitea", "https://git.example.com/api/v1");
  ReportRecord r = record("gitea", "team/app", 9);
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(0), "POST https://git.example.com/api/v1/repos/team/app/statuses/" + kSha1);
  EXPECT_EQ(rec.header(0, "Authorization"), "token tok-123");
  EXPECT_EQ(rec.body(0)["state"], "success");
  EXPECT_EQ(rec.body(0)["target_url"], "https://pr-42-feature-abc123.preview.example.com/");
  EXPECT_EQ(rec.line(1), "POST https://git.example.com/api/v1/repos/team/app/issues/9/comments");
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kFailure, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.body(2)["state"], "failure");
  EXPECT_EQ(rec.line(3), "PATCH https://git.example.com/api/v1/repos/team/app/issues/comments/101");
}

TEST(BitbucketReport, CloudAndDataCenterBuildStatuses) {
  Recorder rec;
  auto cloud = settings("bitbucket", "");
  ReportRecord r = record("bitbucket", "work-space/app");
  ASSERT_TRUE(send_report(cloud, r, preview(ReportState::kPending, kSha1), rec.transport()).ok());
  ASSERT_EQ(rec.requests.size(), 1u);  // a build status, no comment
  EXPECT_EQ(rec.line(0), "POST https://api.bitbucket.org/2.0/repositories/work-space/app/commit/" + kSha1 + "/statuses/build");
  EXPECT_EQ(rec.header(0, "Authorization"), "Bearer tok-123");
  json body = rec.body(0);
  EXPECT_EQ(body["key"], "prevue");
  EXPECT_EQ(body["state"], "INPROGRESS");
  EXPECT_EQ(body["url"], "https://pr-42-feature-abc123.preview.example.com/");
  ASSERT_TRUE(send_report(cloud, r, preview(ReportState::kInactive, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.body(1)["state"], "STOPPED");

  auto dc = settings("bitbucket-datacenter", "https://bitbucket.example.com");
  ReportRecord d = record("bitbucket-datacenter", "PROJ/app");
  ASSERT_TRUE(send_report(dc, d, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(2), "POST https://bitbucket.example.com/rest/api/latest/projects/PROJ/repos/app/commits/" + kSha1 + "/builds");
  EXPECT_EQ(rec.body(2)["state"], "SUCCESSFUL");
}

TEST(Report, HostileNamesStayInsideTheirPathSegment) {
  Recorder rec;
  auto s = settings("github", "https://api.github.com");
  s.deployments = false;
  s.comment = false;
  ReportRecord r = record("github", "../../x/y");
  EXPECT_FALSE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  r.host_repo = "a b?/c#d";
  ASSERT_TRUE(send_report(s, r, preview(ReportState::kSuccess, kSha1), rec.transport()).ok());
  EXPECT_EQ(rec.line(0), "POST https://api.github.com/repos/a%20b%3F/c%23d/statuses/" + kSha1);
  // A sha that is not one is not put in a path at all.
  EXPECT_FALSE(send_report(s, r, preview(ReportState::kSuccess, "../../../etc"), rec.transport()).ok());
  EXPECT_EQ(rec.requests.size(), 1u);
}

TEST(Report, CommentSaysWhenTheLeaseEndsAndHowToExtend) {
  PreviewReport p = preview(ReportState::kSuccess, kSha1);
  std::string text = comment_body(p);
  EXPECT_NE(text.find("ready"), std::string::npos);
  EXPECT_NE(text.find("2030-03-17 17:46 UTC"), std::string::npos) << text;
  p.pinned = true;
  EXPECT_NE(comment_body(p).find("pinned"), std::string::npos);
  p.sleeping = true;
  EXPECT_NE(comment_body(p).find("asleep"), std::string::npos);
}

// ---- the client against real servers on loopback ---------------------------------

class LocalServer {
 public:
  explicit LocalServer(HttpHandler handler) {
    auto started = HttpServer::start(io_, "127.0.0.1", 0, std::move(handler), 1 << 20);
    EXPECT_TRUE(started.ok());
    server_ = std::move(started).value();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~LocalServer() {
    server_->stop();
    io_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server_->port()) + path; }

 private:
  boost::asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST(HttpClient, RetriesServerErrorsWithBackoffThenSucceeds) {
  std::atomic<int> calls{0};
  std::string seen_auth, seen_body;
  LocalServer server([&](const HttpRequest& r) {
    if (++calls < 3) return HttpResponse{503, "text/plain", "busy", {}};
    seen_auth = r.header("authorization");
    seen_body = r.body;
    return HttpResponse{201, "application/json", R"({"id": 1})", {}};
  });
  ClientOptions options;
  options.backoff = Millis(10);
  int tries = 0;
  auto r = http_call_with_retries({"POST", server.url("/x"), {{"Authorization", "Bearer t"}}, R"({"a":1})"}, options, &tries);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(tries, 3);
  EXPECT_EQ(seen_auth, "Bearer t");
  EXPECT_EQ(seen_body, R"({"a":1})");
}

TEST(HttpClient, ClientErrorsAreNotRetried) {
  std::atomic<int> calls{0};
  LocalServer server([&](const HttpRequest&) {
    ++calls;
    return HttpResponse{422, "application/json", R"({"message":"Validation Failed"})", {}};
  });
  ClientOptions options;
  options.backoff = Millis(10);
  auto r = http_call_with_retries({"POST", server.url("/x"), {}, "{}"}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(calls.load(), 1);
}

// A keep-alive HTTP/1.1 server on loopback that counts the connections it
// accepts; with `close_after_each` it drops each connection after one
// answer without saying so (as a host whose idle timeout is short would).
class CountingServer {
 public:
  explicit CountingServer(bool close_after_each = false) : close_after_each_(close_after_each) {
    thread_ = std::thread([this] {
      for (;;) {
        boost::asio::ip::tcp::socket socket(io_);
        boost::system::error_code ec;
        acceptor_.accept(socket, ec);
        if (ec || stopping_) return;
        ++connections;
        std::lock_guard lock(mutex_);
        sockets_.insert(socket.native_handle());
        workers_.emplace_back([this, socket = std::move(socket)]() mutable { serve(std::move(socket)); });
      }
    });
  }
  ~CountingServer() {
    stopping_ = true;
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);  // wakes the blocking accept
    thread_.join();
    // The client keeps connections alive: end them, or their readers wait for good.
    {
      std::lock_guard lock(mutex_);
      for (int fd : sockets_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + path; }
  std::atomic<int> connections{0};
  std::atomic<int> requests{0};

 private:
  void serve(boost::asio::ip::tcp::socket socket) {
    struct Forget {  // closed with the socket: not shut down again by number
      CountingServer* server;
      int fd;
      ~Forget() {
        std::lock_guard lock(server->mutex_);
        server->sockets_.erase(fd);
      }
    } forget{this, socket.native_handle()};
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(socket, buffer, req, ec);
      if (ec) return;
      ++requests;
      http::response<http::string_body> res{http::status::ok, 11};
      res.body() = "{\"n\": " + std::to_string(requests.load()) + "}";
      res.keep_alive(true);
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || close_after_each_) return;
    }
  }
  bool close_after_each_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::set<int> sockets_;  // open connections
  std::vector<std::thread> workers_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  std::thread thread_;
};

TEST(HttpClient, CallsToOneHostReuseOneConnection) {
  CountingServer server;
  for (int i = 1; i <= 5; ++i) {
    auto r = http_call({i % 2 ? "GET" : "POST", server.url("/repos/o/r/statuses"), {}, i % 2 ? "" : "{}"}, ClientOptions{});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body, "{\"n\": " + std::to_string(i) + "}");
  }
  EXPECT_EQ(server.requests.load(), 5);
  EXPECT_EQ(server.connections.load(), 1);
}

TEST(HttpClient, AConnectionTheServerDroppedIsReplacedNotAnError) {
  CountingServer server(/*close_after_each=*/true);
  for (int i = 1; i <= 4; ++i) {
    auto r = http_call({"GET", server.url("/x"), {}, ""}, ClientOptions{});
    ASSERT_TRUE(r.ok()) << "call " << i << ": " << r.error().message;
  }
  EXPECT_EQ(server.requests.load(), 4) << "each request reached the server once";
  EXPECT_EQ(server.connections.load(), 4);
}

TEST(HttpClient, AServerThatNeverAnswersTimesOut) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});  // accepts (backlog), never reads
  ClientOptions options;
  options.timeout = Millis(300);
  options.attempts = 2;
  options.backoff = Millis(10);
  int tries = 0;
  auto started = std::chrono::steady_clock::now();
  auto r = http_call_with_retries({"GET", "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/", {}, ""}, options, &tries);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(tries, 2);
  // Bounded by the deadline (generously: no timing assertion on a shared machine beyond "it did stop").
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

TEST(HttpClient, RefusedConnectionsAndBadUrlsAreErrors) {
  ClientOptions options;
  options.attempts = 1;
  boost::asio::io_context io;
  unsigned short port;
  {
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto refused = http_call({"GET", "http://127.0.0.1:" + std::to_string(port) + "/", {}, ""}, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kIo);
  for (const char* bad : {"ftp://x/", "http://", "http://user@host/", "http://[::1/", "http://h:99999999/", "http://h:0/", "http://h:x/", "mailto:a@b"}) {
    auto r = http_call({"GET", bad, {}, ""}, options);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
  }
}

// What the host is told, from what the store says (preview_report).
struct Facts {
  PullRequestRecord pr;
  std::optional<EnvironmentRecord> env;
  std::optional<LeaseRecord> lease;
  std::string building;
  std::optional<PreviewReport> report() const {
    return preview_report({pr, env, lease, building, "pr-42-feature-abc123", "http://pr-42-feature-abc123.prevue.test/"});
  }
};

Facts facts(EnvState state) {
  Facts f;
  f.pr.repo_id = 1;
  f.pr.pr = 42;
  f.pr.head_sha = kSha2;
  EnvironmentRecord e;
  e.id = 3;
  e.slug = "pr-42-feature-abc123";
  e.state = state;
  e.commit_sha = kSha2;
  e.deployed_sha = kSha1;
  e.url = "http://pr-42-feature-abc123.prevue.test/";
  f.env = e;
  return f;
}

TEST(PreviewState, ABuildInFlightIsPendingForItsCommitWithTheLinkAlreadyKnown) {
  Facts f;
  f.pr.head_sha = kSha2;
  f.building = kSha2;
  auto r = f.report();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, ReportState::kPending);
  EXPECT_EQ(r->sha, kSha2);
  EXPECT_EQ(r->url, "http://pr-42-feature-abc123.prevue.test/");  // shows the building page meanwhile
  EXPECT_EQ(r->extend_hint, "prevue extend pr-42-feature-abc123 1d");
  f.building.clear();
  EXPECT_FALSE(f.report()) << "nothing built, nothing building: nothing to say";
}

TEST(PreviewState, ReadySleepingAndFailedSayWhatTheyAre) {
  Facts ready = facts(EnvState::kReady);
  ready.lease = LeaseRecord{3, 3'600'000, 600'000, EndAction::kSleep, 0, 1'900'000'000'000, 0, true, 0};
  auto r = ready.report();
  EXPECT_EQ(r->state, ReportState::kSuccess);
  EXPECT_FALSE(r->sleeping);
  EXPECT_EQ(r->lease_expires_at_ms, 1'900'000'000'000);
  EXPECT_EQ(r->idle_ms, 600'000);
  EXPECT_TRUE(r->pinned);
  EXPECT_EQ(r->lease_end, "sleep");
  EXPECT_TRUE(facts(EnvState::kSleeping).report()->sleeping);
  Facts failed = facts(EnvState::kFailed);
  failed.env->failed_step = "apply";
  failed.env->error = "web exited 1";
  EXPECT_EQ(failed.report()->state, ReportState::kFailure);
  EXPECT_EQ(failed.report()->reason, "apply: web exited 1");
}

TEST(PreviewState, TheCommentSaysALeaseEndsSoonOnceItsWindowStartsAndChangesOnlyThen) {
  Facts ready = facts(EnvState::kReady);
  const std::int64_t deadline = 1'900'000'000'000;
  ready.lease = LeaseRecord{3, 72LL * 3'600'000, 864'000'000, EndAction::kDestroy, 0, deadline, deadline, false, 0};  // the TTL ends first
  const Millis window(24LL * 3'600'000);
  auto comment_at = [&](std::int64_t now) {
    auto r = preview_report({ready.pr, ready.env, ready.lease, "", "pr-42-feature-abc123", "http://x/", now, window});
    return comment_body(*r);
  };
  // Before the window: the usual text, the same at every report (no edit).
  const std::string before = comment_at(deadline - window.count() - 60'000);
  EXPECT_EQ(before.find("Ending soon"), std::string::npos);
  EXPECT_EQ(comment_at(deadline - window.count() - 1), before);
  // In the window: one new text (one edit), which later reports repeat.
  const std::string warned = comment_at(deadline - window.count());
  EXPECT_NE(warned, before);
  EXPECT_NE(warned.find("**Ending soon:** the preview is removed on 2030-03-17 17:46 UTC. Keep it longer with `prevue extend "
                        "pr-42-feature-abc123 1d`."),
            std::string::npos)
      << warned;
  EXPECT_EQ(comment_at(deadline - 60'000), warned);
  // Pinned, or no warning configured: nothing ends soon.
  ready.lease->pinned = true;
  EXPECT_EQ(comment_at(deadline - 60'000).find("Ending soon"), std::string::npos);
  ready.lease->pinned = false;
  EXPECT_EQ(comment_body(*preview_report({ready.pr, ready.env, ready.lease, "", "s", "u", deadline - 60'000, Millis(0)})).find("Ending soon"),
            std::string::npos);
  // An idle limit that ends the lease: warned for half of it at most (a day's limit, not all day).
  ready.lease = LeaseRecord{3, 72LL * 3'600'000, 4LL * 3'600'000, EndAction::kSleep, 0, deadline + 86'400'000, deadline - 4LL * 3'600'000, false, 0};
  EXPECT_EQ(comment_at(deadline - 2LL * 3'600'000 - 1).find("Ending soon"), std::string::npos);
  EXPECT_NE(comment_at(deadline - 2LL * 3'600'000).find("**Ending soon:** the preview goes to sleep on"), std::string::npos);
  // Removed: the comment changes again, and says why.
  Facts gone = facts(EnvState::kDestroyed);
  gone.lease = ready.lease;
  auto removed = comment_body(*preview_report({gone.pr, gone.env, gone.lease, "", "s", "u", deadline + 1, window}));
  EXPECT_NE(removed, warned);
  EXPECT_NE(removed.find("**Preview: removed** (its lease ran out"), std::string::npos) << removed;
}

TEST(PreviewState, ARemovedPreviewSaysWhyForTheCommitThatRan) {
  Facts gone = facts(EnvState::kDestroyed);
  gone.pr.status = PrStatus::kMerged;
  EXPECT_EQ(gone.report()->state, ReportState::kInactive);
  EXPECT_EQ(gone.report()->reason, "pull request merged");
  EXPECT_EQ(gone.report()->sha, kSha1);  // the deployed commit, not the newest
  gone.pr.status = PrStatus::kOpen;
  EXPECT_EQ(gone.report()->reason, "its lease ran out; the next push brings it back");
  auto destroyed = preview_report({gone.pr, gone.env, gone.lease, "", "s", "u", 0, Millis(0), "api token (dashboard)"});
  EXPECT_EQ(destroyed->reason, "destroyed by api token (dashboard); the next push brings it back");  // by whom
  EXPECT_FALSE(facts(EnvState::kDestroying).report()) << "mid-teardown: the outcome is reported, not the step";
}

}  // namespace
}  // namespace prevue
