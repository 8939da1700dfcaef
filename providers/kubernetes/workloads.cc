#include "workloads.h"

#include <map>

namespace prevue::kubernetes {

using json = nlohmann::json;

namespace {

// Waiting reasons that do not go away by waiting.
const std::set<std::string> kStuck{"CrashLoopBackOff",           "ErrImagePull",         "ImagePullBackOff",
                                   "InvalidImageName",           "ErrImageNeverPull",    "CreateContainerConfigError",
                                   "CreateContainerError",       "RunContainerError",    "PreCreateHookError",
                                   "PostStartHookError"};

long number(const json& object, const char* key, long otherwise = 0) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<long>() : otherwise;
}

std::string text(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& field(const json& object, const char* key) {
  static const json empty = json::object();
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : empty;
}

const json& items(const json& object, const char* key) {
  static const json empty = json::array();
  auto it = object.find(key);
  return it != object.end() && it->is_array() ? *it : empty;
}

std::string condition(const json& status, const std::string& type, std::string* reason = nullptr, std::string* message = nullptr) {
  for (const auto& c : items(status, "conditions"))
    if (text(c, "type") == type) {
      if (reason) *reason = text(c, "reason");
      if (message) *message = text(c, "message");
      return text(c, "status");
    }
  return "";
}

std::string owner_of(const json& object, std::string* kind = nullptr) {
  for (const auto& o : items(field(object, "metadata"), "ownerReferences"))
    if (o.value("controller", false)) {
      if (kind) *kind = text(o, "kind");
      return text(o, "name");
    }
  return "";
}

// Empty when done; else what it waits for.
std::string deployment_waits(const json& d, std::string& failure) {
  const json& spec = field(d, "spec");
  const json& status = field(d, "status");
  if (number(field(d, "metadata"), "generation") > number(status, "observedGeneration")) return "not yet seen by its controller";
  std::string reason, message;
  condition(status, "Progressing", &reason, &message);
  if (reason == "ProgressDeadlineExceeded") failure = "exceeded its progress deadline: " + message;
  long replicas = number(spec, "replicas", 1), updated = number(status, "updatedReplicas");
  if (updated < replicas) return std::to_string(updated) + " of " + std::to_string(replicas) + " replicas updated";
  if (number(status, "replicas") > updated) return std::to_string(number(status, "replicas") - updated) + " old replicas still terminating";
  if (number(status, "availableReplicas") < updated)
    return std::to_string(number(status, "availableReplicas")) + " of " + std::to_string(updated) + " updated replicas available";
  return "";
}

std::string statefulset_waits(const json& s) {
  const json& spec = field(s, "spec");
  const json& status = field(s, "status");
  if (number(field(s, "metadata"), "generation") > number(status, "observedGeneration")) return "not yet seen by its controller";
  long replicas = number(spec, "replicas", 1);
  if (number(status, "readyReplicas") < replicas)
    return std::to_string(number(status, "readyReplicas")) + " of " + std::to_string(replicas) + " replicas ready";
  if (text(field(spec, "updateStrategy"), "type") != "OnDelete" && text(status, "updateRevision") != text(status, "currentRevision"))
    return "rolling to its new revision";
  return "";
}

std::string daemonset_waits(const json& d) {
  const json& status = field(d, "status");
  if (number(field(d, "metadata"), "generation") > number(status, "observedGeneration")) return "not yet seen by its controller";
  long desired = number(status, "desiredNumberScheduled");
  if (number(status, "updatedNumberScheduled") < desired || number(status, "numberAvailable") < desired)
    return std::to_string(number(status, "numberAvailable")) + " of " + std::to_string(desired) + " pods available";
  return "";
}

std::string job_waits(const json& j, std::string& failure) {
  std::string reason, message;
  if (condition(field(j, "status"), "Failed", &reason, &message) == "True") {
    failure = "failed (" + reason + "): " + message;
    return "";
  }
  if (condition(field(j, "status"), "Complete") == "True") return "";
  return std::to_string(number(field(j, "status"), "succeeded")) + " of " +
         std::to_string(number(field(j, "spec"), "completions", 1)) + " completions";
}

void pod_problems(const json& pod, std::vector<PodProblem>& out) {
  const std::string name = text(field(pod, "metadata"), "name");
  std::string owner_kind;
  owner_of(pod, &owner_kind);
  const bool job_pod = owner_kind == "Job";  // a Job retries and fails by its own rules
  for (const char* list : {"initContainerStatuses", "containerStatuses"})
    for (const auto& c : items(field(pod, "status"), list)) {
      const json& state = field(c, "state");
      const json& waiting = field(state, "waiting");
      const std::string reason = text(waiting, "reason");
      const json& last = field(field(c, "lastState"), "terminated");
      if (kStuck.count(reason) && !(job_pod && reason == "CrashLoopBackOff")) {
        out.push_back({name, text(c, "name"), reason, text(waiting, "message"), reason == "CrashLoopBackOff"});
        return;
      }
      // The first crash, before the back-off says so.
      if (!job_pod && number(c, "restartCount") > 0 && !last.empty() && number(last, "exitCode") != 0) {
        out.push_back({name, text(c, "name"), "exited " + std::to_string(number(last, "exitCode")), text(last, "reason"), true});
        return;
      }
    }
}

}  // namespace

long desired_replicas(const json& workload) { return number(field(workload, "spec"), "replicas", 1); }

Rollout evaluate_rollout(const json& list, const std::set<std::string>& workloads) {
  Rollout rollout;
  std::map<std::string, const json*> by_key;  // "Kind/name"
  std::map<std::string, std::string> revision_of_deployment;
  for (const auto& item : items(list, "items")) {
    const std::string key = text(item, "kind") + "/" + text(field(item, "metadata"), "name");
    by_key[key] = &item;
  }
  // The current ReplicaSet of each Deployment: the one at its revision.
  std::set<std::string> current_replicasets;
  for (const auto& [key, item] : by_key) {
    if (key.rfind("ReplicaSet/", 0) != 0) continue;
    std::string kind, owner = owner_of(*item, &kind);
    auto deployment = by_key.find("Deployment/" + owner);
    if (kind != "Deployment" || deployment == by_key.end()) continue;
    auto revision = [](const json& o) { return text(field(field(o, "metadata"), "annotations"), "deployment.kubernetes.io/revision"); };
    if (revision(*item) == revision(*deployment->second)) current_replicasets.insert(text(field(*item, "metadata"), "name"));
  }
  for (const auto& key : workloads) {
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      rollout.waiting.push_back(key + ": not created yet");
      continue;
    }
    std::string failure, waits;
    if (key.rfind("Deployment/", 0) == 0) waits = deployment_waits(*it->second, failure);
    else if (key.rfind("StatefulSet/", 0) == 0) waits = statefulset_waits(*it->second);
    else if (key.rfind("DaemonSet/", 0) == 0) waits = daemonset_waits(*it->second);
    else if (key.rfind("Job/", 0) == 0) waits = job_waits(*it->second, failure);
    if (!failure.empty() && rollout.failure.empty()) rollout.failure = key + " " + failure;
    if (!waits.empty()) rollout.waiting.push_back(key + ": " + waits);
  }
  for (const auto& [key, pod] : by_key) {
    if (key.rfind("Pod/", 0) != 0 || field(*pod, "metadata").contains("deletionTimestamp")) continue;
    std::string kind, owner = owner_of(*pod, &kind);
    // Pods of an earlier revision are on their way out: their troubles are not this rollout's.
    if (kind == "ReplicaSet" && !current_replicasets.count(owner)) continue;
    if (kind == "StatefulSet") {
      auto sts = by_key.find("StatefulSet/" + owner);
      if (sts != by_key.end() && text(field(field(*pod, "metadata"), "labels"), "controller-revision-hash") !=
                                     text(field(*sts->second, "status"), "updateRevision"))
        continue;
    }
    pod_problems(*pod, rollout.problems);
  }
  return rollout;
}

}  // namespace prevue::kubernetes
