// A pull request as the daemon's units key it.
#pragma once

#include <cstdint>
#include <utility>

namespace prevue {

using PrKey = std::pair<std::int64_t, long>;  // (repository id, PR number)

}  // namespace prevue
