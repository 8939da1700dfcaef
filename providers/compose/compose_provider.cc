#include "compose_provider.h"
#include "docker_cli.h"
#include "swarm.h"
#include "http_probe.h"
#include "image_build.h"
#include "preview_context.h"
#include "yaml_text.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <iostream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "core/slug.h"
#include "manifest/manifest.h"
#include "provider/process_runner.h"

namespace prevue::compose {

namespace fs = std::filesystem;
using json = nlohmann::json;
using providers::instance_of;
using providers::preview_environment;
using providers::emit;

namespace {

constexpr const char* kRecordFile = "compose.json";     // in the environment's records directory
constexpr const char* kProjectFile = "compose.prevue.yaml";  // the file prevue runs: the repository's, merged and made safe
constexpr const char* kEnvironmentLabel = "dev.prevue.environment";
// Which prevue (state root) a project belongs to: one Docker Engine may serve
// several prevue instances, and each sweeps only its own orphans.
constexpr const char* kInstanceLabel = "dev.prevue.instance";

std::vector<std::string> compose(const std::string& project, const std::vector<std::string>& files,
                                 std::initializer_list<std::string> args) {
  std::vector<std::string> argv = compose_binary();
  argv.insert(argv.end(), {"--project-name", project});
  for (const auto& f : files) argv.insert(argv.end(), {"--file", f});
  argv.insert(argv.end(), args);
  return argv;
}

// ---- settings -----------------------------------------------------------------

struct Settings {
  std::vector<std::string> files{"compose.yaml"};
  std::map<std::string, int> ports;  // routed service -> container port
  std::vector<std::string> profiles;
  bool swarm = false;                // "mode": "swarm": a stack on the engine's swarm
};

// What the operator set in prevue's config ("providers": {"compose": {…}}).
struct OperatorSettings {
  std::string registry;  // "host:port[/path]": swarm images are pushed there, for every node to pull
};

Result<OperatorSettings> read_operator_settings(const std::string& text) {
  OperatorSettings o;
  json block = json::parse(text, nullptr, false);
  if (!block.is_object()) return make_error(ErrorCode::kInvalidArgument, "providers.compose in prevue's config must be an object");
  for (const auto& [key, value] : block.items()) {
    if (key != "registry") return make_error(ErrorCode::kInvalidArgument, "providers.compose." + key + " in prevue's config: unknown field");
    if (!value.is_string() || value.get<std::string>().empty() || value.get<std::string>().find_first_of(" \t\n") != std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "providers.compose.registry in prevue's config must be a registry address (host:port)");
    o.registry = value.get<std::string>();
    while (!o.registry.empty() && o.registry.back() == '/') o.registry.pop_back();
  }
  return o;
}

// Reads the settings block; each problem is added at its JSON path.
Settings read_settings(const std::string& text, std::vector<SettingsProblem>& problems) {
  Settings s;
  json block = json::parse(text, nullptr, false);
  if (!block.is_object()) {
    problems.push_back({"$.compose", "must be an object"});
    return s;
  }
  for (const auto& [key, value] : block.items())
    if (key != "files" && key != "ports" && key != "profiles" && key != "mode") problems.push_back({"$.compose." + key, "unknown field"});
  if (block.contains("mode")) {
    const json& mode = block["mode"];
    if (mode != "compose" && mode != "swarm") problems.push_back({"$.compose.mode", "must be \"compose\" (the default) or \"swarm\""});
    s.swarm = mode == "swarm";
  }
  if (block.contains("files")) {
    s.files.clear();
    const json& files = block["files"];
    if (!files.is_array() || files.empty()) problems.push_back({"$.compose.files", "must be a non-empty array of paths"});
    for (size_t i = 0; files.is_array() && i < files.size(); ++i) {
      std::string path = files[i].is_string() ? files[i].get<std::string>() : "";
      if (!is_safe_relative_path(path))
        problems.push_back({"$.compose.files[" + std::to_string(i) + "]", "must be a relative path in the repository, without '..'"});
      else s.files.push_back(path);
    }
  }
  if (block.contains("ports")) {
    const json& ports = block["ports"];
    if (!ports.is_object()) problems.push_back({"$.compose.ports", "must map routed services to their container port"});
    else
      for (const auto& [service, port] : ports.items()) {
        if (!port.is_number_integer() || port.get<long>() < 1 || port.get<long>() > 65535)
          problems.push_back({"$.compose.ports." + service, "must be a port number 1-65535"});
        else s.ports[service] = port.get<int>();
      }
  }
  if (block.contains("profiles")) {
    const json& profiles = block["profiles"];
    if (!profiles.is_array()) problems.push_back({"$.compose.profiles", "must be an array of names"});
    for (size_t i = 0; profiles.is_array() && i < profiles.size(); ++i) {
      if (!profiles[i].is_string()) problems.push_back({"$.compose.profiles[" + std::to_string(i) + "]", "must be a string"});
      else s.profiles.push_back(profiles[i].get<std::string>());
    }
  }
  return s;
}

// ---- the project -------------------------------------------------------------

// What the provider keeps of an environment (records_dir/compose.json).
struct Record {
  std::vector<std::string> images;           // built for it
  std::map<std::string, std::string> endpoints;  // routed service -> "127.0.0.1:port"
  // Each service as last started: the identity of its configuration (image
  // and spec, without the per-commit values) and the commit it started at.
  // A service whose identity is unchanged keeps that commit in its
  // PREVUE_COMMIT and label, so compose leaves its container running.
  std::map<std::string, std::pair<std::string, std::string>> started;
  std::string mode;  // "compose" or "swarm": how it last ran
};

Record load_record(const fs::path& records) {
  Record r;
  auto text = read_file(records / kRecordFile);
  if (!text.ok()) return r;
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return r;
  // Each part kept in a local: iterating a temporary's items() would dangle.
  const json images = doc.value("images", json::array()), endpoints = doc.value("endpoints", json::object()),
             started = doc.value("started", json::object());
  r.mode = doc.value("mode", "");
  for (const auto& image : images) r.images.push_back(image.get<std::string>());
  for (const auto& [k, v] : endpoints.items()) r.endpoints[k] = v.get<std::string>();
  for (const auto& [k, v] : started.items()) r.started[k] = {v.value("identity", ""), v.value("commit", "")};
  return r;
}

Status save_record(const fs::path& records, const Record& r) {
  std::error_code ec;
  fs::create_directories(records, ec);
  json started = json::object();
  for (const auto& [service, s] : r.started) started[service] = {{"identity", s.first}, {"commit", s.second}};
  json doc{{"images", r.images}, {"endpoints", r.endpoints}, {"started", started}, {"mode", r.mode}};
  return write_file_atomic(records / kRecordFile, doc.dump(2) + "\n", Durability::kAtomicOnly);
}

struct Project {
  std::string name;            // the slug
  fs::path dir;                // the environment directory (the repository's files)
  fs::path records;            // this provider's records of it
  std::vector<std::string> files;  // the repository's compose files, absolute
  bool swarm = false;              // a stack, not a compose project
  fs::path project_file() const { return records / kProjectFile; }
};

Result<Project> project_of(const ProviderRequest& request, const Settings& settings) {
  const ProviderEnvironment& env = request.environment;
  if (env.slug.empty() || !is_valid_dns_label(env.slug)) return make_error(ErrorCode::kInvalidArgument, "no valid environment slug in the request");
  Project p{env.slug, env.dir, env.records_dir, {}, settings.swarm};
  for (const auto& f : settings.files) {
    fs::path path = p.dir / f;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      return make_error(ErrorCode::kNotFound, "compose file " + f + " is not in the repository at this commit");
    p.files.push_back(path.string());
  }
  return p;
}

// `text` as a value Compose reads back unchanged: it interpolates `$NAME`
// and `${NAME...}` in the files it loads (`config` keeps what the
// repository escaped as `$$`), and a branch name may hold either.
std::string literal(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '$') out += '$';
    out += c;
  }
  return out;
}

struct Prepared {
  std::vector<std::string> images;     // built or reused for this commit
  std::set<std::string> services;      // every compose service
  std::set<std::string> healthchecked; // those with their own healthcheck
  std::set<std::string> changed;       // whose configuration changed: compose (re)creates them
};

// `config` merges the repository's files (as compose itself reads them),
// then each service's image is built once per build identity, and the
// project file prevue runs is written: no fixed host ports (routed services
// publish their container port on a loopback port Docker picks), no fixed
// container names, prevue's labels and the preview's environment on every
// service, network and volume.
Result<Prepared> prepare(const ProviderRequest& request, const Settings& settings, const OperatorSettings& operator_settings,
                         const Project& p, Record& record, std::string& log) {
  std::vector<std::string> argv = compose(p.name, p.files, {"config"});
  for (const auto& profile : settings.profiles) argv.insert(argv.end() - 1, {"--profile", profile});
  Command config = run(argv, Millis(60'000), p.dir);
  if (!config.ok()) return make_error(ErrorCode::kInvalidArgument, "the compose files do not load: " + config.why());
  YAML::Node doc;
  try {
    doc = YAML::Load(config.out);
  } catch (const YAML::Exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string("compose config printed YAML that does not parse: ") + e.what());
  }
  if (!doc["services"] || !doc["services"].IsMap()) return make_error(ErrorCode::kInvalidArgument, "the compose files declare no services");

  std::map<std::string, std::string> labels{{kEnvironmentLabel, p.name},
                                            {kInstanceLabel, instance_of(request)},
                                            {"dev.prevue.pr", std::to_string(request.environment.pr)}};
  auto add_labels = [&](YAML::Node node, const std::string& commit) {
    // Labels may be a list ("k=v") or a map; a map is what prevue writes.
    YAML::Node merged(YAML::NodeType::Map);
    if (node["labels"] && node["labels"].IsMap())
      for (const auto& item : node["labels"]) merged[item.first.Scalar()] = item.second;
    else if (node["labels"] && node["labels"].IsSequence())
      for (const auto& item : node["labels"]) {
        std::string kv = item.Scalar();
        auto eq = kv.find('=');
        merged[kv.substr(0, eq)] = eq == std::string::npos ? std::string() : kv.substr(eq + 1);
      }
    for (const auto& [k, v] : labels) merged[k] = v;
    if (!commit.empty()) merged["dev.prevue.commit"] = commit;
    node["labels"] = merged;
  };
  // A swarm service carries labels of its own (deploy.labels) beside its containers'.
  auto add_service_labels = [&](YAML::Node spec, const std::string& commit) {
    add_labels(spec, commit);
    if (!settings.swarm) return;
    if (!spec["deploy"] || !spec["deploy"].IsMap()) spec["deploy"] = YAML::Node(YAML::NodeType::Map);
    YAML::Node deploy = spec["deploy"];
    add_labels(deploy, commit);
  };

  Prepared prepared;
  const auto environment = preview_environment(request);
  std::vector<providers::ImageBuild> builds;               // built here, or reused
  std::vector<std::pair<std::string, std::string>> pushes;  // image -> its name in the operator's registry
  for (auto item : doc["services"]) {
    const std::string service = item.first.Scalar();
    YAML::Node spec = item.second;
    prepared.services.insert(service);
    if (spec["healthcheck"] && !(spec["healthcheck"]["disable"] && spec["healthcheck"]["disable"].as<bool>(false)))
      prepared.healthchecked.insert(service);
    if (spec["build"]) {
      YAML::Node build = spec["build"];
      fs::path context = build.IsScalar() ? build.Scalar() : build["context"].as<std::string>(".");
      if (context.is_relative()) context = p.dir / context;
      std::string dockerfile = build.IsMap() && build["dockerfile"] ? build["dockerfile"].as<std::string>() : "Dockerfile";
      std::map<std::string, std::string> args;
      if (build.IsMap() && build["args"] && build["args"].IsMap())
        for (const auto& a : build["args"]) args[a.first.Scalar()] = a.second.IsNull() ? "" : a.second.Scalar();
      providers::ImageBuild image = providers::plan_image(service, context, dockerfile, args);
      std::string tag = image.tag;
      builds.push_back(std::move(image));
      prepared.images.push_back(tag);
      if (settings.swarm && !operator_settings.registry.empty()) {
        // Every node of the swarm pulls it from the operator's registry.
        std::string pushed = operator_settings.registry + "/" + tag;
        pushes.emplace_back(tag, pushed);
        prepared.images.push_back(pushed);
        tag = pushed;
      }
      spec.remove("build");
      spec["image"] = tag;
    }
    spec.remove("container_name");
    // Swarm starts a stack's services in no order (and Compose v1 writes a
    // form of depends_on that stack deploy refuses): services wait for theirs themselves.
    if (settings.swarm) spec.remove("depends_on");
    spec.remove("ports");
    if (auto routed = settings.ports.find(service); routed != settings.ports.end()) {
      YAML::Node ports(YAML::NodeType::Sequence);
      if (settings.swarm) {
        // Published by the node that runs the task, on a port Docker picks (swarm::endpoint_of).
        YAML::Node port(YAML::NodeType::Map);
        port["target"] = routed->second;
        port["protocol"] = "tcp";
        port["mode"] = "host";
        ports.push_back(port);
      } else {
        ports.push_back("127.0.0.1::" + std::to_string(routed->second));
      }
      spec["ports"] = ports;
    }
    YAML::Node env = spec["environment"] && spec["environment"].IsMap() ? spec["environment"] : YAML::Node(YAML::NodeType::Map);
    for (const auto& [k, v] : environment) env[k] = literal(v);
    spec["environment"] = env;
    // Unchanged since it last started: the commit it started at, so nothing about it changes.
    YAML::Emitter identity_text;
    emit(identity_text, spec);
    std::string identity = sha256_hex(identity_text.c_str());
    auto& started = record.started[service];
    if (started.first != identity) {
      started = {identity, request.environment.commit};
      prepared.changed.insert(service);
    }
    spec["environment"]["PREVUE_COMMIT"] = started.second;
    spec["environment"]["PREVUE_COMMIT_SHORT"] = started.second.substr(0, 7);
    add_service_labels(spec, started.second);
  }
  // Compose v2 writes the project's name at the top; stack deploy refuses it (the stack is named on its command line).
  if (settings.swarm) doc.remove("name");
  PREVUE_TRY(providers::build_all(builds, log));
  for (const auto& [image, pushed] : pushes) {
    if (Command tagged = run({"docker", "tag", image, pushed}, Millis(30'000)); !tagged.ok())
      return make_error(ErrorCode::kProvider, "tagging " + image + " for the registry failed: " + tagged.why());
    Command push = run({"docker", "push", pushed}, Millis(1'800'000));
    if (!push.ok()) return make_error(ErrorCode::kProvider, "pushing " + pushed + " failed:\n" + push.why());
    log += "pushed " + pushed + "\n";
  }
  for (const char* kind : {"networks", "volumes"}) {
    if (!doc[kind] || !doc[kind].IsMap()) continue;
    for (auto item : doc[kind]) {
      if (item.second.IsMap() && !(item.second["external"] && item.second["external"].as<bool>(false))) {
        add_labels(item.second, "");
      } else if (item.second.IsNull()) {
        YAML::Node fresh(YAML::NodeType::Map);
        add_labels(fresh, "");
        doc[kind][item.first.Scalar()] = fresh;
      }
    }
  }
  YAML::Emitter out;
  emit(out, doc);
  std::error_code ec;
  fs::create_directories(p.records, ec);
  PREVUE_TRY(write_file_atomic(p.project_file(), std::string(out.c_str()) + "\n", Durability::kAtomicOnly));
  return prepared;
}

// The container of `service` in the project (empty when none).
std::string container_of(const Project& p, const std::string& service) {
  Command ps = run({"docker", "ps", "--all", "--quiet", "--filter", "label=com.docker.compose.project=" + p.name, "--filter",
                    "label=com.docker.compose.service=" + service});
  auto ids = nonempty_lines(ps.out);
  return ids.empty() ? "" : ids.front();
}

std::string container_state(const std::string& id, const std::string& format) {
  Command inspect = run({"docker", "inspect", "--format", format, id}, Millis(30'000));
  std::string text = inspect.out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return inspect.ok() ? text : "";
}

std::string logs_tail(const Project& p, const std::string& service) {
  if (p.swarm) return swarm::logs_tail(p.name, service, 30);
  Command logs = run(compose(p.name, {p.project_file().string()}, {"logs", "--no-color", "--tail", "30", service}), Millis(30'000));
  return tail_lines(logs.out + logs.err, 30);
}

// Waits until every service runs, each with a healthcheck healthy and each
// routed one answering its health path at its endpoint (which `endpoint_of`
// finds, once the service runs); the first that exits or fails fails the
// call with its last log lines.
Status wait_healthy(const ProviderRequest& request, const Project& p, const Prepared& prepared, Record& record,
                    const std::function<ServiceProbe(const std::string&)>& probe,
                    const std::function<std::string(const std::string&)>& endpoint_of) {
  // The longest readiness timeout the manifest gives (60 s when it routes nothing).
  std::int64_t timeout_ms = request.services.empty() ? 60'000 : 0;
  for (const auto& s : request.services) timeout_ms = std::max(timeout_ms, s.ready_timeout_ms);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::set<std::string> waiting = prepared.services;
  std::string last_problem;
  while (!waiting.empty()) {
    for (auto it = waiting.begin(); it != waiting.end();) {
      const std::string& service = *it;
      ServiceProbe state = probe(service);
      if (!state.failure.empty()) return make_error(ErrorCode::kProvider, state.failure + ":\n" + logs_tail(p, service));
      bool healthy = state.ready;
      const ProviderService* routed = nullptr;
      for (const auto& s : request.services)
        if (s.name == service) routed = &s;
      if (healthy && routed) {
        std::string& known = record.endpoints[service];
        if (known.empty()) known = endpoint_of(service);
        auto endpoint = Endpoint::parse(known);
        healthy = endpoint && healthy_status(http_status(*endpoint, routed->health_path, 2000));
        if (!endpoint) state.state += ", no published port yet";
      }
      if (!healthy) last_problem = service + " (" + state.state + ")";
      it = healthy ? waiting.erase(it) : std::next(it);
    }
    if (waiting.empty()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::string service = *waiting.begin();
      return make_error(ErrorCode::kProvider, "not healthy within " + std::to_string(timeout_ms / 1000) + " s: " + last_problem + "\n" +
                                                  logs_tail(p, service));
    }
    // Each pass asks Docker a few cheap questions; a short pause keeps a
    // ready preview from waiting most of a pass for its answer.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

// A compose project's services: each one's container, as Docker reports it.
std::function<ServiceProbe(const std::string&)> compose_probe(const Project& p, const Prepared& prepared) {
  auto ids = std::make_shared<std::map<std::string, std::string>>();
  return [&p, &prepared, ids](const std::string& service) {
    ServiceProbe probe;
    std::string& id = (*ids)[service];  // a container keeps its id while it starts: looked up until found
    if (id.empty()) id = container_of(p, service);
    std::string state = id.empty() ? "" : container_state(id, "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}");
    if (state.rfind("exited", 0) == 0 || state.rfind("dead", 0) == 0) probe.failure = "service " + service + " exited";
    // Docker gives up on it after its healthcheck's retries (as `up --wait` does, so does prevue).
    if (state == "running unhealthy")
      probe.failure = "service " + service + " is unhealthy; its healthcheck said:\n" +
                      tail_lines(container_state(id, "{{range .State.Health.Log}}{{.Output}}{{end}}"), 10) + "\nand it logged";
    probe.ready = state.rfind("running", 0) == 0 && (!prepared.healthchecked.count(service) || state == "running healthy");
    probe.state = state.empty() ? "no container" : state;
    return probe;
  };
}

// Everything of the project, found by compose's own label: what a crash
// left half-made is found too, and no compose file is needed.
std::vector<std::string> labelled(const std::vector<std::string>& list_argv, const std::string& project) {
  std::vector<std::string> argv = list_argv;
  argv.insert(argv.end(), {"--quiet", "--filter", "label=com.docker.compose.project=" + project});
  return nonempty_lines(run(argv).out);
}

// Removes a compose project's containers (with their anonymous volumes),
// networks and volumes; each one a line of the receipt.
std::vector<ReceiptItem> remove_compose_project(const std::string& project) {
  std::vector<ReceiptItem> receipt;
  for (const auto& id : labelled({"docker", "ps", "--all"}, project)) {
    std::string name = container_state(id, "{{.Name}}");
    Command rm = run({"docker", "rm", "--force", "--volumes", id});
    receipt.push_back({"container", (name.empty() ? id : name.substr(name.front() == '/' ? 1 : 0)), rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  for (const auto& id : labelled({"docker", "network", "ls"}, project)) {
    std::string name = run({"docker", "network", "inspect", "--format", "{{.Name}}", id}).first_line();
    Command rm = run({"docker", "network", "rm", id});
    receipt.push_back({"network", name.empty() ? id : name, rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  for (const auto& name : labelled({"docker", "volume", "ls"}, project)) {
    Command rm = run({"docker", "volume", "rm", "--force", name});
    receipt.push_back({"volume", name, rm.ok() ? "removed" : "not removed: " + rm.why()});
  }
  return receipt;
}

// Whether this engine can hold stacks (asked once per call of the provider).
bool swarm_manager() {
  static const bool manager = swarm::why_not_a_manager().empty();
  return manager;
}

// ---- verbs --------------------------------------------------------------------

void fail(ProviderResponse& response, const std::string& message) {
  response.ok = false;
  response.error_code = "failed";
  response.error_message = message;
}

int apply(const ProviderRequest& request, ProviderResponse& response) {
  std::vector<SettingsProblem> problems;
  Settings settings = read_settings(request.settings, problems);
  if (!problems.empty()) {
    fail(response, problems.front().path + " " + problems.front().message);
    return kProviderExitFailed;
  }
  auto project = project_of(request, settings);
  if (!project.ok()) {
    fail(response, project.error().message);
    return kProviderExitFailed;
  }
  auto operator_settings = read_operator_settings(request.operator_settings);
  if (!operator_settings.ok()) {
    fail(response, operator_settings.error().message);
    return kProviderExitFailed;
  }
  if (settings.swarm)
    if (std::string why = swarm::why_not_a_manager(); !why.empty()) {
      fail(response, why);
      return kProviderExitFailed;
    }
  std::string log;
  Record record = load_record(project->records);
  auto prepared = prepare(request, settings, *operator_settings, *project, record, log);
  std::cerr << log;
  if (!prepared.ok()) {
    fail(response, prepared.error().message);
    return kProviderExitFailed;
  }
  // Recorded before `up`: a teardown after a crash here still finds the images.
  for (const auto& image : prepared->images)
    if (std::find(record.images.begin(), record.images.end(), image) == record.images.end()) record.images.push_back(image);
  const std::string mode = settings.swarm ? "swarm" : "compose";
  if (!record.mode.empty() && record.mode != mode) {
    // The manifest moved between a compose project and a stack: the old one goes first.
    for (const auto& item : settings.swarm ? remove_compose_project(project->name) : swarm::remove(project->name))
      std::cerr << "switching to " << mode << ": " << item.kind << " " << item.name << " " << item.outcome << "\n";
    record.endpoints.clear();
  }
  record.mode = mode;
  (void)save_record(project->records, record);

  Status healthy;
  if (settings.swarm) {
    // Swarm updates only the services whose spec changed; routed ones
    // publish on the node that runs their task, so each endpoint is read
    // once its task runs.
    std::set<std::string> earlier_tasks = swarm::task_ids(project->name);
    Command deployed = swarm::deploy(project->name, project->project_file().string(), !operator_settings->registry.empty());
    std::cerr << deployed.out << deployed.err;
    if (!deployed.ok()) {
      fail(response, "docker stack deploy failed: " + deployed.why());
      return kProviderExitFailed;
    }
    for (const auto& service : prepared->changed) record.endpoints.erase(service);
    auto probe = [&](const std::string& service) { return swarm::probe(project->name, service, earlier_tasks); };
    auto endpoint_of = [&](const std::string& service) { return swarm::endpoint_of(project->name, service, settings.ports.at(service)); };
    healthy = wait_healthy(request, *project, *prepared, record, probe, endpoint_of);
  } else {
    // Compose recreates only the services whose configuration or image changed.
    Command up = run(compose(project->name, {project->project_file().string()}, {"up", "--detach", "--no-build", "--remove-orphans"}),
                     Millis(900'000), project->dir);
    std::cerr << up.err;
    if (!up.ok()) {
      fail(response, "compose up failed: " + up.why());
      return kProviderExitFailed;
    }
    for (const auto& [service, port] : settings.ports) {
      // The docker CLI, not compose's `port`: the same answer without starting Compose again.
      std::string container = container_of(*project, service);
      Command published = container.empty() ? Command{1, "", "no container"}
                                            : run({"docker", "port", container, std::to_string(port) + "/tcp"}, Millis(30'000));
      auto endpoint = Endpoint::parse(published.first_line());
      if (!published.ok() || !endpoint) {
        fail(response, "service " + service + " publishes no port " + std::to_string(port) + ": " + published.why() + "\n" +
                           logs_tail(*project, service));
        return kProviderExitFailed;
      }
      // Docker answers 0.0.0.0 for a port bound to every address; prevue bound it to loopback.
      record.endpoints[service] = "127.0.0.1:" + std::to_string(endpoint->port);
    }
    healthy = wait_healthy(request, *project, *prepared, record, compose_probe(*project, *prepared),
                           [](const std::string&) { return std::string(); });
  }
  (void)save_record(project->records, record);
  if (!healthy.ok()) {
    fail(response, healthy.error().message);
    return kProviderExitFailed;
  }
  for (const auto& s : request.services) {
    ServiceStatus status;
    status.name = s.name;
    status.running = true;
    if (auto e = record.endpoints.find(s.name); e != record.endpoints.end()) status.endpoint = *Endpoint::parse(e->second);
    status.restarted = prepared->changed.count(s.name) != 0;
    response.services.push_back(std::move(status));
  }
  response.ok = true;
  return kProviderExitOk;
}

int destroy(const ProviderRequest& request, ProviderResponse& response) {
  const std::string project = request.environment.slug;
  if (!is_valid_dns_label(project)) {
    fail(response, "no valid environment slug in the request");
    return kProviderExitFailed;
  }
  const fs::path records = request.environment.records_dir;
  Record record = load_record(records);
  // Both kinds are looked for, whatever the manifest says now: a crash
  // while switching modes, or a record lost, leaves nothing behind.
  response.removed = remove_compose_project(project);
  if (swarm_manager())
    for (auto& item : swarm::remove(project)) response.removed.push_back(std::move(item));
  for (auto& item : providers::remove_unshared_images(request.records_root, project, record.images,
                                                      [](const fs::path& other) { return load_record(other).images; }))
    response.removed.push_back(std::move(item));
  std::error_code ec;
  fs::remove_all(records, ec);
  response.ok = true;
  return kProviderExitOk;
}

// How the environment last ran, by its record.
bool runs_as_stack(const ProviderRequest& request) { return load_record(request.environment.records_dir).mode == "swarm"; }

int sleep_project(const ProviderRequest& request, ProviderResponse& response) {
  if (runs_as_stack(request)) {
    if (Status scaled = swarm::scale_to_zero(request.environment.slug); !scaled.ok()) {
      fail(response, scaled.error().message);
      return kProviderExitFailed;
    }
    response.ok = true;
    return kProviderExitOk;
  }
  for (const auto& id : labelled({"docker", "ps"}, request.environment.slug)) {
    Command stop = run({"docker", "stop", id});
    if (!stop.ok()) {
      fail(response, "cannot stop container " + id + ": " + stop.why());
      return kProviderExitFailed;
    }
  }
  response.ok = true;
  return kProviderExitOk;
}

int status(const ProviderRequest& request, ProviderResponse& response) {
  const std::string project = request.environment.slug;
  Record record = load_record(request.environment.records_dir);
  if (record.mode == "swarm") {
    for (const auto& [service, up] : swarm::service_states(project)) {
      ServiceStatus s{service, {}, 0, up, false};
      if (auto e = record.endpoints.find(service); e != record.endpoints.end())
        if (auto endpoint = Endpoint::parse(e->second)) s.endpoint = *endpoint;
      response.services.push_back(std::move(s));
    }
    response.ok = true;
    return kProviderExitOk;
  }
  Command ps = run({"docker", "ps", "--all", "--filter", "label=com.docker.compose.project=" + project, "--format",
                    "{{.Label \"com.docker.compose.service\"}} {{.State}}"});
  std::map<std::string, bool> running;
  for (const auto& line : nonempty_lines(ps.out)) {
    auto space = line.find(' ');
    if (space != std::string::npos) running[line.substr(0, space)] = running[line.substr(0, space)] || line.substr(space + 1) == "running";
  }
  for (const auto& [service, up] : running) {
    ServiceStatus s;
    s.name = service;
    s.running = up;
    if (auto e = record.endpoints.find(service); e != record.endpoints.end())
      if (auto endpoint = Endpoint::parse(e->second)) s.endpoint = *endpoint;
    response.services.push_back(std::move(s));
  }
  response.ok = ps.ok();
  if (!ps.ok()) fail(response, "docker ps: " + ps.why());
  return response.ok ? kProviderExitOk : kProviderExitFailed;
}

// Every project this prevue instance labelled on the engine (another
// instance's are not ours to sweep), and every environment this provider
// keeps records of: what no live environment owns is an orphan.
int list(const ProviderRequest& request, ProviderResponse& response) {
  std::set<std::string> slugs;
  Command ps = run({"docker", "ps", "--all", "--filter", std::string("label=") + kInstanceLabel + "=" + instance_of(request), "--format",
                    std::string("{{.Label \"") + kEnvironmentLabel + "\"}}"});
  if (!ps.ok()) {
    fail(response, "docker ps: " + ps.why());
    return kProviderExitFailed;
  }
  for (const auto& slug : nonempty_lines(ps.out)) slugs.insert(slug);
  // A sleeping stack has no containers; its services still carry the label.
  if (swarm_manager())
    for (const auto& stack : swarm::stacks_labelled(std::string(kInstanceLabel) + "=" + instance_of(request))) slugs.insert(stack);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(request.records_root, ec))
    if (fs::exists(entry.path() / kRecordFile, ec)) slugs.insert(entry.path().filename().string());
  for (const auto& slug : slugs)
    if (is_valid_dns_label(slug)) response.environments.push_back({slug, (fs::path(request.records_root) / slug).string(), {}});
  response.ok = true;
  return kProviderExitOk;
}

// The container of the request's one service (empty when none): the
// project's, or a running task's of the stack.
std::string service_container(const ProviderRequest& request) {
  if (request.services.size() != 1 || !is_valid_dns_label(request.environment.slug)) return "";
  const std::string& service = request.services.front().name;
  if (runs_as_stack(request)) return swarm::running_container(request.environment.slug, service);
  return container_of(Project{request.environment.slug, {}, {}, {}}, service);
}

// Copies a file into the service's container (into whatever is mounted at
// the target: a volume), beside the target first, then renames it over the
// target, so the service sees the old file or the whole new one. SQLite's
// journal files of the old one go first: they would corrupt the new one.
int put(const ProviderRequest& request, ProviderResponse& response) {
  const std::string id = service_container(request);
  const std::string& target = request.put_target;
  if (id.empty() || target.empty() || target.front() != '/' || request.put_source.empty()) {
    fail(response, "no running container for that service, or no file to put");
    return kProviderExitFailed;
  }
  const std::string incoming = target + ".prevue-incoming";
  Command copied = run({"docker", "cp", request.put_source, id + ":" + incoming}, Millis(request.exec_timeout_ms));
  if (!copied.ok()) {
    fail(response, "cannot copy into " + request.services.front().name + " at " + target + ": " + copied.why());
    return kProviderExitFailed;
  }
  Command cleared = run({"docker", "exec", id, "rm", "-f", "--", target + "-wal", target + "-shm", target + "-journal"}, Millis(60'000));
  Command renamed = cleared.ok() ? run({"docker", "exec", id, "mv", "-f", "--", incoming, target}, Millis(60'000)) : cleared;
  if (!renamed.ok()) {
    (void)run({"docker", "exec", id, "rm", "-f", "--", incoming}, Millis(60'000));
    fail(response, "cannot replace " + target + " in " + request.services.front().name + " (its image needs rm and mv): " + renamed.why());
    return kProviderExitFailed;
  }
  response.log = "put " + target + " into " + request.services.front().name + "\n";
  response.ok = true;
  return kProviderExitOk;
}

}  // namespace

int handle(const ProviderRequest& request, ProviderResponse& response) {
  try {
    switch (request.verb) {
      case ProviderVerb::kDescribe:
        response.ok = true;
        response.name = "compose";
        response.protocol = kProviderProtocolVersion;
        response.capabilities = {"validate", "allocate", "apply", "sleep", "destroy", "status", "list", "logs", "exec", "put"};
        response.stop_signal = SIGTERM;
        response.stop_grace_ms = 20'000;
        response.settings_schema = R"({"type": "object", "additionalProperties": false, "properties": {
          "files": {"type": "array", "minItems": 1, "items": {"type": "string"}},
          "ports": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 65535}},
          "profiles": {"type": "array", "items": {"type": "string"}},
          "mode": {"enum": ["compose", "swarm"]}}})";
        return kProviderExitOk;
      case ProviderVerb::kValidate: {
        Settings settings = read_settings(request.settings, response.problems);
        for (const auto& s : request.services) {
          if (!settings.ports.count(s.name))
            response.problems.push_back({"$.compose.ports." + s.name, "the container port of service " + s.name + " is needed to route to it"});
          if (!s.run.empty() || !s.build.empty())
            response.problems.push_back({"$.services." + s.name, "a compose service runs what its compose file says: no run or build here"});
        }
        response.ok = response.problems.empty();
        if (!response.ok) response.error_message = "invalid compose settings";
        return response.ok ? kProviderExitOk : kProviderExitFailed;
      }
      case ProviderVerb::kAllocate: {
        // Docker picks the host ports at `up`; apply reports them.
        for (const auto& s : request.services) response.services.push_back(ServiceStatus{s.name, {}, 0, false, false});
        response.ok = true;
        return kProviderExitOk;
      }
      case ProviderVerb::kApply: return apply(request, response);
      case ProviderVerb::kSleep: return sleep_project(request, response);
      case ProviderVerb::kDestroy: return destroy(request, response);
      case ProviderVerb::kStatus: return status(request, response);
      case ProviderVerb::kList: return list(request, response);
      case ProviderVerb::kExec: {
        // A seed command inside the service's running container.
        std::string id = service_container(request);
        if (id.empty() || request.services.front().run.empty()) {
          fail(response, "no running container for that service, or no command");
          return kProviderExitFailed;
        }
        std::vector<std::string> argv{"docker", "exec", "--interactive"};
        for (const auto& [k, v] : request.services.front().env) argv.insert(argv.end(), {"--env", k + "=" + v});
        argv.push_back(id);
        for (const auto& arg : request.services.front().run) argv.push_back(arg);
        Command exec = run(argv, Millis(request.exec_timeout_ms));
        response.log = exec.out + exec.err;
        if (!exec.ok()) {
          fail(response, "the command failed in " + request.services.front().name + ": " + exec.why());
          return kProviderExitFailed;
        }
        response.ok = true;
        return kProviderExitOk;
      }
      case ProviderVerb::kLogs: {
        // The container's output, as `docker logs` has it.
        std::string id = service_container(request);
        if (id.empty()) {
          fail(response, "no container for that service");
          return kProviderExitFailed;
        }
        Command logs = run({"docker", "logs", "--tail", std::to_string(request.log_lines), id}, Millis(30'000));
        response.log = logs.out + logs.err;
        response.ok = logs.ok();
        if (!logs.ok()) fail(response, "docker logs: " + logs.why());
        return response.ok ? kProviderExitOk : kProviderExitFailed;
      }
      case ProviderVerb::kPut: return put(request, response);
      case ProviderVerb::kPrune:
      case ProviderVerb::kPlan: break;
    }
    fail(response, std::string("verb ") + to_string(request.verb) + " is not implemented by the compose provider");
    return kProviderExitBadRequest;
  } catch (const std::exception& e) {
    fail(response, std::string("internal error: ") + e.what());
    return kProviderExitFailed;
  }
}

}  // namespace prevue::compose
