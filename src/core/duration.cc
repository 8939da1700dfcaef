#include "core/duration.h"

#include <cctype>
#include <cstdint>
#include <limits>

namespace prevue {

Result<Millis> parse_duration(std::string_view text) {
  auto fail = [&] {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid duration '" + std::string(text) +
                          "' (expected e.g. 250ms, 30s, 10m, 72h, 7d or 1h30m, at most " + format_duration(kMaxDuration) + ")");
  };
  if (text.empty()) return fail();
  const std::int64_t max = kMaxDuration.count();
  std::int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return fail();
    std::int64_t number = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      number = number * 10 + (text[i] - '0');
      if (number > max) return fail();  // checked per digit: never near the int64 limit
      ++i;
    }
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    std::int64_t scale = 0;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    else if (unit == "d") scale = 86'400'000;
    else return fail();
    if (number > (max - total) / scale) return fail();
    total += number * scale;
  }
  return Millis(total);
}

std::string format_duration(Millis value) {
  std::int64_t ms = value.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    if (ms == std::numeric_limits<std::int64_t>::min()) return out + std::to_string(ms).substr(1) + "ms";  // -ms would overflow
    ms = -ms;
  }
  struct Unit {
    std::int64_t scale;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& unit : kUnits) {
    if (ms >= unit.scale) {
      out += std::to_string(ms / unit.scale) + unit.name;
      ms %= unit.scale;
    }
  }
  return out;
}

}  // namespace prevue
