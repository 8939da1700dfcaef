// Where a service answers: a host (an IP literal or a DNS name) and a port.
// Providers report it ("127.0.0.1:41873", "web.pr-42.svc:80", "[::1]:8080");
// routes store its text; the proxy connects to it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace prevue {

struct Endpoint {
  std::string host;
  unsigned short port = 0;

  // "host:port", with an IPv6 literal in brackets.
  std::string text() const;
  bool empty() const { return host.empty() || port == 0; }
  bool operator==(const Endpoint&) const = default;

  // Accepts "host:port" and "[v6]:port"; the host must be an IP literal or a
  // DNS name (letters, digits, '-', '.', '_'), the port 1-65535.
  static std::optional<Endpoint> parse(std::string_view text);
};

}  // namespace prevue
