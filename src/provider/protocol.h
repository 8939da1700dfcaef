// The provider protocol (docs/providers.md): one JSON request on stdin, one
// JSON response on stdout, logs on stderr. This codec is pure; the transport
// lives in provider_client.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prevue {

inline constexpr int kProviderProtocolVersion = 1;

enum class ProviderVerb { kDescribe, kAllocate, kApply, kSleep, kDestroy, kStatus, kList };
const char* to_string(ProviderVerb verb);

// Exit codes a provider uses (anything else is a crash).
inline constexpr int kProviderExitOk = 0;
inline constexpr int kProviderExitFailed = 1;      // the verb failed; the response says why
inline constexpr int kProviderExitBadRequest = 2;  // the request was not understood

struct ProviderService {
  std::string name;
  std::string workdir;                          // absolute
  std::vector<std::string> build;
  std::int64_t build_timeout_ms = 600'000;
  std::vector<std::string> run;
  std::map<std::string, std::string> env;
  std::string port_name = "http";
  std::string health_path = "/";
  std::int64_t ready_timeout_ms = 60'000;
  // Changes whenever what the service is built from changes. A running
  // service with the same revision is left running by apply, even when
  // per-commit values in its env or argv differ; an empty revision means
  // "compare the whole spec".
  std::string revision;
};

struct ProviderEnvironment {
  std::string slug;
  std::string dir;  // absolute; the provider may keep its records under <dir>/.prevue
  long pr = 0;
  std::string commit;
};

struct ProviderRequest {
  ProviderVerb verb = ProviderVerb::kDescribe;
  std::string state_root;  // where environments' directories live (for list)
  ProviderEnvironment environment;
  std::vector<ProviderService> services;       // allocate, apply
  std::int64_t stop_grace_ms = 5'000;          // destroy, apply (restart)
};

struct ServiceStatus {
  std::string name;
  int port = 0;
  long pid = 0;
  bool running = false;
  bool restarted = false;  // apply: (re)started by this call
};

struct EnvironmentListing {
  std::string slug;
  std::string dir;
  std::vector<ServiceStatus> services;
};

struct ProviderResponse {
  bool ok = false;
  std::string error_code;
  std::string error_message;
  // describe
  std::string name;
  int protocol = 0;
  std::vector<std::string> capabilities;
  // allocate, apply, status
  std::vector<ServiceStatus> services;
  // list
  std::vector<EnvironmentListing> environments;

  int port_of(std::string_view service) const;
};

std::string encode_request(const ProviderRequest& request);
Result<ProviderRequest> decode_request(std::string_view text);
std::string encode_response(const ProviderResponse& response);
// `exit_code` is the provider's; a failed verb is decoded into ok=false with
// its message, a garbled response is an error.
Result<ProviderResponse> decode_response(std::string_view text, int exit_code);

}  // namespace prevue
