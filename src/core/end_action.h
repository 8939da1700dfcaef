// What the end of a lease does to its environment: one type for the
// manifest, the store and the daemon.
#pragma once

#include <optional>
#include <string_view>

namespace prevue {

enum class EndAction { kDestroy, kSleep };

inline const char* to_string(EndAction action) { return action == EndAction::kSleep ? "sleep" : "destroy"; }

inline std::optional<EndAction> end_action_from_string(std::string_view text) {
  if (text == "destroy") return EndAction::kDestroy;
  if (text == "sleep") return EndAction::kSleep;
  return std::nullopt;
}

}  // namespace prevue
