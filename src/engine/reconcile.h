// The reconciler's decision, as a pure function of the desired state (the
// pull request), what exists (the environment and its lease) and the time.
// Level-triggered: running it again on the same inputs decides the same.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/store.h"

namespace prevue {

enum class ReconcileAction {
  kNone,   // converged, or nothing to do until something changes
  kUp,     // create, update, resume or wake the environment at `sha`
  kDown,   // tear it down
  kWait,   // closed, inside its grace period: the lease scheduler will act
};
const char* to_string(ReconcileAction action);

struct ReconcileDecision {
  ReconcileAction action = ReconcileAction::kNone;
  std::string sha;
  std::string ref;
  std::string reason;
};

// A fork's pull request is untrusted unless a maintainer vouched for it: its
// author is listed, or it carries one of the trusted labels (docs/security.md).
bool is_trusted(const PullRequestRecord& pr, const std::vector<std::string>& trusted_authors,
                const std::vector<std::string>& trusted_labels);

ReconcileDecision decide(const PullRequestRecord& pr, const std::optional<EnvironmentRecord>& env,
                         const std::optional<LeaseRecord>& lease, std::int64_t now_ms);

}  // namespace prevue
