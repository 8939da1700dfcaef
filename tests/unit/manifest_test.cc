#include "manifest/manifest.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace prevue {
namespace {

const char* kMinimal = R"({"version": 1, "services": {"web": {"run": ["python3", "-m", "http.server", "{{ port.web }}"]}}})";

Manifest parse_ok(const std::string& text) {
  auto m = parse_manifest(text, "test");
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? *m : Manifest{};
}

std::string parse_error(const std::string& text) {
  auto m = parse_manifest(text, "prevue.json at abc1234");
  EXPECT_FALSE(m.ok()) << "expected an error for: " << text;
  return m.ok() ? "" : m.error().message;
}

TEST(Manifest, MinimalGetsDefaults) {
  Manifest m = parse_ok(kMinimal);
  ASSERT_EQ(m.services.size(), 1u);
  ASSERT_EQ(m.layers.size(), 1u);  // the short form is one layer
  EXPECT_EQ(m.layers[0].provider, "local");
  EXPECT_EQ(m.layers[0].name, "main");
  EXPECT_EQ(m.layers[0].services, std::vector<std::string>{"web"});
  EXPECT_TRUE(m.short_form);
  EXPECT_EQ(m.services[0].port, "http");
  EXPECT_EQ(m.services[0].health.path, "/");
  ASSERT_EQ(m.routes.size(), 1u);  // the one service answers the environment's host
  EXPECT_EQ(m.routes[0].service, "web");
  EXPECT_FALSE(m.lease.end.has_value());
  EXPECT_EQ(m.lease.over(LeasePolicy{}).end, EndAction::kDestroy);
  EXPECT_EQ(m.export_paths, std::vector<std::string>{"."});
}

TEST(Manifest, ReferenceTemplateParses) {
  std::ifstream in(std::string(PREVUE_SOURCE_DIR) + "/templates/reference-app/prevue.json");
  std::stringstream text;
  text << in.rdbuf();
  Manifest m = parse_ok(text.str());
  EXPECT_EQ(m.services.size(), 2u);
  ASSERT_NE(m.find_service("web"), nullptr);
  EXPECT_EQ(m.find_service("web")->paths, std::vector<std::string>{"web"});
  EXPECT_EQ(m.find_service("web")->health.path, "/healthz");
  EXPECT_EQ(m.seed.size(), 1u);
  EXPECT_EQ(m.seed[0].kind, SeedKind::kSqlite);
  EXPECT_EQ(m.lease.end, EndAction::kSleep);
  EXPECT_EQ(m.lease.grace->count(), 600'000);
  EXPECT_EQ(m.lease.over(LeasePolicy{}).ttl.count(), 72LL * 3'600'000);
}

TEST(Manifest, SyntaxErrorNamesLineAndColumn) {
  std::string e = parse_error("{\n  \"version\": 1,\n  \"services\": {,}\n}");
  EXPECT_NE(e.find("prevue.json at abc1234"), std::string::npos) << e;
  EXPECT_NE(e.find("JSON syntax error at line 3"), std::string::npos) << e;
}

TEST(Manifest, ErrorsNameTheJsonPath) {
  EXPECT_NE(parse_error(R"({"services": {"web": {"run": ["x"]}}})").find("$ missing required field 'version'"), std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 2, "services": {}})").find("$.version unsupported manifest version 2"), std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": "python3 app.py"}}})").find("$.services.web.run must be an array"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a", 5]}}})").find("$.services.web.run[1] must be a string"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"], "prot": "x"}}})").find("$.services.web.prot unknown field"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"]}}, "routes": {"web": {"service": "nope"}}})")
                .find("$.routes.web.service names no service"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"], "health": {"timeout": "soon"}}}})")
                .find("$.services.web.health.timeout invalid duration"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"]}}, "lease": {"end": "explode"}})").find("$.lease.end"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"]}}, "seed": [{"type": "mongo"}]})")
                .find("$.seed[0].type unknown seed type 'mongo'"),
            std::string::npos);
}

TEST(Manifest, RejectsPathsLeavingTheRepository) {
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"], "workdir": "../../etc"}}})").find("$.services.web.workdir"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"]}}, "templates": [{"source": "/etc/passwd"}]})")
                .find("$.templates[0].source"),
            std::string::npos);
  EXPECT_FALSE(is_safe_relative_path("a/../../b"));
  EXPECT_FALSE(is_safe_relative_path("/abs"));
  EXPECT_TRUE(is_safe_relative_path("a/b..c/d"));
}

TEST(Manifest, RejectsReservedEnvironmentNames) {
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"], "env": {"PREVUE_SLUG": "x"}}}})").find("set by prevue"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"], "env": {"BAD-NAME": "x"}}}})").find("not a valid environment"),
            std::string::npos);
}

TEST(Manifest, SeedStepsValidated) {
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["a"]}}, "seed": [{"type": "sql", "database": "d.db"}]})")
                .find("at least one file"),
            std::string::npos);
  Manifest m = parse_ok(R"({"version": 1, "services": {"web": {"run": ["a"]}},
    "seed": [{"type": "command", "run": ["./seed.sh", "{{ env.dir }}"]}, {"type": "sql", "database": "d.db", "files": ["a.sql"]}]})");
  ASSERT_EQ(m.seed.size(), 2u);
  EXPECT_EQ(m.seed[0].name, "seed-1-command");
  EXPECT_EQ(m.seed[1].files, std::vector<std::string>{"a.sql"});
}

// 1e400 is valid JSON that no double holds: it used to escape the parser as
// an exception and abort `prevue render`, `up` and `gc`.
TEST(Manifest, NumbersPastTheDoubleRangeAreErrors) {
  for (const char* text : {R"({"version": 1e400, "services": {}})", R"({"version": 1, "x": [1e400]})",
                           R"({"version": 1.0e0, "services": {"web": {"run": ["a"]}}})", R"({"version": 18446744073709551615})"}) {
    auto m = parse_manifest(text, "prevue.json");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_NE(m.error().message.find("prevue.json"), std::string::npos) << m.error().message;
  }
  auto m = parse_manifest(R"({"version": 1e400})", "prevue.json");
  EXPECT_NE(m.error().message.find("too large"), std::string::npos) << m.error().message;
}

constexpr const char* kTwoLayers = R"({
  "version": 1,
  "layers": [
    {"name": "infra", "provider": "scripted", "scripted": {"outputs": {"db_url": "x"}}},
    {"name": "app", "provider": "local", "local": {"update": "in_place"},
     "services": {"web": {"run": ["srv"], "env": {"DB": "{{ output.infra.db_url }}"}}}}
  ],
  "templates": [{"source": "a.tmpl", "target": "a.conf"}]
})";

TEST(ManifestLayers, ReadsLayersInOrderWithTheirSettingsAndServices) {
  Manifest m = parse_ok(kTwoLayers);
  EXPECT_FALSE(m.short_form);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].name, "infra");
  EXPECT_EQ(m.layers[0].provider, "scripted");
  EXPECT_EQ(m.layers[0].provider_settings, R"({"outputs":{"db_url":"x"}})");
  EXPECT_TRUE(m.layers[0].services.empty());
  EXPECT_EQ(m.layers[1].provider_settings, R"({"update":"in_place"})");
  EXPECT_EQ(m.layers[1].services, std::vector<std::string>{"web"});
  EXPECT_EQ(m.layer_of_service("web"), &m.layers[1]);
  ASSERT_EQ(m.routes.size(), 1u);
  EXPECT_EQ(m.routes[0].service, "web");
}

TEST(ManifestLayers, KnowsWhichLayersOutputsATextNames) {
  Manifest m = parse_ok(kTwoLayers);
  EXPECT_EQ(m.last_output_layer("plain {{ pr.number }}"), -1);
  EXPECT_EQ(m.last_output_layer("db={{ output.infra.db_url }}"), 0);
  EXPECT_EQ(m.last_output_layer("{{output.infra.a}} {{ output.app.b }}"), 1);
  EXPECT_EQ(m.last_output_layer("{{ output.infrastructure.a }}"), -1);  // a name boundary, not a prefix
}

TEST(Manifest, ACommandSeedMayRunInADeclaredServiceOnly) {
  Manifest m = parse_ok(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                            "seed": [{"type": "command", "name": "s", "service": "web", "run": ["true"]}]})");
  EXPECT_EQ(m.seed[0].service, "web");
  // With one layer, a service its provider runs that the manifest does not route (a compose file's database).
  EXPECT_EQ(parse_ok(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                         "seed": [{"type": "command", "run": ["true"], "service": "db"}]})").seed[0].service, "db");
  EXPECT_NE(parse_error(R"({"version": 1, "layers": [{"name": "a", "services": {"web": {"run": ["x"]}}},
                                                     {"name": "b", "provider": "scripted"}],
                            "seed": [{"type": "command", "run": ["true"], "service": "db"}]})")
                .find("$.seed[0].service names no service declared in a layer's services"),
            std::string::npos);
}

TEST(Manifest, ASqliteSeedMayTargetAServiceAtAnAbsolutePathInIt) {
  Manifest m = parse_ok(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                            "seed": [{"type": "sqlite", "service": "db", "database": "/data/app.db", "files": ["s.sql"]}]})");
  EXPECT_EQ(m.seed[0].service, "db");
  EXPECT_EQ(m.seed[0].database, "/data/app.db");
  for (const char* database : {"data/app.db", "/data/../etc/passwd", "/"}) {
    std::string text = std::string(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                                       "seed": [{"type": "sqlite", "service": "db", "files": ["s.sql"], "database": ")") +
                       database + R"("}]})";
    EXPECT_NE(parse_error(text).find("$.seed[0].database with 'service', must be an absolute path inside the service"), std::string::npos)
        << database;
  }
  EXPECT_NE(parse_error(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                            "seed": [{"type": "sql", "service": "db", "database": "/d.db", "files": ["s.sql"]}]})")
                .find("$.seed[0].service an sql step runs against a database file here"),
            std::string::npos);
}

TEST(Manifest, APostgresSeedMayFillTheEnvironmentsOwnServer) {
  Manifest m = parse_ok(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                            "seed": [{"type": "postgres", "name": "app", "service": "db", "dump": "seed.sql",
                                      "run": ["alembic", "upgrade", "head"], "run_in": "web", "password": "{{ secret.DB }}"}]})");
  const SeedStep& seed = m.seed[0];
  EXPECT_EQ(seed.service, "db");
  EXPECT_EQ(seed.database, "app");  // the seed's name, unless given
  EXPECT_EQ(seed.user, "postgres");
  EXPECT_EQ(seed.run_in, "web");
  EXPECT_EQ(seed.password, "{{ secret.DB }}");
  EXPECT_EQ(parse_ok(R"({"version": 1, "services": {"web": {"run": ["x"]}},
                         "seed": [{"type": "postgres", "name": "app", "service": "db", "run": ["m"]}]})").seed[0].run_in, "db");
  auto error_for = [](const std::string& fields) {
    return parse_error(R"({"version": 1, "services": {"web": {"run": ["x"]}}, "seed": [{"type": "postgres", "name": "app", )" + fields +
                       "}]}");
  };
  EXPECT_NE(error_for(R"("service": "db", "server": "main")").find("$.seed[0].server give 'server'"), std::string::npos);
  EXPECT_NE(error_for(R"("service": "db", "server_dump": "prod")").find("$.seed[0].server_dump is a dump of a server"), std::string::npos);
  EXPECT_NE(error_for(R"("service": "db", "database": "postgres")").find("$.seed[0].database names a database the server"), std::string::npos);
  EXPECT_NE(error_for(R"("service": "db", "database": "x; DROP")").find("$.seed[0].database a database name here"), std::string::npos);
  EXPECT_NE(error_for(R"("service": "db", "user": "a b")").find("$.seed[0].user a role name"), std::string::npos);
  EXPECT_NE(error_for(R"("server": "main", "user": "me")").find("$.seed[0].user belongs to a seed in the environment's own"), std::string::npos);
  EXPECT_NE(parse_error(R"({"version": 1, "layers": [{"name": "a", "provider": "compose", "services": {"web": {}}},
                                                     {"name": "b", "services": {"api": {"run": ["x"]}}}],
                            "seed": [{"type": "postgres", "name": "app", "service": "web", "run": ["m"], "run_in": "api"}]})")
                .find("$.seed[0].run_in names no service of the same layer"),
            std::string::npos);
}

TEST(ManifestLayers, RefusesWhatCannotWork) {
  auto layers = [](const std::string& items) { return R"({"version": 1, "layers": [)" + items + "]}"; };
  auto refused = [](const std::string& text, const std::string& expected) {
    std::string message = parse_error(text);
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  refused(R"({"version": 1, "layers": []})", "$.layers must be an array with at least one layer");
  refused(layers(R"({"name": "a", "provider": "scripted"})"), "at least one service");
  refused(layers(R"({"name": "a", "services": {"web": {"run": ["x"]}}}, {"name": "a", "provider": "scripted"})"),
          "$.layers[1].name layer 'a' is declared twice");
  refused(layers(R"({"name": "a", "services": {"web": {"run": ["x"]}}}, {"name": "b"})"),
          "$.layers[1] provider 'local' already runs layer 'a'");
  refused(layers(R"({"name": "a", "services": {"web": {"run": ["x"]}}}, {"name": "b", "provider": "scripted", "services": {"web": {}}})"),
          "$.layers[1].services.web service 'web' is already declared by another layer");
  // A service renders before its layer applies: its own layer's outputs do not exist yet.
  refused(layers(R"({"name": "a", "services": {"web": {"run": ["x", "{{ output.a.url }}"]}}})"),
          "$.layers[0].services.web names outputs of its own or a later layer");
  // The short form's fields do not mix with layers.
  refused(R"({"version": 1, "provider": "local", "layers": [{"name": "a", "services": {"web": {"run": ["x"]}}}]})",
          "$.provider unknown field");
  refused(layers(R"({"name": "a", "services": {"web": {"run": ["x"]}}, "compose": {}})"), "$.layers[0].compose unknown field");
}

}  // namespace
}  // namespace prevue
