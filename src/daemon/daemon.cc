#include "daemon/daemon.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <set>

#include "core/claim_owner.h"
#include "core/endpoint.h"
#include "core/files.h"
#include "core/redact.h"
#include "core/slug.h"
#include "daemon/api.h"
#include "daemon/dashboard.h"
#include "daemon/sessions.h"
#include "daemon/dns_publisher.h"
#include "daemon/lease_keeper.h"
#include "daemon/poller.h"
#include "daemon/dispatcher.h"
#include "daemon/route_view.h"
#include "daemon/webhook_intake.h"
#include "daemon/logger.h"
#include "daemon/metrics.h"
#include "dns/dns_backend.h"
#include "engine/engine.h"
#include "engine/events.h"
#include "engine/maintenance.h"
#include "engine/reconcile.h"
#include "git/git_mirror.h"
#include "http/http.h"
#include "lease/lease_scheduler.h"
#include "report/preview_state.h"
#include "report/reporter.h"
#include "webhook/normalize.h"
#include "webhook/signature.h"

namespace prevue {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {



constexpr size_t kApiMaxBody = 1 << 20;  // the JSON API's own requests are small


}  // namespace

// Timers on the daemon's io_context, read against its clock.
class AsioTimers final : public Timers {
 public:
  AsioTimers(asio::io_context& io, const Clock& clock) : io_(io), clock_(clock) {}
  void at(Id id, std::int64_t at_ms, std::function<void()> fire) override {
    auto& timer = timers_[id];
    if (!timer) timer = std::make_unique<asio::steady_timer>(io_);
    // Setting the expiry aborts the wait it replaces.
    timer->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(0, at_ms - clock_.now_ms())));
    timer->async_wait([fire = std::move(fire)](const boost::system::error_code& ec) {
      if (!ec) fire();
    });
  }
  void cancel(Id id) override {
    if (auto it = timers_.find(id); it != timers_.end()) it->second->cancel();
  }
  void post(std::function<void()> work) override { asio::post(io_, std::move(work)); }

 private:
  asio::io_context& io_;
  const Clock& clock_;
  std::map<Id, std::unique_ptr<asio::steady_timer>> timers_;
};

struct Daemon::Impl {
  Config config;
  EngineConfig engine_config;
  const Clock& clock;
  SubprocessRunner runner;
  asio::io_context main;
  std::unique_ptr<asio::thread_pool> workers;
  std::unique_ptr<asio::thread_pool> git_pool;
  std::unique_ptr<Store> store;  // the main thread's connection
  RouteTable routes;
  Metrics metrics;
  AsioTimers lease_timers{main, clock};
  std::unique_ptr<LeaseKeeper> leases;  // on the main thread's store connection
  std::unique_ptr<DnsPublisher> dns;
  // The last set handed to the publisher; none before the first, which is
  // always sent (the reconcile at start), even when it is empty.
  std::optional<DnsPublisher::HostMap> dns_requested;
  struct DnsState {
    bool published = false;
    std::vector<std::string> names;  // what is published
    std::string error;               // the last failure, while not published
  };
  std::map<std::int64_t, DnsState> dns_state;  // by environment
  std::unique_ptr<HttpServer> api;
  std::unique_ptr<Proxy> proxy;
  std::unique_ptr<Reporter> reporter;
  asio::steady_timer reconcile_timer{main};
  asio::steady_timer liveness_timer{main};
  std::unique_ptr<asio::thread_pool> liveness_pool;  // asks providers whether ready environments still run
  size_t liveness_cursor = 0;                         // where the next batch starts
  static constexpr size_t kLivenessBatch = 50;        // environments asked per pass
  std::vector<std::unique_ptr<asio::steady_timer>> poll_timers;
  AsioTimers dispatch_timers{main, clock};
  Dispatcher dispatcher{clock, dispatch_timers, [this](const Operation& op) { run_operation(op); },
                        [this] {
                          if (!stopping) reconcile();
                        }};
  std::map<std::int64_t, std::int64_t> wake_requested;  // env -> when
  std::set<std::int64_t> polls_running;
  std::map<std::int64_t, RepositoryRecord> repos;  // watched, by id
  std::map<std::int64_t, WatchedRepository> watched;
  std::unique_ptr<WebhookIntake> webhooks;  // on the webhook threads; fixed after start
  std::unique_ptr<InboxWriter> inbox;  // group commit for the webhook threads
  std::atomic<bool> stopping{false};  // read by the liveness thread too
  std::mutex delivered_mutex;
  std::map<PrKey, bool> delivered;  // pull requests webhooks touched since the last batch (value: labels changed)
  static constexpr std::chrono::milliseconds kDeliveryBatchInterval{5};
  std::chrono::steady_clock::time_point next_delivery_batch;
  asio::steady_timer delivery_timer{main};
  // Work posted to `main` once however often it is asked for before it runs.
  struct CoalescedPost {
    bool pending = false;
    void operator()(asio::io_context& ctx, std::function<void()> work) {
      if (pending) return;
      pending = true;
      asio::post(ctx, [this, work = std::move(work)] {
        pending = false;
        work();
      });
    }
  };
  CoalescedPost reconcile_soon;
  std::uint64_t api_requests = 0;  // makes each API request's event id unique
  const ClaimOwner owner = ClaimOwner::self("daemon");

  Impl(Config c, const Clock& clk) : config(std::move(c)), clock(clk) {}
  ~Impl() {
    if (state_lock >= 0) ::close(state_lock);
  }

  // ---- per-thread store and engine ------------------------------------------

  Store& thread_store() {
    thread_local std::unique_ptr<Store> local;
    if (!local) {
      auto opened = Store::open((config.state_dir / "prevue.db").string(), clock);
      if (!opened.ok()) throw std::runtime_error(opened.error().message);
      local = std::move(opened).value();
    }
    return *local;
  }

  // ---- start ------------------------------------------------------------------

  // One daemon per state directory: a second one would split the work and
  // overwrite serve.json. An flock on serve.lock, held while the daemon runs
  // and dropped by the kernel however it ends (kill -9 included); not
  // inherited by the processes it starts (O_CLOEXEC).
  int state_lock = -1;
  bool lock_state_dir() {
    auto path = config.state_dir / "serve.lock";
    state_lock = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (state_lock < 0) {
      std::cerr << "prevue serve: cannot open " << path.string() << ": " << std::strerror(errno) << "\n";
      return false;
    }
    if (::flock(state_lock, LOCK_EX | LOCK_NB) == 0) return true;
    std::string who = "another prevue serve";
    if (auto text = read_file(config.state_dir / "serve.json"); text.ok()) {
      auto info = json::parse(*text, nullptr, false);
      if (info.is_object() && info.contains("pid"))
        who += " (pid " + info["pid"].dump() + ", api " + info.value("api", "?") + ", proxy port " +
               (info.contains("proxy_port") ? info["proxy_port"].dump() : "?") + ")";
    }
    std::cerr << "prevue serve: " << who << " is already using the state directory " << config.state_dir.string()
              << "; stop it first, or give this one another state_dir\n";
    return false;
  }

  // Every proxied connection costs two descriptors: the soft limit (often
  // 1024) is raised to the hard one (systemd's LimitNOFILE, see
  // scripts/systemd/prevue.service), which the proxy's connection cap follows.
  static void raise_descriptor_limit() {
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) log_event("serve.rlimit_failed", "error=" + json_quoted(std::strerror(errno)));
  }

  int start() {
    std::error_code ec;
    std::filesystem::create_directories(config.state_dir, ec);
    if (!lock_state_dir()) return 1;
    raise_descriptor_limit();
    auto opened = Store::open((config.state_dir / "prevue.db").string(), clock);
    if (!opened.ok()) {
      std::cerr << "prevue serve: " << opened.error().message << "\n";
      return 1;
    }
    store = std::move(opened).value();
    LeaseRequests lease_requests;
    lease_requests.sleep = [this](const EnvironmentRecord& e, const std::string& why) { put_to_sleep(e, why); };
    lease_requests.destroy = [this](const EnvironmentRecord& e, const std::string& why) {
      dispatch({e.repo_id, e.pr}, OpKind::kDown, "", "", e.slug, why);
    };
    lease_requests.wake = [this](const EnvironmentRecord& e, const std::string& why) {
      dispatch({e.repo_id, e.pr}, OpKind::kUp, e.deployed_sha, e.ref, e.slug, why);
    };
    leases = std::make_unique<LeaseKeeper>(*store, clock, lease_timers,
                                           LeaseKeeperSettings{static_cast<size_t>(config.expiry_batch), config.activity_flush},
                                           std::move(lease_requests), metrics);
    auto inbox_store = Store::open((config.state_dir / "prevue.db").string(), clock);
    if (!inbox_store.ok()) {
      std::cerr << "prevue serve: " << inbox_store.error().message << "\n";
      return 1;
    }
    inbox = std::make_unique<InboxWriter>(std::move(inbox_store).value());
    init_git_library();

    dns = std::make_unique<DnsPublisher>(make_dns_backend(config),
                                         [this](const DnsPublisher::HostMap& hosts, const Status& status, bool reconciled) {
                                           asio::post(main, [this, hosts, status, reconciled] { dns_outcome(hosts, status, reconciled); });
                                         });

    // The proxy first: its port is part of every environment's link.
    ProxyOptions po{config.proxy.host,         config.proxy.port,   config.proxy_threads, config.max_header_bytes,
                    config.max_body_bytes,     config.proxy_timeout, config.wake_timeout};
    po.header_timeout = config.header_timeout;
    po.body_timeout = config.body_timeout;
    po.min_body_rate = static_cast<size_t>(config.min_body_rate);
    po.max_connections = static_cast<size_t>(config.max_connections);
    po.max_connections_per_client = static_cast<size_t>(config.max_connections_per_client);
    if (!config.tls_cert_file.empty()) {
      po.tls_host = config.tls_listen.host;
      po.tls_port = config.tls_listen.port;
      po.tls_cert_file = config.tls_cert_file.string();
      po.tls_key_file = config.tls_key_file.string();
      po.redirect_to_https = config.redirect_http;
    }
    // The key that signs share links and access cookies: kept in the state, so
    // links and sessions outlive a restart.
    auto key = kept_secret(config.state_dir / "access-key", [] { return random_hex(32); });
    if (!key.ok()) {
      std::cerr << "prevue serve: the access key: " << key.error().message << "\n";
      return 1;
    }
    access_key = std::make_shared<const AccessKey>(*key);
    po.access_key = access_key;
    po.dashboard_url = dashboard_url;
    po.login_session = kSessionTtl;
    sessions = std::make_unique<Sessions>(*store, clock, config.api_token, access_key, kSessionTtl);
    api_handler = std::make_unique<Api>(*store, clock, *sessions, api_bridge, changes, config.share_link_ttl);
    dashboard = std::make_unique<Dashboard>(*sessions, access_key, [this](const std::string& host) -> std::optional<std::string> {
      auto table = routes.snapshot();
      auto found = table->find(ascii_lower(host));
      if (found == table->end() || found->second.access.mode != AccessMode::kLogin) return std::nullopt;
      return found->second.slug;
    });
    ProxyHooks hooks;
    hooks.on_hit = [this](std::int64_t env_id) { leases->touch(env_id); };
    hooks.wake = [this](std::int64_t env_id) { asio::post(main, [this, env_id] { leases->wake(env_id); }); };
    hooks.on_status = [this](int status) { metrics.count_proxy_status(status); };
    auto started_proxy = Proxy::start(po, routes, hooks);
    if (!started_proxy.ok()) {
      std::cerr << "prevue serve: proxy: " << started_proxy.error().message << "\n";
      return 1;
    }
    proxy = std::move(started_proxy).value();

    engine_config.state_dir = config.state_dir;
    engine_config.provider_dir = config.provider_dir;
    engine_config.provider_timeout = config.provider_timeout;
    engine_config.preview_domain = config.domain;
    // The link previews get: the HTTPS listener's when there is one.
    bool https = proxy->tls_port() != 0;
    unsigned short link_port = https ? proxy->tls_port() : proxy->port();
    std::string default_url = std::string(https ? "https" : "http") + "://{host}" +
                              (link_port == (https ? 443 : 80) ? std::string() : ":" + std::to_string(link_port)) + "/";
    engine_config.public_url_template = config.public_url.empty() ? default_url : config.public_url;
    engine_config.lease_defaults = config.lease;
    engine_config.secrets = config.secrets;
    engine_config.provider_settings = config.provider_settings;
    engine_config.postgres_servers = config.postgres_servers;
    engine_config.pool_refiller = std::make_shared<pg::PoolRefiller>();  // one for every run: refills outlive them

    // Watched repositories.
    Engine engine(engine_config, *store, runner, clock);
    std::vector<WebhookIntake::Repository> webhook_repositories;
    for (const auto& w : config.repositories) {
      auto repo = engine.repository(w.url);
      if (!repo.ok()) {
        std::cerr << "prevue serve: repository " << w.url << ": " << repo.error().message << "\n";
        return 1;
      }
      repos[repo->id] = *repo;
      watched[repo->id] = w;
      // How webhooks may name it.
      WebhookIntake::Repository named{repo->id, w.names};
      named.names.push_back(repo->key);
      named.names.push_back(w.url);
      webhook_repositories.push_back(std::move(named));
    }
    webhooks = std::make_unique<WebhookIntake>(config.webhooks, webhook_repositories, *inbox, clock, metrics,
                                               [this](std::int64_t repo_id, long pr, bool labels_changed) {
                                                 note_delivery(PrKey{repo_id, pr}, labels_changed);
                                               });

    // The API after the repositories: a webhook never finds them missing.
    // Webhooks are verified and recorded on threads of their own.
    OffloadedRoutes hooks_route{"/hooks/", [this](const HttpRequest& r) { return webhooks->handle(r); }, 4, config.webhook_max_body_bytes};
    auto started_api = HttpServer::start(
        main, config.api.host, config.api.port,
        [this](const HttpRequest& r) {
          if (auto page = dashboard->handle(r)) return std::move(*page);
          return api_handler->handle(r);
        },
        kApiMaxBody, std::move(hooks_route));
    if (!started_api.ok()) {
      std::cerr << "prevue serve: api: " << started_api.error().message << "\n";
      return 1;
    }
    api = std::move(started_api).value();
    dashboard_url->set(config.api_public_url.empty() ? "http://" + config.api.host + ":" + std::to_string(api->port()) : config.api_public_url);

    ReporterOptions reporting;
    reporting.store = [this]() -> Store& { return thread_store(); };
    for (const auto& [host, settings] : config.webhooks)
      if (settings.report) reporting.hosts[host] = settings.reporting;
    reporter = std::make_unique<Reporter>(reporting, [](const std::string& event, const std::string& fields) { log_event(event, fields); });

    workers = std::make_unique<asio::thread_pool>(static_cast<size_t>(config.concurrency));
    git_pool = std::make_unique<asio::thread_pool>(1);
    liveness_pool = std::make_unique<asio::thread_pool>(1);

    recover_from_providers();
    if (Status s = leases->start(); !s.ok()) log_event("serve.leases_unread", "error=" + json_quoted(s.error().message));

    json state{{"pid", ::getpid()},
               {"api", "http://" + config.api.host + ":" + std::to_string(api->port())},
               {"api_port", api->port()},
               {"proxy_port", proxy->port()},
               {"proxy_tls_port", proxy->tls_port()},
               {"domain", config.domain}};
    (void)write_file_atomic(config.state_dir / "serve.json", state.dump(2) + "\n");
    log_event("serve.started", "api=" + config.api.host + ":" + std::to_string(api->port()) + " proxy=" + config.proxy.host + ":" +
                                   std::to_string(proxy->port()) + " domain=" + config.domain +
                                   " repositories=" + std::to_string(repos.size()));

    refresh_routes();
    reconcile();
    // What a stop or a crash kept from the hosts is sent now (what they already have is not sent again).
    if (auto targets = store->all_reports(); targets.ok())
      for (const auto& t : *targets) report({t.repo_id, t.pr});
    for (const auto& [id, w] : watched) {
      if (w.pull_requests == PullRequestSource::kWebhooks) continue;  // the host's webhooks say what happens
      poll_timers.push_back(std::make_unique<asio::steady_timer>(main));
      schedule_poll(id, *poll_timers.back(), std::chrono::milliseconds(0));
    }
    arm_reconcile_timer();
    arm_liveness_timer();
    return 0;
  }

  // Environments keep running across a restart; the store and the providers
  // are compared once at start: orphans are swept, and a ready environment
  // whose processes are gone (a reboot) is brought back by the reconciler.
  void recover_from_providers() {
    ProviderClient providers(runner, engine_config.provider_dir);
    std::vector<std::string> unlisted;
    auto orphans = find_orphans(*store, providers, engine_config, &unlisted);
    for (const auto& problem : unlisted) log_event("serve.recover_failed", "error=" + json_quoted(problem));
    if (!orphans.ok()) {
      log_event("serve.recover_failed", "error=" + json_quoted(orphans.error().message));
      return;
    }
    for (const auto& orphan : *orphans) {
      Status s = destroy_orphan(providers, *store, engine_config, orphan);
      log_event("gc.orphan_swept", "slug=" + orphan.slug + " provider=" + (orphan.provider.empty() ? "none" : orphan.provider) + " ok=" + (s.ok() ? "true" : "false"));
      metrics.gc_actions++;
    }
    auto envs = store->list_environments(false);
    if (!envs.ok()) return;
    for (auto e : *envs) {
      // After a restart, a provider that cannot say is taken as a sign too (a reboot took its state).
      if (e.state != EnvState::kReady || services_liveness(providers, engine_config, e) == Liveness::kRunning) continue;
      (void)resume_at_deployed_commit(e, "serve.recover", "processes_gone");
    }
  }

  // Provisioning at the deployed commit: the reconciler brings it back.
  bool resume_at_deployed_commit(EnvironmentRecord e, const char* event, const char* reason) {
    e.state = EnvState::kProvisioning;
    if (!store->update_environment(e).ok()) return false;
    log_event(event, "slug=" + e.slug + " reason=" + reason);
    return true;
  }

  // While the daemon runs, a ready environment whose container or process
  // died (killed by hand, out of memory) is noticed here and brought back:
  // the providers are asked off the main thread, a batch at a time, and an
  // environment an operation is busy with is left to it.
  void arm_liveness_timer() {
    if (config.liveness_interval.count() == 0) return;
    liveness_timer.expires_after(config.liveness_interval);
    liveness_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      auto envs = store->list_environments(false);
      std::vector<EnvironmentRecord> ready;
      if (envs.ok())
        for (auto& e : *envs)
          if (e.state == EnvState::kReady && !dispatcher.in_flight().count({e.repo_id, e.pr})) ready.push_back(std::move(e));
      // Each pass takes the next batch, so a large fleet is covered in turn.
      if (ready.size() > kLivenessBatch) {
        liveness_cursor %= ready.size();
        std::rotate(ready.begin(), ready.begin() + static_cast<std::ptrdiff_t>(liveness_cursor), ready.end());
        ready.resize(kLivenessBatch);
        liveness_cursor += kLivenessBatch;
      }
      asio::post(*liveness_pool, [this, ready = std::move(ready)] {
        ProviderClient providers(runner, engine_config.provider_dir);
        std::vector<EnvironmentRecord> gone;
        for (const auto& e : ready) {
          if (stopping) return;
          // Only a definite "not running": a provider that failed to answer is asked again next pass.
          if (services_liveness(providers, engine_config, e) == Liveness::kStopped) gone.push_back(e);
        }
        asio::post(main, [this, gone = std::move(gone)] {
          if (stopping) return;
          for (const auto& seen : gone) bring_back(seen);
          arm_liveness_timer();
        });
      });
    });
  }

  // Resumed at its deployed commit, unless something changed it since it was seen.
  void bring_back(const EnvironmentRecord& seen) {
    auto now = store->find_environment_by_slug(seen.slug);
    if (!now.ok() || !now->has_value() || dispatcher.in_flight().count({seen.repo_id, seen.pr})) return;
    const EnvironmentRecord& e = **now;
    if (e.state != EnvState::kReady || e.deployed_sha != seen.deployed_sha) return;
    if (!resume_at_deployed_commit(e, "env.recover", "services_not_running")) return;
    if (auto pr = store->find_pull_request(e.repo_id, e.pr); pr.ok() && pr->has_value()) reconcile_one(**pr, clock.now_ms());
  }

  // ---- reconciler ---------------------------------------------------------------

  // Many events in a burst, one reconcile pass after them.
  void request_reconcile() {
    reconcile_soon(main, [this] { reconcile(); });
  }

  // Called on the webhook threads: the main loop learns which pull requests
  // deliveries touched, and reconciles only those (not every PR ever seen).
  // One wake-up of the main loop per batch, not per delivery; during a
  // burst, a batch at most every kDeliveryBatchInterval.
  void note_delivery(PrKey key, bool labels_changed) {
    std::lock_guard lock(delivered_mutex);
    bool first = delivered.empty();
    delivered[key] = delivered[key] || labels_changed;
    if (first) asio::post(main, [this] { take_deliveries(); });
  }

  void take_deliveries() {
    auto now = std::chrono::steady_clock::now();
    if (now < next_delivery_batch) {
      delivery_timer.expires_at(next_delivery_batch);
      delivery_timer.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) take_deliveries();
      });
      return;
    }
    next_delivery_batch = now + kDeliveryBatchInterval;
    std::map<PrKey, bool> batch;
    {
      std::lock_guard lock(delivered_mutex);
      batch.swap(delivered);
    }
    std::int64_t now_ms = clock.now_ms();
    for (const auto& [key, labels_changed] : batch) {
      if (stopping) return;
      if (auto pr = store->find_pull_request(key.first, key.second); pr.ok() && pr->has_value()) reconcile_one(**pr, now_ms);
      if (labels_changed) report(key);
    }
  }

  void reconcile() {
    if (stopping) return;
    auto prs = store->list_pull_requests();
    if (!prs.ok()) {
      log_event("reconcile.failed", "error=" + json_quoted(prs.error().message));
      return;
    }
    std::int64_t now = clock.now_ms();
    for (const auto& pr : *prs) reconcile_one(pr, now);
  }

  void reconcile_one(const PullRequestRecord& pr, std::int64_t now) {
    auto env = store->find_environment(pr.repo_id, pr.pr);
    if (!env.ok()) return;
    std::optional<LeaseRecord> lease;
    if (env->has_value())
      if (auto l = store->lease_of((*env)->id); l.ok()) lease = *l;
    ReconcileDecision d = decide(pr, *env, lease, now);
    PrKey key{pr.repo_id, pr.pr};
    switch (d.action) {
      case ReconcileAction::kNone:
        break;
      case ReconcileAction::kWait:
        if (lease) leases->schedule(*lease);
        break;
      case ReconcileAction::kUp:
        dispatch(key, OpKind::kUp, d.sha, d.ref, env->has_value() ? (*env)->slug : "", d.reason);
        break;
      case ReconcileAction::kDown:
        if (env->has_value()) dispatch(key, OpKind::kDown, "", "", (*env)->slug, d.reason);
        break;
    }
  }

  void dispatch(PrKey key, OpKind kind, const std::string& sha, const std::string& ref, const std::string& slug,
                const std::string& reason) {
    Operation op{key, kind, sha, ref, slug, reason};
    if (kind == OpKind::kUp && !slug.empty())
      if (auto env = store->find_environment_by_slug(slug); env.ok() && env->has_value())
        op.from_sleep = (*env)->state == EnvState::kSleeping;
    dispatcher.dispatch(std::move(op));  // a running one is superseded; a failed one may be waiting
  }

  // Runs an operation the dispatcher started, on the worker pool.
  void run_operation(const Operation& op) {
    const PrKey key = op.key;
    const OpKind kind = op.kind;
    const std::string sha = op.sha, ref = op.ref, slug = op.slug, reason = op.reason;
    auto cancelled = op.cancelled;
    auto step = op.step;
    // The holding pages follow the run from its start: a first build's name
    // resolves and shows the building page from now on, not from when the
    // build finishes, and every page names the run's commit, step and time.
    if (kind == OpKind::kUp) request_routes_refresh();
    auto repo_it = repos.find(key.first);
    std::string repo_key;
    if (repo_it != repos.end()) {
      repo_key = repo_it->second.key;
    } else if (auto r = store->find_repository(key.first); r.ok() && r->has_value()) {
      repo_key = (*r)->key;
      repos[key.first] = **r;
    }
    std::int64_t requested_at = clock.now_ms();
    std::string config_ref;  // set for an untrusted pull request
    if (auto pr = store->find_pull_request(key.first, key.second); pr.ok() && pr->has_value()) {
      requested_at = kind == OpKind::kUp ? (*pr)->updated_at : ((*pr)->closed_at ? (*pr)->closed_at : requested_at);
      if (kind == OpKind::kUp && !trusted(**pr)) {
        config_ref = (*pr)->base_ref.empty() ? watched[key.first].base : (*pr)->base_ref;
        if (config_ref.empty()) config_ref = "main";
      }
    }
    log_event("op.start", std::string("op=") + to_string(kind) + " pr=" + std::to_string(key.second) +
                              (slug.empty() ? "" : " slug=" + slug) + (sha.empty() ? "" : " sha=" + sha.substr(0, 12)) +
                              " reason=" + json_quoted(reason));
    if (kind == OpKind::kUp) report(key);
    asio::post(*workers, [this, key, kind, sha, ref, slug, repo_key, cancelled, step, requested_at, config_ref] {
      bool ok = false;
      std::string error, result_slug = slug;
      try {
        Store& st = thread_store();
        Engine engine(engine_config, st, runner, clock);
        std::int64_t env_id = 0;
        if (auto e = st.find_environment_by_slug(slug); !slug.empty() && e.ok() && e->has_value()) env_id = (*e)->id;
        bool claimed = env_id == 0;
        if (!claimed) {
          auto claim = claim_environment(st, env_id, owner, config.claim_ttl);
          claimed = claim.ok() && claim->claimed;
          if (!claim.ok()) error = "cannot claim: " + claim.error().message;
          else if (!claimed) error = "claimed by " + claim->holder;
          else if (!claim->taken_over_from.empty())
            log_event("claim.taken_over", "slug=" + slug + " from=" + json_quoted(claim->taken_over_from) + " reason=owner_not_running");
        }
        if (claimed && kind == OpKind::kUp) {
          UpRequest request{repo_key, key.second, ref, sha, cancelled.get(), config_ref};
          // The proxy moves to the new versions before the old ones stop.
          request.on_routes_changed = [this](const std::string&) { run_on_main([this] { refresh_routes(); }); };
          request.on_step_start = [step](const std::string& name) { step->set(name); };  // the holding page's "step"
          request.on_step_done = [this](const std::string&, bool, std::chrono::milliseconds) { changes->notify(); };
          // State and routes change together for anyone asking the API (this worker's
          // store connection is used on main while the worker waits).
          request.publish_ready = [this](const std::function<Status()>& mark_ready) -> Status {
            Status status;
            run_on_main([&] {
              status = mark_ready();
              refresh_routes();
            });
            return status;
          };
          UpResult r = engine.up(request);
          ok = r.ok;
          error = r.failed_step.empty() ? r.error : r.failed_step + ": " + r.error;
          result_slug = r.environment.slug;
          env_id = r.environment.id;
        } else if (claimed) {
          DownResult r = kind == OpKind::kDown ? engine.down_by_slug(slug) : engine.sleep(slug);
          ok = r.ok;
          error = r.error;
        }
        if (claimed && env_id) (void)st.release_claim(env_id, owner.text());
      } catch (const std::exception& e) {
        error = std::string("internal error: ") + e.what();
      }
      asio::post(main, [this, key, ok, error, result_slug, requested_at] { op_done(key, ok, error, result_slug, requested_at); });
    });
  }

  void op_done(PrKey key, bool ok, const std::string& error, const std::string& slug, std::int64_t requested_at) {
    const OpKind kind = dispatcher.finished(key, ok).kind;
    double seconds = static_cast<double>(clock.now_ms() - requested_at) / 1000.0;
    log_event("op.done", std::string("op=") + to_string(kind) + " pr=" + std::to_string(key.second) + " slug=" + slug +
                             " ok=" + (ok ? "true" : "false") + (error.empty() ? "" : " error=" + json_quoted(error)));
    refresh_routes();
    if (ok && kind == OpKind::kUp) {
      metrics.time_to_preview.observe(seconds);
      if (auto env = store->find_environment_by_slug(slug); env.ok() && env->has_value())
        if (auto lease = store->lease_of((*env)->id); lease.ok() && lease->has_value()) leases->schedule(**lease);
    }
    if (ok && kind == OpKind::kDown) {
      metrics.teardown_latency.observe(seconds);
    }
    if (ok && kind != OpKind::kUp) metrics.gc_actions++;
    report(key);
    if (!stopping) reconcile();  // level-triggered: whatever changed meanwhile is picked up now
  }

  // ---- reporting back to the git host ---------------------------------------------

  // Tells the pull request's host what its preview is now (the reporter
  // sends only what the host does not have yet).
  void report(PrKey key, bool retry = false) {
    if (!reporter) return;
    if (!retry) report_retries.erase(key);
    auto target = store->report_of(key.first, key.second);
    if (!target.ok() || !target->has_value() || !reporter->reports_to((*target)->host)) return;
    auto pr = store->find_pull_request(key.first, key.second);
    auto env = store->find_environment(key.first, key.second);
    if (!pr.ok() || !pr->has_value() || !env.ok()) return;
    std::optional<LeaseRecord> lease;
    if (env->has_value())
      if (auto l = store->lease_of((*env)->id); l.ok()) lease = *l;
    std::string building;
    if (auto running = dispatcher.in_flight().find(key); running != dispatcher.in_flight().end() && running->second.kind == OpKind::kUp &&
                                            !(env->has_value() && (*env)->deployed_sha == running->second.sha))  // a wake is no new build
      building = running->second.sha;
    std::string slug = predicted_slug(key, (*pr)->head_ref);
    std::string destroyed_by;  // the API's DELETE records who asked (Api::handle_as)
    if (env->has_value() && (*env)->state == EnvState::kDestroyed)
      if (auto timeline = store->timeline_of((*env)->id); timeline.ok())
        for (const auto& entry : *timeline)
          if (entry.kind == "received") destroyed_by = entry.detail.starts_with(kDeleteBy) ? entry.detail.substr(kDeleteBy.size()) : "";
    auto r = preview_report({**pr, *env, lease, building, slug, engine_config.public_url(slug + "." + config.domain), clock.now_ms(),
                             config.lease_warning, destroyed_by});
    if (!r) return;
    reporter->post(key.first, key.second, std::move(*r));
  }

  // Previews whose lease entered the warning window: their comment says when
  // they end (the reporter edits it once: the text stays the same afterwards).
  // Checked on the reconcile tick, so the warning comes within one of its
  // start; a lease extended meanwhile is reported by the extension itself.
  void warn_of_ending_leases() {
    if (!reporter || config.lease_warning.count() <= 0) return;
    auto leases = store->all_leases();
    if (!leases.ok()) return;
    const std::int64_t now = clock.now_ms();
    for (const auto& l : *leases) {
      const std::int64_t deadline = l.deadline();
      if (l.pinned || deadline == LeaseScheduler::kNever || deadline <= now || deadline - now > config.lease_warning.count()) continue;
      // (preview_report narrows the window further; reporting an unchanged text costs no request)
      if (auto e = store->find_environment_by_id(l.env_id); e.ok() && e->has_value() && (*e)->state == EnvState::kReady)
        report({(*e)->repo_id, (*e)->pr});
    }
  }

  // A host that was down or hanging gets the preview's state once it answers again.
  // Bounded: a host that refuses for good (a deleted repository) is left
  // alone after kMaxReportRetries passes, until the preview changes again.
  static constexpr int kMaxReportRetries = 20;
  std::map<PrKey, int> report_retries;
  void retry_failed_reports() {
    if (!reporter) return;
    if (auto targets = store->all_reports(); targets.ok())
      for (const auto& t : *targets) {
        PrKey key{t.repo_id, t.pr};
        if (t.last_error.empty()) {
          report_retries.erase(key);
        } else if (report_retries[key]++ < kMaxReportRetries) {
          report(key, true);
        }
      }
  }

  bool trusted(const PullRequestRecord& pr) const { return is_trusted(pr, config.trusted_authors, config.trusted_labels); }

  // ---- routes and DNS -----------------------------------------------------------

  // One refresh for however many first builds a pass starts.
  CoalescedPost routes_refresh_soon;
  void request_routes_refresh() {
    routes_refresh_soon(main, [this] { refresh_routes(); });
  }

  // Runs `work` on the main thread (which owns the route table and answers
  // the API) and returns once it has: for a worker's engine run. Main runs
  // posted work until every in-flight operation is done, stopping or not,
  // so the wait ends.
  void run_on_main(const std::function<void()>& work) {
    auto done = std::make_shared<std::promise<void>>();  // shared: outlives either side's return
    auto finished = done->get_future();
    asio::post(main, [&work, done] {
      work();
      done->set_value();
    });
    finished.wait();
  }

  // The slug the engine will give the pull request's environment.
  std::string predicted_slug(PrKey key, const std::string& ref) {
    auto it = repos.find(key.first);
    return make_slug(it == repos.end() ? "" : it->second.key, key.second, ref);
  }

  // Who may open a repository's previews: its own `access`, else the config's.
  const AccessSettings& access_settings(std::int64_t repo_id) const {
    auto it = watched.find(repo_id);
    return it != watched.end() && it->second.access ? *it->second.access : config.access;
  }

  void refresh_routes() {
    auto envs = store->list_environments(false);
    auto all = store->all_routes();  // one query, not one per environment
    if (!envs.ok() || !all.ok()) return;
    std::map<PrKey, RunningOperation> running;
    for (const auto& [key, op] : dispatcher.in_flight())
      running[key] = RunningOperation{op.kind == OpKind::kUp, op.from_sleep, op.ref, op.sha, op.started_ms, op.step};
    auto live_links = store->live_share_links(clock.now_ms());
    if (!live_links.ok()) return;
    auto access_for = [&](std::int64_t repo_id, std::int64_t env_id) {
      const AccessSettings& settings = access_settings(repo_id);
      AccessPolicy policy{settings.mode, {}, {}};
      if (settings.mode == AccessMode::kPassword) policy.password_fingerprint = access_key->password_fingerprint(settings.password);
      if (auto links = live_links->find(env_id); (settings.mode == AccessMode::kLink || settings.mode == AccessMode::kLogin) && links != live_links->end())
        policy.live_links = links->second;
      return policy;
    };
    RouteView view = route_view(*envs, *all, running, [this](PrKey key, const std::string& ref) { return predicted_slug(key, ref); },
                                config.domain, access_for);
    // What the dashboard shows follows the routes (states, builds starting
    // and ending); the reconcile tick's refresh that changes nothing is not news.
    if (*routes.snapshot() != view.routes) changes->notify();
    routes.replace(std::move(view.routes));
    if (view.hosts != dns_requested) {
      dns_requested = view.hosts;
      dns->publish(std::move(view.hosts));
    }
  }

  // The DNS publisher's answer: each environment's DNS step is published or
  // failed (and retried by the publisher); the timeline notes each change.
  void dns_outcome(const DnsPublisher::HostMap& hosts, const Status& status, bool reconciled) {
    std::map<std::int64_t, std::vector<std::string>> by_env;
    for (const auto& [host, env] : hosts) by_env[env].push_back(host);
    for (auto it = dns_state.begin(); it != dns_state.end();)
      it = by_env.count(it->first) ? std::next(it) : dns_state.erase(it);  // gone environments
    for (const auto& [env, names] : by_env) {
      if (env == 0) continue;  // a first build's name: its environment gets the timeline entry once it exists
      DnsState& state = dns_state[env];
      if (status.ok()) {
        if (!state.published || state.names != names) {
          std::string list;
          for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
          (void)store->append_timeline(env, "dns", "published " + list + " (" + dns->backend_name() + ")", 0);
        }
        state = DnsState{true, names, ""};
      } else if (!state.published || reconciled) {
        if (state.error != status.error().message)
          (void)store->append_timeline(env, "dns", "DNS step failed, retrying: " + status.error().message, 0);
        state = DnsState{false, {}, status.error().message};
      }
    }
    if (status.ok())
      log_event("dns.published", "backend=" + dns->backend_name() + " hosts=" + std::to_string(hosts.size()) +
                                     (reconciled ? " reconciled=true" : ""));
    else
      log_event("dns.failed", "backend=" + dns->backend_name() + " error=" + json_quoted(status.error().message) + " retry=backoff");
  }

  void arm_reconcile_timer() {
    reconcile_timer.expires_after(config.reconcile_interval);
    reconcile_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      refresh_routes();
      reconcile();
      retry_failed_reports();
      warn_of_ending_leases();
      arm_reconcile_timer();
    });
  }

  // ---- polling ------------------------------------------------------------------

  void schedule_poll(std::int64_t repo_id, asio::steady_timer& timer, std::chrono::milliseconds delay) {
    timer.expires_after(delay);
    timer.async_wait([this, repo_id, &timer](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      poll_now(repo_id);
      schedule_poll(repo_id, timer, watched[repo_id].poll_interval);
    });
  }

  void poll_now(std::int64_t repo_id) {
    if (polls_running.count(repo_id)) return;  // one poll per repository at a time
    polls_running.insert(repo_id);
    RepositoryRecord repo = repos[repo_id];
    WatchedRepository w = watched[repo_id];
    asio::post(*git_pool, [this, repo, w] {
      std::vector<std::string> notes;
      std::string error;
      try {
        Status s = poll_repository(thread_store(), repo, w, clock.now_ms(), notes);
        if (!s.ok()) error = s.error().message;
      } catch (const std::exception& e) {
        error = e.what();
      }
      asio::post(main, [this, repo, notes, error] {
        polls_running.erase(repo.id);
        if (!error.empty()) log_event("poll.failed", "repo=" + json_quoted(repo.key) + " error=" + json_quoted(error));
        for (const auto& n : notes) log_event("event.ingested", n);
        metrics.events_received += notes.size();
        if (!notes.empty()) request_reconcile();
      });
    });
  }

  // ---- API ----------------------------------------------------------------------

  // What only the running daemon can do for its API (ApiDaemon).
  struct ApiBridge final : ApiDaemon {
    Impl& d;
    explicit ApiBridge(Impl& daemon) : d(daemon) {}
    size_t operations_in_flight() const override { return d.dispatcher.in_flight().size(); }
    std::string metrics_text() override { return d.metrics_text(); }
    json dns_of(const EnvironmentRecord& e) const override {
      if (auto s = d.dns_state.find(e.id); s != d.dns_state.end())
        return s->second.published ? json{{"state", "published"}} : json{{"state", "failed"}, {"error", s->second.error}};
      return e.state != EnvState::kDestroyed ? json{{"state", "pending"}} : json(nullptr);
    }
    void destroy(const EnvironmentRecord& e, const std::string& why) override {
      d.dispatch({e.repo_id, e.pr}, OpKind::kDown, "", "", e.slug, why);
    }
    void lease_changed(const EnvironmentRecord& e, const LeaseRecord& lease, bool renewed) override {
      d.changes->notify();
      d.leases->schedule(lease);
      if (renewed) d.metrics.lease_renewals++;
      d.report({e.repo_id, e.pr});
    }
    int poll(const std::string& wanted) override { return d.poll_matching(wanted); }
    AccessMode access_of(const EnvironmentRecord& e) const override { return d.access_settings(e.repo_id).mode; }
    std::string share_token(const EnvironmentRecord& e, const ShareLinkRecord& link) const override {
      return d.access_key->link_token(e.slug, link.id, link.expires_at / 1000);
    }
    void share_links_changed() override { d.refresh_routes(); }
    Result<Accepted> create(const std::string& repo, long pr, const std::string& ref, const std::string& sha) override {
      return d.create_from_api(repo, pr, ref, sha);
    }
    Status redeploy(const EnvironmentRecord& e) override { return d.redeploy(e); }
    void put_to_sleep(const EnvironmentRecord& e, const std::string& why) override { d.put_to_sleep(e, why); }
    void wake(const EnvironmentRecord& e) override { d.leases->wake(e.id); }
  };
  ApiBridge api_bridge{*this};
  std::shared_ptr<const AccessKey> access_key;
  static constexpr Millis kSessionTtl{12LL * 3'600'000};  // a working day's sign-in
  std::unique_ptr<Sessions> sessions;
  std::unique_ptr<Api> api_handler;  // on the main thread's store connection
  std::unique_ptr<Dashboard> dashboard;
  std::shared_ptr<ChangeFeed> changes = std::make_shared<ChangeFeed>();  // the dashboard's event stream
  std::shared_ptr<SharedText> dashboard_url = std::make_shared<SharedText>();  // set once the API listens

  // A lease that ended with `sleep`, or an operator's ask.
  void put_to_sleep(const EnvironmentRecord& e, const std::string& why) { dispatch({e.repo_id, e.pr}, OpKind::kSleep, "", "", e.slug, why); }

  // A failed preview built again now at its pull request's head (reconcile
  // leaves a failed commit alone, and the retry backoff is forgotten).
  Status redeploy(const EnvironmentRecord& e) {
    auto pr = store->find_pull_request(e.repo_id, e.pr);
    if (!pr.ok()) return pr.error();
    if (!pr->has_value() || (*pr)->status != PrStatus::kOpen)
      return make_error(ErrorCode::kConflict, "pull request #" + std::to_string(e.pr) + " is not open");
    dispatcher.forget_failure({e.repo_id, e.pr});
    dispatch({e.repo_id, e.pr}, OpKind::kUp, (*pr)->head_sha, (*pr)->head_ref, e.slug, "redeploy asked for");
    return {};
  }

  std::string metrics_text() {
    std::map<std::string, std::int64_t> by_state;
    for (EnvState s : {EnvState::kPending, EnvState::kProvisioning, EnvState::kReady, EnvState::kSleeping, EnvState::kFailed,
                       EnvState::kDestroying, EnvState::kDestroyed})
      by_state[to_string(s)] = 0;
    if (auto all = store->list_environments(true); all.ok())
      for (const auto& e : *all) by_state[to_string(e.state)]++;
    std::int64_t depth = store->inbox_depth().value_or(-1);
    if (reporter) {
      metrics.reports_sent = reporter->sent.load();
      metrics.reports_failed = reporter->failed.load();
    }
    return metrics.render(by_state, depth);
  }

  int poll_matching(const std::string& wanted) {
    int polled = 0;
    for (const auto& [id, repo] : repos) {
      auto key = Engine::repository_key(wanted);
      if (wanted.empty() || repo.key == wanted || (key.ok() && repo.key == *key) || repo.name == wanted) {
        poll_now(id);
        ++polled;
      }
    }
    return polled;
  }

  // A preview asked for through the API (POST /api/v1/environments).
  Result<ApiDaemon::Accepted> create_from_api(const std::string& repo_arg, long pr, const std::string& ref, const std::string& sha) {
    Engine engine(engine_config, *store, runner, clock);
    auto repo = engine.repository(repo_arg);
    if (!repo.ok()) return repo.error();
    repos[repo->id] = *repo;
    // The request's event id is known now: whatever becomes of it (an
    // unknown ref, a fetch that fails) is recorded under it, in the API's
    // and `prevue events`' list, not only in the daemon's log.
    std::string delivery_id = "api:" + std::to_string(repo->id) + ":" + std::to_string(pr) + ":" + std::to_string(clock.now_ms()) + ":" +
                              std::to_string(++api_requests);
    // Resolving needs a fetch: done on the git thread, then the event is ingested.
    asio::post(*git_pool, [this, repo = *repo, pr, ref, sha, delivery_id] {
      std::string note, error;
      EventRecord e;
      e.delivery_id = delivery_id;
      e.source = "api";
      e.repo_id = repo.id;
      e.pr = pr;
      e.action = kEventOpened;
      e.head_ref = ref;
      e.head_sha = sha;
      e.received_at = clock.now_ms();
      try {
        Store& st = thread_store();
        auto opened = GitMirror::open(repo.mirror_path, repo.key);
        if (!opened.ok()) throw std::runtime_error(opened.error().message);
        Status fetched = opened->fetch();
        if (!fetched.ok()) throw std::runtime_error(fetched.error().message);
        auto resolved = sha.empty() ? opened->resolve_ref(ref) : opened->resolve_sha(sha);
        if (!resolved.ok()) throw std::runtime_error(resolved.error().message);
        e.head_sha = resolved->sha;
        auto r = ingest_event(st, e, clock.now_ms());
        if (!r.ok()) throw std::runtime_error(r.error().message);
        note = r->note;
      } catch (const std::exception& ex) {
        error = ex.what();
        e.status = "failed";
        e.note = error;
        e.processed_at = clock.now_ms();
        try {
          (void)thread_store().insert_event(e);
        } catch (const std::exception&) {  // the log line below still says it
        }
      }
      asio::post(main, [this, note, error, delivery_id] {
        if (!error.empty()) log_event("api.create_failed", "delivery=" + delivery_id + " error=" + json_quoted(error));
        else log_event("event.ingested", "source=api note=" + json_quoted(note));
        reconcile();
      });
    });
    return ApiDaemon::Accepted{repo->key, delivery_id};
  }

  // ---- stop ---------------------------------------------------------------------

  void stop() {
    if (stopping) return;
    stopping = true;
    log_event("serve.stopping", "in_flight=" + std::to_string(dispatcher.in_flight().size()));
    dispatcher.cancel_all();  // each stops before its next step
    reconcile_timer.cancel();
    liveness_timer.cancel();
    delivery_timer.cancel();
    for (auto& t : poll_timers) t->cancel();
    changes->close();  // the dashboard's open streams end
    if (api) api->stop();
    if (proxy) proxy->stop();
    if (leases) leases->stop();
  }
};

Daemon::Daemon(Config config, const Clock& clock) : impl_(std::make_unique<Impl>(std::move(config), clock)) {}
Daemon::~Daemon() = default;

int Daemon::run() {
  Impl& d = *impl_;
  if (int rc = d.start()) return rc;
  asio::signal_set signals(d.main, SIGINT, SIGTERM);
  signals.async_wait([&d](const boost::system::error_code& ec, int) {
    if (!ec) d.stop();
  });
  // SIGHUP: the proxy reads its certificate and key again (after a renewal).
  asio::signal_set hangup(d.main, SIGHUP);
  std::function<void()> on_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec || d.stopping) return;
      Status s = d.proxy->reload_tls();
      if (s.ok()) log_event("proxy.tls_reloaded", "cert=" + json_quoted(d.config.tls_cert_file.string()));
      else log_event("proxy.tls_reload_failed", "error=" + json_quoted(s.error().message) + " kept=previous");
      on_hangup();
    });
  };
  on_hangup();
  // Runs until stop() has cancelled the timers and servers and the
  // in-flight operations have posted their completions.
  while (!d.main.stopped()) {
    d.main.run_one();
    if (d.stopping && d.dispatcher.in_flight().empty() && d.polls_running.empty()) break;
  }
  d.api.reset();  // joins the webhook threads while what they use still exists
  d.workers->join();
  d.git_pool->join();
  d.liveness_pool->join();
  // Reports not yet sent are sent by the next start (each is compared with what the host has).
  if (d.reporter) d.reporter->stop();
  if (d.dns) d.dns->stop();
  log_event("serve.stopped");
  return 0;
}

}  // namespace prevue
