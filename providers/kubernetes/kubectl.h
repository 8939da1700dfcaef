// The cluster as the operator configured it (prevue's config,
// "providers": {"kubernetes": {...}}; never the repository's), and kubectl
// run against it: argv only, never a shell.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "core/result.h"

namespace prevue::kubernetes {

using providers::Command;
using providers::Millis;

struct Cluster {
  std::string kubectl = "kubectl";
  std::string kubeconfig;        // empty: kubectl's own default ($KUBECONFIG, ~/.kube/config)
  std::string context;           // empty: the kubeconfig's current context
  std::string namespace_prefix;  // namespaces are <prefix><slug>
  // How built images reach the cluster's nodes: pushed to `registry`, or
  // imported into the containerd at `containerd` (a node on this machine),
  // or neither (a cluster that shares the Docker Engine's images).
  std::string registry;
  std::string containerd;
  std::string node_address;      // "node-port" routing: the address to reach NodePorts at (default: a node's InternalIP)
  bool configured = false;       // prevue's config (or the provider's records of it) named this cluster
};

Result<Cluster> read_cluster(const std::string& operator_settings);

// kubectl against the cluster; `stdin_data` is piped in.
Command kubectl(const Cluster& cluster, std::vector<std::string> args, Millis timeout = Millis(60'000), std::string stdin_data = {},
                std::map<std::string, std::string> env = {});

// kubectl ... -o json, parsed.
Result<nlohmann::json> kubectl_json(const Cluster& cluster, std::vector<std::string> args, Millis timeout = Millis(60'000));

}  // namespace prevue::kubernetes
