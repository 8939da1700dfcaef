// HTTP without Beast in the header: a small API server and the reverse
// proxy. Both live in http_server.cc, the one translation unit that
// includes Beast.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/endpoint.h"
#include "core/duration.h"
#include "core/result.h"
#include "http/preview_access.h"

namespace boost::asio {
class io_context;
}

namespace prevue {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote;  // client address

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A text set by one thread and read by others (a URL known once a listener
// is up; the step a run is at).
class SharedText {
 public:
  void set(std::string text) {
    std::lock_guard lock(mutex_);
    text_ = std::move(text);
  }
  std::string get() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  mutable std::mutex mutex_;
  std::string text_;
};

// Tells server-sent-event streams that something changed (the dashboard
// then asks again). notify() from any thread; each open stream is woken.
class ChangeFeed {
 public:
  using Waker = std::function<void()>;
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  void notify() {
    version_.fetch_add(1, std::memory_order_acq_rel);
    wake_all();
  }
  // Ends every stream (the daemon stops).
  void close() {
    closed_.store(true, std::memory_order_release);
    wake_all();
  }
  // Registers a stream; nothing when `limit` streams are open already.
  std::optional<std::uint64_t> subscribe(Waker waker, size_t limit) {
    std::lock_guard lock(mutex_);
    if (wakers_.size() >= limit || closed()) return std::nullopt;
    wakers_[++next_id_] = std::move(waker);
    return next_id_;
  }
  void unsubscribe(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    wakers_.erase(id);
  }
  size_t streams() const {
    std::lock_guard lock(mutex_);
    return wakers_.size();
  }

 private:
  void wake_all() {
    std::lock_guard lock(mutex_);
    for (auto& [id, wake] : wakers_) wake();
  }
  std::atomic<std::uint64_t> version_{0};
  std::atomic<bool> closed_{false};
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Waker> wakers_;
  std::uint64_t next_id_ = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set: the response is a text/event-stream that stays open, one `changed`
  // event each time the feed moves (`body` is sent first), until the client
  // goes or the feed closes.
  std::shared_ptr<ChangeFeed> events;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Serves `handler` with keep-alive on `ctx` (whose threads the caller runs;
// the handler runs on them). Bodies over `max_body` get 413.
// With offloaded routes the server listens on `threads` threads of its own
// (SO_REUSEPORT) and runs the offloaded handler right there, so it must be
// thread-safe: CPU-heavy work such as verifying and recording webhooks uses
// every core and never waits for `ctx`. Other requests still run on `ctx`.
struct OffloadedRoutes {
  std::string prefix;
  HttpHandler handler;
  int threads = 2;
  size_t max_body = 1 << 20;  // for these routes, instead of the server's
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(boost::asio::io_context& ctx, const std::string& host, unsigned short port,
                                                   HttpHandler handler, size_t max_body, std::optional<OffloadedRoutes> offload = {});
  virtual ~HttpServer() = default;
  virtual unsigned short port() const = 0;
  virtual void stop() = 0;
};

// What the proxy knows of a host.
struct ProxyRoute {
  enum class Kind { kReady, kBuilding, kSleeping, kFailed };
  Kind kind = Kind::kBuilding;
  std::int64_t env_id = 0;
  std::string slug;
  Endpoint upstream;  // ready: where the environment answers
  std::string detail;  // failed: "step: error" (no server paths)
  std::string updating_to;  // ready, and being redeployed to this commit (short): shown if the upstream does not answer meanwhile
  AccessPolicy access;     // who may open it (every state: a holding page names the preview too)
  // What a holding page says of the run: the commit (short) it builds, wakes
  // at or failed at; when the operation started (wall ms, 0: none running);
  // the step it is at, which moves on without the route changing.
  std::string commit;
  std::int64_t since_ms = 0;
  std::shared_ptr<const SharedText> step;
  bool operator==(const ProxyRoute&) const = default;
};

// Host -> route, replaced whole by the daemon, read by the proxy's threads.
class RouteTable {
 public:
  using Map = std::unordered_map<std::string, ProxyRoute>;
  void replace(Map routes) {
    auto next = std::make_shared<const Map>(std::move(routes));
    std::lock_guard lock(mutex_);
    map_ = std::move(next);
    version_.fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<const Map> snapshot() const {
    std::lock_guard lock(mutex_);
    return map_;
  }
  // Changes with every replace(): readers keep their snapshot until it moves,
  // so the request path takes no lock.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Map> map_ = std::make_shared<const Map>();
  std::atomic<std::uint64_t> version_{0};
};

struct ProxyOptions {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  int threads = 2;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024 * 1024;
  Millis timeout = Millis(60'000);       // idle client, upstream connect and response
  Millis wake_timeout = Millis(60'000);  // how long a request to a sleeping environment is held
  // A request's header must arrive whole within header_timeout of its first
  // byte; its body within body_timeout plus 1 s per min_body_rate bytes
  // (a client trickling a byte now and then is cut off, not kept forever).
  Millis header_timeout = Millis(20'000);
  Millis body_timeout = Millis(20'000);
  size_t min_body_rate = 500;
  // Connections held at once: in all (0: from the descriptor limit, two
  // descriptors each, some kept for the rest of the daemon) and per client address.
  size_t max_connections = 0;
  size_t max_connections_per_client = 256;
  // HTTPS: a second listener with a certificate and key from files (PEM;
  // typically a wildcard for the preview domain), reloaded by reload_tls().
  std::string tls_host;
  unsigned short tls_port = 0;
  std::string tls_cert_file, tls_key_file;
  bool redirect_to_https = false;  // the plain listener answers 308 to the https:// URL
  bool tls() const { return !tls_cert_file.empty(); }
  // Signs and checks the access cookies of protected previews (a route
  // whose access is not public); without one such routes open to nobody.
  std::shared_ptr<const AccessKey> access_key;
  Millis password_session = Millis(7LL * 24 * 3'600'000);  // how long a password's cookie lasts
  Millis login_session = Millis(12LL * 3'600'000);          // and a dashboard sign-in's, for a `login` preview
  // Where a `login` preview sends a visitor to sign in (the dashboard's
  // public URL, known once the API listens); empty: nobody can sign in.
  std::shared_ptr<const SharedText> dashboard_url;
};

struct ProxyHooks {
  std::function<void(std::int64_t env_id)> on_hit;  // a request reached a ready environment
  std::function<void(std::int64_t env_id)> wake;    // a request reached a sleeping one
  std::function<void(int status)> on_status;        // every answer
};

// The reverse proxy: routes by Host to an environment's upstream, with
// keep-alive both ways, streamed bodies, websocket upgrades and
// X-Forwarded-* headers; answers for environments that are building,
// asleep (wakes them and holds the request) or failed. Runs its own
// io_context on `threads` threads.
class Proxy {
 public:
  static Result<std::unique_ptr<Proxy>> start(const ProxyOptions& options, const RouteTable& routes, ProxyHooks hooks);
  virtual ~Proxy() = default;
  virtual unsigned short port() const = 0;
  virtual unsigned short tls_port() const = 0;  // 0 without HTTPS
  // Reads the certificate and key again (after a renewal); on an error the
  // one in use stays. New connections get the new one.
  virtual Status reload_tls() = 0;
  virtual void stop() = 0;
};

std::string html_escape(const std::string& text);

}  // namespace prevue
