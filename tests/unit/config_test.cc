#include "daemon/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/files.h"
#include "core/redact.h"
#include "dns/dns_backend.h"

namespace prevue {
namespace {

TEST(Config, MinimalGetsDefaultsAndResolvesPaths) {
  auto c = parse_config(R"({"state_dir": "state"})", "/etc/prevue/config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->state_dir, "/etc/prevue/state");
  EXPECT_EQ(c->hosts_file, "/etc/prevue/state/hosts");
  EXPECT_EQ(c->api.port, 7400);
  EXPECT_EQ(c->proxy.port, 8080);
  EXPECT_EQ(c->domain, "prevue.localhost");
  EXPECT_EQ(c->dns_address, "127.0.0.1");
  EXPECT_EQ(c->concurrency, 2);
  EXPECT_EQ(c->access.mode, AccessMode::kPublic);  // nobody can sign in without a token: previews stay open
}

TEST(Config, PreviewsArePrivateByDefaultOnceSomeoneCanSignIn) {
  auto c = parse_config(R"({"state_dir": "/s", "api": {"token": "t", "public_url": "https://prevue.example.com/"}})", "/c/config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->access.mode, AccessMode::kLogin);
  EXPECT_EQ(c->api_public_url, "https://prevue.example.com");
  auto open = parse_config(R"({"state_dir": "/s", "api": {"token": "t"}, "access": {"mode": "public"}})", "/c/config.json");
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(open->access.mode, AccessMode::kPublic);
  EXPECT_FALSE(parse_config(R"({"state_dir": "/s", "api": {"public_url": "prevue.example.com"}})", "/c/config.json").ok());
}

TEST(Config, FullConfig) {
  auto c = parse_config(R"({"state_dir": "/s", "api": {"listen": "127.0.0.1:0", "token": "t"},
      "proxy": {"listen": "[::1]:8443", "domain": "preview.example.com", "threads": 4, "timeout": "5s"},
      "repositories": [{"url": "repos/app.git", "base": "trunk", "poll_interval": "10s", "pull_requests": "refs"},
                       {"url": "https://git.example.com/app.git"}],
      "dns": {"backend": "none"}, "lease": {"ttl": "1h", "end": "sleep"}, "concurrency": 3})",
                        "/c/config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->proxy.host, "::1");
  EXPECT_EQ(c->proxy.port, 8443);
  EXPECT_EQ(c->proxy_threads, 4);
  ASSERT_EQ(c->repositories.size(), 2u);
  EXPECT_EQ(c->repositories[0].url, "/c/repos/app.git");
  EXPECT_EQ(c->repositories[0].pull_requests, PullRequestSource::kRefs);
  EXPECT_EQ(c->repositories[1].url, "https://git.example.com/app.git");
  EXPECT_EQ(c->repositories[1].base, "main");
  EXPECT_EQ(c->lease.end, EndAction::kSleep);
  EXPECT_EQ(c->lease.idle.count(), 24LL * 3'600'000);
}

TEST(Config, PostgresDumpsAreFilesOrUrlsUnderNamesThatMakeFileNames) {
  const std::string dump = ::testing::TempDir() + "/prevue-config-dump.sql";
  ASSERT_TRUE(write_file_atomic(dump, "SELECT 1;\n").ok());
  auto c = parse_config(R"({"state_dir": "/s", "postgres": {"main": {"url": "postgres://p@127.0.0.1/postgres",
      "dumps": {"prod": ")" + dump + R"(", "nightly": "https://dumps.example.com/nightly.dump"}}}})",
                        "/c/config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->postgres_servers["main"].dumps["prod"], dump);
  EXPECT_EQ(c->postgres_servers["main"].dumps["nightly"], "https://dumps.example.com/nightly.dump");
  for (const char* bad : {R"("../x": "https://e.com/d")", R"("x": "/nowhere/at/all.dump")", R"("x": "https://e.com/a b")"}) {
    auto refused = parse_config(std::string(R"({"state_dir": "/s", "postgres": {"main": {"url": "postgres://p@h/postgres", "dumps": {)") + bad +
                                    "}}}}",
                                "/c/config.json");
    EXPECT_FALSE(refused.ok()) << bad;
    if (!refused.ok()) EXPECT_NE(refused.error().message.find("$.postgres.main.dumps."), std::string::npos) << refused.error().message;
  }
}

TEST(Config, ErrorsNameTheJsonPath) {
  auto error = [](const char* text) {
    auto c = parse_config(text, "/c/config.json");
    EXPECT_FALSE(c.ok()) << text;
    return c.ok() ? std::string() : c.error().message;
  };
  EXPECT_NE(error(R"({})").find("missing required field 'state_dir'"), std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "proxy": {"listen": "localhost"}})").find("$.proxy.listen must be HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "proxy": {"listen": "1.2.3.4:99999"}})").find("invalid port"), std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "repositories": [{"base": "main"}]})").find("$.repositories[0]"), std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "concurrency": 0})").find("$.concurrency must be between 1"), std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "proxy": {"domain": "Bad_Domain"}})").find("$.proxy.domain"), std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "dns": {"backend": "route53"}})").find("$.dns.backend"), std::string::npos);
  EXPECT_NE(error(R"({"state_dir": "/s", "colour": "blue"})").find("$.colour unknown field"), std::string::npos);
  EXPECT_NE(error("{\"state_dir\": ").find("JSON syntax error"), std::string::npos);
}

class DnsConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("prevue-dns-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    EXPECT_TRUE(write_file_atomic(dir_ / name, text).ok());
    return (dir_ / name).string();
  }
  Result<Config> parse(const std::string& dns, const std::string& domain = "preview.example.com") {
    return parse_config(R"({"state_dir": "s", "proxy": {"domain": ")" + domain + R"("}, "dns": )" + dns + "}",
                        dir_ / "config.json");
  }
  std::filesystem::path dir_;
};

TEST_F(DnsConfig, TsigKeyFilesInTheFormatsTheToolsWrite) {
  Rfc2136Settings bind, knot, compact;
  ASSERT_TRUE(read_tsig_key_file(write("bind.key", "key \"prevue\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n"), bind).ok());
  EXPECT_EQ(bind.key_name, "prevue");
  EXPECT_EQ(bind.key_secret, "c2VjcmV0");
  ASSERT_TRUE(read_tsig_key_file(write("knot.yaml", "# hmac-sha512:k2:...\nkey:\n  - id: k2\n    algorithm: hmac-sha512\n    secret: YWJj\n"), knot).ok());
  EXPECT_EQ(knot.key_name, "k2");
  EXPECT_EQ(knot.key_algorithm, "hmac-sha512");
  ASSERT_TRUE(read_tsig_key_file(write("compact", "hmac-sha256:k3:ZGVm\n"), compact).ok());
  EXPECT_EQ(compact.key_name, "k3");
  Rfc2136Settings bad;
  EXPECT_FALSE(read_tsig_key_file(write("empty", "nothing here\n"), bad).ok());
  EXPECT_FALSE(read_tsig_key_file(write("md5", "hmac-md5:k:ZGVm\n"), bad).ok());
  EXPECT_FALSE(read_tsig_key_file(dir_ / "missing", bad).ok());
}

TEST_F(DnsConfig, Rfc2136Settings) {
  write("k.key", "hmac-sha256:prevue:c2VjcmV0\n");
  auto c = parse(R"({"backend": "rfc2136", "server": "127.0.0.1:5353", "zone": "example.com", "key_file": "k.key", "address": "192.0.2.1"})");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->rfc2136.server, "127.0.0.1");
  EXPECT_EQ(c->rfc2136.port, 5353);
  EXPECT_EQ(c->rfc2136.zone, "example.com");
  EXPECT_EQ(c->rfc2136.domain, "preview.example.com");
  EXPECT_EQ(c->rfc2136.target, "192.0.2.1");
  EXPECT_EQ(c->rfc2136.record_type, "A");
  EXPECT_EQ(make_dns_backend(*c)->name(), "rfc2136");
  auto v6 = parse(R"({"backend": "rfc2136", "server": "::1", "key_file": "k.key", "address": "::1"})");
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->rfc2136.port, 53);
  EXPECT_EQ(v6->rfc2136.record_type, "AAAA");
  EXPECT_EQ(v6->rfc2136.zone, "preview.example.com");

  auto error = [&](const std::string& dns) {
    auto r = parse(dns);
    EXPECT_FALSE(r.ok()) << dns;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_NE(error(R"({"backend": "rfc2136", "key_file": "k.key"})").find("needs \"server\""), std::string::npos);
  EXPECT_NE(error(R"({"backend": "rfc2136", "server": "ns.example.com", "key_file": "k.key"})").find("IP address"), std::string::npos);
  EXPECT_NE(error(R"({"backend": "rfc2136", "server": "127.0.0.1"})").find("key_file"), std::string::npos);
  EXPECT_NE(error(R"({"backend": "rfc2136", "server": "127.0.0.1", "key_file": "nope.key"})").find("cannot read"), std::string::npos);
  EXPECT_NE(error(R"({"backend": "rfc2136", "server": "127.0.0.1", "key_file": "k.key", "zone": "other.org"})").find("not inside zone"),
            std::string::npos);
  EXPECT_NE(error(R"({"backend": "rfc2136", "server": "127.0.0.1", "key_file": "k.key", "record": "MX"})").find("A, AAAA or CNAME"),
            std::string::npos);
  EXPECT_NE(error(R"({"backend": "command"})").find("argv"), std::string::npos);
  EXPECT_NE(error(R"({"backend": "route53"})").find("rfc2136"), std::string::npos);
}

TEST(HostsFile, KeepsForeignLinesAndWritesOneLinePerHost) {
  auto dir = std::filesystem::temp_directory_path() / ("prevue-hosts-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "hosts";
  ASSERT_TRUE(write_file_atomic(file, "127.0.0.1 localhost\n# mine\n").ok());
  HostsFileBackend hosts(file, "127.0.0.1");
  ASSERT_TRUE(hosts.sync({"b.prevue.localhost", "a.prevue.localhost", "a.prevue.localhost"}).ok());
  std::string text = *read_file(file);
  EXPECT_NE(text.find("127.0.0.1 localhost\n# mine\n"), std::string::npos);
  EXPECT_NE(text.find("127.0.0.1 a.prevue.localhost\n127.0.0.1 b.prevue.localhost\n"), std::string::npos);
  ASSERT_TRUE(hosts.sync({"b.prevue.localhost"}).ok());
  text = *read_file(file);
  EXPECT_EQ(text.find("a.prevue.localhost"), std::string::npos);
  EXPECT_NE(text.find("b.prevue.localhost"), std::string::npos);
  EXPECT_NE(text.find("127.0.0.1 localhost"), std::string::npos);
  ASSERT_TRUE(hosts.sync({}).ok());
  EXPECT_EQ(read_file(file)->find("prevue.localhost"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prevue

namespace prevue {
namespace {

TEST(ServerPaths, AreHiddenFromTheFailedPage) {
  const std::string env = "/var/lib/prevue/envs/pr-1-x";
  EXPECT_EQ(without_server_paths("apply: cannot start /var/lib/prevue/envs/pr-1-x/web/server.py: exit 1", env),
            "apply: cannot start …/web/server.py: exit 1");
  EXPECT_EQ(without_server_paths("File \"/usr/lib/python3.11/socket.py\", line 3", env), "File \"…/socket.py\", line 3");
  EXPECT_EQ(without_server_paths("cwd=/root/.local/state/prevue/x (missing)", env), "cwd=…/x (missing)");
  EXPECT_EQ(without_server_paths("GET /healthz answered 500 at http://127.0.0.1:41234/healthz", env),
            "GET /healthz answered 500 at http://127.0.0.1:41234/healthz");
  EXPECT_EQ(without_server_paths("a/b/c and 1/2", env), "a/b/c and 1/2");
  EXPECT_EQ(without_server_paths(env, env), "…");
  EXPECT_EQ(without_server_paths("", env), "");
}

TEST(Secrets, AreRedactedLongestFirst) {
  Redactor redact({{"TOKEN", "s3cr3t-token"}, {"PART", "s3cr3t"}, {"TINY", "ab"}});
  EXPECT_EQ(redact("auth s3cr3t-token and s3cr3t, ab"), "auth [secret TOKEN] and [secret PART], ab");
  EXPECT_EQ(Redactor()("nothing to hide"), "nothing to hide");
}

TEST(Secrets, ComeFromTheConfig) {
  ::setenv("PREVUE_TEST_SECRET", "from-the-environment", 1);
  auto c = parse_config(R"({"state_dir": "/s", "secrets": {"A": {"value": "inline-value"}, "B": {"env": "PREVUE_TEST_SECRET"}}})",
                        "/c/config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->secrets.at("A"), "inline-value");
  EXPECT_EQ(c->secrets.at("B"), "from-the-environment");
  auto bad = parse_config(R"({"state_dir": "/s", "secrets": {"B": {"env": "PREVUE_NOT_SET_ANYWHERE"}}})", "/c/config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("$.secrets.B.env"), std::string::npos);
}

TEST(Config, ProvidersOperatorSettingsAreKeptPerProvider) {
  auto c = parse_config(R"({"state_dir": "/s", "providers": {"compose": {"registry": "127.0.0.1:5000"}}})", "/c/config.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->provider_settings.at("compose"), R"({"registry":"127.0.0.1:5000"})");
  auto bad = parse_config(R"({"state_dir": "/s", "providers": {"compose": "registry"}})", "/c/config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("$.providers.compose"), std::string::npos);
}

TEST(Config, NumbersPastTheirRangeAreErrors) {
  for (const char* text : {R"({"state_dir": "s", "concurrency": 1e400})", R"({"state_dir": "s", "concurrency": 1e300})",
                           R"({"state_dir": "s", "concurrency": 18446744073709551615})",
                           R"({"state_dir": "s", "proxy": {"threads": -9223372036854775808}})"}) {
    auto c = parse_config(text, "/etc/prevue/config.json");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.error().message.find("/etc/prevue/config.json"), std::string::npos) << c.error().message;
  }
}
}  // namespace
}  // namespace prevue
