// The provider protocol (docs/providers.md): one JSON request on stdin, one
// JSON response on stdout, logs on stderr. This codec is pure; the transport
// lives in provider_client.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/endpoint.h"
#include "core/result.h"

namespace prevue {

inline constexpr int kProviderProtocolVersion = 2;

enum class ProviderVerb { kDescribe, kValidate, kAllocate, kApply, kPrune, kSleep, kDestroy, kStatus, kList, kLogs, kExec, kPut, kPlan };
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
  std::vector<std::string> run;                 // may be empty where the provider needs no command
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
  std::string dir;          // absolute: the repository's files at the commit, rendered; nothing of the provider's
  std::string records_dir;  // absolute: the provider's own records for this environment (outside `dir`)
  long pr = 0;
  std::string commit;
  std::string repository;            // apply, plan: the repository's key, for labels a person reads
  std::int64_t lease_deadline_ms = 0;  // apply: when the lease ends if nothing renews it (unix ms); 0: never (pinned)
  std::string ref;                   // apply, plan: the branch (or tag) the environment follows
  std::string url;                   // apply, plan: the preview's address, as reviewers open it
};

struct ProviderRequest {
  ProviderVerb verb = ProviderVerb::kDescribe;
  std::string state_root;    // where environments' directories live
  std::string records_root;  // this provider's records, one directory per environment (list finds orphans here)
  ProviderEnvironment environment;
  std::string settings = "{}";  // the manifest's block for this provider: a JSON object, as text
  // The operator's settings for this provider (prevue's config, "providers"):
  // a JSON object, as text. Trusted, unlike `settings`, which a PR can change.
  std::string operator_settings = "{}";
  std::vector<ProviderService> services;       // allocate, apply
  std::int64_t stop_grace_ms = 5'000;          // destroy, apply (restart)
  std::int64_t log_lines = 100;                // logs: how many of the last lines
  std::int64_t exec_timeout_ms = 300'000;      // exec: how long the command may run
  std::string put_source;  // put: a file on prevue's host (absolute)
  std::string put_target;  // put: where it goes inside the one service (absolute), replacing what is there at once
};

struct ServiceStatus {
  std::string name;
  Endpoint endpoint;  // where it answers; empty for a service without a port
  long pid = 0;
  bool running = false;
  bool restarted = false;  // apply: (re)started by this call
};

// A named value a provider hands to later steps ({{ output.NAME }}).
struct ProviderOutput {
  std::string value;
  bool sensitive = false;  // redacted wherever secrets are
  bool operator==(const ProviderOutput&) const = default;
};

// One thing a teardown removed (or found gone): a line of its receipt.
struct ReceiptItem {
  std::string kind;     // "process", "container", "namespace", "workspace", "database", "route", "directory", ...
  std::string name;     // what it was: "web (pid 5120)", "pr-42-x.prevue.localhost"
  std::string outcome;  // "stopped", "killed after its grace", "removed", "already gone"
  std::string by;       // filled in by prevue: the provider (or "prevue") that removed it; not on the wire
  std::string layer;    // filled in by prevue: the environment's layer it belonged to; not on the wire
  bool operator==(const ReceiptItem&) const = default;
};

// One thing wrong with a provider's settings, at its JSON path.
struct SettingsProblem {
  std::string path;  // "$.compose.files[0]"
  std::string message;
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
  int stop_signal = 15;              // SIGTERM; a provider may ask for SIGINT (2)
  std::int64_t stop_grace_ms = 10'000;  // how long it needs to stop cleanly after that signal
  bool zero_downtime = false;        // apply keeps the old version serving until the new one is healthy
  std::string settings_schema = "{}";  // JSON Schema of its settings block, as text
  // validate
  std::vector<SettingsProblem> problems;
  // allocate, apply, status
  std::vector<ServiceStatus> services;
  std::map<std::string, ProviderOutput> outputs;  // apply
  std::vector<ReceiptItem> removed;                // destroy (and prune): what it removed
  // list
  std::vector<EnvironmentListing> environments;
  // logs: the service's last lines of output; exec: the command's output
  std::string log;

  const ServiceStatus* service(std::string_view name) const;
  // describe: whether the provider implements `verb`.
  bool can(ProviderVerb verb) const;
};

// "SIGTERM" or "SIGINT", the two stop signals a provider may declare.
const char* stop_signal_name(int signal);

std::string encode_request(const ProviderRequest& request);
Result<ProviderRequest> decode_request(std::string_view text);
std::string encode_response(const ProviderResponse& response);
// `exit_code` is the provider's; a failed verb is decoded into ok=false with
// its message, a garbled response is an error.
Result<ProviderResponse> decode_response(std::string_view text, int exit_code);

}  // namespace prevue
