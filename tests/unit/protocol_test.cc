#include "provider/protocol.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

TEST(Protocol, RequestRoundTrips) {
  ProviderRequest r;
  r.verb = ProviderVerb::kApply;
  r.state_root = "/state/envs";
  r.environment = ProviderEnvironment{"pr-1-x", "/state/envs/pr-1-x", 1, "abc"};
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
  ASSERT_EQ(back->services.size(), 1u);
  EXPECT_EQ(back->services[0].run, s.run);
  EXPECT_EQ(back->services[0].env.at("ENV_NAME"), "preview");
  EXPECT_EQ(back->services[0].revision, "r1");
}

TEST(Protocol, RequestRejectsUnknownVerbAndVersion) {
  EXPECT_FALSE(decode_request(R"({"protocol": 1, "verb": "explode"})").ok());
  EXPECT_FALSE(decode_request(R"({"protocol": 9, "verb": "list"})").ok());
  EXPECT_FALSE(decode_request("not json").ok());
  EXPECT_FALSE(decode_request(R"({"verb": "list"})").ok());
}

TEST(Protocol, ResponseRoundTrips) {
  ProviderResponse r;
  r.ok = true;
  r.services.push_back(ServiceStatus{"web", 8080, 123, true, true});
  r.environments.push_back(EnvironmentListing{"pr-1", "/d", {ServiceStatus{"web", 8080, 123, true, false}}});
  auto back = decode_response(encode_response(r), kProviderExitOk);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->port_of("web"), 8080);
  EXPECT_EQ(back->port_of("nope"), 0);
  ASSERT_EQ(back->environments.size(), 1u);
  EXPECT_EQ(back->environments[0].services[0].pid, 123);
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
  EXPECT_FALSE(decode_response("{\"protocol\": 1}", kProviderExitOk).ok());
  EXPECT_FALSE(decode_response(R"({"protocol": 2, "ok": true})", kProviderExitOk).ok());
  auto crash = decode_response("", 139);
  ASSERT_FALSE(crash.ok());
  EXPECT_NE(crash.error().message.find("crashed"), std::string::npos);
}

// A provider is a separate program: whatever numbers it prints, prevue gets
// an error value, never a float-to-int overflow (undefined) or an exception.
TEST(Protocol, OutOfRangeNumbersAreMalformedNotUndefined) {
  for (const char* text :
       {R"({"protocol": 1, "ok": true, "services": [{"name": "web", "port": 1e300}]})",
        R"({"protocol": 1, "ok": true, "services": [{"name": "web", "port": 70000}]})",
        R"({"protocol": 1, "ok": true, "services": [{"name": "web", "port": 8080.5}]})",
        R"({"protocol": 1, "ok": true, "services": [{"name": "web", "pid": 18446744073709551615}]})",
        R"({"protocol": 1e400, "ok": true})", R"({"protocol": -1e19, "ok": true})"}) {
    auto r = decode_response(text, kProviderExitOk);
    EXPECT_FALSE(r.ok()) << text;
  }
  for (const char* text :
       {R"({"protocol": 1, "verb": "apply", "stop_grace_ms": 1e300})", R"({"protocol": 1, "verb": "apply", "environment": {"pr": 1e30}})",
        R"({"protocol": 1e10, "verb": "apply"})", R"({"protocol": 1, "verb": "apply", "services": [{"name": "w", "ready_timeout_ms": -5}]})",
        R"({"verb": "apply"})"}) {
    auto r = decode_request(text);
    EXPECT_FALSE(r.ok()) << text;
  }
}
}  // namespace
}  // namespace prevue
