#include "daemon/config.h"

#include <boost/asio/ip/address.hpp>

#include "core/files.h"
#include "core/slug.h"

#include <cstdlib>
#include <regex>
#include "manifest/json_reader.h"

namespace prevue {

using json_reader::Reader;
using json_reader::ReadError;

namespace {

ListenAddress read_listen(const Reader& r) {
  std::string text = r.string();
  auto colon = text.rfind(':');
  if (colon == std::string::npos) r.fail("must be HOST:PORT (e.g. 127.0.0.1:8080)");
  ListenAddress a;
  a.host = text.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535)
    r.fail("has an invalid port '" + port + "'");
  a.port = static_cast<unsigned short>(std::stoi(port));
  if (a.host.empty()) r.fail("needs a host (127.0.0.1 keeps it on this machine)");
  return a;
}

int read_int(const Reader& r, int low, int high) { return static_cast<int>(r.integer(low, high)); }

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

// A secret kept in a file the reader names (a token, a password): its text, without the final line break.
std::string read_secret_file(const Reader& r, const std::filesystem::path& base) {
  auto text = read_file(resolve(base, r.string()));
  if (!text.ok()) r.fail(text.error().message);
  std::string secret = *text;
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
}

// {"mode": "login" | "link" | "password" | "public", "password" | "password_file" | "password_env"}
AccessSettings read_access(const Reader& r, const std::filesystem::path& base) {
  r.expect_object({"mode", "password", "password_file", "password_env"});
  AccessSettings a;
  auto mode = parse_access_mode(r.required_string("mode"));
  if (!mode) r.at("mode").fail("must be \"login\", \"link\", \"password\" or \"public\"");
  a.mode = *mode;
  int given = r.has("password") + r.has("password_file") + r.has("password_env");
  if (a.mode != AccessMode::kPassword) {
    if (given) r.fail("a password belongs to mode \"password\"");
    return a;
  }
  if (given != 1) r.fail("mode \"password\" needs one of \"password\", \"password_file\", \"password_env\"");
  if (r.has("password")) a.password = r.at("password").string();
  if (r.has("password_file")) a.password = read_secret_file(r.at("password_file"), base);
  if (r.has("password_env")) {
    const char* value = std::getenv(r.at("password_env").string().c_str());
    if (!value) r.at("password_env").fail("names an environment variable that is not set");
    a.password = value;
  }
  if (a.password.size() < 8) r.fail("the password must be at least 8 characters");
  return a;
}

}  // namespace

Config default_config(const std::filesystem::path& state_dir) {
  Config c;
  c.state_dir = state_dir;
  c.hosts_file = state_dir / "hosts";
  return c;
}

Result<Config> parse_config(std::string_view text, const std::filesystem::path& config_path) {
  auto parsed = json_reader::parse_document(text, config_path.string());
  if (!parsed.ok()) return parsed.error();
  const nlohmann::json& doc = *parsed;
  std::filesystem::path base = std::filesystem::absolute(config_path).parent_path();
  try {
    Reader root(doc, "$");
    root.expect_object({"state_dir", "provider_dir", "provider_timeout", "api", "proxy", "repositories", "dns", "lease", "concurrency", "scheduler",
                        "webhooks", "trust", "secrets", "providers", "postgres", "access", "share_link_ttl", "lease_warning"});
    Config c;
    if (!root.has("state_dir")) root.fail("missing required field 'state_dir'");
    c = default_config(resolve(base, root.at("state_dir").string()));
    if (root.has("provider_dir")) c.provider_dir = resolve(base, root.at("provider_dir").string());
    if (root.has("provider_timeout")) c.provider_timeout = root.at("provider_timeout").duration();
    if (root.has("api")) {
      Reader api = root.at("api");
      api.expect_object({"listen", "token", "token_file", "public_url"});
      if (api.has("listen")) c.api = read_listen(api.at("listen"));
      if (api.has("public_url")) {
        c.api_public_url = api.at("public_url").string();
        if (!c.api_public_url.starts_with("http://") && !c.api_public_url.starts_with("https://"))
          api.at("public_url").fail("must start with http:// or https://");
        while (c.api_public_url.ends_with("/")) c.api_public_url.pop_back();
      }
      if (api.has("token")) c.api_token = api.at("token").string();
      if (api.has("token_file")) c.api_token = read_secret_file(api.at("token_file"), base);
    }
    if (root.has("proxy")) {
      Reader p = root.at("proxy");
      p.expect_object({"listen", "domain", "public_url", "threads", "max_header_bytes", "max_body_bytes", "timeout", "wake_timeout", "tls",
                       "header_timeout", "body_timeout", "min_body_rate", "max_connections", "max_connections_per_client"});
      if (p.has("listen")) c.proxy = read_listen(p.at("listen"));
      if (p.has("domain")) {
        c.domain = p.at("domain").string();
        if (c.domain.empty() || c.domain.front() == '.' || c.domain.back() == '.' ||
            c.domain.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") != std::string::npos)
          p.at("domain").fail("must be a lower-case DNS name like preview.example.com");
      }
      if (p.has("public_url")) c.public_url = p.at("public_url").string();
      if (p.has("threads")) c.proxy_threads = read_int(p.at("threads"), 1, 64);
      if (p.has("max_header_bytes")) c.max_header_bytes = static_cast<size_t>(read_int(p.at("max_header_bytes"), 1024, 1 << 20));
      if (p.has("max_body_bytes")) c.max_body_bytes = static_cast<size_t>(read_int(p.at("max_body_bytes"), 0, 1 << 30));
      if (p.has("timeout")) c.proxy_timeout = p.at("timeout").duration();
      if (p.has("wake_timeout")) c.wake_timeout = p.at("wake_timeout").duration();
      if (p.has("header_timeout")) c.header_timeout = p.at("header_timeout").duration();
      if (p.has("body_timeout")) c.body_timeout = p.at("body_timeout").duration();
      if (p.has("min_body_rate")) c.min_body_rate = read_int(p.at("min_body_rate"), 1, 1 << 30);
      if (p.has("max_connections")) c.max_connections = read_int(p.at("max_connections"), 0, 10'000'000);
      if (p.has("max_connections_per_client")) c.max_connections_per_client = read_int(p.at("max_connections_per_client"), 1, 10'000'000);
      if (p.has("tls")) {
        Reader t = p.at("tls");
        t.expect_object({"listen", "cert_file", "key_file", "redirect_http"});
        if (!t.has("listen")) t.fail("needs \"listen\": HOST:PORT for HTTPS (e.g. 127.0.0.1:8443)");
        c.tls_listen = read_listen(t.at("listen"));
        c.tls_cert_file = resolve(base, t.required_string("cert_file"));
        c.tls_key_file = resolve(base, t.required_string("key_file"));
        if (t.has("redirect_http")) c.redirect_http = t.at("redirect_http").boolean();
      }
    }
    // Previews are private by default: only those who sign in to the
    // dashboard open them. Without a token nobody can sign in, so they stay public.
    c.access.mode = c.api_token.empty() ? AccessMode::kPublic : AccessMode::kLogin;
    if (root.has("access")) c.access = read_access(root.at("access"), base);
    if (root.has("lease_warning")) c.lease_warning = root.at("lease_warning").duration();
    if (root.has("share_link_ttl")) {
      c.share_link_ttl = root.at("share_link_ttl").duration();
      if (c.share_link_ttl.count() < 1000) root.at("share_link_ttl").fail("must be at least 1s");
    }
    if (root.has("repositories")) {
      Reader repos = root.at("repositories");
      if (!repos.value().is_array()) repos.fail("must be an array");
      for (size_t i = 0; i < repos.value().size(); ++i) {
        Reader r(repos.value()[i], repos.path() + "[" + std::to_string(i) + "]");
        r.expect_object({"url", "base", "poll_interval", "pull_requests", "names", "access"});
        WatchedRepository w;
        w.url = r.required_string("url");
        if (w.url.find("://") == std::string::npos && w.url.find('@') == std::string::npos) w.url = resolve(base, w.url).string();
        w.base = r.string_or("base", "main");
        if (r.has("poll_interval")) {
          w.poll_interval = r.at("poll_interval").duration();
          if (w.poll_interval.count() < 100) r.at("poll_interval").fail("must be at least 100ms");
        }
        if (r.has("pull_requests")) {
          std::string mode = r.at("pull_requests").string();
          if (mode == "auto") w.pull_requests = PullRequestSource::kAuto;
          else if (mode == "branches") w.pull_requests = PullRequestSource::kBranches;
          else if (mode == "refs") w.pull_requests = PullRequestSource::kRefs;
          else if (mode == "webhooks") w.pull_requests = PullRequestSource::kWebhooks;
          else r.at("pull_requests").fail("must be \"auto\", \"branches\", \"refs\" or \"webhooks\"");
        }
        if (r.has("names")) w.names = r.at("names").strings();
        if (r.has("access")) w.access = read_access(r.at("access"), base);
        c.repositories.push_back(w);
      }
    }
    if (root.has("dns")) {
      Reader d = root.at("dns");
      d.expect_object({"backend", "hosts_file", "address", "server", "zone", "key_file", "record", "target", "ttl", "timeout",
                       "attempts", "zone_transfer", "command"});
      if (d.has("backend")) {
        c.dns_backend = d.at("backend").string();
        if (c.dns_backend != "hosts" && c.dns_backend != "none" && c.dns_backend != "rfc2136" && c.dns_backend != "command")
          d.at("backend").fail("must be \"hosts\", \"rfc2136\", \"command\" or \"none\"");
      }
      if (d.has("hosts_file")) c.hosts_file = resolve(base, d.at("hosts_file").string());
      if (d.has("address")) c.dns_address = d.at("address").string();
      Rfc2136Settings& r = c.rfc2136;
      if (c.dns_backend == "rfc2136") {
        if (!d.has("server")) d.fail("rfc2136 needs \"server\": the authoritative server's IP[:port]");
        // "192.0.2.1", "192.0.2.1:5353", "::1" or "[::1]:5353"
        std::string server = d.at("server").string();
        if (server.empty()) d.at("server").fail("must not be empty");
        bool with_port = server.front() == '[' || std::count(server.begin(), server.end(), ':') == 1;
        ListenAddress where = with_port ? read_listen(d.at("server")) : ListenAddress{server, 53};
        boost::system::error_code bad;
        if (boost::asio::ip::make_address(where.host, bad), bad) d.at("server").fail("must be an IP address[:port], not a name");
        r.server = where.host;
        r.port = where.port;
        if (!d.has("key_file")) d.fail("rfc2136 needs \"key_file\": the TSIG key (tsig-keygen or keymgr -t output)");
        if (Status read = read_tsig_key_file(resolve(base, d.at("key_file").string()), r); !read.ok())
          d.at("key_file").fail(read.error().message);
        if (d.has("record")) {
          r.record_type = d.at("record").string();
          if (r.record_type != "A" && r.record_type != "AAAA" && r.record_type != "CNAME") d.at("record").fail("must be A, AAAA or CNAME");
        }
        if (d.has("target")) r.target = d.at("target").string();
        if (r.record_type == "CNAME" && r.target.empty()) d.fail("a CNAME record needs \"target\": the name previews point at");
        if (d.has("ttl")) r.ttl = read_int(d.at("ttl"), 0, 86400);
        if (d.has("timeout")) r.timeout = d.at("timeout").duration();
        if (d.has("attempts")) r.attempts = read_int(d.at("attempts"), 1, 10);
        if (d.has("zone_transfer")) r.zone_transfer = d.at("zone_transfer").boolean();
        if (d.has("zone")) r.zone = d.at("zone").string();
      }
      if (c.dns_backend == "command") {
        if (!d.has("command")) d.fail("the command backend needs \"command\": an argv array");
        c.dns_command = d.at("command").argv();
        if (d.has("timeout")) c.dns_command_timeout = d.at("timeout").duration();
      }
    }
    if (root.has("lease")) c.lease = json_reader::read_lease(root.at("lease")).over(c.lease);
    if (root.has("concurrency")) c.concurrency = read_int(root.at("concurrency"), 1, 64);
    if (root.has("providers")) {
      // Each provider's operator settings (a registry, a kubeconfig, a
      // state backend): handed to that provider with every request, never
      // taken from a repository.
      Reader providers = root.at("providers");
      if (!providers.value().is_object()) providers.fail("must be an object of PROVIDER: {settings}");
      for (const auto& item : providers.value().items()) {
        Reader one(item.value(), providers.child_path(item.key()));
        if (!item.value().is_object()) one.fail("must be an object (the provider's operator settings)");
        c.provider_settings[item.key()] = item.value().dump();
      }
    }
    if (root.has("postgres")) {
      // Servers for `postgres` seeds, by the name a manifest gives ("server").
      Reader servers = root.at("postgres");
      if (!servers.value().is_object())
        servers.fail("must be an object of NAME: {\"url\" | \"url_file\" | \"url_env\", \"pool\", \"keep_unused\", \"dumps\"}");
      for (const auto& item : servers.value().items()) {
        Reader one(item.value(), servers.child_path(item.key()));
        one.expect_object({"url", "url_file", "url_env", "pool", "keep_unused", "dumps"});
        pg::Server server;
        server.name = item.key();
        if (one.has("url")) {
          server.url = one.at("url").string();
        } else if (one.has("url_file")) {
          auto content = read_file(resolve(base, one.at("url_file").string()));
          if (!content.ok()) one.at("url_file").fail(content.error().message);
          server.url = *content;
          while (!server.url.empty() && (server.url.back() == '\n' || server.url.back() == '\r')) server.url.pop_back();
        } else if (one.has("url_env")) {
          const char* v = std::getenv(one.at("url_env").string().c_str());
          if (!v) one.at("url_env").fail("names an environment variable that is not set");
          server.url = v;
        } else {
          one.fail("needs one of url, url_file or url_env (a role that may create databases and roles)");
        }
        if (auto parsed = pg::parse_connection(server.url); !parsed.ok()) one.fail(parsed.error().message);
        if (one.has("pool")) {
          const auto& pool = one.at("pool").value();
          if (!pool.is_number_integer() || pool.get<std::int64_t>() < 0 || pool.get<std::int64_t>() > 50)
            one.at("pool").fail("must be an integer from 0 to 50");
          server.pool = pool.get<int>();
        }
        if (one.has("keep_unused")) server.keep_unused = one.at("keep_unused").duration();
        if (one.has("dumps")) {
          Reader dumps = one.at("dumps");
          if (!dumps.value().is_object()) dumps.fail("must map dump names to files");
          for (const auto& dump : dumps.value().items()) {
            Reader file(dump.value(), dumps.child_path(dump.key()));
            if (!is_valid_seed_name(dump.key())) file.fail("a dump's name is letters, digits and '_', starting with a letter");
            const std::string& where = file.string();
            if (where.rfind("http://", 0) == 0 || where.rfind("https://", 0) == 0) {  // fetched when a seed names it
              if (where.find_first_of(" \t\r\n") != std::string::npos) file.fail("is not a URL");
              server.dumps[dump.key()] = where;
              continue;
            }
            std::filesystem::path path = resolve(base, where);
            if (!std::filesystem::is_regular_file(path)) file.fail("is not a file: " + path.string());
            server.dumps[dump.key()] = path.string();
          }
        }
        c.postgres_servers[server.name] = server;
      }
    }
    if (root.has("secrets")) {
      Reader secrets = root.at("secrets");
      if (!secrets.value().is_object()) secrets.fail("must be an object of NAME: {\"file\" | \"env\" | \"value\"}");
      static const std::regex kSecretName("[A-Za-z_][A-Za-z0-9_]{0,63}");
      for (const auto& item : secrets.value().items()) {
        Reader one(item.value(), secrets.child_path(item.key()));
        if (!std::regex_match(item.key(), kSecretName)) one.fail("secret names are [A-Za-z_][A-Za-z0-9_]*");
        one.expect_object({"file", "env", "value"});
        std::string value;
        if (one.has("value")) {
          value = one.at("value").string();
        } else if (one.has("file")) {
          auto content = read_file(resolve(base, one.at("file").string()));
          if (!content.ok()) one.at("file").fail(content.error().message);
          value = *content;
          while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
        } else if (one.has("env")) {
          const char* v = std::getenv(one.at("env").string().c_str());
          if (!v) one.at("env").fail("names an environment variable that is not set");
          value = v;
        } else {
          one.fail("needs one of file, env or value");
        }
        c.secrets[item.key()] = value;
      }
    }
    if (root.has("trust")) {
      Reader t = root.at("trust");
      t.expect_object({"labels", "authors"});
      if (t.has("labels")) c.trusted_labels = t.at("labels").strings();
      if (t.has("authors")) c.trusted_authors = t.at("authors").strings();
    }
    if (root.has("webhooks")) {
      Reader hooks = root.at("webhooks");
      hooks.expect_object({"max_body_bytes", "github", "gitlab", "gitea", "bitbucket"});
      if (hooks.has("max_body_bytes")) c.webhook_max_body_bytes = static_cast<size_t>(read_int(hooks.at("max_body_bytes"), 1024, 1 << 30));
      // A secret from the file itself, a file, or an environment variable.
      auto secret_of = [&](const Reader& h, const std::string& field) -> std::string {
        if (h.has(field)) return h.at(field).string();
        if (h.has(field + "_file")) {
          auto content = read_file(resolve(base, h.at(field + "_file").string()));
          if (!content.ok()) h.at(field + "_file").fail(content.error().message);
          std::string v = *content;
          while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
          return v;
        }
        if (h.has(field + "_env")) {
          std::string name = h.at(field + "_env").string();
          const char* v = std::getenv(name.c_str());
          if (!v || !*v) h.at(field + "_env").fail("names the environment variable " + name + ", which is not set");
          return v;
        }
        return {};
      };
      for (const char* host : {"github", "gitlab", "gitea", "bitbucket"}) {
        if (!hooks.has(host)) continue;
        Reader h = hooks.at(host);
        h.expect_object({"secret", "secret_file", "secret_env", "signing_secret", "signing_secret_file", "signing_secret_env", "report"});
        WebhookSettings settings;
        settings.enabled = true;
        settings.secret = secret_of(h, "secret");
        settings.signing_secret = secret_of(h, "signing_secret");
        if (settings.secret.empty() && settings.signing_secret.empty())
          h.fail("needs a secret (secret, secret_file or secret_env): unsigned webhooks are refused");
        if (h.has("report")) {
          Reader rep = h.at("report");
          rep.expect_object({"token", "token_file", "token_env", "api_url", "deployments", "comment", "context", "timeout", "attempts",
                             "backoff", "ca_file"});
          settings.report = true;
          settings.reporting.api.host = host;
          settings.reporting.api.token = secret_of(rep, "token");
          if (settings.reporting.api.token.empty()) rep.fail("needs a token (token, token_file or token_env) to call the " + std::string(host) + " API");
          settings.reporting.api.api_url = rep.string_or("api_url", default_api_url(host));
          if (settings.reporting.api.api_url.empty())
            rep.fail(std::string("needs api_url: ") + host + " is self-hosted (e.g. https://git.example.com/api/v1)");
          if (settings.reporting.api.api_url.rfind("https://", 0) != 0 && settings.reporting.api.api_url.rfind("http://", 0) != 0)
            rep.at("api_url").fail("must be an http:// or https:// URL");
          if (rep.has("deployments")) settings.reporting.api.deployments = rep.at("deployments").boolean();
          if (rep.has("comment")) settings.reporting.api.comment = rep.at("comment").boolean();
          settings.reporting.api.context = rep.string_or("context", "prevue");
          if (settings.reporting.api.context.empty() || settings.reporting.api.context.size() > 40) rep.at("context").fail("must be 1 to 40 characters");
          if (rep.has("timeout")) settings.reporting.client.timeout = rep.at("timeout").duration();
          if (rep.has("backoff")) settings.reporting.client.backoff = rep.at("backoff").duration();
          if (rep.has("attempts")) settings.reporting.client.attempts = read_int(rep.at("attempts"), 1, 10);
          if (rep.has("ca_file")) settings.reporting.client.ca_file = resolve(base, rep.at("ca_file").string()).string();
        }
        c.webhooks[host] = settings;
      }
    }
    if (root.has("scheduler")) {
      Reader s = root.at("scheduler");
      s.expect_object({"expiry_batch", "activity_flush", "reconcile_interval", "liveness_interval", "claim_ttl"});
      if (s.has("expiry_batch")) c.expiry_batch = read_int(s.at("expiry_batch"), 1, 100000);
      if (s.has("activity_flush")) c.activity_flush = s.at("activity_flush").duration();
      if (s.has("reconcile_interval")) c.reconcile_interval = s.at("reconcile_interval").duration();
      if (s.has("claim_ttl")) c.claim_ttl = s.at("claim_ttl").duration();
      if (s.has("liveness_interval")) c.liveness_interval = s.at("liveness_interval").duration();
    }
    if (c.dns_address.empty()) c.dns_address = c.proxy.host;
    if (c.dns_backend == "rfc2136") {
      Rfc2136Settings& r = c.rfc2136;
      r.domain = c.domain;
      if (r.zone.empty()) r.zone = c.domain;
      if (r.target.empty()) r.target = c.dns_address;
      if (r.record_type == "A" && r.target.find(':') != std::string::npos) r.record_type = "AAAA";
      r.state_file = c.state_dir / "dns-published";
      if (!within_domain(c.domain, r.zone)) root.at("dns").at("zone").fail("the preview domain " + c.domain + " is not inside zone " + r.zone);
    }
    return c;
  } catch (const ReadError& e) {
    return make_error(ErrorCode::kInvalidArgument, config_path.string() + ": " + e.path + " " + e.message);
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, config_path.string() + ": " + e.what());
  }
}

std::unique_ptr<DnsBackend> make_dns_backend(const Config& c) {
  if (c.dns_backend == "hosts") return std::make_unique<HostsFileBackend>(c.hosts_file, c.dns_address);
  if (c.dns_backend == "rfc2136") return std::make_unique<Rfc2136Backend>(c.rfc2136);
  if (c.dns_backend == "command") return std::make_unique<CommandDnsBackend>(c.dns_command, c.dns_address, c.domain, c.dns_command_timeout);
  return std::make_unique<NoDnsBackend>();
}

Result<Config> load_config(const std::filesystem::path& path) {
  auto text = read_file(path);
  if (!text.ok()) return make_error(ErrorCode::kNotFound, "cannot read config " + path.string());
  return parse_config(*text, path);
}

}  // namespace prevue
