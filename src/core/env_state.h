// The environment state machine:
//   pending -> provisioning -> ready
//   ready -> sleeping (processes stopped, data and route kept) -> provisioning (wake)
//   any live state -> failed | destroying;  destroying -> destroyed
//   ready | failed -> provisioning (update or retry);  destroyed -> pending (re-open)
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace prevue {

enum class EnvState { kPending, kProvisioning, kReady, kSleeping, kFailed, kDestroying, kDestroyed };

const char* to_string(EnvState state);
std::optional<EnvState> env_state_from_string(std::string_view text);
bool is_allowed_transition(EnvState from, EnvState to);
// A layer of an environment as recorded: whose resources it holds.
struct EnvironmentLayer {
  std::string name;
  std::string provider;
  bool operator==(const EnvironmentLayer&) const = default;
};

// Whether resources may exist for an environment in this state.
inline bool holds_resources(EnvState state) { return state != EnvState::kDestroyed; }

}  // namespace prevue
