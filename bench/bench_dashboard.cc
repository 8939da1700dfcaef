// The dashboard's first page with 1,000 previews: what the browser asks for
// (the page, then GET /api/v1/environments with the session cookie) from
// the daemon's own API server and handlers on a real state database, timed
// at the client over loopback. Printed beside the budget (50 ms)
// and beside the same server's cheapest answer (/healthz), measured in the
// same run: the fixed cost of a round trip.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include "daemon/api.h"
#include "daemon/dashboard.h"
#include "daemon/sessions.h"
#include "store/store.h"

namespace {

using namespace prevue;
namespace fs = std::filesystem;

constexpr int kPreviews = 1000;
constexpr int kRounds = 30;

struct QuietDaemon final : ApiDaemon {
  size_t operations_in_flight() const override { return 0; }
  std::string metrics_text() override { return ""; }
  nlohmann::json dns_of(const EnvironmentRecord&) const override { return nlohmann::json{{"state", "published"}}; }
  void destroy(const EnvironmentRecord&, const std::string&) override {}
  void lease_changed(const EnvironmentRecord&, const LeaseRecord&, bool) override {}
  int poll(const std::string&) override { return 0; }
  AccessMode access_of(const EnvironmentRecord&) const override { return AccessMode::kLogin; }
  std::string share_token(const EnvironmentRecord&, const ShareLinkRecord&) const override { return ""; }
  void share_links_changed() override {}
  Result<Accepted> create(const std::string&, long, const std::string&, const std::string&) override { return Accepted{}; }
  Status redeploy(const EnvironmentRecord&) override { return {}; }
  void put_to_sleep(const EnvironmentRecord&, const std::string&) override {}
  void wake(const EnvironmentRecord&) override {}
};

// One GET over a fresh loopback connection: (milliseconds, status, body size).
struct Reply {
  double ms = 0;
  int status = 0;
  size_t bytes = 0;
};

Reply get(unsigned short port, const std::string& path, const std::string& cookie) {
  auto started = std::chrono::steady_clock::now();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  Reply r;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + cookie + "\r\nConnection: close\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buffer[65536];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (response.size() > 12) r.status = std::atoi(response.c_str() + 9);
  r.bytes = response.size();
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double worst(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

}  // namespace

int main() {
  fs::path dir = fs::temp_directory_path() / ("prevue-bench-dashboard-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  SystemClock clock;
  auto store = Store::open((dir / "prevue.db").string(), clock).value();
  auto repo = store->upsert_repository("https://git.example.com/team/app.git", "app", (dir / "mirror").string()).value();
  const std::int64_t now = clock.now_ms();
  for (int pr = 1; pr <= kPreviews; ++pr) {
    EnvironmentRecord e;
    e.repo_id = repo.id;
    e.pr = pr;
    e.slug = "pr-" + std::to_string(pr) + "-feature-" + std::to_string(100000 + pr);
    e.ref = "feature/" + std::to_string(pr);
    e.dir = (dir / "envs" / e.slug).string();
    e = store->insert_environment(e).value();
    e.state = EnvState::kReady;
    e.commit_sha = e.deployed_sha = std::string(40, 'a');
    e.url = "http://" + e.slug + ".prevue.example.com/";
    e.layers = {{"main", "local"}};
    (void)store->update_environment(e);
    (void)store->replace_routes(e.id, {{e.slug + ".prevue.example.com", e.id, "web", "web", Endpoint{"127.0.0.1", static_cast<unsigned short>(20000 + pr)}}});
    (void)store->upsert_lease(LeaseRecord{e.id, 72LL * 3'600'000, 24LL * 3'600'000, EndAction::kSleep, 0, now + 72LL * 3'600'000, now, false, 0});
  }

  auto key = std::make_shared<const AccessKey>("bench-key");
  Sessions sessions(*store, clock, "bench-token", key, Millis(3'600'000));
  QuietDaemon daemon;
  Api api(*store, clock, sessions, daemon, std::make_shared<ChangeFeed>());
  Dashboard dashboard(sessions, key, [](const std::string&) { return std::nullopt; });
  std::string cookie = sessions.sign_in_with_token("bench-token", false).value();
  cookie = cookie.substr(0, cookie.find(';'));

  boost::asio::io_context ctx;
  auto work = boost::asio::make_work_guard(ctx);
  auto server = HttpServer::start(ctx, "127.0.0.1", 0, [&](const HttpRequest& r) {
    if (auto page = dashboard.handle(r)) return std::move(*page);
    return api.handle(r);
  }, 1 << 20).value();
  std::thread runner([&] { ctx.run(); });
  const unsigned short port = server->port();

  std::vector<double> first_page, page, list, health;
  size_t list_bytes = 0;
  for (int i = 0; i < kRounds; ++i) {
    Reply p = get(port, "/", cookie), l = get(port, "/api/v1/environments", cookie), h = get(port, "/healthz", "");
    if (p.status != 200 || l.status != 200 || h.status != 200) {
      std::fprintf(stderr, "bench_dashboard: unexpected answer (%d, %d, %d)\n", p.status, l.status, h.status);
      return 1;
    }
    page.push_back(p.ms);
    list.push_back(l.ms);
    health.push_back(h.ms);
    first_page.push_back(p.ms + l.ms);
    list_bytes = l.bytes;
  }
  server->stop();
  work.reset();
  ctx.stop();
  runner.join();
  fs::remove_all(dir);

  const double budget = 50.0;
  std::printf("dashboard first page with %d previews, %d rounds (the page, then the list: %zu bytes of JSON)\n", kPreviews, kRounds, list_bytes);
  std::printf("  page %.2f ms, list %.2f ms (median); first page worst %.2f ms; /healthz %.3f ms\n", median(page), median(list),
              worst(first_page), median(health));
  std::printf("%-44s prevue %10.2f ms   | %-28s %10.2f ms   | ratio %.2fx of it\n", "first page, 1,000 previews (median)",
              median(first_page), "budget (issue 16)", budget, median(first_page) / budget);
  std::printf("%-44s prevue %10.2f ms   | %-28s %10.3f ms   | ratio %.1fx of it\n", "first page, 1,000 previews (median)",
              median(first_page), "same server's /healthz", median(health), median(first_page) / median(health));
  return 0;
}
