#include "manifest/manifest.h"

#include <nlohmann/json.hpp>

#include "manifest/json_reader.h"

#include <regex>

namespace prevue {

using json = nlohmann::json;

const char* to_string(SeedKind kind) {
  switch (kind) {
    case SeedKind::kSqlite: return "sqlite";
    case SeedKind::kSql: return "sql";
    case SeedKind::kCommand: return "command";
  }
  return "unknown";
}

const ServiceSpec* Manifest::find_service(std::string_view name) const {
  for (const auto& service : services) {
    if (service.name == name) return &service;
  }
  return nullptr;
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
    r.expect_object({"type", "name", "database", "snapshot", "files", "timeout"});
    step.kind = SeedKind::kSqlite;
    step.snapshot = r.has("snapshot") ? r.at("snapshot").path_value() : "";
  } else if (type == "sql") {
    r.expect_object({"type", "name", "database", "files", "timeout"});
    step.kind = SeedKind::kSql;
  } else if (type == "command") {
    r.expect_object({"type", "name", "run", "workdir", "timeout"});
    step.kind = SeedKind::kCommand;
  } else {
    r.at("type").fail("unknown seed type '" + type + "' (expected sqlite, sql or command)");
  }
  if (step.kind == SeedKind::kCommand) {
    if (!r.has("run")) r.fail("missing required field 'run'");
    step.run = r.at("run").argv();
    if (r.has("workdir")) step.workdir = r.at("workdir").path_value();
  } else {
    if (!r.has("database")) r.fail("missing required field 'database'");
    step.database = r.at("database").path_value();
    if (r.has("files")) step.files = r.at("files").paths();
    if (step.kind == SeedKind::kSql && step.files.empty()) r.fail("an sql step needs at least one file in 'files'");
    if (step.kind == SeedKind::kSqlite && step.snapshot.empty() && step.files.empty())
      r.fail("a sqlite step needs a 'snapshot', 'files', or both");
  }
  if (r.has("timeout")) step.timeout = r.at("timeout").duration();
  step.name = r.string_or("name", "");
  return step;
}

Manifest read_manifest(const Reader& root) {
  Manifest m;
  if (!root.value().is_object()) root.fail("must be an object");
  m.provider = root.string_or("provider", "local");
  if (!is_name(m.provider)) root.at("provider").fail("must be a provider name of [a-z0-9_-]");
  static constexpr std::string_view kFields[] = {"$schema", "version", "name", "provider", "export", "params", "services",
                                                 "templates", "seed", "routes", "lease"};
  for (auto field : kFields)
    if (m.provider == field) root.at("provider").fail("'" + m.provider + "' is a manifest field, not a provider name");
  // The provider's own settings sit in a block named after it; the provider validates them.
  root.expect_object({"$schema", "version", "name", "provider", "export", "params", "services", "templates", "seed", "routes",
                      "lease", m.provider});
  if (root.has(m.provider)) {
    Reader settings = root.at(m.provider);
    if (!settings.value().is_object()) settings.fail("must be an object (the settings of provider '" + m.provider + "')");
    m.provider_settings = settings.value().dump();
  }
  if (!root.has("version")) root.fail("missing required field 'version'");
  m.version = static_cast<int>(root.at("version").integer(0, 1'000'000));
  if (m.version != kManifestVersion)
    root.at("version").fail("unsupported manifest version " + std::to_string(m.version) + " (this prevue reads version " +
                            std::to_string(kManifestVersion) + ")");
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
  if (!root.has("services")) root.fail("missing required field 'services'");
  Reader services = root.at("services");
  if (!services.value().is_object() || services.value().empty()) services.fail("must be an object with at least one service");
  for (const auto& item : services.value().items()) {
    Reader s(item.value(), services.child_path(item.key()));
    if (!is_name(item.key())) s.fail("service names are [a-z0-9_-], starting with a letter, at most 40 characters");
    m.services.push_back(read_service(s, item.key()));
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
      SeedStep step = read_seed(Reader(s.value()[i], s.path() + "[" + std::to_string(i) + "]"));
      if (step.name.empty()) step.name = "seed-" + std::to_string(i + 1) + "-" + to_string(step.kind);
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
