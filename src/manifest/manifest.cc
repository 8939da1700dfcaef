#include "manifest/manifest.h"

#include <nlohmann/json.hpp>

#include "manifest/json_reader.h"
#include "manifest/render.h"

#include <regex>

namespace prevue {

using json = nlohmann::json;

const char* to_string(SeedKind kind) {
  switch (kind) {
    case SeedKind::kSqlite: return "sqlite";
    case SeedKind::kSql: return "sql";
    case SeedKind::kCommand: return "command";
    case SeedKind::kPostgres: return "postgres";
  }
  return "unknown";
}

const ServiceSpec* Manifest::find_service(std::string_view name) const {
  for (const auto& service : services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

const Layer* Manifest::layer_of_service(std::string_view name) const {
  for (const auto& layer : layers)
    for (const auto& service : layer.services)
      if (service == name) return &layer;
  return nullptr;
}

const Layer* Manifest::seed_layer(const SeedStep& step) const {
  if (step.service.empty()) return layers.empty() ? nullptr : &layers.front();
  if (const Layer* declared = layer_of_service(step.service)) return declared;
  return layers.size() == 1 ? &layers.front() : nullptr;
}

const Layer* Manifest::find_layer(std::string_view name) const {
  for (const auto& layer : layers)
    if (layer.name == name) return &layer;
  return nullptr;
}

int Manifest::last_output_layer(std::string_view text) const {
  int last = -1;
  for (const auto& name : placeholders_in(text)) {
    if (name.rfind("output.", 0) != 0) continue;
    std::string_view rest = std::string_view(name).substr(7);
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string& layer = layers[i].name;
      bool names_it = rest.size() > layer.size() && rest.substr(0, layer.size()) == layer && rest[layer.size()] == '.';
      // The short form's unqualified {{ output.NAME }} is its one layer's.
      if (names_it || short_form) last = std::max(last, static_cast<int>(i));
    }
  }
  return last;
}

bool is_safe_relative_path(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (path.substr(start, end - start) == "..") return false;
    start = end + 1;
  }
  return true;
}

bool is_valid_seed_name(const std::string& name) {
  return !name.empty() && name.size() <= 40 && std::isalpha(static_cast<unsigned char>(name[0])) &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == std::string::npos;
}

namespace {

using json_reader::is_name;
using json_reader::Reader;
using json_reader::ReadError;

ServiceSpec read_service(const Reader& r, const std::string& name) {
  r.expect_object({"workdir", "build", "build_timeout", "run", "port", "env", "health", "paths"});
  ServiceSpec s;
  s.name = name;
  if (r.has("workdir")) s.workdir = r.at("workdir").path_value();
  if (r.has("build")) s.build = r.at("build").argv();
  if (r.has("build_timeout")) s.build_timeout = r.at("build_timeout").duration();
  if (r.has("run")) s.run = r.at("run").argv();  // whether a provider needs it is the provider's to say
  if (r.has("port")) {
    s.port = r.at("port").string();
    if (!is_name(s.port)) r.at("port").fail("must be a name of [a-z0-9_-], starting with a letter");
  }
  if (r.has("env")) {
    s.env = r.at("env").string_map();
    static const std::regex kEnvName("[A-Za-z_][A-Za-z0-9_]*");
    for (const auto& [key, value] : s.env) {
      if (!std::regex_match(key, kEnvName)) r.at("env").at(key).fail("is not a valid environment variable name");
      if (key == "ENV_NAME" || key.rfind("PREVUE_", 0) == 0) r.at("env").at(key).fail("is set by prevue itself");
    }
  }
  if (r.has("health")) {
    Reader h = r.at("health");
    h.expect_object({"path", "timeout"});
    s.health.path = h.string_or("path", "/");
    if (s.health.path.empty() || s.health.path.front() != '/') h.at("path").fail("must start with '/'");
    if (s.health.path.find_first_of("\r\n ") != std::string::npos) h.at("path").fail("must not contain spaces or line breaks");
    if (h.has("timeout")) s.health.timeout = h.at("timeout").duration();
  }
  if (r.has("paths")) s.paths = r.at("paths").paths();
  return s;
}

SeedStep read_seed(const Reader& r) {
  if (!r.value().is_object()) r.fail("must be an object");
  std::string type = r.required_string("type");
  SeedStep step;
  if (type == "sqlite") {
    r.expect_object({"type", "name", "database", "snapshot", "files", "timeout", "service"});
    step.kind = SeedKind::kSqlite;
    step.snapshot = r.has("snapshot") ? r.at("snapshot").path_value() : "";
  } else if (type == "sql") {
    if (r.has("service"))
      r.at("service").fail("an sql step runs against a database file here; for one in a service, use a sqlite step (built here, "
                           "then copied in whole) or a command step");
    r.expect_object({"type", "name", "database", "files", "timeout"});
    step.kind = SeedKind::kSql;
  } else if (type == "command") {
    r.expect_object({"type", "name", "run", "workdir", "timeout", "service"});
    step.kind = SeedKind::kCommand;
  } else if (type == "postgres") {
    r.expect_object({"type", "name", "server", "service", "database", "user", "password", "run_in", "dump", "server_dump", "files", "run",
                     "workdir", "paths", "timeout"});
    step.kind = SeedKind::kPostgres;
    step.name = r.required_string("name");
    if (!is_valid_seed_name(step.name)) r.at("name").fail("a postgres seed's name is letters, digits and '_' (it is {{ seed.NAME.url }})");
    step.server = r.string_or("server", "");
    if (r.has("service")) {
      step.service = r.at("service").string();
      if (r.has("server")) r.at("server").fail("give 'server' (one of prevue's config) or 'service' (the environment's own), not both");
      if (r.has("server_dump")) r.at("server_dump").fail("is a dump of a server in prevue's config; with 'service', use 'dump'");
      if (r.has("workdir")) r.at("workdir").fail("with 'service', the migration runs in a container, in its own working directory");
      step.database = r.string_or("database", step.name);
      if (!is_valid_seed_name(step.database)) r.at("database").fail("a database name here is letters, digits and '_', starting with a letter");
      if (step.database == "postgres" || step.database.rfind("template", 0) == 0 || step.database.rfind("prevue_", 0) == 0)
        r.at("database").fail("names a database the server or prevue keeps for itself; the seed replaces this one whole");
      step.user = r.string_or("user", "postgres");
      if (!is_valid_seed_name(step.user)) r.at("user").fail("a role name here is letters, digits and '_', starting with a letter");
      step.password = r.string_or("password", "");
      step.run_in = r.string_or("run_in", step.service);
    } else {
      for (const char* field : {"database", "user", "password", "run_in"})
        if (r.has(field)) r.at(field).fail("belongs to a seed in the environment's own PostgreSQL service ('service'); a server of prevue's config gives each environment its own database and role");
    }
    if (r.has("dump")) step.dump = r.at("dump").path_value();
    if (r.has("server_dump")) step.server_dump = r.at("server_dump").string();
    if (!step.dump.empty() && !step.server_dump.empty()) r.at("server_dump").fail("give 'dump' or 'server_dump', not both");
    if (r.has("files")) step.files = r.at("files").paths();
    if (r.has("run")) step.run = r.at("run").argv();
    if (r.has("workdir")) step.workdir = r.at("workdir").path_value();
    if (r.has("paths")) step.paths = r.at("paths").paths();
    if (r.has("timeout")) step.timeout = r.at("timeout").duration();
    return step;
  } else {
    r.at("type").fail("unknown seed type '" + type + "' (expected sqlite, sql, command or postgres)");
  }
  if (step.kind == SeedKind::kCommand) {
    if (!r.has("run")) r.fail("missing required field 'run'");
    step.run = r.at("run").argv();
    if (r.has("workdir")) step.workdir = r.at("workdir").path_value();
    if (r.has("service")) step.service = r.at("service").string();
  } else {
    if (!r.has("database")) r.fail("missing required field 'database'");
    if (r.has("service")) {
      // A path inside the service (its container), where its volume is mounted.
      step.service = r.at("service").string();
      step.database = r.at("database").string();
      if (step.database.empty() || step.database.front() != '/' || !is_safe_relative_path(step.database.substr(1)))
        r.at("database").fail("with 'service', must be an absolute path inside the service, without '..' (got '" + step.database + "')");
    } else {
      step.database = r.at("database").path_value();
    }
    if (r.has("files")) step.files = r.at("files").paths();
    if (step.kind == SeedKind::kSql && step.files.empty()) r.fail("an sql step needs at least one file in 'files'");
    if (step.kind == SeedKind::kSqlite && step.snapshot.empty() && step.files.empty())
      r.fail("a sqlite step needs a 'snapshot', 'files', or both");
  }
  if (r.has("timeout")) step.timeout = r.at("timeout").duration();
  step.name = r.string_or("name", "");
  return step;
}

// Every field of the top level; a provider's settings block is named after it.
constexpr std::string_view kTopLevelFields[] = {"$schema", "version", "name", "provider", "layers", "export", "params",
                                                "services", "templates", "seed", "routes", "lease"};

std::string read_provider_name(const Reader& r) {
  std::string provider = r.string_or("provider", "local");
  if (!is_name(provider)) r.at("provider").fail("must be a provider name of [a-z0-9_-]");
  for (auto field : kTopLevelFields)
    if (provider == field) r.at("provider").fail("'" + provider + "' is a manifest field, not a provider name");
  return provider;
}

// A layer's provider, settings block and services (from `r`: the top level
// in the short form, an item of $.layers otherwise); appends the services to `m`.
Layer read_layer(const Reader& r, std::string name, std::string provider, Manifest& m, bool services_required) {
  Layer layer;
  layer.name = std::move(name);
  layer.provider = std::move(provider);
  if (r.has(layer.provider)) {
    Reader settings = r.at(layer.provider);
    if (!settings.value().is_object()) settings.fail("must be an object (the settings of provider '" + layer.provider + "')");
    layer.provider_settings = settings.value().dump();
  }
  if (!r.has("services")) {
    if (services_required) r.fail("missing required field 'services'");
    return layer;
  }
  Reader services = r.at("services");
  if (!services.value().is_object() || (services_required && services.value().empty()))
    services.fail(services_required ? "must be an object with at least one service" : "must be an object");
  for (const auto& item : services.value().items()) {
    Reader s(item.value(), services.child_path(item.key()));
    if (!is_name(item.key())) s.fail("service names are [a-z0-9_-], starting with a letter, at most 40 characters");
    if (m.find_service(item.key())) s.fail("service '" + item.key() + "' is already declared by another layer");
    m.services.push_back(read_service(s, item.key()));
    layer.services.push_back(item.key());
  }
  return layer;
}

void read_layers(const Reader& root, Manifest& m) {
  if (!root.has("layers")) {
    root.expect_object({"$schema", "version", "name", "provider", "export", "params", "services", "templates", "seed", "routes",
                        "lease", read_provider_name(root)});
    m.layers.push_back(read_layer(root, std::string(kShortFormLayer), read_provider_name(root), m, true));
    return;
  }
  m.short_form = false;
  root.expect_object({"$schema", "version", "name", "layers", "export", "params", "templates", "seed", "routes", "lease"});
  Reader layers = root.at("layers");
  if (!layers.value().is_array() || layers.value().empty()) layers.fail("must be an array with at least one layer");
  for (size_t i = 0; i < layers.value().size(); ++i) {
    Reader item(layers.value()[i], layers.path() + "[" + std::to_string(i) + "]");
    if (!item.value().is_object()) item.fail("must be an object");
    std::string provider = read_provider_name(item);
    item.expect_object({"name", "provider", "services", provider});
    std::string name = item.required_string("name");
    if (!is_name(name)) item.at("name").fail("layer names are [a-z0-9_-], starting with a letter");
    if (m.find_layer(name)) item.at("name").fail("layer '" + name + "' is declared twice");
    for (const auto& earlier : m.layers)
      if (earlier.provider == provider)
        (item.has("provider") ? item.at("provider") : item)
            .fail("provider '" + provider + "' already runs layer '" + earlier.name + "' (a provider runs one layer of an environment)");
    m.layers.push_back(read_layer(item, name, provider, m, false));
  }
  if (m.services.empty()) layers.fail("declare at least one service in some layer (a preview needs something to route to)");
  // A service is rendered before its layer applies: it may name the outputs of earlier layers only.
  for (size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& name : m.layers[i].services) {
      const ServiceSpec& s = *m.find_service(name);
      std::string given;
      for (const auto& arg : s.run) given += arg + "\n";
      for (const auto& arg : s.build) given += arg + "\n";
      for (const auto& [k, v] : s.env) given += v + "\n";
      if (m.last_output_layer(given) >= static_cast<int>(i))
        Reader(layers.value()[i], layers.path() + "[" + std::to_string(i) + "]")
            .at("services")
            .at(name)
            .fail("names outputs of its own or a later layer; a service sees the outputs of the layers before its own");
    }
  }
}

Manifest read_manifest(const Reader& root) {
  Manifest m;
  if (!root.value().is_object()) root.fail("must be an object");
  if (!root.has("version")) root.fail("missing required field 'version'");
  m.version = static_cast<int>(root.at("version").integer(0, 1'000'000));
  if (m.version != kManifestVersion)
    root.at("version").fail("unsupported manifest version " + std::to_string(m.version) + " (this prevue reads version " +
                            std::to_string(kManifestVersion) + ")");
  read_layers(root, m);
  m.name = root.string_or("name", "");
  if (root.has("export")) {
    m.export_paths = root.at("export").paths();
    if (m.export_paths.empty()) root.at("export").fail("must name at least one path ('.' for the whole repository)");
  }
  if (root.has("params")) {
    m.params = root.at("params").string_map();
    for (const auto& [key, value] : m.params)
      if (!is_name(key)) root.at("params").at(key).fail("parameter names are [a-z0-9_-], starting with a letter");
  }
  if (root.has("templates")) {
    Reader t = root.at("templates");
    if (!t.value().is_array()) t.fail("must be an array");
    for (size_t i = 0; i < t.value().size(); ++i) {
      Reader item(t.value()[i], t.path() + "[" + std::to_string(i) + "]");
      item.expect_object({"source", "target"});
      if (!item.has("source")) item.fail("missing required field 'source'");
      TemplateFile file{item.at("source").path_value(), ""};
      file.target = item.has("target") ? item.at("target").path_value() : file.source;
      m.templates.push_back(file);
    }
  }
  if (root.has("seed")) {
    Reader s = root.at("seed");
    if (!s.value().is_array()) s.fail("must be an array");
    for (size_t i = 0; i < s.value().size(); ++i) {
      Reader item(s.value()[i], s.path() + "[" + std::to_string(i) + "]");
      SeedStep step = read_seed(item);
      if (!m.seed_layer(step)) item.at("service").fail("names no service declared in a layer's services (with one layer, any service its provider runs)");
      if (!step.run_in.empty() && m.seed_layer(step) != m.seed_layer(SeedStep{.service = step.run_in}))
        item.at("run_in").fail("names no service of the same layer as 'service'");
      if (step.name.empty()) step.name = "seed-" + std::to_string(i + 1) + "-" + to_string(step.kind);
      if (step.kind == SeedKind::kPostgres)
        for (const auto& other : m.seed)
          if (other.kind == SeedKind::kPostgres && other.name == step.name) item.at("name").fail("another postgres seed is called '" + step.name + "'");
      m.seed.push_back(step);
    }
  }
  if (root.has("routes")) {
    Reader routes = root.at("routes");
    if (!routes.value().is_object()) routes.fail("must be an object mapping route names to {\"service\": ...}");
    for (const auto& item : routes.value().items()) {
      Reader r(item.value(), routes.child_path(item.key()));
      if (!is_name(item.key())) r.fail("route names are [a-z0-9_-], starting with a letter");
      r.expect_object({"service"});
      RouteSpec route{item.key(), r.required_string("service")};
      if (!m.find_service(route.service)) r.at("service").fail("names no service declared in $.services");
      m.routes.push_back(route);
    }
  } else {
    // One service needs no route table: it answers the environment's host.
    m.routes.push_back(RouteSpec{"web", m.services.front().name});
  }
  if (root.has("lease")) m.lease = json_reader::read_lease(root.at("lease"));
  return m;
}

}  // namespace

ManifestLease json_reader::read_lease(const Reader& l) {
  l.expect_object({"ttl", "idle", "end", "grace"});
  ManifestLease lease;
  if (l.has("ttl")) lease.ttl = l.at("ttl").duration();
  if (l.has("idle")) lease.idle = l.at("idle").duration();
  if (l.has("grace")) lease.grace = l.at("grace").duration();
  if (l.has("end")) {
    std::string end = l.at("end").string();
    lease.end = end_action_from_string(end);
    if (!lease.end) l.at("end").fail("must be \"destroy\" or \"sleep\"");
  }
  return lease;
}

Result<Manifest> parse_manifest(std::string_view text, std::string_view origin) {
  auto document = json_reader::parse_document(text, origin);
  if (!document.ok()) return document.error();
  try {
    return read_manifest(Reader(*document, "$"));
  } catch (const ReadError& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string(origin) + ": " + e.path + " " + e.message);
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string(origin) + ": " + e.what());
  }
}

namespace json_reader {

std::string line_and_column(std::string_view text, size_t byte) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

Result<json> parse_document(std::string_view text, std::string_view origin) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // nlohmann reports the byte after the offending token; step back onto it.
    size_t byte = e.byte > 0 ? e.byte - 1 : 0;
    std::string what = e.what();
    auto pos = what.find("syntax error");
    return make_error(ErrorCode::kParse, std::string(origin) + ": JSON syntax error at " + line_and_column(text, byte) + ": " +
                                             (pos == std::string::npos ? what : what.substr(pos)));
  } catch (const json::exception& e) {
    // A number past the double range (1e400) is not a syntax error to the library.
    std::string what = e.what();
    auto pos = what.find("number overflow");
    return make_error(ErrorCode::kParse, std::string(origin) + ": " + (pos == std::string::npos ? what : what.substr(pos)) +
                                             " (a number too large to represent)");
  }
}

}  // namespace json_reader

}  // namespace prevue
