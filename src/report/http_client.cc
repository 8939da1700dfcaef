#include "report/http_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace prevue {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct ParsedUrl {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string target;
  std::string host_header;
};

Result<ParsedUrl> parse_url(const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return make_error(ErrorCode::kInvalidArgument, "not a URL (" + parsed.error().message() + "): " + url);
  const boost::urls::url_view& v = *parsed;
  ParsedUrl u;
  if (v.scheme_id() == boost::urls::scheme::https) u.tls = true;
  else if (v.scheme_id() != boost::urls::scheme::http) return make_error(ErrorCode::kInvalidArgument, "not an http:// or https:// URL: " + url);
  if (!v.has_authority() || v.encoded_host().empty() || v.has_userinfo())
    return make_error(ErrorCode::kInvalidArgument, "URL needs a host (and no user info): " + url);
  u.host = v.host_type() == boost::urls::host_type::ipv6 ? v.host_ipv6_address().to_string() : std::string(v.encoded_host());
  u.port = v.has_port() ? std::string(v.port()) : (u.tls ? "443" : "80");
  if (u.port.empty() || u.port.size() > 5 || v.port_number() == 0) return make_error(ErrorCode::kInvalidArgument, "bad port in " + url);
  u.host_header = std::string(v.encoded_host_and_port());
  u.target = v.encoded_path().empty() ? "/" : std::string(v.encoded_path());
  if (v.has_query()) u.target += "?" + std::string(v.encoded_query());
  return u;
}

// One client TLS context per trust store for the whole process: the system
// CA store is read once, not on every call.
Result<std::shared_ptr<asio::ssl::context>> tls_context(const std::string& ca_file) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<asio::ssl::context>> contexts;
  std::lock_guard lock(mutex);
  if (auto it = contexts.find(ca_file); it != contexts.end()) return it->second;
  try {
    auto tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    tls->set_default_verify_paths();
    if (!ca_file.empty()) tls->load_verify_file(ca_file);
    tls->set_verify_mode(asio::ssl::verify_peer);
    contexts[ca_file] = tls;
    return tls;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kIo, std::string("TLS setup: ") + e.what());
  }
}

// A kept-alive connection to one origin, with the io_context its stream
// runs on. Calls on different threads each take their own.
struct Connection {
  asio::io_context io;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  std::chrono::steady_clock::time_point idle_since;

  bool open() const { return plain || secure; }
  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }
  // An idle connection the server has closed (or sent something unasked on)
  // reads as ready: it cannot carry another request.
  bool still_usable() {
    pollfd p{lowest().socket().native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 0;
  }
};

// Idle connections by origin (scheme, host, port, trust store), for the
// whole process: a report of several calls to one host opens one
// connection, not one per call (and one TLS handshake).
class ConnectionPool {
 public:
  static constexpr size_t kIdlePerOrigin = 4;
  static constexpr std::chrono::seconds kIdleFor{30};  // below the hosts' own keep-alive limits

  std::unique_ptr<Connection> take(const std::string& origin) {
    std::lock_guard lock(mutex_);
    auto& idle = idle_[origin];
    while (!idle.empty()) {
      std::unique_ptr<Connection> c = std::move(idle.back());
      idle.pop_back();
      if (std::chrono::steady_clock::now() - c->idle_since < kIdleFor && c->still_usable()) return c;
    }
    return nullptr;
  }
  void give_back(const std::string& origin, std::unique_ptr<Connection> c) {
    c->idle_since = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    auto& idle = idle_[origin];
    if (idle.size() < kIdlePerOrigin) idle.push_back(std::move(c));
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

ConnectionPool& connection_pool() {
  static ConnectionPool pool;
  return pool;
}

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, const http::request<http::string_body>& req,
                               http::response_parser<http::string_body>& parser) {
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
}

// Connects `c` first when it is new; one deadline for the whole exchange.
asio::awaitable<void> run_call(Connection& c, const ParsedUrl& u, const http::request<http::string_body>& req,
                               http::response_parser<http::string_body>& parser, const ClientOptions& options,
                               asio::ssl::context* tls) {
  auto executor = co_await asio::this_coro::executor;
  if (!c.open()) {
    tcp::resolver resolver(executor);
    auto endpoints = co_await resolver.async_resolve(u.host, u.port, asio::use_awaitable);
    if (!tls) {
      c.plain.emplace(executor);
      c.plain->expires_after(options.timeout);
      co_await c.plain->async_connect(endpoints, asio::use_awaitable);
    } else {
      c.secure.emplace(executor, *tls);
      if (!SSL_set_tlsext_host_name(c.secure->native_handle(), u.host.c_str()))
        throw beast::system_error(beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
      c.secure->set_verify_callback(asio::ssl::host_name_verification(u.host));
      c.lowest().expires_after(options.timeout);
      co_await c.lowest().async_connect(endpoints, asio::use_awaitable);
      co_await c.secure->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    }
  }
  c.lowest().expires_after(options.timeout);
  if (c.plain) co_await exchange(*c.plain, req, parser);
  else co_await exchange(*c.secure, req, parser);
}

bool retryable(int status) { return status == 429 || status >= 500; }

}  // namespace

Result<ClientResponse> http_call(const ClientRequest& request, const ClientOptions& options) {
  auto url = parse_url(request.url);
  if (!url.ok()) return url.error();
  http::request<http::string_body> req;
  req.method_string(request.method);
  req.target(url->target);
  req.version(11);
  req.set(http::field::host, url->host_header);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH")
    req.body() = request.body;
  req.prepare_payload();

  std::shared_ptr<asio::ssl::context> tls;
  if (url->tls) {
    auto context = tls_context(options.ca_file);
    if (!context.ok()) return context.error();
    tls = *context;
  }
  const std::string origin = (url->tls ? "https://" : "http://") + url->host + ":" + url->port + " " + options.ca_file;

  // A kept-alive connection first; if the server dropped it before
  // answering anything, once more on a new one.
  std::unique_ptr<Connection> connection = connection_pool().take(origin);
  for (bool reused = connection != nullptr;; reused = false) {
    if (!connection) connection = std::make_unique<Connection>();
    http::response_parser<http::string_body> parser;
    parser.body_limit(options.max_response_bytes);
    parser.header_limit(64 * 1024);
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(connection->io, run_call(*connection, *url, req, parser, options, tls.get()), [&](std::exception_ptr e) {
      failure = e;
      done = true;
    });
    // The stream's own deadline bounds connect, TLS and the exchange; the
    // resolver is bounded here (loopback and literal addresses resolve at once).
    connection->io.restart();
    connection->io.run_for(options.timeout + Millis(1'000));
    if (!done)
      return make_error(ErrorCode::kTimeout, request.method + " " + request.url + ": no answer within " + format_duration(options.timeout));
    if (failure) {
      if (reused && !parser.got_some()) {
        connection.reset();
        continue;
      }
      try {
        std::rethrow_exception(failure);
      } catch (const beast::system_error& e) {
        if (e.code() == beast::error::timeout)
          return make_error(ErrorCode::kTimeout, request.method + " " + request.url + ": no answer within " + format_duration(options.timeout));
        return make_error(ErrorCode::kIo, request.method + " " + request.url + ": " + e.code().message());
      } catch (const std::exception& e) {
        return make_error(ErrorCode::kIo, request.method + " " + request.url + ": " + e.what());
      }
    }
    auto res = parser.release();
    if (res.keep_alive()) connection_pool().give_back(origin, std::move(connection));
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    if (auto it = res.find(http::field::retry_after); it != res.end()) out.retry_after = std::string(it->value());
    return out;
  }
}

Result<ClientResponse> http_call_with_retries(const ClientRequest& request, const ClientOptions& options, int* tries) {
  Millis delay = options.backoff;
  int attempts = std::max(1, options.attempts);
  for (int attempt = 1;; ++attempt) {
    if (tries) *tries = attempt;
    auto result = http_call(request, options);
    bool again = !result.ok() || retryable(result->status);
    if (!again || attempt >= attempts) return result;
    Millis wait = delay;
    // A host that says when to come back is believed, within reason.
    if (result.ok() && !result->retry_after.empty() && result->retry_after.find_first_not_of("0123456789") == std::string::npos &&
        result->retry_after.size() < 4)
      wait = std::max(wait, Millis(std::stoi(result->retry_after) * 1000));
    wait = std::min(wait, Millis(30'000));
    for (Millis waited(0); waited < wait; waited += Millis(50)) {
      if (options.cancelled && options.cancelled->load()) return result;
      std::this_thread::sleep_for(Millis(50));
    }
    delay = std::min(delay * 2, Millis(30'000));
  }
}

}  // namespace prevue
