#include "engine/reconcile.h"

#include <algorithm>

namespace prevue {

const char* to_string(ReconcileAction action) {
  switch (action) {
    case ReconcileAction::kNone: return "none";
    case ReconcileAction::kUp: return "up";
    case ReconcileAction::kDown: return "down";
    case ReconcileAction::kWait: return "wait";
  }
  return "none";
}

ReconcileDecision decide(const PullRequestRecord& pr, const std::optional<EnvironmentRecord>& env,
                         const std::optional<LeaseRecord>& lease, std::int64_t now_ms) {
  using A = ReconcileAction;
  bool exists = env.has_value() && env->state != EnvState::kDestroyed;
  if (pr.status != PrStatus::kOpen) {
    if (!exists) return {A::kNone, "", "", "closed, nothing left"};
    if (lease && lease->in_grace(now_ms)) return {A::kWait, "", "", "closed, inside its grace period"};
    return {A::kDown, "", "", std::string(to_string(pr.status)) + ": tear down"};
  }
  if (pr.head_sha.empty()) return {A::kNone, "", "", "open, no head commit known yet"};
  if (pr.expired_sha == pr.head_sha) {
    if (exists && env->state == EnvState::kDestroying) return {A::kDown, "", "", "finish the teardown its lease started"};
    return {A::kNone, "", "", "lease ran out at this commit; waiting for a new push"};
  }
  ReconcileDecision up{A::kUp, pr.head_sha, pr.head_ref, ""};
  if (!exists) {
    up.reason = "open, no environment";
    return up;
  }
  switch (env->state) {
    case EnvState::kPending:
    case EnvState::kProvisioning:
      up.reason = "resume an interrupted run";
      return up;
    case EnvState::kReady:
      if (env->deployed_sha == pr.head_sha) return {A::kNone, "", "", "ready at the head commit"};
      up.reason = "update to the new head";
      return up;
    case EnvState::kSleeping:
      if (env->deployed_sha == pr.head_sha) return {A::kNone, "", "", "asleep at the head commit"};
      up.reason = "a push wakes and updates it";
      return up;
    case EnvState::kFailed:
      // A failure is final for its commit: retrying it in a loop helps no one.
      if (env->commit_sha == pr.head_sha) return {A::kNone, "", "", "failed at the head commit; waiting for a new push"};
      up.reason = "retry at the new head";
      return up;
    case EnvState::kDestroying:
      return {A::kDown, "", "", "finish an interrupted teardown"};
    case EnvState::kDestroyed:
      break;
  }
  return up;
}

bool is_trusted(const PullRequestRecord& pr, const std::vector<std::string>& trusted_authors,
                const std::vector<std::string>& trusted_labels) {
  if (!pr.fork) return true;
  auto listed = [](const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
  };
  if (listed(trusted_authors, pr.author)) return true;
  return std::any_of(pr.labels.begin(), pr.labels.end(), [&](const std::string& label) { return listed(trusted_labels, label); });
}

}  // namespace prevue
