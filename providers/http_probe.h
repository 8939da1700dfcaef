// The HTTP health probe providers run against a service: one GET, the
// status code back. Shared by the local and compose providers.
#pragma once

#include <string>

#include "core/endpoint.h"

namespace prevue {

// GET `path` at `endpoint` (an IP literal or a name), waiting at most
// `timeout_ms` to connect and again for the status line; the status code,
// or 0 when nothing answered.
int http_status(const Endpoint& endpoint, const std::string& path, int timeout_ms);

// Whether the status says healthy: 2xx or 3xx.
inline bool healthy_status(int status) { return status >= 200 && status < 400; }

}  // namespace prevue
