#include "core/env_state.h"

namespace prevue {

const char* to_string(EnvState state) {
  switch (state) {
    case EnvState::kPending: return "pending";
    case EnvState::kProvisioning: return "provisioning";
    case EnvState::kReady: return "ready";
    case EnvState::kSleeping: return "sleeping";
    case EnvState::kFailed: return "failed";
    case EnvState::kDestroying: return "destroying";
    case EnvState::kDestroyed: return "destroyed";
  }
  return "unknown";
}

std::optional<EnvState> env_state_from_string(std::string_view text) {
  for (EnvState s : {EnvState::kPending, EnvState::kProvisioning, EnvState::kReady, EnvState::kSleeping, EnvState::kFailed,
                     EnvState::kDestroying, EnvState::kDestroyed}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

bool is_allowed_transition(EnvState from, EnvState to) {
  using S = EnvState;
  switch (to) {
    case S::kPending: return from == S::kDestroyed || from == S::kPending;
    // Re-entering provisioning resumes a run a crash interrupted.
    case S::kProvisioning:
      return from == S::kPending || from == S::kProvisioning || from == S::kReady || from == S::kSleeping ||
             from == S::kFailed;
    case S::kReady: return from == S::kProvisioning;
    case S::kSleeping: return from == S::kReady || from == S::kSleeping;
    case S::kFailed: return from != S::kDestroyed;
    case S::kDestroying: return from != S::kDestroyed;
    case S::kDestroyed: return from == S::kDestroying;
  }
  return false;
}

}  // namespace prevue
