// The daemon's log: one line per event, a stable event name and key=value
// fields (docs/config.md, "Logs"), written by spdlog's asynchronous logger so
// a slow or blocked stderr never stalls the proxy, the inbox or a worker.
// `text` keeps the historic "prevue: event key=value ..." lines; `json`
// writes one object per line with ts, level, event and the fields.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prevue {

enum class LogFormat { kText, kJson };
std::optional<LogFormat> log_format_from_string(std::string_view text);

// Before the first event (else events go out synchronously, as text).
void init_logging(LogFormat format);
// Writes what is queued and ends the logging thread; called when the daemon stops.
void flush_logging();

// `fields` is "key=value key2=\"quoted value\"": values are bare tokens or
// JSON strings (json_quoted). Identical lines repeating in a loop are written
// once per 10 s with repeated=N. The level follows the name: "...failed" and
// "...error" are errors, "...recover", "...taken_over", "...supersede" warnings.
void log_event(const std::string& event, const std::string& fields = "");
std::string json_quoted(const std::string& s);

// The fields of a line as (key, value) pairs, JSON strings decoded; exposed for its tests.
std::vector<std::pair<std::string, std::string>> parse_log_fields(std::string_view fields);

}  // namespace prevue
