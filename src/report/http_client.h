// An outgoing HTTP/1.1 client (Beast, OpenSSL for https://) for the git
// hosts' REST APIs: one deadline per attempt, retries with exponential
// backoff on transport errors, 429 and 5xx; connections are kept alive and
// reused per origin (one TLS context per trust store for the process).
// Plain interface: no Asio here.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/duration.h"
#include "core/result.h"

namespace prevue {

struct ClientRequest {
  std::string method = "GET";
  std::string url;  // http://host[:port]/path or https://...
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct ClientResponse {
  int status = 0;
  std::string body;
  std::string retry_after;  // the header, when the server sent one
};

struct ClientOptions {
  Millis timeout = Millis(10'000);  // connect + TLS + request + response, per attempt
  int attempts = 4;
  Millis backoff = Millis(500);     // before the second attempt; doubles, capped at 30 s
  std::string ca_file;              // extra trust anchors (a self-hosted GitLab's private CA); system store otherwise
  size_t max_response_bytes = 4 << 20;
  const std::atomic<bool>* cancelled = nullptr;  // stops waiting between attempts (shutdown)
};

// One attempt. An answer with any status is a value; no answer is an error.
Result<ClientResponse> http_call(const ClientRequest& request, const ClientOptions& options);

// Attempts until an answer that is not 429/5xx, or `attempts` are spent.
// The last answer (or error) is returned; `tries` (when given) counts attempts.
Result<ClientResponse> http_call_with_retries(const ClientRequest& request, const ClientOptions& options, int* tries = nullptr);

// What the reporters send through: http_call_with_retries in the service,
// a recorder in unit tests.
using HttpTransport = std::function<Result<ClientResponse>(const ClientRequest&)>;

}  // namespace prevue
