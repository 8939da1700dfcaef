// Human-written durations ("90s", "10m", "72h", "1h30m", "250ms").
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/result.h"

namespace prevue {

using Millis = std::chrono::milliseconds;

Result<Millis> parse_duration(std::string_view text);
std::string format_duration(Millis value);

}  // namespace prevue
