#include "kubernetes_provider.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "core/slug.h"
#include "http_probe.h"
#include "image_build.h"
#include "kubectl.h"
#include "manifest/manifest.h"
#include "operator_settings.h"
#include "preview_context.h"
#include "workloads.h"
#include "yaml_text.h"

namespace prevue::kubernetes {

namespace fs = std::filesystem;
using json = nlohmann::json;
using providers::sha256_hex;
using providers::to_yaml;

namespace {

constexpr const char* kRecordFile = "kubernetes.json";           // in the environment's records directory
constexpr const char* kRenderedFile = "kubernetes.prevue.yaml";  // what prevue applies: the manifests, rendered and made safe
constexpr const char* kFieldManager = "prevue";
constexpr const char* kApplySet = "configmaps/prevue-applyset";  // the parent of what prevue applied: pruning is by it
constexpr const char* kManagedBy = "app.kubernetes.io/managed-by";
constexpr const char* kEnvironmentLabel = "dev.prevue.environment";
constexpr const char* kInstanceLabel = "dev.prevue.instance";
constexpr const char* kWatchedKinds = "deployments.apps,replicasets.apps,statefulsets.apps,daemonsets.apps,jobs.batch,pods";
// What a teardown's receipt lists (a namespace's deletion removes everything in it).
constexpr const char* kReceiptKinds =
    "deployments.apps,statefulsets.apps,daemonsets.apps,jobs.batch,cronjobs.batch,services,configmaps,secrets,"
    "persistentvolumeclaims,ingresses.networking.k8s.io";

// Kinds a preview may not hold: they live outside any namespace (and RBAC
// should refuse them anyway; this says why before the API server does).
const std::set<std::string> kClusterScoped{
    "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "PriorityClass",
    "IngressClass", "RuntimeClass", "CSIDriver", "CSINode", "VolumeAttachment", "APIService", "CertificateSigningRequest",
    "FlowSchema", "PriorityLevelConfiguration", "ClusterTrustBundle", "DeviceClass", "ServiceCIDR", "IPAddress"};
const std::set<std::string> kWorkloadKinds{"Deployment", "StatefulSet", "DaemonSet", "Job"};

// The cluster of prevue's config (remembered for the commands that run
// without it: they reach the same cluster).
Result<Cluster> cluster_of(const ProviderRequest& request) {
  providers::RememberedSettings settings = providers::remembered_operator_settings(request);
  PREVUE_ASSIGN_OR_RETURN(Cluster cluster, read_cluster(settings.text));
  cluster.configured = settings.text != "{}";
  if (settings.changed) {
    std::error_code ec;
    fs::remove(fs::path(request.records_root) / "whoami", ec);  // another cluster, or another identity
  }
  return cluster;
}

void fail(ProviderResponse& response, const std::string& message) {
  response.ok = false;
  response.error_code = "failed";
  response.error_message = message;
}

// ---- settings -----------------------------------------------------------------

struct ImageSource {
  std::string context = ".";
  std::string dockerfile = "Dockerfile";
  std::map<std::string, std::string> args;
};

struct Settings {
  std::string manifests;                        // a directory of the repository: YAML files, or a Kustomize overlay
  std::map<std::string, ImageSource> images;    // image name as the manifests write it -> what builds it
  std::map<std::string, int> ports;             // routed service (a Service of that name) -> its port
  bool node_port = false;                       // "routing": "node-port" (else "cluster-ip")
};

Settings read_settings(const std::string& text, std::vector<SettingsProblem>& problems) {
  Settings s;
  json block = json::parse(text, nullptr, false);
  if (!block.is_object()) {
    problems.push_back({"$.kubernetes", "must be an object"});
    return s;
  }
  for (const auto& [key, value] : block.items())
    if (key != "manifests" && key != "images" && key != "ports" && key != "routing") problems.push_back({"$.kubernetes." + key, "unknown field"});
  s.manifests = block.value("manifests", json()).is_string() ? block["manifests"].get<std::string>() : "";
  if (!is_safe_relative_path(s.manifests))
    problems.push_back({"$.kubernetes.manifests", "must be a directory of the repository (a relative path, without '..')"});
  if (block.contains("routing")) {
    if (block["routing"] != "cluster-ip" && block["routing"] != "node-port")
      problems.push_back({"$.kubernetes.routing", "must be \"cluster-ip\" (the default) or \"node-port\""});
    s.node_port = block["routing"] == "node-port";
  }
  if (block.contains("images")) {
    const json images = block["images"].is_object() ? block["images"] : json::object();
    if (!block["images"].is_object()) problems.push_back({"$.kubernetes.images", "must map image names to what builds them"});
    for (const auto& [name, source] : images.items()) {
      const std::string path = "$.kubernetes.images." + name;
      ImageSource image;
      if (name.empty() || name.find_first_of(" \t\n:@") != std::string::npos)
        problems.push_back({path, "must be an image name as the manifests write it, without tag or digest"});
      if (source.is_string()) {
        image.context = source.get<std::string>();
      } else if (source.is_object()) {
        for (const auto& [key, value] : source.items()) {
          if (key == "context" && value.is_string()) image.context = value.get<std::string>();
          else if (key == "dockerfile" && value.is_string()) image.dockerfile = value.get<std::string>();
          else if (key == "args" && value.is_object())
            for (const auto& [arg, v] : value.items()) image.args[arg] = v.is_string() ? v.get<std::string>() : v.dump();
          else problems.push_back({path + "." + key, "unknown field, or not of its type (context, dockerfile: strings; args: an object)"});
        }
      } else {
        problems.push_back({path, "must be a build context (a directory) or {context, dockerfile, args}"});
      }
      if (!is_safe_relative_path(image.context) && image.context != ".")
        problems.push_back({path + ".context", "must be a directory of the repository (a relative path, without '..')"});
      if (!is_safe_relative_path(image.dockerfile)) problems.push_back({path + ".dockerfile", "must be a relative path, without '..'"});
      s.images[name] = image;
    }
  }
  if (block.contains("ports")) {
    const json ports = block["ports"].is_object() ? block["ports"] : json::object();
    if (!block["ports"].is_object()) problems.push_back({"$.kubernetes.ports", "must map routed services to their Service's port"});
    for (const auto& [service, port] : ports.items()) {
      if (!port.is_number_integer() || port.get<long>() < 1 || port.get<long>() > 65535)
        problems.push_back({"$.kubernetes.ports." + service, "must be a port number 1-65535"});
      else s.ports[service] = port.get<int>();
    }
  }
  return s;
}

// ---- records ------------------------------------------------------------------

// What the provider keeps of an environment (records_dir/kubernetes.json).
struct Record {
  std::string namespace_name;
  std::string user;                              // who prevue is on the cluster (bound to `admin` in the namespace)
  std::vector<std::string> images;               // built for it (and their names as loaded into the cluster)
  std::map<std::string, std::string> endpoints;  // routed service -> "address:port"
  // Each workload ("Deployment/web") as last applied: the identity of its
  // spec without the per-commit values, the commit it was applied at, and
  // the replicas it should run. A workload whose identity is unchanged
  // keeps its commit, so its pods are left running.
  std::map<std::string, std::pair<std::string, std::string>> applied;
  std::map<std::string, long> replicas;
};

Record load_record(const fs::path& records) {
  Record r;
  auto text = read_file(records / kRecordFile);
  if (!text.ok()) return r;
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return r;
  r.namespace_name = doc.value("namespace", "");
  r.user = doc.value("user", "");
  const json images = doc.value("images", json::array()), endpoints = doc.value("endpoints", json::object()),
             applied = doc.value("applied", json::object()), replicas = doc.value("replicas", json::object());
  for (const auto& image : images)
    if (image.is_string()) r.images.push_back(image.get<std::string>());
  for (const auto& [k, v] : endpoints.items())
    if (v.is_string()) r.endpoints[k] = v.get<std::string>();
  for (const auto& [k, v] : applied.items())
    if (v.is_object()) r.applied[k] = {v.value("identity", ""), v.value("commit", "")};
  for (const auto& [k, v] : replicas.items())
    if (v.is_number_integer()) r.replicas[k] = v.get<long>();
  return r;
}

Status save_record(const fs::path& records, const Record& r) {
  std::error_code ec;
  fs::create_directories(records, ec);
  json applied = json::object();
  for (const auto& [key, a] : r.applied) applied[key] = {{"identity", a.first}, {"commit", a.second}};
  json doc{{"namespace", r.namespace_name}, {"user", r.user},       {"images", r.images},
           {"endpoints", r.endpoints},      {"applied", applied}, {"replicas", r.replicas}};
  return write_file_atomic(records / kRecordFile, doc.dump(2) + "\n", Durability::kAtomicOnly);
}

// The environment's namespace: <prefix><slug>, cut to a DNS label's 63
// characters with a hash of the whole when longer.
std::string namespace_of(const Cluster& cluster, const std::string& slug) {
  std::string name = cluster.namespace_prefix + slug;
  if (name.size() <= 63) return name;
  std::string hash = sha256_hex(name).substr(0, 8);
  name = name.substr(0, 63 - 9);
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name + "-" + hash;
}

// An existing environment on the cluster: the cluster, what the provider
// recorded of it, and its namespace (the recorded one: the prefix may have
// changed since).
struct Placed {
  Cluster cluster;
  Record record;
  std::string ns;
};

Result<Placed> placed_of(const ProviderRequest& request) {
  if (!is_valid_dns_label(request.environment.slug)) return make_error(ErrorCode::kInvalidArgument, "no valid environment slug in the request");
  PREVUE_ASSIGN_OR_RETURN(Cluster cluster, cluster_of(request));
  Record record = load_record(request.environment.records_dir);
  std::string ns = record.namespace_name.empty() ? namespace_of(cluster, request.environment.slug) : record.namespace_name;
  return Placed{std::move(cluster), std::move(record), std::move(ns)};
}

// ---- rendering ----------------------------------------------------------------



std::string scalar(const YAML::Node& node) { return node && node.IsScalar() ? node.Scalar() : ""; }

// The manifests as the repository has them at this commit: `kubectl
// kustomize` of an overlay, else every YAML (or JSON) file of the directory.
Result<std::string> read_manifests(const Cluster& cluster, const fs::path& env_dir, const std::string& relative) {
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(env_dir, ec);
  const fs::path dir = fs::weakly_canonical(env_dir / relative, ec);
  // A symbolic link in the repository must not lead prevue outside it.
  auto inside = [&](const fs::path& p) {
    auto rel = fs::weakly_canonical(p, ec).lexically_relative(root);
    return !rel.empty() && *rel.begin() != "..";
  };
  if (!fs::is_directory(dir, ec) || !inside(dir))
    return make_error(ErrorCode::kNotFound, "manifests directory " + relative + " is not in the repository at this commit");
  for (const char* name : {"kustomization.yaml", "kustomization.yml", "Kustomization"})
    if (fs::exists(dir / name, ec)) {
      // kubectl's own Kustomize: files outside the overlay's root are refused
      // (LoadRestrictionsRootOnly), and no plugin or Helm chart runs.
      Command built = kubectl(cluster, {"kustomize", dir.string()}, Millis(120'000));
      if (!built.ok()) return make_error(ErrorCode::kInvalidArgument, "kubectl kustomize " + relative + " failed: " + built.why());
      return built.out;
    }
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    auto ext = it->path().extension();
    if (it->is_regular_file(ec) && (ext == ".yaml" || ext == ".yml" || ext == ".json")) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) {
    if (!inside(f)) return make_error(ErrorCode::kInvalidArgument, f.lexically_relative(env_dir).string() + " leads outside the repository");
    PREVUE_ASSIGN_OR_RETURN(std::string text, read_file(f));
    all += "\n---\n" + text + "\n";
  }
  if (files.empty()) return make_error(ErrorCode::kNotFound, "manifests directory " + relative + " holds no .yaml, .yml or .json file");
  return all;
}

// The pod specs of a workload document (a CronJob's is two levels down).
std::vector<YAML::Node> pod_specs(YAML::Node doc) {
  const std::string kind = scalar(doc["kind"]);
  if (kind == "Pod") return {doc["spec"]};
  if (kind == "CronJob" && doc["spec"] && doc["spec"]["jobTemplate"] && doc["spec"]["jobTemplate"]["spec"] &&
      doc["spec"]["jobTemplate"]["spec"]["template"])
    return {doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]};
  if (doc["spec"] && doc["spec"].IsMap() && doc["spec"]["template"] && doc["spec"]["template"].IsMap() && doc["spec"]["template"]["spec"])
    return {doc["spec"]["template"]["spec"]};
  return {};
}

// A Kubernetes object name (a DNS subdomain): what may follow a kind on kubectl's command line.
bool is_object_name(const std::string& name) {
  if (name.empty() || name.size() > 253 || name.front() == '-' || name.front() == '.' || name.back() == '-' || name.back() == '.')
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'; });
}

// An image reference without its tag or digest: "registry:5000/team/web:1.2" -> "registry:5000/team/web".
std::string image_name(const std::string& reference) {
  std::string name = reference.substr(0, reference.find('@'));
  auto slash = name.rfind('/');
  auto colon = name.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) name.resize(colon);
  return name;
}

void set_env(YAML::Node container, const std::map<std::string, std::string>& values) {
  YAML::Node env(YAML::NodeType::Sequence);
  if (container["env"] && container["env"].IsSequence())
    for (const auto& e : container["env"])
      if (!values.count(scalar(e["name"]))) env.push_back(e);
  for (const auto& [name, value] : values) {
    YAML::Node e(YAML::NodeType::Map);
    e["name"] = name;
    e["value"] = value;
    e["value"].SetTag("!");  // always a string, whatever it looks like
    env.push_back(e);
  }
  container["env"] = env;
}

void for_each_container(const YAML::Node& doc, const std::function<void(YAML::Node)>& visit) {
  for (auto spec : pod_specs(doc))
    for (const char* list : {"initContainers", "containers"})
      if (spec && spec.IsMap() && spec[list] && spec[list].IsSequence())
        for (auto container : spec[list])
          if (container.IsMap()) visit(container);
}

struct Rendered {
  std::string yaml;                      // what `kubectl apply` gets
  // The record's `applied` and `replicas` once this is applied (kept apart
  // until then: an apply that fails leaves the record as it was).
  std::map<std::string, std::pair<std::string, std::string>> applied;
  std::map<std::string, long> replicas;
  std::set<std::string> workloads;       // "Deployment/web": what the rollout waits for
  std::set<std::string> changed;         // workloads whose spec changed: they roll
  std::set<std::string> recreated_jobs;  // Jobs whose spec changed: a Job's template cannot be updated
};

// Reads the manifests and makes them prevue's: every object in the
// environment's namespace (whatever namespace the repository wrote), no
// cluster-scoped kinds, the built images in place of their names, the
// preview's environment in every container, and PREVUE_COMMIT per workload
// (the commit its spec last changed at).
Result<Rendered> render(const ProviderRequest& request, const Cluster& cluster, const Settings& settings,
                        const std::map<std::string, std::string>& images, const std::string& ns, const Record& record) {
  PREVUE_ASSIGN_OR_RETURN(std::string text, read_manifests(cluster, request.environment.dir, settings.manifests));
  std::vector<YAML::Node> docs;
  try {
    for (auto& doc : YAML::LoadAll(text)) {
      if (doc.IsNull()) continue;
      if (doc.IsMap() && scalar(doc["kind"]) == "List" && doc["items"] && doc["items"].IsSequence()) {
        for (auto item : doc["items"]) docs.push_back(item);
      } else {
        docs.push_back(doc);
      }
    }
  } catch (const YAML::Exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string("the manifests are not valid YAML: ") + e.what());
  }
  if (docs.empty()) return make_error(ErrorCode::kInvalidArgument, "the manifests declare no objects");
  const auto environment = providers::preview_environment(request);
  Rendered rendered;
  std::string out;
  std::set<std::string> seen;
  for (auto& doc : docs) {
    if (!doc.IsMap() || scalar(doc["apiVersion"]).empty() || scalar(doc["kind"]).empty() || !doc["metadata"] ||
        scalar(doc["metadata"]["name"]).empty())
      return make_error(ErrorCode::kInvalidArgument, "every object in the manifests needs apiVersion, kind and metadata.name");
    const std::string kind = scalar(doc["kind"]), name = scalar(doc["metadata"]["name"]), key = kind + "/" + name;
    // The API server would refuse any other name; checked here too, since names reach kubectl's argv.
    if (!is_object_name(name)) return make_error(ErrorCode::kInvalidArgument, kind + " name '" + name + "' is not a valid object name");
    if (kClusterScoped.count(kind))
      return make_error(ErrorCode::kInvalidArgument,
                        key + " is cluster-scoped: a preview holds only objects of its own namespace");
    if (!seen.insert(key).second) return make_error(ErrorCode::kInvalidArgument, key + " is declared twice");
    doc["metadata"]["namespace"] = ns;
    for_each_container(doc, [&](YAML::Node container) {
      auto built = images.find(image_name(scalar(container["image"])));
      if (built != images.end()) container["image"] = built->second;
      set_env(container, environment);
    });
    if (kWorkloadKinds.count(kind)) {
      // Prevue owns the replica count (a hand's `kubectl scale` is undone at the next apply).
      if ((kind == "Deployment" || kind == "StatefulSet") && !doc["spec"]["replicas"]) doc["spec"]["replicas"] = 1;
      if (kind == "Deployment" || kind == "StatefulSet") rendered.replicas[key] = doc["spec"]["replicas"].as<long>(1);
      std::string identity = sha256_hex(to_yaml(doc));
      auto earlier = record.applied.find(key);
      auto& applied = rendered.applied[key];
      if (earlier != record.applied.end()) applied = earlier->second;
      if (applied.first != identity) {
        applied = {identity, request.environment.commit};
        rendered.changed.insert(key);
        if (kind == "Job") rendered.recreated_jobs.insert(name);
      }
      const std::string commit = applied.second;
      for_each_container(doc, [&](YAML::Node container) {
        set_env(container, {{"PREVUE_COMMIT", commit}, {"PREVUE_COMMIT_SHORT", commit.substr(0, 7)}});
      });
      doc["metadata"]["labels"]["dev.prevue.commit"] = commit;
      rendered.workloads.insert(key);
    }
    doc["metadata"]["labels"][kEnvironmentLabel] = request.environment.slug;
    out += "---\n" + to_yaml(doc) + "\n";
  }
  rendered.yaml = std::move(out);
  return rendered;
}

// ---- images -------------------------------------------------------------------

// The name the cluster's nodes know `tag` by, after making it available to
// them: pushed to the operator's registry, or imported into the node's
// containerd (`ctr -n k8s.io images import`, skipped when it has it).
Result<std::string> make_available(const Cluster& cluster, const std::string& tag, std::string& log) {
  if (!cluster.registry.empty()) {
    const std::string pushed = cluster.registry + "/" + tag;
    if (Command tagged = providers::run({"docker", "tag", tag, pushed}, Millis(30'000)); !tagged.ok())
      return make_error(ErrorCode::kProvider, "tagging " + tag + " for the registry failed: " + tagged.why());
    Command push = providers::run({"docker", "push", pushed}, Millis(1'800'000));
    if (!push.ok()) return make_error(ErrorCode::kProvider, "pushing " + pushed + " failed:\n" + push.why());
    log += "pushed " + pushed + "\n";
    return pushed;
  }
  if (!cluster.containerd.empty()) {
    const std::vector<std::string> ctr{"ctr", "--address", cluster.containerd, "--namespace", "k8s.io"};
    auto with = [&](std::initializer_list<std::string> args) {
      std::vector<std::string> argv = ctr;
      argv.insert(argv.end(), args);
      return argv;
    };
    Command listed = providers::run(with({"images", "list", "--quiet", "name==docker.io/" + tag}), Millis(30'000));
    if (!listed.ok()) return make_error(ErrorCode::kProvider, "cannot reach the node's containerd at " + cluster.containerd + ": " + listed.why());
    if (listed.first_line().empty()) {
      char path[] = "/tmp/prevue-image-XXXXXX";
      int fd = mkstemp(path);
      if (fd < 0) return make_error(ErrorCode::kIo, "cannot make a temporary file for the image");
      close(fd);
      Command saved = providers::run({"docker", "save", "--output", path, tag}, Millis(600'000));
      Command imported = saved.ok() ? providers::run(with({"images", "import", path}), Millis(600'000)) : saved;
      unlink(path);
      if (!imported.ok()) return make_error(ErrorCode::kProvider, "loading " + tag + " into the node's containerd failed: " + imported.why());
      log += "loaded " + tag + " into the node's containerd\n";
    }
  }
  return tag;
}

// ---- the namespace ------------------------------------------------------------

// The namespace, labelled and annotated for people, prevue and kube-janitor,
// and prevue's own `admin` binding in it (docs/kubernetes-rbac.yaml).
Status ensure_namespace(const ProviderRequest& request, const Cluster& cluster, Record& record, bool first_apply) {
  if (first_apply) {
    // A namespace of that name that is not this preview's (a team's own, another prevue's) is never taken over.
    Command existing = kubectl(cluster, {"get", "namespace", record.namespace_name, "--ignore-not-found", "--output", "json"}, Millis(30'000));
    if (!existing.ok()) return make_error(ErrorCode::kProvider, "cannot reach the cluster: " + existing.why());
    json ns = json::parse(existing.out.empty() ? "{}" : existing.out, nullptr, false);
    if (ns.is_object() && ns.contains("metadata")) {
      const json labels = ns["metadata"].value("labels", json::object());
      if (labels.value(kEnvironmentLabel, "") != request.environment.slug ||
          labels.value(kInstanceLabel, "") != providers::instance_of(request))
        return make_error(ErrorCode::kConflict, "namespace " + record.namespace_name + " already exists and is not this preview's");
    }
  }
  if (record.user.empty()) {
    // Who prevue is does not change between environments: asked once per cluster settings.
    const fs::path known = fs::path(request.records_root) / "whoami";
    if (auto text = read_file(known); text.ok() && !text->empty()) {
      record.user = *text;
    } else if (auto who = kubectl_json(cluster, {"auth", "whoami"}, Millis(30'000)); who.ok()) {
      record.user = (*who)["status"]["userInfo"].value("username", "");
      if (!record.user.empty()) (void)write_file_atomic(known, record.user, Durability::kAtomicOnly);
    }
  }
  const ProviderEnvironment& env = request.environment;
  YAML::Node ns(YAML::NodeType::Map);
  ns["apiVersion"] = "v1";
  ns["kind"] = "Namespace";
  ns["metadata"]["name"] = record.namespace_name;
  YAML::Node labels = ns["metadata"]["labels"];
  labels[kManagedBy] = "prevue";
  labels[kEnvironmentLabel] = env.slug;
  labels[kInstanceLabel] = providers::instance_of(request);
  labels["dev.prevue.pr"] = std::to_string(env.pr);
  labels["dev.prevue.pr"].SetTag("!");
  YAML::Node annotations = ns["metadata"]["annotations"];
  annotations["dev.prevue.commit"] = env.commit;
  if (!env.repository.empty()) annotations["dev.prevue.repository"] = env.repository;
  if (env.lease_deadline_ms > 0) {
    std::time_t seconds = env.lease_deadline_ms / 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    annotations["janitor/expires"] = std::string(text);
  }
  std::string yaml = "---\n" + to_yaml(ns) + "\n";
  if (!record.user.empty()) {
    YAML::Node binding(YAML::NodeType::Map);
    binding["apiVersion"] = "rbac.authorization.k8s.io/v1";
    binding["kind"] = "RoleBinding";
    binding["metadata"]["name"] = "prevue";
    binding["metadata"]["namespace"] = record.namespace_name;
    binding["metadata"]["labels"][kManagedBy] = "prevue";
    binding["roleRef"]["apiGroup"] = "rbac.authorization.k8s.io";
    binding["roleRef"]["kind"] = "ClusterRole";
    binding["roleRef"]["name"] = "admin";
    YAML::Node subject(YAML::NodeType::Map);
    subject["apiGroup"] = "rbac.authorization.k8s.io";
    subject["kind"] = "User";
    subject["name"] = record.user;
    binding["subjects"].push_back(subject);
    yaml += "---\n" + to_yaml(binding) + "\n";
  }
  Command applied = kubectl(cluster, {"apply", "--server-side", "--field-manager", kFieldManager, "--force-conflicts", "--filename", "-"},
                            Millis(60'000), yaml);
  if (!applied.ok()) return make_error(ErrorCode::kProvider, "cannot make namespace " + record.namespace_name + ": " + applied.why());
  return {};
}

// ---- waiting ------------------------------------------------------------------

// The last events of one object (or of the namespace's warnings), oldest first.
std::string events_of(const Cluster& cluster, const std::string& ns, const std::string& selector) {
  auto events = kubectl_json(cluster, {"get", "events", "--namespace", ns, "--field-selector", selector}, Millis(30'000));
  if (!events.ok()) return "";
  std::vector<std::pair<std::string, std::string>> lines;
  for (const auto& e : (*events).value("items", json::array())) {
    std::string when = e.value("lastTimestamp", json()).is_string() ? e["lastTimestamp"].get<std::string>() : e.value("eventTime", json()).dump();
    lines.push_back({when, e.value("involvedObject", json::object()).value("name", "") + ": " + e.value("reason", "") + ": " +
                               e.value("message", "")});
  }
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (size_t i = lines.size() > 8 ? lines.size() - 8 : 0; i < lines.size(); ++i) text += "  " + lines[i].second + "\n";
  return text;
}

std::string explain(const Cluster& cluster, const std::string& ns, const PodProblem& problem) {
  std::string text = "pod " + problem.pod + ", container " + problem.container + ": " + problem.reason;
  if (!problem.message.empty()) text += " (" + problem.message + ")";
  std::string events = events_of(cluster, ns, "involvedObject.kind=Pod,involvedObject.name=" + problem.pod);
  if (!events.empty()) text += "\nevents:\n" + events;
  if (problem.crashed) {
    // The run that crashed: the current one while it waits to restart, else the previous.
    std::string log;
    for (bool previous : {false, true}) {
      std::vector<std::string> args{"logs", "--namespace", ns, problem.pod, "--container", problem.container, "--tail", "30"};
      if (previous) args.push_back("--previous");
      Command logs = kubectl(cluster, args, Millis(30'000));
      if (logs.ok() && !logs.out.empty() && logs.out.rfind("unable to retrieve container logs", 0) != 0) {
        log = logs.out;
        break;
      }
    }
    if (!log.empty()) text += "its log ended:\n" + tail_lines(log, 30);
  }
  return text;
}

// Where prevue's proxy reaches a routed service: its Service's cluster IP
// and port (routable from prevue's host when it runs on a node or in the
// cluster's network), or a node's address and the NodePort.
Result<std::string> endpoint_of(const Cluster& cluster, const Settings& settings, const std::string& ns, const std::string& service) {
  const int port = settings.ports.at(service);
  PREVUE_ASSIGN_OR_RETURN(json svc, kubectl_json(cluster, {"get", "service", service, "--namespace", ns}, Millis(30'000)));
  const json spec = svc.value("spec", json::object());
  for (const auto& p : spec.value("ports", json::array())) {
    if (p.value("port", 0) != port) continue;
    if (!settings.node_port) {
      std::string ip = spec.value("clusterIP", "");
      if (ip.empty() || ip == "None")
        return make_error(ErrorCode::kInvalidArgument, "Service " + service + " has no cluster IP (a headless Service cannot be routed to)");
      return ip + ":" + std::to_string(port);
    }
    if (!p.contains("nodePort"))
      return make_error(ErrorCode::kInvalidArgument, "Service " + service + " is not of type NodePort, which \"routing\": \"node-port\" needs");
    std::string address = cluster.node_address;
    if (address.empty()) {
      PREVUE_ASSIGN_OR_RETURN(json nodes, kubectl_json(cluster, {"get", "nodes"}, Millis(30'000)));
      for (const auto& node : nodes.value("items", json::array()))
        for (const auto& a : node.value("status", json::object()).value("addresses", json::array()))
          if (address.empty() && a.value("type", "") == "InternalIP") address = a.value("address", "");
      if (address.empty()) return make_error(ErrorCode::kProvider, "no node has an InternalIP to reach NodePorts at; set providers.kubernetes.node_address");
    }
    return address + ":" + std::to_string(p["nodePort"].get<int>());
  }
  return make_error(ErrorCode::kInvalidArgument, "Service " + service + " has no port " + std::to_string(port));
}

// Waits until every workload has rolled out and every routed service
// answers its health path; the first pod that cannot run fails the call
// at once with its events and log.
Status wait_ready(const ProviderRequest& request, const Cluster& cluster, const Settings& settings, const Rendered& rendered,
                  Record& record) {
  std::int64_t timeout_ms = request.services.empty() ? 300'000 : 0;
  for (const auto& s : request.services) timeout_ms = std::max(timeout_ms, s.ready_timeout_ms);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string& ns = record.namespace_name;
  std::string last_problem;
  for (;;) {
    auto list = kubectl_json(cluster, {"get", kWatchedKinds, "--namespace", ns}, Millis(30'000));
    if (list.ok()) {
      Rollout rollout = evaluate_rollout(*list, rendered.workloads);
      if (!rollout.problems.empty()) return make_error(ErrorCode::kProvider, explain(cluster, ns, rollout.problems.front()));
      if (!rollout.failure.empty()) return make_error(ErrorCode::kProvider, rollout.failure);
      last_problem = rollout.waiting.empty() ? "" : rollout.waiting.front();
      if (rollout.done()) {
        bool healthy = true;
        for (const auto& s : request.services) {
          std::string& known = record.endpoints[s.name];
          if (known.empty()) {
            PREVUE_ASSIGN_OR_RETURN(known, endpoint_of(cluster, settings, ns, s.name));
          }
          auto endpoint = Endpoint::parse(known);
          int status = endpoint ? http_status(*endpoint, s.health_path, 2000) : 0;
          if (!healthy_status(status)) {
            healthy = false;
            last_problem = s.name + " at " + known + " answers " + (status ? std::to_string(status) : std::string("nothing")) + " on " + s.health_path;
            break;
          }
        }
        if (healthy) return {};
      }
    } else {
      last_problem = list.error().message;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::string events = events_of(cluster, ns, "type=Warning");
      return make_error(ErrorCode::kProvider, "not ready within " + std::to_string(timeout_ms / 1000) + " s: " + last_problem +
                                                  (events.empty() ? "" : "\nwarnings in " + ns + ":\n" + events));
    }
    // Each pass is one kubectl call (~60 ms); a short pause keeps a ready preview from waiting long for it.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// ---- verbs --------------------------------------------------------------------

struct Call {
  Settings settings;
  Cluster cluster;
};

Result<Call> read_call(const ProviderRequest& request) {
  Call call;
  std::vector<SettingsProblem> problems;
  call.settings = read_settings(request.settings, problems);
  if (!problems.empty()) return make_error(ErrorCode::kInvalidArgument, problems.front().path + " " + problems.front().message);
  PREVUE_ASSIGN_OR_RETURN(call.cluster, cluster_of(request));
  if (!is_valid_dns_label(request.environment.slug)) return make_error(ErrorCode::kInvalidArgument, "no valid environment slug in the request");
  return call;
}

int apply(const ProviderRequest& request, ProviderResponse& response) {
  auto call = read_call(request);
  if (!call.ok()) {
    fail(response, call.error().message);
    return kProviderExitFailed;
  }
  const auto& [settings, cluster] = *call;
  const fs::path records = request.environment.records_dir;
  Record record = load_record(records);
  const bool first_apply = record.namespace_name.empty();
  const std::string ns = namespace_of(cluster, request.environment.slug);
  std::string log;

  // Images first: once per build context, whichever environment asks.
  std::vector<providers::ImageBuild> builds;
  for (const auto& [name, source] : settings.images)
    builds.push_back(providers::plan_image(dns_words(name.substr(name.rfind('/') + 1), 60), fs::path(request.environment.dir) / source.context,
                                           source.dockerfile, source.args));
  Status built = providers::build_all(builds, log);
  std::map<std::string, std::string> images;  // name in the manifests -> what the cluster runs
  size_t i = 0;
  for (const auto& [name, source] : settings.images) {
    if (!built.ok()) break;
    providers::ImageBuild& image = builds[i++];
    auto available = make_available(cluster, image.tag, log);
    if (!available.ok() && !providers::run({"docker", "image", "inspect", image.tag}, Millis(30'000)).ok()) {
      // Removed since it was found (another prevue's teardown on the same engine): built again.
      image = providers::plan_image(image.service, fs::path(request.environment.dir) / source.context, source.dockerfile, source.args);
      built = providers::build_all({image}, log);
      if (built.ok()) available = make_available(cluster, image.tag, log);
    }
    if (!available.ok()) {
      built = available.error();
      break;
    }
    images[name] = *available;
    if (std::find(record.images.begin(), record.images.end(), *available) == record.images.end()) record.images.push_back(*available);
  }
  std::cerr << log;
  if (!built.ok()) {
    fail(response, built.error().message);
    return kProviderExitFailed;
  }
  auto rendered = render(request, cluster, settings, images, ns, record);
  if (!rendered.ok()) {
    fail(response, rendered.error().message);
    return kProviderExitFailed;
  }
  // The images recorded first: a teardown after a crash here still removes
  // them. The namespace once it is known to be this preview's (a teardown
  // finds it by its labels anyway).
  (void)save_record(records, record);
  record.namespace_name = ns;
  if (Status made = ensure_namespace(request, cluster, record, first_apply); !made.ok()) {
    fail(response, made.error().message);
    return kProviderExitFailed;
  }
  (void)save_record(records, record);
  for (const auto& job : rendered->recreated_jobs)
    (void)kubectl(cluster, {"delete", "job", job, "--namespace", record.namespace_name, "--ignore-not-found", "--wait=true"}, Millis(120'000));
  const fs::path file = records / kRenderedFile;
  if (Status written = write_file_atomic(file, rendered->yaml, Durability::kAtomicOnly); !written.ok()) {
    fail(response, written.error().message);
    return kProviderExitFailed;
  }
  // Server-side apply under prevue's field manager; what an earlier commit
  // applied and this one does not declare is pruned, by the ApplySet.
  Command applied = kubectl(cluster,
                            {"apply", "--server-side", "--field-manager", kFieldManager, "--force-conflicts", "--namespace",
                             record.namespace_name, "--prune", "--applyset", kApplySet, "--filename", file.string()},
                            Millis(300'000), {}, {{"KUBECTL_APPLYSET", "true"}});
  std::cerr << applied.out;
  if (!applied.ok()) {
    fail(response, "the API server refused the manifests: " + applied.why());
    return kProviderExitFailed;
  }
  // Applied: what the cluster now holds (workloads the commit no longer declares were pruned).
  record.applied = rendered->applied;
  record.replicas = rendered->replicas;
  Status ready = wait_ready(request, cluster, settings, *rendered, record);
  (void)save_record(records, record);
  if (!ready.ok()) {
    fail(response, ready.error().message);
    return kProviderExitFailed;
  }
  for (const auto& s : request.services) {
    ServiceStatus status{s.name, {}, 0, true, false};
    if (auto endpoint = Endpoint::parse(record.endpoints[s.name])) status.endpoint = *endpoint;
    for (const auto& key : rendered->changed) status.restarted = status.restarted || key.substr(key.find('/') + 1) == s.name;
    response.services.push_back(std::move(status));
  }
  response.ok = true;
  return kProviderExitOk;
}

// Images of this environment that no other environment's record names.
void remove_images(const ProviderRequest& request, const Cluster& cluster, const Record& record, ProviderResponse& response) {
  auto from_the_node = [&](const std::string& image) {
    if (!cluster.containerd.empty())
      (void)providers::run({"ctr", "--address", cluster.containerd, "--namespace", "k8s.io", "images", "remove", "docker.io/" + image});
  };
  for (auto& item : providers::remove_unshared_images(request.records_root, request.environment.slug, record.images,
                                                      [](const fs::path& other) { return load_record(other).images; }, from_the_node))
    response.removed.push_back(std::move(item));
}

int destroy(const ProviderRequest& request, ProviderResponse& response, const Placed& placed) {
  const Cluster& cluster = placed.cluster;
  const std::string& ns = placed.ns;
  const fs::path records = request.environment.records_dir;
  Command present = kubectl(cluster, {"get", "namespace", ns, "--ignore-not-found", "--output", "json"}, Millis(30'000));
  if (!present.ok()) {
    fail(response, "cannot reach the cluster: " + present.why());
    return kProviderExitFailed;
  }
  json found = json::parse(present.out.empty() ? "{}" : present.out, nullptr, false);
  const json labels = found.is_object() ? found.value("metadata", json::object()).value("labels", json::object()) : json::object();
  if (found.is_object() && found.contains("metadata") &&
      (labels.value(kEnvironmentLabel, "") != request.environment.slug || labels.value(kInstanceLabel, "") != providers::instance_of(request))) {
    // Never prevue's to delete: a namespace of that name it did not make.
    response.removed.push_back({"namespace", ns, "kept: not this preview's"});
  } else if (found.is_object() && found.contains("metadata")) {
    Command listed = kubectl(cluster, {"get", kReceiptKinds, "--namespace", ns, "--output", "name"}, Millis(30'000));
    Command deleted = kubectl(cluster, {"delete", "namespace", ns, "--ignore-not-found", "--wait=false"}, Millis(60'000));
    if (!deleted.ok()) {
      fail(response, "cannot delete namespace " + ns + ": " + deleted.why());
      return kProviderExitFailed;
    }
    // Gone means gone: its finalizers have run and every object in it is deleted.
    const std::int64_t wait_ms = std::max<std::int64_t>(request.stop_grace_ms, 300'000);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    for (;;) {
      Command still = kubectl(cluster, {"get", "namespace", ns, "--ignore-not-found", "--output", "name"}, Millis(30'000));
      if (still.ok() && still.first_line().empty()) break;
      if (std::chrono::steady_clock::now() > deadline) {
        auto doc = kubectl_json(cluster, {"get", "namespace", ns}, Millis(30'000));
        std::string why;
        if (doc.ok())
          for (const auto& c : (*doc).value("status", json::object()).value("conditions", json::array()))
            if (c.value("status", "") == "True") why += "\n  " + c.value("type", "") + ": " + c.value("message", "");
        Command left = kubectl(cluster, {"get", kReceiptKinds, "--namespace", ns, "--output", "name"}, Millis(30'000));
        fail(response, "namespace " + ns + " is still there after " + std::to_string(wait_ms / 1000) + " s; its conditions:" + (why.empty() ? " none" : why) + "\nleft in it:\n" + left.out);
        return kProviderExitFailed;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    for (const auto& name : nonempty_lines(listed.out)) response.removed.push_back({"object", name, "removed with the namespace"});
    response.removed.push_back({"namespace", ns, "removed"});
  } else {
    response.removed.push_back({"namespace", ns, "already gone"});
  }
  remove_images(request, cluster, placed.record, response);
  std::error_code ec;
  fs::remove_all(records, ec);
  response.ok = true;
  return kProviderExitOk;
}

// Every namespace this prevue instance made on the cluster, and every
// environment this provider keeps records of: what no live environment
// owns is an orphan.
int list(const ProviderRequest& request, ProviderResponse& response) {
  auto cluster = cluster_of(request);
  if (!cluster.ok()) {
    fail(response, cluster.error().message);
    return kProviderExitFailed;
  }
  std::set<std::string> slugs;
  // A prevue that never used a cluster (none in its config or records, no
  // kubeconfig of kubectl's own) has nothing there: `prevue gc` on a machine
  // without Kubernetes must not fail for it.
  const char* env_kubeconfig = std::getenv("KUBECONFIG");
  const char* home = std::getenv("HOME");
  std::error_code ec;
  const bool configured = cluster->configured || (env_kubeconfig && *env_kubeconfig) ||
                          (home && fs::exists(fs::path(home) / ".kube" / "config", ec));
  if (configured) {
    auto namespaces = kubectl_json(*cluster,
                                   {"get", "namespaces", "--selector",
                                    std::string(kManagedBy) + "=prevue," + kInstanceLabel + "=" + providers::instance_of(request)},
                                   Millis(30'000));
    if (!namespaces.ok()) {
      fail(response, "cannot list the cluster's namespaces: " + namespaces.error().message);
      return kProviderExitFailed;
    }
    for (const auto& ns : (*namespaces).value("items", json::array()))
      slugs.insert(ns.value("metadata", json::object()).value("labels", json::object()).value(kEnvironmentLabel, ""));
  }
  for (const auto& entry : fs::directory_iterator(request.records_root, ec))
    if (fs::exists(entry.path() / kRecordFile, ec)) slugs.insert(entry.path().filename().string());
  for (const auto& slug : slugs)
    if (is_valid_dns_label(slug)) response.environments.push_back({slug, (fs::path(request.records_root) / slug).string(), {}});
  response.ok = true;
  return kProviderExitOk;
}

// Each Deployment and StatefulSet the manifests declared, running when it
// has the replicas they asked for: one scaled down or deleted by hand is
// "not running", and prevue's liveness check applies the commit again.
int status(ProviderResponse& response, const Placed& placed) {
  const Record& record = placed.record;
  const std::string& ns = placed.ns;
  auto list = kubectl_json(placed.cluster, {"get", "deployments.apps,statefulsets.apps", "--namespace", ns}, Millis(30'000));
  if (!list.ok()) {
    fail(response, "cannot read the workloads of " + ns + ": " + list.error().message);
    return kProviderExitFailed;
  }
  std::map<std::string, long> ready;
  for (const auto& item : (*list).value("items", json::array()))
    ready[item.value("kind", "") + "/" + item["metadata"].value("name", "")] = item.value("status", json::object()).value("readyReplicas", 0L);
  for (const auto& [key, want] : record.replicas) {
    ServiceStatus s;
    s.name = key.substr(key.find('/') + 1);
    auto it = ready.find(key);
    s.running = it != ready.end() && it->second >= want && want > 0;
    if (auto e = record.endpoints.find(s.name); e != record.endpoints.end())
      if (auto endpoint = Endpoint::parse(e->second)) s.endpoint = *endpoint;
    response.services.push_back(std::move(s));
  }
  response.ok = true;
  return kProviderExitOk;
}

int sleep_namespace(ProviderResponse& response, const Placed& placed) {
  const std::string& ns = placed.ns;
  Command scaled = kubectl(placed.cluster, {"scale", "deployments.apps,statefulsets.apps", "--all", "--replicas", "0", "--namespace", ns}, Millis(60'000));
  if (!scaled.ok() && scaled.why().find("no objects passed to scale") == std::string::npos) {
    fail(response, "cannot scale " + ns + " to zero: " + scaled.why());
    return kProviderExitFailed;
  }
  response.ok = true;
  return kProviderExitOk;
}

// What `kubectl exec` and `logs` name for the request's one service: its
// Deployment or StatefulSet when the manifests declare one by that name,
// else the Service of that name (a pod it selects).
Result<std::string> target_of(const ProviderRequest& request, const Placed& placed) {
  if (request.services.size() != 1) return make_error(ErrorCode::kInvalidArgument, "one service is needed");
  const std::string& name = request.services.front().name;
  for (const char* kind : {"Deployment", "StatefulSet"})
    if (placed.record.replicas.count(std::string(kind) + "/" + name)) return ascii_lower(kind) + "/" + name;
  return "service/" + name;
}

int exec(const ProviderRequest& request, ProviderResponse& response, const Placed& placed) {
  auto target = target_of(request, placed);
  if (!target.ok() || request.services.front().run.empty()) {
    fail(response, target.ok() ? "no command to run" : target.error().message);
    return kProviderExitFailed;
  }
  std::vector<std::string> args{"exec", "--namespace", placed.ns, *target, "--"};
  // kubectl exec passes no environment: env(1) sets it, argv only.
  if (!request.services.front().env.empty()) {
    args.insert(args.end(), {"env", "--"});
    for (const auto& [k, v] : request.services.front().env) args.push_back(k + "=" + v);
  }
  for (const auto& arg : request.services.front().run) args.push_back(arg);
  Command ran = kubectl(placed.cluster, args, Millis(request.exec_timeout_ms));
  response.log = ran.out + ran.err;
  if (!ran.ok()) {
    fail(response, "the command failed in " + request.services.front().name + ": " + ran.why());
    return kProviderExitFailed;
  }
  response.ok = true;
  return kProviderExitOk;
}

// Copies a file into the service's pod beside the target, then renames it
// over the target, so the service sees the old file or the whole new one;
// SQLite's journal files of the old one go first.
int put(const ProviderRequest& request, ProviderResponse& response, const Placed& placed) {
  auto target = target_of(request, placed);
  const std::string& path = request.put_target;
  if (!target.ok() || path.empty() || path.front() != '/' || request.put_source.empty()) {
    fail(response, target.ok() ? "no file to put, or no absolute target" : target.error().message);
    return kProviderExitFailed;
  }
  auto content = read_file(request.put_source);
  if (!content.ok()) {
    fail(response, "cannot read " + request.put_source + ": " + content.error().message);
    return kProviderExitFailed;
  }
  const std::string incoming = path + ".prevue-incoming";
  auto in_pod = [&](std::vector<std::string> argv, std::string input = {}) {
    std::vector<std::string> args{"exec", "--namespace", placed.ns, input.empty() ? "--quiet" : "--stdin", *target, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return kubectl(placed.cluster, args, Millis(request.exec_timeout_ms), std::move(input));
  };
  Command copied = in_pod({"cp", "/dev/stdin", incoming}, *content);
  if (!copied.ok()) {
    fail(response, "cannot copy into " + request.services.front().name + " at " + path + " (its image needs cp, rm and mv): " + copied.why());
    return kProviderExitFailed;
  }
  Command cleared = in_pod({"rm", "-f", "--", path + "-wal", path + "-shm", path + "-journal"});
  Command renamed = cleared.ok() ? in_pod({"mv", "-f", "--", incoming, path}) : cleared;
  if (!renamed.ok()) {
    (void)in_pod({"rm", "-f", "--", incoming});
    fail(response, "cannot replace " + path + " in " + request.services.front().name + ": " + renamed.why());
    return kProviderExitFailed;
  }
  response.log = "put " + path + " into " + request.services.front().name + "\n";
  response.ok = true;
  return kProviderExitOk;
}

int logs(const ProviderRequest& request, ProviderResponse& response, const Placed& placed) {
  auto target = target_of(request, placed);
  if (!target.ok()) {
    fail(response, target.error().message);
    return kProviderExitFailed;
  }
  Command out = kubectl(placed.cluster, {"logs", "--namespace", placed.ns, *target, "--tail", std::to_string(request.log_lines)}, Millis(30'000));
  response.log = out.out + out.err;
  response.ok = out.ok();
  if (!out.ok()) fail(response, "kubectl logs: " + out.why());
  return response.ok ? kProviderExitOk : kProviderExitFailed;
}

}  // namespace

int handle(const ProviderRequest& request, ProviderResponse& response) {
  try {
    switch (request.verb) {
      case ProviderVerb::kDescribe:
        response.ok = true;
        response.name = "kubernetes";
        response.protocol = kProviderProtocolVersion;
        response.capabilities = {"validate", "allocate", "apply", "sleep", "destroy", "status", "list", "logs", "exec", "put"};
        response.stop_signal = SIGTERM;
        response.stop_grace_ms = 20'000;
        response.zero_downtime = true;  // a Deployment's rolling update keeps the old pods serving
        response.settings_schema = R"({"type": "object", "additionalProperties": false, "required": ["manifests"], "properties": {
          "manifests": {"type": "string"},
          "images": {"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": false,
            "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}, "args": {"type": "object"}}}]}},
          "ports": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 65535}},
          "routing": {"enum": ["cluster-ip", "node-port"]}}})";
        return kProviderExitOk;
      case ProviderVerb::kValidate: {
        Settings settings = read_settings(request.settings, response.problems);
        for (const auto& s : request.services) {
          if (!settings.ports.count(s.name))
            response.problems.push_back({"$.kubernetes.ports." + s.name, "the port of Service " + s.name + " is needed to route to it"});
          if (!s.run.empty() || !s.build.empty())
            response.problems.push_back({"$.services." + s.name, "a kubernetes service runs what its manifests say: no run or build here"});
        }
        response.ok = response.problems.empty();
        if (!response.ok) response.error_message = "invalid kubernetes settings";
        return response.ok ? kProviderExitOk : kProviderExitFailed;
      }
      case ProviderVerb::kAllocate:
        // The Services' addresses are known once applied; apply reports them.
        for (const auto& s : request.services) response.services.push_back(ServiceStatus{s.name, {}, 0, false, false});
        response.ok = true;
        return kProviderExitOk;
      case ProviderVerb::kApply: return apply(request, response);
      case ProviderVerb::kList: return list(request, response);
      case ProviderVerb::kSleep:
      case ProviderVerb::kDestroy:
      case ProviderVerb::kStatus:
      case ProviderVerb::kExec:
      case ProviderVerb::kPut:
      case ProviderVerb::kLogs: {
        auto placed = placed_of(request);
        if (!placed.ok()) {
          fail(response, placed.error().message);
          return kProviderExitFailed;
        }
        switch (request.verb) {
          case ProviderVerb::kSleep: return sleep_namespace(response, *placed);
          case ProviderVerb::kDestroy: return destroy(request, response, *placed);
          case ProviderVerb::kStatus: return status(response, *placed);
          case ProviderVerb::kExec: return exec(request, response, *placed);
          case ProviderVerb::kPut: return put(request, response, *placed);
          default: return logs(request, response, *placed);
        }
      }
      case ProviderVerb::kPrune:
      case ProviderVerb::kPlan: break;
    }
    fail(response, std::string("verb ") + to_string(request.verb) + " is not implemented by the kubernetes provider");
    return kProviderExitBadRequest;
  } catch (const std::exception& e) {
    fail(response, std::string("internal error: ") + e.what());
    return kProviderExitFailed;
  }
}

}  // namespace prevue::kubernetes
