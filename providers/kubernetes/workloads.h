// How a namespace's rollout stands, read from one `kubectl get
// deployments,replicasets,statefulsets,daemonsets,jobs,pods -o json`: the
// same rules as `kubectl rollout status`, plus the first pod of the new
// revision that cannot run (crash loop, image it cannot pull, bad config),
// which fails the rollout at once instead of at its deadline.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prevue::kubernetes {

struct PodProblem {
  std::string pod, container;
  std::string reason;       // "CrashLoopBackOff", "ErrImagePull", "exited 3", ...
  std::string message;      // the runtime's words, when it gave any
  bool crashed = false;     // its previous run's log says why
};

struct Rollout {
  std::vector<std::string> waiting;  // "Deployment/web: 0 of 1 updated replicas available"
  std::string failure;               // a workload that failed as a whole (a Job, a deadline)
  std::vector<PodProblem> problems;  // pods of the new revisions that cannot run
  bool done() const { return waiting.empty() && failure.empty() && problems.empty(); }
};

// `workloads` are the "Kind/name" the manifests declare (Deployment,
// StatefulSet, DaemonSet, Job): one not in `list` yet is waited for.
Rollout evaluate_rollout(const nlohmann::json& list, const std::set<std::string>& workloads);

// Desired replicas of a Deployment or StatefulSet document (1 when unsaid).
long desired_replicas(const nlohmann::json& workload);

}  // namespace prevue::kubernetes
