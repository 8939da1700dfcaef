// The one translation unit that includes Beast: the API server and the
// reverse proxy, written as C++20 coroutines on Asio.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <unordered_map>
#include <mutex>
#include <thread>

#include "core/duration.h"
#include "core/slug.h"
#include "http/http.h"
#include "webhook/signature.h"

namespace prevue {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
// On every answer the proxy gives, its own pages and the previews' alike.
constexpr const char* kRobotsHeader = "X-Robots-Tag";
constexpr const char* kRobotsNoIndex = "noindex";

// The TCP socket under a client stream (plain or TLS).
using TlsStream = asio::ssl::stream<tcp::socket>;
tcp::socket& raw(tcp::socket& s) { return s; }
tcp::socket& raw(TlsStream& s) { return s.next_layer(); }

Result<std::shared_ptr<asio::ssl::context>> load_tls(const std::string& cert_file, const std::string& key_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  try {
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                     asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    ctx->use_certificate_chain_file(cert_file);
    ctx->use_private_key_file(key_file, asio::ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    return make_error(ErrorCode::kInvalidArgument, "TLS certificate " + cert_file + " / key " + key_file + ": " + e.code().message());
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    return make_error(ErrorCode::kInvalidArgument, "TLS key " + key_file + " does not match certificate " + cert_file);
  return ctx;
}

Result<tcp::endpoint> endpoint_for(const std::string& host, unsigned short port) {
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "'" + host + "' is not an IP address to listen on");
  return tcp::endpoint(address, port);
}

Result<tcp::acceptor> open_acceptor(asio::io_context& ctx, const tcp::endpoint& endpoint) {
  tcp::acceptor acceptor(ctx);
  beast::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(ErrorCode::kIo, "cannot listen on " + endpoint.address().to_string() + ":" + std::to_string(endpoint.port()) +
                                          ": " + ec.message());
  return acceptor;
}

// SO_REUSEPORT would let a second prevue share a port the first holds and
// silently split its traffic: a fixed port is first bound alone, which
// fails while anyone listens on it.
Status ensure_port_free(const tcp::endpoint& where, const std::string& host) {
  if (where.port() == 0) return {};
  asio::io_context probe_ctx;
  tcp::acceptor probe(probe_ctx);
  beast::error_code ec;
  probe.open(where.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(where, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot listen on " + host + ":" + std::to_string(where.port()) + ": " + ec.message());
  return {};
}

// One of several acceptors on the same port (SO_REUSEPORT): the kernel
// spreads connections over the threads that own them.
Status open_shared_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& where, const std::string& host) {
  beast::error_code ec;
  acceptor.open(where.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec = beast::error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor.bind(where, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot listen on " + host + ":" + std::to_string(where.port()) + ": " + ec.message());
  return {};
}

// After a failed accept. Out of descriptors (EMFILE, ENFILE) or memory, the
// listening socket stays readable: retrying at once spins a core and starves
// the very connections whose closing would free a descriptor. Wait a little.
// Other failures (a client that reset before it was accepted) retry at once.
asio::awaitable<void> pause_after_accept_error(const beast::error_code& ec) {
  bool exhausted = ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
                   ec == asio::error::no_memory;
  if (!exhausted) co_return;
  asio::steady_timer pause(co_await asio::this_coro::executor);
  pause.expires_after(std::chrono::milliseconds(100));
  co_await pause.async_wait(nothrow);
}

// ---- API server ---------------------------------------------------------------

// Without offloaded routes: one acceptor on `main`, every handler on it.
// With them: acceptors on threads of the server's own (SO_REUSEPORT); the
// offloaded handler runs right there, every other request on `main`.
class ApiServer final : public HttpServer {
 public:
  ApiServer(asio::io_context& main, HttpHandler handler, size_t max_body, std::optional<OffloadedRoutes> offload)
      : main_(main), acceptor_(main), handler_(std::move(handler)), max_body_(max_body), offload_(std::move(offload)) {}
  ~ApiServer() override {
    stop();
    for (auto& w : workers_) w->ctx.stop();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();  // handlers still running finish before what they use goes away
  }

  Status start(const tcp::endpoint& endpoint, const std::string& host) {
    if (!offload_) {
      auto opened = open_acceptor(main_, endpoint);
      if (!opened.ok()) return opened.error();
      acceptor_ = std::move(opened).value();
      port_ = acceptor_.local_endpoint().port();
      asio::co_spawn(main_, accept_loop(acceptor_), asio::detached);
      return {};
    }
    PREVUE_TRY(ensure_port_free(endpoint, host));
    for (int i = 0; i < std::max(1, offload_->threads); ++i) {
      auto worker = std::make_unique<Worker>();
      PREVUE_TRY(open_shared_acceptor(worker->acceptor, tcp::endpoint(endpoint.address(), port_ ? port_ : endpoint.port()), host));
      port_ = worker->acceptor.local_endpoint().port();
      workers_.push_back(std::move(worker));
    }
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::co_spawn(w->ctx, accept_loop(w->acceptor), asio::detached);
      w->thread = std::thread([w] { w->ctx.run(); });
    }
    return {};
  }

  unsigned short port() const override { return port_; }
  void stop() override {
    if (stopped_.exchange(true)) return;
    beast::error_code ec;
    acceptor_.close(ec);
    for (auto& w : workers_) asio::post(w->ctx, [w = w.get()] {
        beast::error_code ignored;
        w->acceptor.close(ignored);
      });
  }

 private:
  struct Worker {
    asio::io_context ctx{1};
    tcp::acceptor acceptor{ctx};
    std::thread thread;
  };

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(nothrow);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        co_await pause_after_accept_error(ec);
        continue;
      }
      asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<HttpResponse> respond(const HttpRequest& request) {
    if (!offload_) co_return call(handler_, request);
    if (request.target.rfind(offload_->prefix, 0) == 0) co_return call(offload_->handler, request);
    co_return co_await asio::co_spawn(
        main_, [this, &request]() -> asio::awaitable<HttpResponse> { co_return call(handler_, request); }, asio::use_awaitable);
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    buffer.reserve(64 * 1024);  // large bodies (webhooks) in few reads, not 512-byte ones
    std::string remote;
    beast::error_code ep_ec;
    auto ep = stream.socket().remote_endpoint(ep_ec);
    if (!ep_ec) remote = ep.address().to_string();
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(offload_ ? std::max(max_body_, offload_->max_body) : max_body_);
      stream.expires_after(std::chrono::seconds(30));
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, nothrow);
      beast::error_code ec = hec;
      if (!ec) {
        // Offloaded routes (webhooks) have a limit of their own, smaller or larger
        // than the server's. A declared length is checked here (the parser
        // checked it against the larger one); a chunked body as it arrives.
        size_t limit = offload_ && parser.get().target().starts_with(offload_->prefix) ? offload_->max_body : max_body_;
        parser.body_limit(limit);
        if (parser.content_length().value_or(0) > limit) {
          ec = http::error::body_limit;
        } else {
          auto [bec, bn] = co_await http::async_read(stream, buffer, parser, nothrow);
          ec = bec;
        }
      }
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout) break;
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        bool body = ec == http::error::body_limit;
        co_await reply(stream, body ? 413 : 431, body ? "request body too large" : "request header too large", false);
        break;
      }
      if (ec) {
        co_await reply(stream, 400, "malformed HTTP request", false);
        break;
      }
      auto& req = parser.get();
      HttpRequest request;
      request.method = std::string(req.method_string());
      request.target = std::string(req.target());
      for (const auto& field : req) request.headers[ascii_lower(std::string(field.name_string()))] = std::string(field.value());
      request.body = std::move(req.body());
      request.remote = remote;
      HttpResponse response = co_await respond(request);
      if (response.events) {
        co_await stream_events(stream, response, req.version());
        break;
      }
      http::response<http::string_body> res{static_cast<http::status>(response.status), req.version()};
      res.set(http::field::server, "prevue");
      res.set(http::field::content_type, response.content_type);
      for (const auto& [name, value] : response.headers) res.set(name, value);
      res.body() = std::move(response.body);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      stream.expires_after(std::chrono::seconds(30));
      auto [wec, wn] = co_await http::async_write(stream, res, nothrow);
      if (wec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // A server-sent-event stream (close-delimited): the response's body, an
  // event at once (the page fetches what it shows after it is subscribed,
  // so it misses nothing), then one per change of the feed, several close
  // together as one. A comment every 20 s keeps the connection open through
  // proxies, and finds a client that has gone.
  static asio::awaitable<void> stream_events(beast::tcp_stream& stream, const HttpResponse& response, unsigned version) {
    constexpr size_t kMaxStreams = 64;
    const std::shared_ptr<ChangeFeed> feed = response.events;
    auto executor = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(executor);
    std::weak_ptr<asio::steady_timer> weak = timer;
    auto id = feed->subscribe(
        [weak, executor] {
          asio::post(executor, [weak] {
            if (auto t = weak.lock()) t->cancel();
          });
        },
        kMaxStreams);
    if (!id) {
      co_await reply(stream, 503, "too many event streams are open", false);
      co_return;
    }
    struct Unsubscribe {
      ChangeFeed& feed;
      std::uint64_t id;
      ~Unsubscribe() { feed.unsubscribe(id); }
    } unsubscribe{*feed, *id};

    http::response<http::empty_body> head{static_cast<http::status>(response.status), version};
    head.set(http::field::server, "prevue");
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : response.headers) head.set(name, value);
    head.keep_alive(false);
    stream.expires_after(std::chrono::seconds(30));
    auto [hec, hn] = co_await http::async_write(stream, head, nothrow);
    if (hec) co_return;
    std::uint64_t seen = feed->version();
    std::string out = response.body + "event: changed\ndata: " + std::to_string(seen) + "\n\n";
    while (!feed->closed()) {
      stream.expires_after(std::chrono::seconds(30));
      auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(out), nothrow);
      stream.expires_never();
      if (wec) break;
      timer->expires_after(std::chrono::seconds(20));
      if (feed->version() == seen) co_await timer->async_wait(nothrow);
      if (feed->version() == seen) {
        out = ": still here\n\n";
        continue;
      }
      timer->expires_after(std::chrono::milliseconds(200));  // what comes with it
      co_await timer->async_wait(nothrow);
      seen = feed->version();
      out = "event: changed\ndata: " + std::to_string(seen) + "\n\n";
    }
  }

  static HttpResponse call(const HttpHandler& handler, const HttpRequest& request) {
    try {
      return handler(request);
    } catch (const std::exception&) {
      return HttpResponse{500, "application/json", std::string("{\"error\": \"internal error\"}"), {}};
    }
  }

  static asio::awaitable<void> reply(beast::tcp_stream& stream, int status, const std::string& message, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = "{\"error\": \"" + message + "\"}";
    res.keep_alive(keep_alive);
    res.prepare_payload();
    co_await http::async_write(stream, res, nothrow);
  }

  asio::io_context& main_;
  tcp::acceptor acceptor_;
  HttpHandler handler_;
  size_t max_body_;
  std::optional<OffloadedRoutes> offload_;
  std::vector<std::unique_ptr<Worker>> workers_;
  unsigned short port_ = 0;
  std::atomic<bool> stopped_{false};
};

// ---- reverse proxy ----------------------------------------------------------

std::string page(const std::string& title, const std::string& body, bool refresh) {
  return "<!doctype html><html><head><meta charset=\"utf-8\">" +
         std::string(refresh ? "<meta http-equiv=\"refresh\" content=\"3\">" : "") + "<title>" + html_escape(title) +
         "</title><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"robots\" content=\"noindex\">"
         "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}"
         "code,pre{background:#f4f4f4;padding:.1em .3em}pre{white-space:pre-wrap;overflow-wrap:anywhere;padding:.6em}</style></head><body><h1>" +
         html_escape(title) + "</h1>" + body + "<p><small>prevue</small></p></body></html>\n";
}

// A peer that wrote a message's header and body in two writes with Nagle's
// algorithm on (Python's http.server, many dev servers; http.client for a
// POST) holds the body back until its header is acknowledged, and Linux
// delays that ACK by up to 40 ms: 44 ms per request on a keep-alive
// connection. Once a header is in and its body is not, prevue acknowledges
// at once (TCP_QUICKACK sends the pending ACK). Not for a message that
// arrived whole, so the common case costs no extra system call.
void ack_now(tcp::socket& socket) {
  int one = 1;
  (void)::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

template <class Parser>
bool holds_whole_body(const Parser& parser, const beast::flat_buffer& buffer) {
  auto length = parser.content_length();
  return length && buffer.size() >= *length;
}

// The proxy's hot path makes no trip through the scheduler that the bytes
// at hand do not need: a message already in the buffer is parsed in place
// (Beast's read would post its completion even then), and a write the
// kernel takes whole does not wait for its completion to be run. Four such
// trips a request each let the scheduler poll epoll again on its way round
// (1.5 epoll_wait calls a request; 0.7 without them, as nginx makes).

// Runs `parser` over what `buffer` holds, as Beast's read does before it
// reads the socket: success once the header (header_only) or the message
// is complete, need_more when the socket must be read, need_buffer when a
// buffer_body's buffer is full, or the parse error.
template <class Parser>
beast::error_code parse_buffered(Parser& parser, beast::flat_buffer& buffer, bool header_only) {
  auto complete = [&] { return header_only ? parser.is_header_done() : parser.is_done(); };
  parser.eager(!header_only);
  beast::error_code ec;
  while (!complete()) {
    if (buffer.size() == 0) return http::error::need_more;
    size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec) return ec;
    if (used == 0) return http::error::need_more;
  }
  return {};
}

// Reads until the header (header_only) or the message is complete, or a
// buffer_body's buffer is full (need_buffer): from `buffer` in place when it
// holds enough, else from the stream.
template <class Stream, class Parser>
asio::awaitable<beast::error_code> read_message(Stream& stream, beast::flat_buffer& buffer, Parser& parser, bool header_only) {
  beast::error_code ec = parse_buffered(parser, buffer, header_only);
  if (ec != http::error::need_more) co_return ec;
  if (header_only) {
    auto [read_ec, n] = co_await http::async_read_header(stream, buffer, parser, nothrow);
    co_return read_ec;
  }
  auto [read_ec, n] = co_await http::async_read(stream, buffer, parser, nothrow);
  co_return read_ec;
}

// Writes `buffers` whole. On a plain socket, what the kernel takes at once
// (almost always all of it) is written without suspending; only the rest
// waits for room. TLS streams always write asynchronously.
template <class Stream, class Buffers>
asio::awaitable<beast::error_code> write_all(Stream& stream, const Buffers& buffers) {
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    beast::error_code ec;
    if (!stream.non_blocking()) stream.non_blocking(true, ec);  // so that write_some never blocks the thread
    size_t written = ec ? 0 : stream.write_some(buffers, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return ec;
    if (written == beast::buffer_bytes(buffers)) co_return beast::error_code{};
    beast::buffers_suffix<Buffers> rest(buffers);
    rest.consume(written);
    auto [write_ec, n] = co_await asio::async_write(stream, rest, nothrow);
    co_return write_ec;
  } else {
    auto [write_ec, n] = co_await asio::async_write(stream, buffers, nothrow);
    co_return write_ec;
  }
}

// RFC 9112 framing of a request the proxy is to forward: anything a server
// behind it could read differently (request smuggling) is refused, and the
// connection closed after the answer.
struct FramingRefusal {
  int status;
  std::string reason;
};

template <class Fields>
std::optional<FramingRefusal> request_framing_refusal(const http::header<true, Fields>& h) {
  size_t hosts = h.count(http::field::host);
  if (hosts > 1) return FramingRefusal{400, "more than one Host header"};
  if (hosts == 0 && h.version() >= 11) return FramingRefusal{400, "an HTTP/1.1 request without a Host header"};
  if (h.count(http::field::content_length) > 1) return FramingRefusal{400, "more than one Content-Length header"};
  if (h.count(http::field::transfer_encoding) == 0) return std::nullopt;
  if (h.version() < 11) return FramingRefusal{400, "Transfer-Encoding in an HTTP/1.0 request"};
  if (h.count(http::field::content_length)) return FramingRefusal{400, "both Transfer-Encoding and Content-Length"};
  std::vector<std::string> codings;  // every field line, every comma-separated coding, in order
  for (const auto& field : h) {
    if (field.name() != http::field::transfer_encoding) continue;
    std::string_view value = field.value();
    for (size_t start = 0; start <= value.size();) {
      size_t comma = value.find(',', start);
      if (comma == std::string_view::npos) comma = value.size();
      std::string_view coding = value.substr(start, comma - start);
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
      if (!coding.empty()) codings.push_back(ascii_lower(std::string(coding)));
      start = comma + 1;
    }
  }
  if (codings.empty() || codings.back() != "chunked")
    return FramingRefusal{400, "chunked is not the final transfer coding: the body's length cannot be known"};
  if (codings.size() > 1) return FramingRefusal{501, "a transfer coding other than chunked"};
  return std::nullopt;
}

// Connections the proxy holds, in all and per client address. A slot is
// taken when a connection is accepted and given back when it closes.
class ConnectionLimits {
 public:
  class Slot {
   public:
    Slot(ConnectionLimits& limits, std::string client) : limits_(limits), client_(std::move(client)) {}
    ~Slot() { limits_.release(client_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    const std::string& client() const { return client_; }  // the peer's address, "" when unknown

   private:
    ConnectionLimits& limits_;
    std::string client_;
  };

  void configure(size_t total, size_t per_client) {
    total_limit_ = total;
    per_client_limit_ = per_client;
  }

  // A slot, or nullptr when the proxy is full or this client holds its share.
  std::unique_ptr<Slot> admit(const tcp::socket& socket) {
    beast::error_code ec;
    auto endpoint = socket.remote_endpoint(ec);
    std::string client = ec ? std::string() : endpoint.address().to_string();
    std::lock_guard lock(mutex_);
    size_t& mine = per_client_[client];
    if (total_ >= total_limit_ || mine >= per_client_limit_) {
      if (mine == 0) per_client_.erase(client);
      return nullptr;
    }
    ++mine;
    ++total_;
    return std::make_unique<Slot>(*this, std::move(client));
  }

 private:
  void release(const std::string& client) {
    std::lock_guard lock(mutex_);
    --total_;
    auto it = per_client_.find(client);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
  }

  std::mutex mutex_;
  std::unordered_map<std::string, size_t> per_client_;
  size_t total_ = 0;
  size_t total_limit_ = 1024;
  size_t per_client_limit_ = 256;
};

// The proxy's share of the descriptor limit: two descriptors a connection
// (client and upstream), after a reserve for the rest of the daemon.
size_t connections_for_descriptor_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 65536;
  constexpr rlim_t kReserve = 64;
  return limit.rlim_cur > kReserve + 32 ? static_cast<size_t>((limit.rlim_cur - kReserve) / 2) : 16;
}

// One io_context per thread, each with its own SO_REUSEPORT acceptor on the
// same port: the kernel spreads connections, and no two threads share a
// reactor or a lock on the request path.
class ProxyServer final : public Proxy {
 public:
  ProxyServer(const ProxyOptions& options, const RouteTable& routes, ProxyHooks hooks)
      : options_(options), routes_(routes), hooks_(std::move(hooks)) {}

  ~ProxyServer() override { stop(); }

  Status start() {
    auto endpoint = endpoint_for(options_.host, options_.port);
    if (!endpoint.ok()) return endpoint.error();
    std::optional<tcp::endpoint> tls_endpoint;
    if (options_.tls()) {
      auto loaded = load_tls(options_.tls_cert_file, options_.tls_key_file);
      if (!loaded.ok()) return loaded.error();
      tls_ = std::move(loaded).value();
      auto e = endpoint_for(options_.tls_host.empty() ? options_.host : options_.tls_host, options_.tls_port);
      if (!e.ok()) return e.error();
      tls_endpoint = *e;
    }
    PREVUE_TRY(ensure_port_free(*endpoint, options_.host));
    if (tls_endpoint) PREVUE_TRY(ensure_port_free(*tls_endpoint, tls_endpoint->address().to_string()));
    connections_.configure(options_.max_connections ? options_.max_connections : connections_for_descriptor_limit(),
                           options_.max_connections_per_client);
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      auto worker = std::make_unique<Worker>();
      PREVUE_TRY(open_shared_acceptor(worker->acceptor, tcp::endpoint(endpoint->address(), port_ ? port_ : endpoint->port()), options_.host));
      port_ = worker->acceptor.local_endpoint().port();
      if (tls_endpoint) {
        PREVUE_TRY(open_shared_acceptor(worker->tls_acceptor,
                                        tcp::endpoint(tls_endpoint->address(), tls_port_ ? tls_port_ : tls_endpoint->port()),
                                        tls_endpoint->address().to_string()));
        tls_port_ = worker->tls_acceptor.local_endpoint().port();
      }
      workers_.push_back(std::move(worker));
    }
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::co_spawn(w->ctx, accept_loop(*w, false), asio::detached);
      if (tls_endpoint) asio::co_spawn(w->ctx, accept_loop(*w, true), asio::detached);
      w->thread = std::thread([w] { w->ctx.run(); });
    }
    return {};
  }

  unsigned short port() const override { return port_; }
  unsigned short tls_port() const override { return tls_port_; }

  Status reload_tls() override {
    if (!options_.tls()) return make_error(ErrorCode::kInvalidArgument, "HTTPS is not configured");
    auto loaded = load_tls(options_.tls_cert_file, options_.tls_key_file);
    if (!loaded.ok()) return loaded.error();
    std::lock_guard lock(tls_mutex_);
    tls_ = std::move(loaded).value();
    return {};
  }

  void stop() override {
    if (stopped_.exchange(true)) return;
    for (auto& w : workers_) w->ctx.stop();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
  }

 private:
  struct Worker {
    asio::io_context ctx{1};
    tcp::acceptor acceptor{ctx};
    tcp::acceptor tls_acceptor{ctx};
    std::thread thread;
  };

  asio::awaitable<void> accept_loop(Worker& w, bool tls) {
    tcp::acceptor& acceptor = tls ? w.tls_acceptor : w.acceptor;
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(nothrow);
      if (!acceptor.is_open()) co_return;
      if (ec) {
        co_await pause_after_accept_error(ec);
        continue;
      }
      auto slot = connections_.admit(socket);
      if (!slot) {  // over the total or this client's share: closed before a byte is read
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      if (tls) {
        auto state = std::make_shared<Session<TlsStream>>(std::move(socket), current_tls());
        state->slot = std::move(slot);
        asio::co_spawn(w.ctx, session(std::move(state)), asio::detached);
      } else {
        auto state = std::make_shared<Session<tcp::socket>>(std::move(socket));
        state->slot = std::move(slot);
        asio::co_spawn(w.ctx, session(std::move(state)), asio::detached);
      }
    }
  }

  std::shared_ptr<asio::ssl::context> current_tls() {
    std::lock_guard lock(tls_mutex_);
    return tls_;
  }

  // A client connection (plain or TLS) and its upstream, with the time anything last moved.
  template <class Client>
  struct Session {
    explicit Session(tcp::socket socket) : client(std::move(socket)), idle_timer(client.get_executor()) {}
    Session(tcp::socket socket, std::shared_ptr<asio::ssl::context> ctx)
        : tls(std::move(ctx)), client(std::move(socket), *tls), idle_timer(client.get_executor()) {}
    void touch() { last_activity = std::chrono::steady_clock::now(); }
    std::unique_ptr<ConnectionLimits::Slot> slot;
    // A deadline for what is being read from the client (a header, a body)
    // that activity does not push back; max() while none applies.
    std::chrono::steady_clock::time_point read_deadline = std::chrono::steady_clock::time_point::max();
    std::chrono::steady_clock::time_point body_started;
    size_t body_received = 0;
    std::shared_ptr<asio::ssl::context> tls;  // kept while the connection lives, across reloads
    Client client;
    asio::steady_timer idle_timer;
    std::optional<tcp::socket> upstream;
    std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
    bool tunnel = false;
    bool done = false;
    std::array<char, 16384> chunk;  // body bytes in flight, one buffer per connection
  };

  void count(int status) {
    if (hooks_.on_status) hooks_.on_status(status);
  }

  template <class Client>
  asio::awaitable<bool> answer(Session<Client>& session, unsigned version, bool keep_alive, int status, std::string body,
                               int retry_after = 0, std::vector<std::pair<http::field, std::string>> headers = {}) {
    http::response<http::string_body> res{static_cast<http::status>(status), version};
    res.set(http::field::server, "prevue");
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.set(kRobotsHeader, kRobotsNoIndex);
    for (auto& [name, value] : headers) res.set(name, value);
    if (retry_after > 0) res.set(http::field::retry_after, std::to_string(retry_after));
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    session.touch();
    auto [ec, n] = co_await http::async_write(session.client, res, nothrow);
    count(status);
    co_return !ec && keep_alive;
  }

  // A preview being redeployed whose service is restarting.
  template <class Client>
  asio::awaitable<bool> answer_updating(Session<Client>& session, unsigned version, bool keep_alive, const ProxyRoute& route) {
    co_return co_await answer(session, version, keep_alive, 503,
                              page("Preview " + route.slug + " is updating to " + route.updating_to,
                                   "<p>A new commit is being deployed and its service is restarting. This page reloads by itself.</p>" +
                                       progress(route) + log_link(route.slug),
                                   true),
                              2);
  }

  // What a holding page says of the run: the commit, the step it is at and
  // how long it has taken so far (as far as each is known).
  static std::string progress(const ProxyRoute& route) {
    std::string said;
    auto add = [&](const std::string& part) { said += (said.empty() ? "" : " · ") + part; };
    if (!route.commit.empty()) add("Commit <code>" + html_escape(route.commit) + "</code>");
    if (std::string step = route.step ? route.step->get() : std::string(); !step.empty()) add("step <code>" + html_escape(step) + "</code>");
    if (route.since_ms > 0) {
      const std::int64_t now_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      add(format_duration(Millis(std::max<std::int64_t>(0, now_ms - route.since_ms) / 1000 * 1000)) + " so far");
    }
    return said.empty() ? std::string() : "<p>" + said + "</p>";
  }

  // A holding page's link to the run's log on the dashboard (whoever may sign in there sees it).
  std::string log_link(const std::string& slug) const {
    const std::string dashboard = options_.dashboard_url ? options_.dashboard_url->get() : "";
    if (dashboard.empty()) return "";
    return "<p><a href=\"" + html_escape(dashboard + "/#/p/" + slug) + "\">The build's log, step by step</a> (on prevue's dashboard)</p>";
  }

  enum class Admission { kPass, kAnswered, kClose };

  // AccessKey::verify_cookie, remembered per thread: a visitor's browser
  // sends the same cookie with every request, and its signature, checked
  // once, need not be computed again (the expiry is, every time). Only valid
  // cookies are kept, at most kKept a thread.
  static const AccessGrant* verified_cookie(const AccessKey& key, const std::string& value, const std::string& slug, std::int64_t now) {
    struct Verified {
      const AccessKey* key;
      std::string slug;
      AccessGrant grant;
    };
    constexpr size_t kKept = 4096;
    thread_local std::unordered_map<std::string, Verified> verified;
    if (auto it = verified.find(value); it != verified.end() && it->second.key == &key && it->second.slug == slug) {
      if (it->second.grant.expires_unix > now) return &it->second.grant;
      verified.erase(it);
      return nullptr;
    }
    auto grant = key.verify_cookie(value, slug, now);
    if (!grant) return nullptr;
    if (verified.size() >= kKept) verified.clear();
    auto& kept = verified[value];
    kept = Verified{&key, slug, std::move(*grant)};
    return &kept.grant;
  }

  // A protected preview opens to a visitor with a valid cookie of prevue's
  // (taken out of the request, so the app never sees it), earned at the
  // share link's URL or with the password's form; anyone else gets a page
  // that says how to get in. Nothing reaches the app (or wakes it) before.
  // `route` lives in the table snapshot the caller holds for the request.
  template <class Client, class Parser>
  asio::awaitable<Admission> admit(Session<Client>& session, Parser& parser, beast::flat_buffer& buffer, const ProxyRoute& route,
                                   bool keep_alive, bool has_body, bool tls) {
    auto& req = parser.get();
    const unsigned version = req.version();
    const AccessKey* key = options_.access_key.get();
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const std::string query = path.size() < target.size() ? target.substr(path.size() + 1) : std::string();
    const bool password_mode = route.access.mode == AccessMode::kPassword;
    auto outcome = [&](bool again) { return again ? Admission::kAnswered : Admission::kClose; };

    // The visitor is in: a cookie for this preview only, then the page they asked for.
    auto let_in = [&](const std::string& slug, const AccessGrant& grant, const std::string& then = "/") {
      std::string cookie = std::string(kAccessCookie) + "=" + key->cookie_value(slug, grant) + "; Path=/; Max-Age=" +
                           std::to_string(std::max<std::int64_t>(1, grant.expires_unix - now)) + "; HttpOnly; SameSite=Lax" +
                           (tls ? "; Secure" : "");
      std::vector<std::pair<http::field, std::string>> headers{{http::field::set_cookie, std::move(cookie)}, {http::field::location, then}};
      return headers;
    };
    auto refuse = [&](const std::string& why) {
      std::string body = "<p>" + html_escape(why) + "</p>";
      if (password_mode)
        body += "<form method=\"post\" action=\"" + std::string(kPasswordPath) +
                "\"><p><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus>"
                "</label> <button type=\"submit\">Open</button></p></form>";
      return body;
    };

    if (key && path == kLinkPath) {
      std::optional<AccessGrant> grant;
      if (auto token = form_value(query, "t")) grant = key->verify_link_token(*token, route.slug, now);
      if (grant && grant_allows(route.access, *grant)) {
        auto headers = let_in(route.slug, *grant);
        co_return outcome(co_await answer(session, version, keep_alive && !has_body, 303, page("Opening the preview", "", false), 0,
                                          std::move(headers)));
      }
      std::string body = refuse("This share link does not open preview " + route.slug + " (any more): it expired or was revoked. "
                                "Ask for a new one.");
      co_return outcome(co_await answer(session, version, keep_alive && !has_body, 403, page("Link not valid", body, false)));
    }
    if (key && path == kLoginPath && route.access.mode == AccessMode::kLogin) {
      // Back from the dashboard's sign-in with its token for this preview.
      std::optional<AccessGrant> grant;
      if (auto token = form_value(query, "t")) grant = key->verify_login_token(*token, route.slug, now);
      if (grant) {
        grant->expires_unix = now + std::chrono::duration_cast<std::chrono::seconds>(options_.login_session).count();
        auto headers = let_in(route.slug, *grant, local_path_or_root(form_value(query, "next").value_or("/")));
        co_return outcome(co_await answer(session, version, keep_alive && !has_body, 303, page("Opening the preview", "", false), 0,
                                          std::move(headers)));
      }
      co_return outcome(co_await answer(session, version, keep_alive && !has_body, 403,
                                        page("Sign-in not valid", "<p>This sign-in link expired. Open the preview again.</p>", false)));
    }
    if (key && password_mode && path == kPasswordPath && req.method() == http::verb::post) {
      constexpr size_t kMaxForm = 4096;
      if (!has_body || parser.content_length().value_or(kMaxForm + 1) > kMaxForm)
        co_return outcome(co_await answer(session, version, false, 413, page("Request body too large", "", false)));
      const std::string& slug = route.slug;
      const std::string& fingerprint = route.access.password_fingerprint;
      std::string form;
      std::array<char, kMaxForm> chunk;
      session.read_deadline = std::chrono::steady_clock::now() + options_.body_timeout;
      while (!parser.is_done()) {
        req.body().data = chunk.data();
        req.body().size = chunk.size();
        auto [ec, n] = co_await http::async_read(session.client, buffer, parser, nothrow);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return Admission::kClose;
        form.append(chunk.data(), chunk.size() - req.body().size);
      }
      session.read_deadline = std::chrono::steady_clock::time_point::max();
      auto password = form_value(form, "password");
      if (password && constant_time_equal(key->password_fingerprint(*password), fingerprint)) {
        const std::int64_t expires = now + std::chrono::duration_cast<std::chrono::seconds>(options_.password_session).count();
        auto headers = let_in(slug, AccessGrant{AccessGrant::Kind::kPassword, fingerprint, expires});
        co_return outcome(co_await answer(session, version, keep_alive, 303, page("Opening the preview", "", false), 0, std::move(headers)));
      }
      std::string body = refuse("That is not the password of preview " + slug + ".");
      co_return outcome(co_await answer(session, version, keep_alive, 401, page("Wrong password", body, false)));
    }

    // Every Cookie header: prevue's value comes out, the app's stay.
    std::string ours, theirs;
    for (const auto& field : req) {
      if (field.name() != http::field::cookie) continue;
      auto [mine, rest] = take_access_cookie(field.value());
      if (!mine.empty()) ours = std::move(mine);
      if (!rest.empty()) theirs += (theirs.empty() ? "" : "; ") + rest;
    }
    if (key && !ours.empty()) {
      const AccessGrant* grant = verified_cookie(*key, ours, route.slug, now);
      if (grant && grant_allows(route.access, *grant)) {
        req.erase(http::field::cookie);
        if (!theirs.empty()) req.set(http::field::cookie, theirs);
        co_return Admission::kPass;
      }
    }
    if (route.access.mode == AccessMode::kLogin) {
      // Signed in at the dashboard (another origin), the visitor comes back with a token for this host.
      const std::string dashboard = options_.dashboard_url ? options_.dashboard_url->get() : "";
      if (!dashboard.empty()) {
        const std::string sign_in = dashboard + std::string(kPreviewSignInPath) + "?host=" + url_encoded(std::string(req[http::field::host])) +
                                    "&scheme=" + (tls ? "https" : "http") + "&next=" + url_encoded(target);
        std::string body = "<p>Preview " + html_escape(route.slug) + " is private. <a href=\"" + html_escape(sign_in) + "\">Sign in</a> to open it.</p>";
        co_return outcome(co_await answer(session, version, keep_alive && !has_body, 303, page("Sign in to open the preview", body, false), 0,
                                          {{http::field::location, sign_in}}));
      }
    }
    std::string why = password_mode                              ? "Preview " + route.slug + " is protected by a password."
                      : route.access.mode == AccessMode::kLogin ? "Preview " + route.slug + " is private, and sign-in is not set up."
                                                                : "Preview " + route.slug + " is private: open it with a share link from whoever runs it.";
    std::string body = refuse(why);
    co_return outcome(co_await answer(session, version, keep_alive && !has_body, password_mode ? 401 : 403, page("Private preview", body, false)));
  }

  // A request body gets body_timeout, plus a second for every min_body_rate
  // bytes received so far (Apache's mod_reqtimeout rule): a slow upload goes
  // through, a client that trickles a byte now and then does not.
  template <class Client>
  std::chrono::steady_clock::time_point body_deadline(const Session<Client>& session) const {
    auto earned = std::chrono::milliseconds(static_cast<std::int64_t>(session.body_received * 1000 / std::max<size_t>(1, options_.min_body_rate)));
    return session.body_started + options_.body_timeout + earned;
  }

  // A relay's failure, and whether it was reading (the sender's fault: a
  // malformed body, a peer gone) or writing (the receiver's).
  struct RelayFailure {
    beast::error_code ec;
    bool reading = false;
    bool forwarded = false;  // something (the head at least) already went to the receiver
    explicit operator bool() const { return static_cast<bool>(ec); }
  };

  // Moves a message (its header already parsed) from `in` to `out` chunk by
  // chunk, never holding more than one buffer of its body (Beast's relay
  // pattern). The header goes out with the first chunk, in one write.
  template <bool isRequest, class Client, class Out, class In>
  asio::awaitable<RelayFailure> relay_body(Session<Client>& session, Out& out, In& in, beast::flat_buffer& in_buffer,
                                           http::parser<isRequest, http::buffer_body>& parser,
                                           http::serializer<isRequest, http::buffer_body>& serializer) {
    auto& chunk = session.chunk;
    bool forwarded = false;
    do {
      if (!parser.is_done()) {
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        session.touch();
        if constexpr (isRequest) session.read_deadline = body_deadline(session);
        beast::error_code ec = co_await read_message(in, in_buffer, parser, false);
        if constexpr (isRequest) session.read_deadline = std::chrono::steady_clock::time_point::max();
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return RelayFailure{ec, true, forwarded};
        parser.get().body().size = chunk.size() - parser.get().body().size;
        if constexpr (isRequest) session.body_received += parser.get().body().size;
        parser.get().body().data = chunk.data();
        parser.get().body().more = !parser.is_done();
      } else {
        parser.get().body().data = nullptr;
        parser.get().body().size = 0;
        parser.get().body().more = false;  // a message with no (more) body: the header alone goes out
      }
      session.touch();
      auto [ec, n] = co_await http::async_write(out, serializer, nothrow);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return RelayFailure{ec, false, true};
      forwarded = true;
    } while (!parser.is_done() && !serializer.is_done());
    co_return RelayFailure{};
  }

  // The header as one string: Beast's serializer hands the kernel one buffer
  // per field, which costs more than the copy.
  template <class Fields>
  static std::string head_text(const http::header<true, Fields>& h) {
    std::string out;
    out.reserve(512);
    out.append(h.method_string()).append(" ").append(h.target()).append(h.version() == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    for (const auto& f : h) out.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
    out.append("\r\n");
    return out;
  }
  template <class Fields>
  static std::string head_text(const http::header<false, Fields>& h) {
    std::string out;
    out.reserve(512);
    auto reason = h.reason();
    if (reason.empty()) reason = http::obsolete_reason(h.result());
    out.append(h.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ").append(std::to_string(h.result_int())).append(" ").append(reason).append("\r\n");
    for (const auto& f : h) out.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
    out.append("\r\n");
    return out;
  }

  // relay_body for a message that is not chunked: the header text, then the
  // body bytes as they arrive, the header and the first chunk in one write.
  template <bool isRequest, class Client, class Out, class In>
  asio::awaitable<RelayFailure> relay_plain(Session<Client>& session, Out& out, In& in, beast::flat_buffer& in_buffer,
                                            http::parser<isRequest, http::buffer_body>& parser) {
    const std::string head = head_text(parser.get().base());
    auto& chunk = session.chunk;
    bool head_sent = false;
    for (;;) {
      size_t n = 0;
      if (!parser.is_done()) {
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        session.touch();
        if constexpr (isRequest) session.read_deadline = body_deadline(session);
        beast::error_code ec = co_await read_message(in, in_buffer, parser, false);
        if constexpr (isRequest) session.read_deadline = std::chrono::steady_clock::time_point::max();
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return RelayFailure{ec, true, head_sent};
        n = chunk.size() - parser.get().body().size;
        if constexpr (isRequest) session.body_received += n;
      }
      std::array<asio::const_buffer, 2> buffers{head_sent ? asio::const_buffer() : asio::buffer(head), asio::buffer(chunk.data(), n)};
      head_sent = true;
      session.touch();
      if (auto ec = co_await write_all(out, buffers)) co_return RelayFailure{ec, false, true};
      if (parser.is_done()) co_return RelayFailure{};
    }
  }

  template <class From, class To>
  static asio::awaitable<void> pump(From& from, To& to) {
    char data[16384];
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(data), nothrow);
      if (ec) break;
      auto [wec, wn] = co_await asio::async_write(to, asio::buffer(data, n), nothrow);
      if (wec) break;
    }
    beast::error_code ignored;
    raw(to).shutdown(tcp::socket::shutdown_send, ignored);
  }

  // This thread's copy of the route table, refreshed when the table changes.
  const std::shared_ptr<const RouteTable::Map>& routes_now() {
    thread_local std::shared_ptr<const RouteTable::Map> cached;
    thread_local std::uint64_t cached_version = ~0ULL;
    thread_local const RouteTable* cached_from = nullptr;
    std::uint64_t version = routes_.version();
    if (version != cached_version || cached_from != &routes_) {
      cached = routes_.snapshot();
      cached_version = version;
      cached_from = &routes_;
    }
    return cached;
  }

  // A route and the table snapshot it lives in, held while a request uses it:
  // another session on this thread may move the thread's snapshot on meanwhile.
  struct HeldRoute {
    std::shared_ptr<const RouteTable::Map> table;
    const ProxyRoute* route = nullptr;
    const ProxyRoute* operator->() const { return route; }
    const ProxyRoute& operator*() const { return *route; }
    explicit operator bool() const { return route != nullptr; }
  };

  // Proxy hits renew leases; telling the daemon once a second per
  // environment and thread is plenty, and keeps its lock off the request path.
  void hit(std::int64_t env_id) {
    if (!hooks_.on_hit) return;
    thread_local std::unordered_map<std::int64_t, std::chrono::steady_clock::time_point> last_told;
    auto now = std::chrono::steady_clock::now();
    auto& told = last_told[env_id];
    if (now - told < std::chrono::seconds(1)) return;
    told = now;
    hooks_.on_hit(env_id);
  }

  // A route's upstream as addresses to connect to. An IP literal needs no
  // lookup; a host name (a provider's "web.pr-42.svc:80") is resolved off
  // the proxy's threads and kept until the route table changes.
  using ResolvedUpstreams = std::unordered_map<std::string, std::pair<std::uint64_t, std::vector<tcp::endpoint>>>;
  static ResolvedUpstreams& resolved_upstreams() {
    thread_local ResolvedUpstreams resolved;
    return resolved;
  }
  static std::string upstream_key(const ProxyRoute& route) { return route.upstream.text(); }
  void forget_resolved(const ProxyRoute& route) { resolved_upstreams().erase(upstream_key(route)); }

  // By value: another session on this thread may change the cache while this one connects.
  asio::awaitable<std::vector<tcp::endpoint>> upstream_endpoints(const ProxyRoute& route) {
    beast::error_code ec;
    auto address = asio::ip::make_address(route.upstream.host, ec);
    if (!ec) co_return std::vector<tcp::endpoint>{tcp::endpoint(address, route.upstream.port)};
    const std::uint64_t version = routes_.version();
    std::string key = upstream_key(route);
    auto& resolved = resolved_upstreams();
    if (auto it = resolved.find(key); it != resolved.end() && it->second.first == version) co_return it->second.second;
    tcp::resolver resolver(co_await asio::this_coro::executor);
    auto [rec, results] = co_await resolver.async_resolve(route.upstream.host, std::to_string(route.upstream.port), nothrow);
    std::vector<tcp::endpoint> endpoints;
    if (!rec)
      for (const auto& r : results) endpoints.push_back(r.endpoint());
    resolved[key] = {version, endpoints};  // an empty list is kept too: a name that does not resolve is not looked up per request
    co_return endpoints;
  }

  HeldRoute find_route(const std::string& host) {
    const auto& table = routes_now();
    auto it = table->find(host);
    return it == table->end() ? HeldRoute{} : HeldRoute{table, &it->second};
  }

  // A sleeping preview's route: wakes it and holds the request until it is
  // ready (or gone) or the wake timeout passes; the route as it is then.
  template <class Client>
  asio::awaitable<HeldRoute> held_while_waking(Session<Client>& session, const std::string& host, HeldRoute route) {
    auto deadline = std::chrono::steady_clock::now() + options_.wake_timeout;
    if (hooks_.wake) hooks_.wake(route->env_id);
    asio::steady_timer timer(session.client.get_executor());
    for (;;) {
      session.touch();  // a held request is not an idle one
      timer.expires_after(std::chrono::milliseconds(100));
      co_await timer.async_wait(nothrow);
      route = find_route(host);
      bool waiting = route && (route->kind == ProxyRoute::Kind::kSleeping || route->kind == ProxyRoute::Kind::kBuilding);
      if (!waiting || std::chrono::steady_clock::now() >= deadline) co_return route;
    }
  }

  template <class Client>
  asio::awaitable<void> session(std::shared_ptr<Session<Client>> state) {
    asio::co_spawn(state->client.get_executor(), watchdog(state), asio::detached);
    bool ready = true;
    if constexpr (std::is_same_v<Client, TlsStream>) {
      auto [ec] = co_await state->client.async_handshake(asio::ssl::stream_base::server, nothrow);  // bounded by the watchdog
      ready = !ec;
    }
    if (ready) co_await serve(*state);
    state->done = true;
    state->idle_timer.cancel();
    beast::error_code ignored;
    raw(state->client).shutdown(tcp::socket::shutdown_send, ignored);
    raw(state->client).close(ignored);
    if (state->upstream) state->upstream->close(ignored);
  }

  // One timer per connection, not one per read and write: it closes the
  // sockets when nothing moved for `timeout` (which cancels what waits on them).
  template <class Client>
  asio::awaitable<void> watchdog(std::shared_ptr<Session<Client>> session) {
    asio::steady_timer& timer = session->idle_timer;
    auto shortest = std::min({options_.timeout, options_.header_timeout, options_.body_timeout});
    auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(100), shortest / 4);
    for (;;) {
      timer.expires_after(period);
      co_await timer.async_wait(nothrow);
      if (session->done) co_return;
      if (session->tunnel) continue;
      auto now = std::chrono::steady_clock::now();
      if (now - session->last_activity > options_.timeout || now > session->read_deadline) {
        beast::error_code ignored;
        raw(session->client).close(ignored);
        if (session->upstream) session->upstream->close(ignored);
        co_return;
      }
    }
  }

  // Each side's read buffer, reserved whole when a connection opens: Beast
  // grows an empty buffer 512 bytes a read, which took three reads (and a
  // TCP_QUICKACK for the body seemingly held back) for a 1 KiB answer.
  static constexpr size_t kReadBuffer = 16 * 1024;

  template <class Client>
  asio::awaitable<void> serve(Session<Client>& session) {
    constexpr bool kTls = std::is_same_v<Client, TlsStream>;
    Client& client = session.client;
    beast::flat_buffer client_buffer;
    client_buffer.reserve(kReadBuffer);
    const std::string client_address = session.slot ? session.slot->client() : std::string();

    std::optional<tcp::socket>& upstream = session.upstream;
    std::string upstream_host;  // where `upstream` is connected
    unsigned short upstream_port = 0;
    beast::flat_buffer upstream_buffer;  // reserved once an upstream is connected (a client that never gets one holds none)

    for (bool first = true;; first = false) {
      http::request_parser<http::buffer_body> request_parser;
      request_parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
      request_parser.body_limit(options_.max_body_bytes);
      session.touch();
      // The header must arrive whole within header_timeout: of the accept for
      // a new connection; of its first bytes for the next request on a
      // keep-alive one (waiting for those has only the idle limit). Those
      // first bytes are read here, the read the parser would make anyway.
      if (!first && client_buffer.size() == 0) {
        auto [first_ec, first_n] = co_await client.async_read_some(client_buffer.prepare(kReadBuffer), nothrow);
        if (first_ec) break;  // closed, or cut by the idle limit
        client_buffer.commit(first_n);
        session.touch();
      }
      session.read_deadline = std::chrono::steady_clock::now() + options_.header_timeout;
      beast::error_code read_ec = co_await read_message(client, client_buffer, request_parser, true);
      session.read_deadline = std::chrono::steady_clock::time_point::max();
      if (read_ec == http::error::header_limit) {
        co_await answer(session, 11, false, 431, page("Request header too large", "", false));
        break;
      }
      if (read_ec == http::error::body_limit) {
        co_await answer(session, 11, false, 413, page("Request body too large", "", false));
        break;
      }
      if (read_ec) {
        if (read_ec != http::error::end_of_stream && read_ec != asio::error::eof && read_ec != beast::error::timeout &&
            read_ec != asio::error::connection_reset)
          co_await answer(session, 11, false, 400, page("Bad request", "", false));
        break;
      }
      auto& req = request_parser.get();
      const unsigned version = req.version();
      if (auto refusal = request_framing_refusal(req.base())) {
        co_await answer(session, 11, false, refusal->status,
                        page(refusal->status == 501 ? "Not implemented" : "Bad request", "<p>" + html_escape(refusal->reason) + "</p>", false));
        break;
      }
      bool keep_alive = req.keep_alive();
      // A request whose body we would not read cannot leave the connection reusable.
      bool has_body = req.has_content_length() ? request_parser.content_length().value_or(0) > 0 : req.chunked();
      if (has_body && !holds_whole_body(request_parser, client_buffer)) ack_now(raw(client));
      std::string host_header = std::string(req[http::field::host]);
      std::string host = ascii_lower(host_header);
      if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) host.resize(colon);
      if (!host.empty() && host.back() == '.') host.pop_back();

      if (!kTls && options_.redirect_to_https) {
        // Plain HTTP is only a way in: the same URL, on the HTTPS listener.
        std::string location = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                                (tls_port_ == 443 ? std::string() : ":" + std::to_string(tls_port_)) + std::string(req.target());
        http::response<http::string_body> res{http::status::permanent_redirect, version};
        res.set(http::field::server, "prevue");
        res.set(http::field::location, location);
        res.set(http::field::content_type, "text/html; charset=utf-8");
        res.body() = page("Moved to HTTPS", "<p><a href=\"" + html_escape(location) + "\">" + html_escape(location) + "</a></p>", false);
        res.keep_alive(keep_alive && !has_body);
        res.prepare_payload();
        session.touch();
        auto [wec, wn] = co_await http::async_write(client, res, nothrow);
        count(308);
        if (wec || !res.keep_alive()) break;
        continue;
      }
      // Access first: a visitor who may not open a preview does not wake it either.
      HeldRoute route = find_route(host);
      if (route && route->access.mode != AccessMode::kPublic) {
        Admission admission = co_await admit(session, request_parser, client_buffer, *route, keep_alive, has_body, kTls);
        if (admission == Admission::kClose) break;
        if (admission == Admission::kAnswered) continue;
      }
      if (route && route->kind == ProxyRoute::Kind::kSleeping) route = co_await held_while_waking(session, host, std::move(route));
      if (!route) {
        bool again = co_await answer(session, version, keep_alive && !has_body, 404,
                                     page("No preview here", "<p>No environment answers <code>" + html_escape(host) +
                                                                 "</code>. It may have been torn down after its pull request closed.</p>",
                                          false));
        if (!again) break;
        continue;
      }
      if (route->kind == ProxyRoute::Kind::kBuilding || route->kind == ProxyRoute::Kind::kSleeping) {
        bool again = co_await answer(
            session, version, keep_alive && !has_body, 503,
            page("Preview " + route->slug + " is " + (route->kind == ProxyRoute::Kind::kSleeping ? "waking up" : "being built"),
                 "<p>This page reloads by itself.</p>" + progress(*route) + log_link(route->slug),
                 true),
            3);
        if (!again) break;
        continue;
      }
      if (route->kind == ProxyRoute::Kind::kFailed) {
        bool again = co_await answer(session, version, keep_alive && !has_body, 502,
                                     page("Preview " + route->slug + " failed",
                                          "<p>The environment could not be built:</p>" + progress(*route) + "<pre>" + html_escape(route->detail) +
                                              "</pre><p>A push to the pull request's branch builds it again; this page "
                                              "reloads by itself and shows the new build.</p>" +
                                              log_link(route->slug),
                                          true),
                                     10);
        if (!again) break;
        continue;
      }

      hit(route->env_id);
      if (!upstream || upstream_port != route->upstream.port || upstream_host != route->upstream.host || !upstream->is_open()) {
        upstream.emplace(client.get_executor());
        upstream_buffer.clear();
        upstream_buffer.reserve(kReadBuffer);
        upstream_host = route->upstream.host;
        upstream_port = route->upstream.port;
        session.touch();
        std::vector<tcp::endpoint> candidates = co_await upstream_endpoints(*route);
        auto [cec, connected] = co_await asio::async_connect(*upstream, candidates, nothrow);
        if (candidates.empty() || cec) {
          if (!candidates.empty()) forget_resolved(*route);  // the name may have moved: look it up again next time
          upstream.reset();
          bool again = false;
          if (!route->updating_to.empty()) {
            again = co_await answer_updating(session, version, keep_alive && !has_body, *route);
          } else {
            again = co_await answer(session, version, keep_alive && !has_body, 502,
                                    page("Preview " + route->slug + " is not answering",
                                         "<p>Its service did not accept the connection. It may be restarting; this page reloads by itself.</p>",
                                         true),
                                    3);
          }
          if (!again) break;
          continue;
        }
        beast::error_code nd;
        upstream->set_option(tcp::no_delay(true), nd);
      }

      bool websocket = beast::websocket::is_upgrade(req);
      // Forwarding headers; hop-by-hop headers stay on this hop.
      std::string forwarded_for = std::string(req["X-Forwarded-For"]);
      req.set("X-Forwarded-For", forwarded_for.empty() ? client_address : forwarded_for + ", " + client_address);
      req.set("X-Forwarded-Proto", kTls ? "https" : "http");
      req.set("X-Forwarded-Host", host_header);
      req.erase(http::field::proxy_connection);
      req.erase(http::field::keep_alive);
      req.erase(http::field::te);
      if (!websocket) {
        req.erase(http::field::upgrade);
        req.version(11);
        req.keep_alive(true);
      }
      bool head = req.method() == http::verb::head;

      RelayFailure request_failure;
      if (has_body) {  // the body's clock (a request without one never reads it)
        session.body_started = std::chrono::steady_clock::now();
        session.body_received = 0;
      }
      if (req.chunked()) {
        http::request_serializer<http::buffer_body> request_serializer{req};
        request_failure = co_await relay_body<true>(session, *upstream, client, client_buffer, request_parser, request_serializer);
      } else {
        request_failure = co_await relay_plain<true>(session, *upstream, client, client_buffer, request_parser);
      }
      if (request_failure) {
        upstream.reset();  // it holds part of a request: never reused
        if (!request_failure.reading)
          co_await answer(session, version, false, 502, page("Preview " + route->slug + " is not answering", "", true), 3);
        else if (request_failure.ec.category() == http::make_error_code(http::error::bad_chunk).category())
          co_await answer(session, version, false, 400, page("Bad request", "<p>The request body is malformed.</p>", false));
        break;  // else the client went away mid-body
      }

      http::response_parser<http::buffer_body> response_parser;
      response_parser.body_limit(boost::none);
      response_parser.skip(head);
      session.touch();
      // A response with ambiguous framing (Transfer-Encoding and Content-Length,
      // RFC 9112 6.3) fails here and is handled as an error: 502, never forwarded.
      beast::error_code rh_ec = co_await read_message(*upstream, upstream_buffer, response_parser, true);
      if (rh_ec) {
        upstream.reset();
        if (!route->updating_to.empty() && rh_ec != beast::error::timeout) co_await answer_updating(session, version, false, *route);
        else co_await answer(session, version, false, rh_ec == beast::error::timeout ? 504 : 502, page("Preview " + route->slug + " did not answer", "", true), 3);
        break;
      }
      auto& res = response_parser.get();
      if (!response_parser.is_done() && !holds_whole_body(response_parser, upstream_buffer)) ack_now(*upstream);
      int status = res.result_int();
      bool upstream_keep_alive = res.keep_alive();
      // A body that ends when the upstream closes ends for the client the same way.
      if (response_parser.need_eof()) keep_alive = false;

      if (websocket && status == 101) {
        session.tunnel = true;  // a websocket may stay quiet for long: no idle limit
        const std::string upgrade_head = head_text(res.base());
        auto [uw_ec, uw_n] = co_await asio::async_write(client, asio::buffer(upgrade_head), nothrow);
        count(status);
        if (uw_ec) break;
        // Bytes already read past the headers belong to the tunnel.
        if (client_buffer.size()) co_await asio::async_write(*upstream, client_buffer.data(), nothrow);
        if (upstream_buffer.size()) co_await asio::async_write(client, upstream_buffer.data(), nothrow);
        co_await (pump(client, *upstream) || pump(*upstream, client));
        break;
      }

      res.keep_alive(keep_alive);
      res.set(kRobotsHeader, kRobotsNoIndex);  // a preview is never for search engines, whatever the app says
      RelayFailure response_failure;
      if (res.chunked()) {
        http::response_serializer<http::buffer_body> response_serializer{res};
        response_failure = co_await relay_body<false>(session, client, *upstream, upstream_buffer, response_parser, response_serializer);
      } else {
        response_failure = co_await relay_plain<false>(session, client, *upstream, upstream_buffer, response_parser);
      }
      if (response_failure && response_failure.reading && !response_failure.forwarded) {
        // The upstream went away after its head, before anything reached the
        // client (a process killed mid-answer): an answer, not a dropped connection.
        upstream.reset();
        if (!route->updating_to.empty()) co_await answer_updating(session, version, false, *route);
        else co_await answer(session, version, false, 502, page("Preview " + route->slug + " did not answer", "", true), 3);
        break;
      }
      count(status);
      if (response_failure) break;  // the client's connection is cut: a truncated body never looks whole
      if (!upstream_keep_alive) upstream.reset();
      if (!keep_alive) break;
    }
  }

  ProxyOptions options_;
  const RouteTable& routes_;
  ProxyHooks hooks_;
  std::vector<std::unique_ptr<Worker>> workers_;
  unsigned short port_ = 0;
  unsigned short tls_port_ = 0;
  std::mutex tls_mutex_;
  std::shared_ptr<asio::ssl::context> tls_;  // swapped by reload_tls(); sessions keep the one they started with
  ConnectionLimits connections_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(asio::io_context& ctx, const std::string& host, unsigned short port,
                                                      HttpHandler handler, size_t max_body, std::optional<OffloadedRoutes> offload) {
  auto endpoint = endpoint_for(host, port);
  if (!endpoint.ok()) return endpoint.error();
  auto server = std::make_unique<ApiServer>(ctx, std::move(handler), max_body, std::move(offload));
  PREVUE_TRY(server->start(*endpoint, host));
  return std::unique_ptr<HttpServer>(std::move(server));
}

Result<std::unique_ptr<Proxy>> Proxy::start(const ProxyOptions& options, const RouteTable& routes, ProxyHooks hooks) {
  auto proxy = std::make_unique<ProxyServer>(options, routes, std::move(hooks));
  PREVUE_TRY(proxy->start());
  return std::unique_ptr<Proxy>(std::move(proxy));
}

}  // namespace prevue
