#include "provider/protocol.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

TEST(Protocol, RequestRoundTrips) {
  ProviderRequest r;
  r.verb = ProviderVerb::kApply;
  r.state_root = "/state/envs";
  r.records_root = "/state/providers/local";
  r.environment = ProviderEnvironment{"pr-1-x", "/state/envs/pr-1-x", "/state/providers/local/pr-1-x", 1, "abc", "acme/shop", 1'780'000'000'000,
                                      "feature/login", "http://pr-1-x.prevue.localhost/"};
  r.settings = R"({"files": ["compose.yaml"], "profiles": {"dev": true}})";
  r.operator_settings = R"({"registry": "127.0.0.1:5000"})";
  ProviderService s;
  s.name = "web";
  s.workdir = "/state/envs/pr-1-x/web";
  s.run = {"python3", "server.py", "--title", "a \"quoted\" $(title)"};
  s.env = {{"ENV_NAME", "preview"}};
  s.revision = "r1";
  r.services.push_back(s);
  auto back = decode_request(encode_request(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->verb, ProviderVerb::kApply);
  EXPECT_EQ(back->environment.slug, "pr-1-x");
  EXPECT_EQ(back->environment.records_dir, "/state/providers/local/pr-1-x");
  EXPECT_EQ(back->environment.repository, "acme/shop");
  EXPECT_EQ(back->environment.lease_deadline_ms, 1'780'000'000'000);
  EXPECT_EQ(back->environment.ref, "feature/login");
  EXPECT_EQ(back->environment.url, "http://pr-1-x.prevue.localhost/");
  EXPECT_EQ(back->records_root, "/state/providers/local");
  EXPECT_EQ(back->settings, R"({"files":["compose.yaml"],"profiles":{"dev":true}})");
  EXPECT_EQ(back->operator_settings, R"({"registry":"127.0.0.1:5000"})");
  ASSERT_EQ(back->services.size(), 1u);
  EXPECT_EQ(back->services[0].run, s.run);
  EXPECT_EQ(back->services[0].env.at("ENV_NAME"), "preview");
  EXPECT_EQ(back->services[0].revision, "r1");
}

TEST(Protocol, PutCarriesTheFileAndWhereItGoes) {
  ProviderRequest r;
  r.verb = ProviderVerb::kPut;
  r.put_source = "/state/records/pr-1-x/seed-items.db";
  r.put_target = "/data/app.db";
  auto back = decode_request(encode_request(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->verb, ProviderVerb::kPut);
  EXPECT_EQ(back->put_source, r.put_source);
  EXPECT_EQ(back->put_target, r.put_target);
}

TEST(Protocol, RequestRejectsUnknownVerbAndVersion) {
  EXPECT_FALSE(decode_request(R"({"protocol": 2, "verb": "explode"})").ok());
  EXPECT_FALSE(decode_request(R"({"protocol": 1, "verb": "list"})").ok());
  EXPECT_FALSE(decode_request(R"({"protocol": 2, "verb": "list", "settings": [1]})").ok());
  EXPECT_FALSE(decode_request(R"({"protocol": 2, "verb": "list", "operator": "registry"})").ok());
  EXPECT_FALSE(decode_request(R"({"protocol": 9, "verb": "list"})").ok());
  EXPECT_FALSE(decode_request("not json").ok());
  EXPECT_FALSE(decode_request(R"({"verb": "list"})").ok());
}

TEST(Protocol, ResponseRoundTrips) {
  ProviderResponse r;
  r.ok = true;
  r.services.push_back(ServiceStatus{"web", Endpoint{"127.0.0.1", 8080}, 123, true, true});
  r.services.push_back(ServiceStatus{"api", Endpoint{"api.pr-1.svc.cluster.local", 80}, 0, true, false});
  r.services.push_back(ServiceStatus{"v6", Endpoint{"::1", 9000}, 0, true, false});
  r.services.push_back(ServiceStatus{"worker", {}, 77, true, false});
  r.outputs["db_url"] = ProviderOutput{"postgres://app:hunter22@db:5432/app", true};
  r.outputs["bucket"] = ProviderOutput{"pr-1-assets", false};
  r.environments.push_back(EnvironmentListing{"pr-1", "/d", {ServiceStatus{"web", Endpoint{"127.0.0.1", 8080}, 123, true, false}}});
  auto back = decode_response(encode_response(r), kProviderExitOk);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_NE(back->service("web"), nullptr);
  EXPECT_EQ(back->service("web")->endpoint, (Endpoint{"127.0.0.1", 8080}));
  EXPECT_EQ(back->service("api")->endpoint.text(), "api.pr-1.svc.cluster.local:80");
  EXPECT_EQ(back->service("v6")->endpoint.text(), "[::1]:9000");
  EXPECT_TRUE(back->service("worker")->endpoint.empty());
  EXPECT_EQ(back->service("nope"), nullptr);
  EXPECT_EQ(back->outputs, r.outputs);
  ASSERT_EQ(back->environments.size(), 1u);
  EXPECT_EQ(back->environments[0].services[0].pid, 123);
}

TEST(Protocol, DescribeCarriesHowToStopAndTheSettingsSchema) {
  ProviderResponse r;
  r.ok = true;
  r.name = "terraform";
  r.capabilities = {"validate", "apply", "destroy"};
  r.stop_signal = 2;
  r.stop_grace_ms = 120'000;
  r.zero_downtime = false;
  r.settings_schema = R"({"type":"object"})";
  auto back = decode_response(encode_response(r), kProviderExitOk);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->stop_signal, 2);
  EXPECT_EQ(back->stop_grace_ms, 120'000);
  EXPECT_EQ(back->settings_schema, R"({"type":"object"})");
  // Unsaid: SIGTERM and ten seconds.
  auto plain = decode_response(R"({"protocol": 2, "ok": true, "name": "x"})", kProviderExitOk);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->stop_signal, 15);
  EXPECT_EQ(plain->stop_grace_ms, 10'000);
  EXPECT_FALSE(decode_response(R"({"protocol": 2, "ok": true, "stop_signal": "SIGKILL"})", kProviderExitOk).ok());
}

TEST(Protocol, ValidateProblemsNameTheirPaths) {
  auto back = decode_response(
      R"({"protocol": 2, "ok": false, "error": {"code": "invalid", "message": "no"},
          "problems": [{"path": "$.compose.files[0]", "message": "does not exist"}]})",
      kProviderExitFailed);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->problems.size(), 1u);
  EXPECT_EQ(back->problems[0].path, "$.compose.files[0]");
}

// Endpoints and outputs come from another program: malformed ones are errors.
TEST(Protocol, MalformedEndpointsAndOutputsAreRefused) {
  for (const char* text :
       {R"({"protocol": 2, "ok": true, "services": [{"name": "web", "endpoint": "8080"}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "endpoint": "host:0"}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "endpoint": "host:70000"}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "endpoint": "a b:80"}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "endpoint": "[::1:80"}]})",
        R"({"protocol": 2, "ok": true, "outputs": {"a b": "x"}})",
        R"({"protocol": 2, "ok": true, "outputs": {"x": 5}})"}) {
    EXPECT_FALSE(decode_response(text, kProviderExitOk).ok()) << text;
  }
}

TEST(Protocol, FailedVerbCarriesItsMessage) {
  ProviderResponse r;
  r.ok = false;
  r.error_code = "timeout";
  r.error_message = "service web did not pass its health check";
  auto back = decode_response(encode_response(r), kProviderExitFailed);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(back->error_message, r.error_message);
}

TEST(Protocol, InconsistentOrGarbledResponsesAreErrors) {
  ProviderResponse r;
  r.ok = true;
  EXPECT_FALSE(decode_response(encode_response(r), kProviderExitFailed).ok());  // ok but exit 1
  EXPECT_FALSE(decode_response("", kProviderExitOk).ok());
  EXPECT_FALSE(decode_response("{\"protocol\": 2}", kProviderExitOk).ok());
  EXPECT_FALSE(decode_response(R"({"protocol": 1, "ok": true})", kProviderExitOk).ok());  // v1 is gone
  auto crash = decode_response("", 139);
  ASSERT_FALSE(crash.ok());
  EXPECT_NE(crash.error().message.find("crashed"), std::string::npos);
}

// A provider is a separate program: whatever numbers it prints, prevue gets
// an error value, never a float-to-int overflow (undefined) or an exception.
TEST(Protocol, OutOfRangeNumbersAreMalformedNotUndefined) {
  for (const char* text :
       {R"({"protocol": 2, "ok": true, "services": [{"name": "web", "pid": 1e300}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "pid": -1}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "pid": 8080.5}]})",
        R"({"protocol": 2, "ok": true, "services": [{"name": "web", "pid": 18446744073709551615}]})",
        R"({"protocol": 1e400, "ok": true})", R"({"protocol": -1e19, "ok": true})"}) {
    auto r = decode_response(text, kProviderExitOk);
    EXPECT_FALSE(r.ok()) << text;
  }
  for (const char* text :
       {R"({"protocol": 2, "verb": "apply", "stop_grace_ms": 1e300})", R"({"protocol": 2, "verb": "apply", "environment": {"pr": 1e30}})",
        R"({"protocol": 1e10, "verb": "apply"})", R"({"protocol": 2, "verb": "apply", "services": [{"name": "w", "ready_timeout_ms": -5}]})",
        R"({"verb": "apply"})"}) {
    auto r = decode_request(text);
    EXPECT_FALSE(r.ok()) << text;
  }
}
}  // namespace
}  // namespace prevue
