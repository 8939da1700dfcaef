// prevue.json: what an environment is made of. docs/manifest.md is the
// reference; docs/prevue.schema.json the machine-readable schema.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/duration.h"
#include "core/end_action.h"
#include "core/result.h"

namespace prevue {

inline constexpr int kManifestVersion = 1;
inline constexpr std::string_view kManifestPath = "prevue.json";

struct HealthCheck {
  std::string path = "/";
  Millis timeout = Millis(60'000);  // readiness timeout
};

struct ServiceSpec {
  std::string name;
  std::string workdir = ".";                // relative to the environment directory
  std::vector<std::string> build;           // optional argv, run before `run`
  Millis build_timeout = Millis(600'000);
  std::vector<std::string> run;             // argv; placeholders allowed; optional where the provider needs none
  std::string port = "http";                // the service's named port
  std::map<std::string, std::string> env;   // placeholders allowed in values
  HealthCheck health;
  std::vector<std::string> paths;           // repository paths that belong to the service
};

struct TemplateFile {
  std::string source;  // path in the repository
  std::string target;  // path in the environment directory
};

enum class SeedKind { kSqlite, kSql, kCommand, kPostgres };
const char* to_string(SeedKind kind);

struct SeedStep {
  SeedKind kind = SeedKind::kSql;
  std::string name;
  std::string database;            // sqlite/sql: file in the environment directory (with `service`: an absolute path in it)
  std::string snapshot;            // sqlite: file in the repository
  std::vector<std::string> files;  // sqlite/sql: SQL files in the repository, run in order
  std::vector<std::string> run;    // command: argv
  std::string workdir = ".";       // command
  // command: run inside this service (its container), by its provider's `exec`;
  // sqlite: the database is built here, then put in whole into the service (`put`)
  std::string service;
  Millis timeout = Millis(300'000);
  // postgres: the server (a name in prevue's config), a dump in the
  // repository (pg_dump's custom format, or plain SQL), `files`, the
  // migration command (`run`, in `workdir`), and the repository `paths`
  // it reads (a migrations directory): together, the seed's key.
  std::string server;
  std::string dump;
  std::string server_dump;  // postgres: a dump prevue's config keeps for the server (postgres.SERVER.dumps.NAME)
  std::vector<std::string> paths;
  // postgres with `service`: the server is that service of the environment's
  // own layer (a compose file's `db`); the seed fills `database` there, as
  // `user` over the container's local socket, and runs the migration in
  // `run_in` (default: that service), which connects with `password`.
  std::string user;
  std::string password;  // rendered like any template: "{{ secret.DB_PASSWORD }}"
  std::string run_in;
};

// A name used as an identifier elsewhere ({{ seed.NAME }}, a PostgreSQL
// database or role, a file under the state): a letter, then letters,
// digits and '_', at most 40.
bool is_valid_seed_name(const std::string& name);

struct RouteSpec {
  std::string name;     // "web" -> {{ host.web }}
  std::string service;  // which service answers this host
};


// A lease policy with every value set: the service's defaults (config).
struct LeasePolicy {
  Millis ttl = Millis(72LL * 3'600'000);
  Millis idle = Millis(24LL * 3'600'000);
  EndAction end = EndAction::kDestroy;
  Millis grace = Millis(0);  // after merge or close
};

// What a manifest says of its lease; anything unsaid comes from the defaults.
struct ManifestLease {
  std::optional<Millis> ttl, idle, grace;
  std::optional<EndAction> end;
  LeasePolicy over(const LeasePolicy& defaults) const {
    return LeasePolicy{ttl.value_or(defaults.ttl), idle.value_or(defaults.idle), end.value_or(defaults.end),
                       grace.value_or(defaults.grace)};
  }
};

// One layer of an environment: a provider, its settings and the services it
// runs. Layers are applied in order (each may read the outputs of those
// before it) and torn down in reverse. A provider appears in one layer at
// most: its resources are the environment's (provider, slug).
struct Layer {
  std::string name;
  std::string provider = "local";
  std::string provider_settings = "{}";  // the block named after the provider: a JSON object, as text
  std::vector<std::string> services;     // names, in $.services order
};

// The one layer of a manifest written in the short form (no "layers").
inline constexpr std::string_view kShortFormLayer = "main";

struct Manifest {
  int version = kManifestVersion;
  std::string name;
  std::vector<Layer> layers;  // at least one
  bool short_form = true;     // one layer, no "layers": outputs are also {{ output.NAME }}
  std::vector<std::string> export_paths = {"."};  // repository paths written into the environment
  std::map<std::string, std::string> params;
  std::vector<ServiceSpec> services;  // every layer's, in layer order
  std::vector<TemplateFile> templates;
  std::vector<SeedStep> seed;
  std::vector<RouteSpec> routes;
  ManifestLease lease;

  const ServiceSpec* find_service(std::string_view name) const;
  // The layer that runs service `name` (nullptr if none does).
  const Layer* layer_of_service(std::string_view name) const;
  const Layer* find_layer(std::string_view name) const;
  // The layer a command seed with `service` runs in: the one declaring the
  // service, else the only layer (whose provider may run services the
  // manifest does not route, a compose file's database); nullptr when
  // neither. A seed without `service` runs on prevue's host: the first layer.
  const Layer* seed_layer(const SeedStep& step) const;
  // The layer after whose apply `text` can be rendered: the last one whose
  // outputs it names, or -1 when it names none.
  int last_output_layer(std::string_view text) const;
};

// Parses and validates. Errors name `origin` (e.g. "prevue.json at 1a2b3c4")
// and either the line and column of a JSON syntax error or the JSON path
// ($.services.web.run[0]) of the offending value.
Result<Manifest> parse_manifest(std::string_view text, std::string_view origin);

// A repository path as the manifest may name it: relative, no "..", no NUL.
bool is_safe_relative_path(std::string_view path);

}  // namespace prevue
