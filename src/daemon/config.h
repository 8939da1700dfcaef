// The daemon's configuration file (JSON), documented in docs/config.md.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "seed/postgres.h"
#include "core/duration.h"
#include "dns/dns_backend.h"
#include "http/preview_access.h"
#include "core/result.h"
#include "manifest/manifest.h"
#include "report/reporter.h"

namespace prevue {

struct ListenAddress {
  std::string host = "127.0.0.1";
  unsigned short port = 0;  // 0: pick a free port (printed at start)
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

enum class PullRequestSource { kAuto, kBranches, kRefs, kWebhooks };

// Who may open a repository's previews (docs/config.md#access): the mode,
// and for `password` the password itself (from the config, a file or an
// environment variable; never logged).
struct AccessSettings {
  AccessMode mode = AccessMode::kPublic;
  std::string password;
};

struct WatchedRepository {
  std::string url;                 // local path or URL
  std::optional<AccessSettings> access;  // else the config's `access`
  std::string base = "main";
  Millis poll_interval = Millis(30'000);
  PullRequestSource pull_requests = PullRequestSource::kAuto;  // kWebhooks: no poller, only the hosts' webhooks
  std::vector<std::string> names;  // how webhooks name it: "owner/name", clone or web URLs
};

// A git host's webhook settings; secrets come from the config, a file or an
// environment variable, and are never logged.
struct WebhookSettings {
  bool enabled = false;
  std::string secret;          // HMAC key (GitHub, Gitea/Forgejo, Bitbucket) or GitLab's X-Gitlab-Token
  std::string signing_secret;  // GitLab: Standard Webhooks signing token ("whsec_...")
  // Reporting back (statuses, the one comment): on when "report" is configured.
  bool report = false;
  HostReporting reporting;
};

struct Config {
  std::filesystem::path state_dir;
  std::filesystem::path provider_dir;   // empty: beside the binary
  Millis provider_timeout = Millis(30LL * 60'000);  // one provider verb; then it is stopped (its signal, its grace, SIGKILL)
  ListenAddress api{"127.0.0.1", 7400};
  std::string api_token;                // guards every call that changes something; empty: changes refused
  std::string api_public_url;           // the dashboard as browsers reach it; "http://{api listen}" by default
  ListenAddress proxy{"127.0.0.1", 8080};
  std::string domain = "prevue.localhost";
  std::string public_url;               // "http://{host}:8080/" by default
  int proxy_threads = 2;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024 * 1024;
  Millis proxy_timeout = Millis(60'000);
  Millis wake_timeout = Millis(60'000);
  // Slow clients (proxy.header_timeout, .body_timeout, .min_body_rate) and
  // how many connections it holds (.max_connections: 0 derives it from the
  // descriptor limit; .max_connections_per_client).
  Millis header_timeout = Millis(20'000);
  Millis body_timeout = Millis(20'000);
  int min_body_rate = 500;  // bytes/s; each such amount received adds 1 s to body_timeout
  int max_connections = 0;
  int max_connections_per_client = 256;
  // proxy.tls: HTTPS with a certificate and key from files, reloaded on SIGHUP.
  ListenAddress tls_listen{"", 0};       // empty host: none
  std::filesystem::path tls_cert_file, tls_key_file;
  bool redirect_http = false;
  std::vector<WatchedRepository> repositories;
  std::string dns_backend = "hosts";    // hosts | rfc2136 | command | none
  Rfc2136Settings rfc2136;              // dns.backend "rfc2136" (docs/dns.md)
  std::vector<std::string> dns_command; // dns.backend "command": argv
  Millis dns_command_timeout = Millis(30'000);
  std::filesystem::path hosts_file;     // default <state_dir>/hosts
  std::string dns_address;              // default: the proxy's listen address
  LeasePolicy lease;
  int concurrency = 2;
  int expiry_batch = 100;               // leases acted on per expiry pass
  Millis activity_flush = Millis(5'000);
  Millis reconcile_interval = Millis(30'000);
  Millis liveness_interval = Millis(60'000);  // ready environments' services checked; 0: never
  Millis claim_ttl = Millis(30LL * 60'000);
  std::map<std::string, WebhookSettings> webhooks;  // by host: github, gitlab, gitea, bitbucket
  // A pull request from a fork is untrusted unless a maintainer adds one of
  // these labels or its author is listed (docs/security.md).
  std::vector<std::string> trusted_labels;
  std::vector<std::string> trusted_authors;
  // {{ secret.NAME }}: values from the config, a file or an environment variable.
  std::map<std::string, std::string> secrets;
  // "providers": {"compose": {...}}: each provider's operator settings, as JSON text.
  std::map<std::string, std::string> provider_settings;
  // "postgres": {"main": {"url": …}}: servers for `postgres` seeds.
  std::map<std::string, pg::Server> postgres_servers;
  AccessSettings access;  // every repository's, unless it has its own
  Millis share_link_ttl = Millis(7LL * 24 * 3'600'000);  // a share link's default lifetime
  Millis lease_warning = Millis(24LL * 3'600'000);       // the PR's comment says a lease ends this long before (0: never)
  size_t webhook_max_body_bytes = 25 * 1024 * 1024;
};

// Parses and validates; errors name the JSON path. Relative paths are
// resolved against the config file's directory.
Result<Config> parse_config(std::string_view text, const std::filesystem::path& config_path);
Result<Config> load_config(const std::filesystem::path& path);
// The DNS backend the config names (the daemon's and `prevue gc`'s).
std::unique_ptr<DnsBackend> make_dns_backend(const Config& config);

// The configuration used when no file is given (`prevue gc` without --config).
Config default_config(const std::filesystem::path& state_dir);

}  // namespace prevue
