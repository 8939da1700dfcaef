#include "kubectl.h"

namespace prevue::kubernetes {

using json = nlohmann::json;

Result<Cluster> read_cluster(const std::string& operator_settings) {
  Cluster cluster;
  json block = json::parse(operator_settings, nullptr, false);
  if (!block.is_object()) return make_error(ErrorCode::kInvalidArgument, "providers.kubernetes in prevue's config must be an object");
  for (const auto& [key, value] : block.items()) {
    std::string* target = key == "kubectl"            ? &cluster.kubectl
                          : key == "kubeconfig"       ? &cluster.kubeconfig
                          : key == "context"          ? &cluster.context
                          : key == "namespace_prefix" ? &cluster.namespace_prefix
                          : key == "registry"         ? &cluster.registry
                          : key == "containerd"       ? &cluster.containerd
                          : key == "node_address"     ? &cluster.node_address
                                                      : nullptr;
    if (!target) return make_error(ErrorCode::kInvalidArgument, "providers.kubernetes." + key + " in prevue's config: unknown field");
    if (!value.is_string()) return make_error(ErrorCode::kInvalidArgument, "providers.kubernetes." + key + " in prevue's config must be a string");
    *target = value.get<std::string>();
  }
  if (cluster.kubectl.empty()) cluster.kubectl = "kubectl";
  for (char c : cluster.namespace_prefix)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') || cluster.namespace_prefix.size() > 20 ||
        cluster.namespace_prefix.front() == '-')
      return make_error(ErrorCode::kInvalidArgument,
                        "providers.kubernetes.namespace_prefix in prevue's config must be up to 20 of a-z, 0-9 and '-', not starting with '-'");
  while (!cluster.registry.empty() && cluster.registry.back() == '/') cluster.registry.pop_back();
  if (!cluster.registry.empty() && !cluster.containerd.empty())
    return make_error(ErrorCode::kInvalidArgument, "providers.kubernetes: set registry or containerd, not both");
  return cluster;
}

Command kubectl(const Cluster& cluster, std::vector<std::string> args, Millis timeout, std::string stdin_data,
                std::map<std::string, std::string> env) {
  std::vector<std::string> argv{cluster.kubectl};
  if (!cluster.kubeconfig.empty()) argv.insert(argv.end(), {"--kubeconfig", cluster.kubeconfig});
  if (!cluster.context.empty()) argv.insert(argv.end(), {"--context", cluster.context});
  argv.insert(argv.end(), args.begin(), args.end());
  return providers::run(argv, timeout, {}, std::move(env), std::move(stdin_data));
}

Result<json> kubectl_json(const Cluster& cluster, std::vector<std::string> args, Millis timeout) {
  args.insert(args.end(), {"--output", "json"});
  Command c = kubectl(cluster, std::move(args), timeout);
  if (!c.ok()) return make_error(ErrorCode::kProvider, c.why());
  json doc = json::parse(c.out, nullptr, false);
  if (doc.is_discarded()) return make_error(ErrorCode::kProvider, "kubectl printed JSON that does not parse");
  return doc;
}

}  // namespace prevue::kubernetes
