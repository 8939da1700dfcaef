#include "daemon/logger.h"

#include <nlohmann/json.hpp>
#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <vector>

#include "daemon/log_limiter.h"

namespace prevue {

namespace {

using json = nlohmann::json;

LogFormat g_format = LogFormat::kText;
std::shared_ptr<spdlog::logger> g_logger;

spdlog::level::level_enum level_of(std::string_view event) {
  auto ends_with = [&](std::string_view tail) { return event.size() >= tail.size() && event.substr(event.size() - tail.size()) == tail; };
  if (event.find("failed") != std::string_view::npos || event.find("error") != std::string_view::npos) return spdlog::level::err;
  if (ends_with("recover") || ends_with("taken_over") || ends_with("supersede") || ends_with("expired"))
    return spdlog::level::warn;
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger> make_logger(bool async) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_pattern("%v");  // the line is whole already: the format is ours, in text and json alike
  std::shared_ptr<spdlog::logger> logger;
  if (async) {
    // A full queue drops the oldest lines rather than blocking the thread that logs.
    spdlog::init_thread_pool(8192, 1);
    logger = std::make_shared<spdlog::async_logger>("prevue", sink, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
  } else {
    logger = std::make_shared<spdlog::logger>("prevue", sink);
  }
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);  // every line reaches stderr as it is written, not at exit
  return logger;
}

}  // namespace

std::optional<LogFormat> log_format_from_string(std::string_view text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return std::nullopt;
}

void init_logging(LogFormat format) {
  g_format = format;
  g_logger = make_logger(/*async=*/true);
}

void flush_logging() {
  // The pool's thread writes everything queued before it ends; later events go out synchronously.
  g_logger = make_logger(/*async=*/false);
  spdlog::shutdown();
}

std::string json_quoted(const std::string& s) { return json(s).dump(); }

std::vector<std::pair<std::string, std::string>> parse_log_fields(std::string_view fields) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i < fields.size()) {
    while (i < fields.size() && fields[i] == ' ') ++i;
    size_t eq = fields.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key(fields.substr(i, eq - i));
    i = eq + 1;
    std::string value;
    if (i < fields.size() && fields[i] == '"') {
      size_t end = i + 1;
      while (end < fields.size() && fields[end] != '"') end += fields[end] == '\\' ? 2 : 1;
      std::string_view quoted = fields.substr(i, std::min(end + 1, fields.size()) - i);
      try {
        value = json::parse(quoted).get<std::string>();
      } catch (const json::exception&) {
        value = std::string(quoted);
      }
      i = end + 1;
    } else {
      size_t end = fields.find(' ', i);
      if (end == std::string_view::npos) end = fields.size();
      value = std::string(fields.substr(i, end - i));
      i = end;
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

void log_event(const std::string& event, const std::string& fields) {
  static LogLimiter limiter;
  std::string line = event + (fields.empty() ? "" : " ") + fields;
  std::uint64_t suppressed = 0;
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (!limiter.admit(line, now_ms, &suppressed)) return;
  static const std::shared_ptr<spdlog::logger> before_init = make_logger(/*async=*/false);  // thread-safe static
  spdlog::logger& logger = g_logger ? *g_logger : *before_init;
  auto level = level_of(event);
  if (g_format == LogFormat::kText) {
    if (suppressed) line += " repeated=" + std::to_string(suppressed);
    logger.log(level, "prevue: {}", line);
    return;
  }
  auto now = std::chrono::system_clock::now();
  json j{{"ts", std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()},
         {"level", spdlog::level::to_string_view(level).data()},
         {"event", event}};
  for (auto& [key, value] : parse_log_fields(fields)) j[key] = std::move(value);
  if (suppressed) j["repeated"] = suppressed;
  logger.log(level, "{}", j.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace prevue
