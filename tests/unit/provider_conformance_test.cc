// The provider protocol's conformance suite, run against every provider
// executable built here (today: local). Each verb must be idempotent.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "provider/provider_client.h"

namespace prevue {
namespace {

namespace fs = std::filesystem;

bool process_alive(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  return !text.empty() && text.find(") Z") == std::string::npos;
}

class ProviderConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("prevue-provider-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "envs" / "pr-1-test" / "site");
    std::ofstream(root_ / "envs" / "pr-1-test" / "site" / "index.html") << "hello from the provider test\n";
  }
  void TearDown() override {
    ProviderRequest r = request(ProviderVerb::kDestroy);
    (void)client_.call(GetParam(), r, std::chrono::seconds(30));
    fs::remove_all(root_);
  }

  ProviderRequest request(ProviderVerb verb) {
    ProviderRequest r;
    r.verb = verb;
    r.state_root = (root_ / "envs").string();
    r.records_root = (root_ / "providers" / GetParam()).string();
    r.environment = ProviderEnvironment{"pr-1-test", (root_ / "envs" / "pr-1-test").string(),
                                        (root_ / "providers" / GetParam() / "pr-1-test").string(), 1, "abc"};
    r.stop_grace_ms = 2000;
    return r;
  }

  ProviderService web_service(int port) {
    ProviderService s;
    s.name = "web";
    s.workdir = (root_ / "envs" / "pr-1-test" / "site").string();
    s.run = {"python3", "-m", "http.server", std::to_string(port), "--bind", "127.0.0.1"};
    s.health_path = "/index.html";
    s.ready_timeout_ms = 20'000;
    s.revision = "r1";
    return s;
  }

  ProviderResponse call_ok(const ProviderRequest& r) {
    ProviderCall c = client_.call(GetParam(), r, std::chrono::seconds(60));
    EXPECT_TRUE(c.response.ok()) << (c.response.ok() ? "" : c.response.error().message) << "\n" << c.log;
    if (!c.response.ok()) return {};
    EXPECT_TRUE(c.response->ok) << c.response->error_message << "\n" << c.log;
    return *c.response;
  }

  fs::path root_;
  SubprocessRunner runner_;
  ProviderClient client_{runner_, PREVUE_PROVIDER_DIR};
};

TEST_P(ProviderConformance, DescribesItself) {
  ProviderResponse r = call_ok(request(ProviderVerb::kDescribe));
  EXPECT_EQ(r.name, GetParam());
  EXPECT_EQ(r.protocol, kProviderProtocolVersion);
  for (const char* verb : {"validate", "allocate", "apply", "sleep", "destroy", "status", "list"})
    EXPECT_NE(std::find(r.capabilities.begin(), r.capabilities.end(), verb), r.capabilities.end()) << verb;
  EXPECT_TRUE(r.stop_signal == SIGTERM || r.stop_signal == SIGINT);
  EXPECT_NE(r.settings_schema.find("\"type\""), std::string::npos) << r.settings_schema;
}

TEST_P(ProviderConformance, ValidateNamesEachProblemAtItsPath) {
  ProviderRequest r = request(ProviderVerb::kValidate);
  r.settings = R"({"no_such_setting": 1})";
  ProviderService s = web_service(0);
  r.services = {s};
  ProviderCall c = client_.call(GetParam(), r, std::chrono::seconds(30));
  ASSERT_TRUE(c.response.ok()) << c.response.error().message;
  EXPECT_FALSE(c.response->ok);
  ASSERT_FALSE(c.response->problems.empty());
  EXPECT_EQ(c.response->problems[0].path, "$." + GetParam() + ".no_such_setting");
  r.settings = "{}";
  call_ok(r);
}

TEST_P(ProviderConformance, AllocateIsStable) {
  ProviderRequest r = request(ProviderVerb::kAllocate);
  r.services = {web_service(0)};
  ProviderResponse first = call_ok(r);
  ASSERT_NE(first.service("web"), nullptr);
  Endpoint endpoint = first.service("web")->endpoint;
  EXPECT_FALSE(endpoint.empty());
  ProviderResponse again = call_ok(r);
  ASSERT_NE(again.service("web"), nullptr);
  EXPECT_EQ(again.service("web")->endpoint, endpoint);
}

TEST_P(ProviderConformance, ApplyTwiceChangesNothingAndDestroyStopsEverything) {
  ProviderRequest alloc = request(ProviderVerb::kAllocate);
  alloc.services = {web_service(0)};
  ProviderResponse allocated = call_ok(alloc);
  ASSERT_NE(allocated.service("web"), nullptr);
  int port = allocated.service("web")->endpoint.port;
  ProviderRequest apply = request(ProviderVerb::kApply);
  apply.services = {web_service(port)};
  ProviderResponse first = call_ok(apply);
  ASSERT_EQ(first.services.size(), 1u);
  EXPECT_TRUE(first.services[0].restarted);
  EXPECT_EQ(first.services[0].endpoint.port, port);
  long pid = first.services[0].pid;
  EXPECT_TRUE(process_alive(pid));

  ProviderResponse second = call_ok(apply);
  ASSERT_EQ(second.services.size(), 1u);
  EXPECT_FALSE(second.services[0].restarted);
  EXPECT_EQ(second.services[0].pid, pid);

  // A new revision restarts the service.
  apply.services[0].revision = "r2";
  ProviderResponse third = call_ok(apply);
  EXPECT_TRUE(third.services[0].restarted);
  EXPECT_NE(third.services[0].pid, pid);
  EXPECT_FALSE(process_alive(pid));
  long new_pid = third.services[0].pid;

  // Sleep stops the service but keeps the environment; apply wakes it.
  call_ok(request(ProviderVerb::kSleep));
  EXPECT_FALSE(process_alive(new_pid));
  EXPECT_TRUE(fs::exists(root_ / "envs" / "pr-1-test" / "site" / "index.html"));
  ProviderResponse asleep = call_ok(request(ProviderVerb::kStatus));
  ASSERT_EQ(asleep.services.size(), 1u);
  EXPECT_FALSE(asleep.services[0].running);
  ProviderResponse woken = call_ok(apply);
  ASSERT_EQ(woken.services.size(), 1u);
  EXPECT_TRUE(woken.services[0].restarted);
  EXPECT_EQ(woken.services[0].endpoint, third.services[0].endpoint);
  new_pid = woken.services[0].pid;
  EXPECT_TRUE(process_alive(new_pid));

  ProviderResponse listed = call_ok(request(ProviderVerb::kList));
  ASSERT_EQ(listed.environments.size(), 1u);
  EXPECT_EQ(listed.environments[0].slug, "pr-1-test");

  ProviderResponse status = call_ok(request(ProviderVerb::kStatus));
  ASSERT_EQ(status.services.size(), 1u);
  EXPECT_TRUE(status.services[0].running);

  call_ok(request(ProviderVerb::kDestroy));
  EXPECT_FALSE(process_alive(new_pid));
  EXPECT_FALSE(fs::exists(root_ / "providers" / GetParam() / "pr-1-test"));
  // The environment's directory is prevue's: a provider leaves it alone.
  EXPECT_TRUE(fs::exists(root_ / "envs" / "pr-1-test" / "site" / "index.html"));
  EXPECT_TRUE(call_ok(request(ProviderVerb::kList)).environments.empty());
  call_ok(request(ProviderVerb::kDestroy));  // idempotent
}

// A provider that declares zero_downtime keeps the old version serving
// through an update: allocate gives the new revision its own endpoint, apply
// starts it there, and only prune stops the old one.
TEST_P(ProviderConformance, ZeroDowntimeUpdateKeepsTheOldVersionUntilPrune) {
  if (!call_ok(request(ProviderVerb::kDescribe)).zero_downtime) GTEST_SKIP() << GetParam() << " replaces services in place";
  ProviderRequest alloc = request(ProviderVerb::kAllocate);
  alloc.services = {web_service(0)};
  Endpoint first_endpoint = call_ok(alloc).service("web")->endpoint;
  ProviderRequest apply = request(ProviderVerb::kApply);
  apply.services = {web_service(first_endpoint.port)};
  long old_pid = call_ok(apply).services.at(0).pid;

  alloc.services[0].revision = "r2";
  Endpoint next = call_ok(alloc).service("web")->endpoint;
  EXPECT_NE(next, first_endpoint);
  EXPECT_EQ(call_ok(alloc).service("web")->endpoint, next) << "allocate stays stable for the same revision";
  apply.services = {web_service(next.port)};
  apply.services[0].revision = "r2";
  ProviderResponse updated = call_ok(apply);
  ASSERT_EQ(updated.services.size(), 1u);
  EXPECT_TRUE(updated.services[0].restarted);
  EXPECT_EQ(updated.services[0].endpoint, next);
  EXPECT_TRUE(process_alive(old_pid)) << "the old version serves until prune";
  EXPECT_TRUE(process_alive(updated.services[0].pid));
  call_ok(request(ProviderVerb::kPrune));
  EXPECT_FALSE(process_alive(old_pid));
  EXPECT_TRUE(process_alive(updated.services[0].pid));
  call_ok(request(ProviderVerb::kPrune));  // idempotent
  EXPECT_EQ(call_ok(apply).services.at(0).restarted, false);
}

// A new version that fails its health check leaves the old one serving.
TEST_P(ProviderConformance, AFailedUpdateLeavesTheOldVersionServing) {
  if (!call_ok(request(ProviderVerb::kDescribe)).zero_downtime) GTEST_SKIP() << GetParam() << " replaces services in place";
  ProviderRequest alloc = request(ProviderVerb::kAllocate);
  alloc.services = {web_service(0)};
  int port = call_ok(alloc).service("web")->endpoint.port;
  ProviderRequest apply = request(ProviderVerb::kApply);
  apply.services = {web_service(port)};
  long old_pid = call_ok(apply).services.at(0).pid;
  alloc.services[0].revision = "r2";
  int next = call_ok(alloc).service("web")->endpoint.port;
  ProviderService broken = web_service(next);
  broken.revision = "r2";
  broken.run = {"python3", "-c", "import sys; print('new version cannot start'); sys.exit(1)"};
  apply.services = {broken};
  ProviderCall c = client_.call(GetParam(), apply, std::chrono::seconds(60));
  ASSERT_TRUE(c.response.ok());
  EXPECT_FALSE(c.response->ok);
  EXPECT_TRUE(process_alive(old_pid));
  ProviderResponse status = call_ok(request(ProviderVerb::kStatus));
  ASSERT_EQ(status.services.size(), 1u);
  EXPECT_EQ(status.services[0].pid, old_pid);
  EXPECT_EQ(status.services[0].endpoint.port, port);
  EXPECT_TRUE(status.services[0].running);
}

TEST_P(ProviderConformance, DestroyingAMissingEnvironmentSucceeds) {
  fs::remove_all(root_ / "envs" / "pr-1-test");
  call_ok(request(ProviderVerb::kDestroy));
  call_ok(request(ProviderVerb::kDestroy));
}

TEST_P(ProviderConformance, ServiceThatExitsAtOnceFailsWithItsLog) {
  ProviderRequest apply = request(ProviderVerb::kApply);
  ProviderService s = web_service(0);
  s.run = {"python3", "-c", "import sys; print('boom: missing configuration'); sys.exit(4)"};
  apply.services = {s};
  ProviderCall c = client_.call(GetParam(), apply, std::chrono::seconds(60));
  ASSERT_TRUE(c.response.ok()) << c.response.error().message;
  EXPECT_FALSE(c.response->ok);
  EXPECT_NE(c.response->error_message.find("exited before it became healthy"), std::string::npos) << c.response->error_message;
  EXPECT_NE(c.response->error_message.find("boom: missing configuration"), std::string::npos) << c.response->error_message;
}

TEST_P(ProviderConformance, LogsShowWhatAServicePrinted) {
  ProviderRequest apply = request(ProviderVerb::kApply);
  ProviderService s = web_service(0);
  s.run = {"python3", "-c", "import sys; print('line one'); print('line two'); sys.exit(4)"};
  apply.services = {s};
  (void)client_.call(GetParam(), apply, std::chrono::seconds(60));  // fails: it exits at once, but it printed
  ProviderRequest logs = request(ProviderVerb::kLogs);
  logs.services = {ProviderService{.name = "web"}};
  logs.log_lines = 1;
  EXPECT_EQ(call_ok(logs).log, "line two\n") << "the last lines, as many as asked";
  logs.services = {ProviderService{.name = "../web"}};
  ProviderCall refused = client_.call(GetParam(), logs, std::chrono::seconds(60));
  ASSERT_TRUE(refused.response.ok());
  EXPECT_FALSE(refused.response->ok) << "a name that is no service's names no file";
}

TEST_P(ProviderConformance, BadRequestsGetExitCodeTwo) {
  ProcessSpec spec;
  spec.argv = {std::string(PREVUE_PROVIDER_DIR) + "/" + GetParam(), "apply"};
  spec.stdin_data = "{not json";
  auto out = runner_.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_code, kProviderExitBadRequest);
  auto decoded = decode_response(out->stdout_data, out->exit_code);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_FALSE(decoded->ok);

  ProviderRequest hostile = request(ProviderVerb::kApply);
  hostile.environment.slug = "x;rm -rf /";
  ProviderCall c = client_.call(GetParam(), hostile, std::chrono::seconds(30));
  ASSERT_TRUE(c.response.ok());
  EXPECT_FALSE(c.response->ok);
  EXPECT_NE(c.response->error_message.find("not a DNS label"), std::string::npos);
}

TEST_P(ProviderConformance, RefusesToRemoveADirectoryThatIsNotItsRecord) {
  fs::path outsider = root_ / "not-an-env";
  fs::create_directories(outsider);
  std::ofstream(outsider / "precious.txt") << "keep me";
  ProviderRequest r = request(ProviderVerb::kDestroy);
  r.environment.records_dir = outsider.string();
  ProviderCall c = client_.call(GetParam(), r, std::chrono::seconds(30));
  ASSERT_TRUE(c.response.ok());
  EXPECT_FALSE(c.response->ok);
  EXPECT_TRUE(fs::exists(outsider / "precious.txt"));
}

INSTANTIATE_TEST_SUITE_P(Providers, ProviderConformance, ::testing::Values("local"));

}  // namespace
}  // namespace prevue
