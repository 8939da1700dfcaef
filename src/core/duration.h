// Human-written durations ("90s", "10m", "72h", "1h30m", "250ms").
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/result.h"

namespace prevue {

using Millis = std::chrono::milliseconds;

// The longest duration anyone writes (100 years): a deadline "now + any
// parsed duration" cannot overflow.
inline constexpr Millis kMaxDuration = Millis(100LL * 365 * 86'400'000);

// Parses a sum of <number><unit> terms (ms, s, m, h, d), at most kMaxDuration;
// never throws. parse_duration(format_duration(d)) == d for 0 <= d <= kMaxDuration.
Result<Millis> parse_duration(std::string_view text);
std::string format_duration(Millis value);

}  // namespace prevue
