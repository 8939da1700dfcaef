#include "provider/protocol.h"

#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/types.h>

#include <algorithm>

#include <cstdint>
#include <limits>
#include <stdexcept>

#include "core/duration.h"

namespace prevue {

using json = nlohmann::json;

const char* to_string(ProviderVerb verb) {
  switch (verb) {
    case ProviderVerb::kDescribe: return "describe";
    case ProviderVerb::kValidate: return "validate";
    case ProviderVerb::kAllocate: return "allocate";
    case ProviderVerb::kApply: return "apply";
    case ProviderVerb::kPrune: return "prune";
    case ProviderVerb::kSleep: return "sleep";
    case ProviderVerb::kDestroy: return "destroy";
    case ProviderVerb::kStatus: return "status";
    case ProviderVerb::kList: return "list";
    case ProviderVerb::kLogs: return "logs";
    case ProviderVerb::kExec: return "exec";
    case ProviderVerb::kPut: return "put";
    case ProviderVerb::kPlan: return "plan";
  }
  return "unknown";
}

bool ProviderResponse::can(ProviderVerb verb) const {
  return std::find(capabilities.begin(), capabilities.end(), to_string(verb)) != capabilities.end();
}

const char* stop_signal_name(int signal) { return signal == SIGINT ? "SIGINT" : "SIGTERM"; }

const ServiceStatus* ProviderResponse::service(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

namespace {

constexpr ProviderVerb kAllVerbs[] = {ProviderVerb::kDescribe, ProviderVerb::kValidate, ProviderVerb::kAllocate,
                                      ProviderVerb::kApply,    ProviderVerb::kPrune,    ProviderVerb::kSleep,
                                      ProviderVerb::kDestroy,  ProviderVerb::kStatus,   ProviderVerb::kList,
                                      ProviderVerb::kLogs,     ProviderVerb::kExec,     ProviderVerb::kPut,
                                      ProviderVerb::kPlan};

// An integer field within [low, high]; absent gives `fallback`. A float or a
// number out of range is refused (converting it would be undefined).
std::int64_t integer_or(const json& j, const char* key, std::int64_t fallback, std::int64_t low, std::int64_t high) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  bool fits = it->is_number_unsigned() ? it->get<std::uint64_t>() <= static_cast<std::uint64_t>(high)
                                       : it->is_number_integer() && it->get<std::int64_t>() >= low && it->get<std::int64_t>() <= high;
  if (!fits)
    throw std::out_of_range(std::string("'") + key + "' must be an integer between " + std::to_string(low) + " and " + std::to_string(high));
  return it->get<std::int64_t>();
}
constexpr std::int64_t kMaxMs = kMaxDuration.count();

json service_status_json(const ServiceStatus& s) {
  json j{{"name", s.name}, {"pid", s.pid}, {"running", s.running}, {"restarted", s.restarted}};
  if (!s.endpoint.empty()) j["endpoint"] = s.endpoint.text();
  return j;
}

ServiceStatus service_status_from(const json& j) {
  ServiceStatus s;
  s.name = j.at("name").get<std::string>();
  if (auto it = j.find("endpoint"); it != j.end() && !it->is_null()) {
    auto endpoint = Endpoint::parse(it->get<std::string>());
    if (!endpoint) throw std::invalid_argument("service '" + s.name + "': endpoint '" + it->get<std::string>() + "' is not host:port");
    s.endpoint = *endpoint;
  }
  s.pid = integer_or(j, "pid", 0, 0, std::numeric_limits<pid_t>::max());
  s.running = j.value("running", false);
  s.restarted = j.value("restarted", false);
  return s;
}

// The settings block travels as JSON text inside prevue; on the wire it is an object.
json settings_object(const std::string& text) {
  json j = text.empty() ? json::object() : json::parse(text);
  if (!j.is_object()) throw std::invalid_argument("'settings' must be a JSON object");
  return j;
}

}  // namespace

std::string encode_request(const ProviderRequest& r) {
  json services = json::array();
  for (const auto& s : r.services) {
    services.push_back(json{{"name", s.name}, {"workdir", s.workdir}, {"build", s.build},
                            {"build_timeout_ms", s.build_timeout_ms}, {"run", s.run}, {"env", s.env},
                            {"port_name", s.port_name}, {"health_path", s.health_path},
                            {"ready_timeout_ms", s.ready_timeout_ms}, {"revision", s.revision}});
  }
  json j{{"protocol", kProviderProtocolVersion},
         {"verb", to_string(r.verb)},
         {"state_root", r.state_root},
         {"records_root", r.records_root},
         {"environment", {{"slug", r.environment.slug}, {"dir", r.environment.dir}, {"records_dir", r.environment.records_dir},
                          {"pr", r.environment.pr}, {"commit", r.environment.commit}, {"repository", r.environment.repository},
                          {"ref", r.environment.ref}, {"url", r.environment.url}, {"lease_deadline_ms", r.environment.lease_deadline_ms}}},
         {"settings", settings_object(r.settings)},
         {"operator", settings_object(r.operator_settings)},
         {"services", services},
         {"stop_grace_ms", r.stop_grace_ms}};
  if (r.verb == ProviderVerb::kLogs) j["log_lines"] = r.log_lines;
  if (r.verb == ProviderVerb::kExec) j["exec_timeout_ms"] = r.exec_timeout_ms;
  if (r.verb == ProviderVerb::kPut) j["put"] = {{"source", r.put_source}, {"target", r.put_target}};
  return j.dump();
}

Result<ProviderRequest> decode_request(std::string_view text) {
  try {
    json j = json::parse(text.begin(), text.end());
    ProviderRequest r;
    if (!j.contains("protocol")) return make_error(ErrorCode::kInvalidArgument, "malformed provider request: no protocol version");
    auto protocol = integer_or(j, "protocol", 0, 0, std::numeric_limits<int>::max());
    if (protocol != kProviderProtocolVersion)
      return make_error(ErrorCode::kInvalidArgument, "unsupported protocol version " + std::to_string(protocol));
    std::string verb = j.at("verb").get<std::string>();
    bool known = false;
    for (auto v : kAllVerbs) {
      if (verb == to_string(v)) {
        r.verb = v;
        known = true;
      }
    }
    if (!known) return make_error(ErrorCode::kInvalidArgument, "unknown verb '" + verb + "'");
    r.state_root = j.value("state_root", "");
    r.records_root = j.value("records_root", "");
    if (j.contains("environment")) {
      const json& e = j.at("environment");
      r.environment.slug = e.value("slug", "");
      r.environment.dir = e.value("dir", "");
      r.environment.records_dir = e.value("records_dir", "");
      r.environment.pr = integer_or(e, "pr", 0, 0, std::numeric_limits<long>::max());
      r.environment.commit = e.value("commit", "");
      r.environment.repository = e.value("repository", "");
      r.environment.ref = e.value("ref", "");
      r.environment.url = e.value("url", "");
      r.environment.lease_deadline_ms = integer_or(e, "lease_deadline_ms", 0, 0, std::numeric_limits<std::int64_t>::max());
    }
    if (auto it = j.find("settings"); it != j.end()) {
      if (!it->is_object()) return make_error(ErrorCode::kInvalidArgument, "malformed provider request: 'settings' must be an object");
      r.settings = it->dump();
    }
    if (auto it = j.find("operator"); it != j.end()) {
      if (!it->is_object()) return make_error(ErrorCode::kInvalidArgument, "malformed provider request: 'operator' must be an object");
      r.operator_settings = it->dump();
    }
    r.stop_grace_ms = integer_or(j, "stop_grace_ms", 5000, 0, kMaxMs);
    r.log_lines = integer_or(j, "log_lines", 100, 1, 100'000);
    r.exec_timeout_ms = integer_or(j, "exec_timeout_ms", 300'000, 1, kMaxMs);
    if (auto put = j.find("put"); put != j.end()) {
      r.put_source = put->value("source", "");
      r.put_target = put->value("target", "");
    }
    for (const auto& s : j.value("services", json::array())) {
      ProviderService svc;
      svc.name = s.at("name").get<std::string>();
      svc.workdir = s.value("workdir", "");
      svc.build = s.value("build", std::vector<std::string>{});
      svc.build_timeout_ms = integer_or(s, "build_timeout_ms", 600'000, 0, kMaxMs);
      svc.run = s.value("run", std::vector<std::string>{});
      svc.env = s.value("env", std::map<std::string, std::string>{});
      svc.port_name = s.value("port_name", "http");
      svc.health_path = s.value("health_path", "/");
      svc.ready_timeout_ms = integer_or(s, "ready_timeout_ms", 60'000, 0, kMaxMs);
      svc.revision = s.value("revision", "");
      r.services.push_back(std::move(svc));
    }
    return r;
  } catch (const std::exception& e) {  // the JSON library's errors and integer_or's
    return make_error(ErrorCode::kParse, std::string("malformed provider request: ") + e.what());
  }
}

std::string encode_response(const ProviderResponse& r) {
  json j{{"protocol", kProviderProtocolVersion}, {"ok", r.ok}};
  if (!r.ok) j["error"] = {{"code", r.error_code}, {"message", r.error_message}};
  if (!r.name.empty()) {
    j["name"] = r.name;
    j["capabilities"] = r.capabilities;
    j["stop_signal"] = stop_signal_name(r.stop_signal);
    j["stop_grace_ms"] = r.stop_grace_ms;
    j["zero_downtime"] = r.zero_downtime;
    j["settings_schema"] = json::parse(r.settings_schema.empty() ? "{}" : r.settings_schema);
  }
  if (!r.problems.empty()) {
    json problems = json::array();
    for (const auto& p : r.problems) problems.push_back(json{{"path", p.path}, {"message", p.message}});
    j["problems"] = problems;
  }
  json services = json::array();
  for (const auto& s : r.services) services.push_back(service_status_json(s));
  j["services"] = services;
  json outputs = json::object();
  for (const auto& [name, o] : r.outputs) outputs[name] = json{{"value", o.value}, {"sensitive", o.sensitive}};
  j["outputs"] = outputs;
  if (!r.removed.empty()) {
    json removed = json::array();
    for (const auto& item : r.removed) removed.push_back(json{{"kind", item.kind}, {"name", item.name}, {"outcome", item.outcome}});
    j["removed"] = removed;
  }
  json environments = json::array();
  for (const auto& e : r.environments) {
    json svc = json::array();
    for (const auto& s : e.services) svc.push_back(service_status_json(s));
    environments.push_back(json{{"slug", e.slug}, {"dir", e.dir}, {"services", svc}});
  }
  j["environments"] = environments;
  if (!r.log.empty()) j["log"] = r.log;
  return j.dump();
}

Result<ProviderResponse> decode_response(std::string_view text, int exit_code) {
  if (exit_code != kProviderExitOk && exit_code != kProviderExitFailed && exit_code != kProviderExitBadRequest)
    return make_error(ErrorCode::kProvider, "provider crashed (exit code " + std::to_string(exit_code) + ")");
  try {
    json j = json::parse(text.begin(), text.end());
    ProviderResponse r;
    r.protocol = static_cast<int>(integer_or(j, "protocol", 0, 0, std::numeric_limits<int>::max()));
    if (r.protocol != kProviderProtocolVersion)
      return make_error(ErrorCode::kProvider, "provider speaks protocol " + std::to_string(r.protocol) + ", prevue speaks " +
                                                  std::to_string(kProviderProtocolVersion));
    r.ok = j.at("ok").get<bool>();
    if (r.ok != (exit_code == kProviderExitOk))
      return make_error(ErrorCode::kProvider, "provider response says ok=" + std::string(r.ok ? "true" : "false") +
                                                  " but it exited with " + std::to_string(exit_code));
    if (!r.ok) {
      const json& e = j.at("error");
      r.error_code = e.value("code", "failed");
      r.error_message = e.value("message", "");
    }
    r.name = j.value("name", "");
    r.capabilities = j.value("capabilities", std::vector<std::string>{});
    std::string stop_signal = j.value("stop_signal", "SIGTERM");
    if (stop_signal != "SIGTERM" && stop_signal != "SIGINT")
      throw std::invalid_argument("stop_signal must be SIGTERM or SIGINT, not '" + stop_signal + "'");
    r.stop_signal = stop_signal == "SIGINT" ? SIGINT : SIGTERM;
    r.stop_grace_ms = integer_or(j, "stop_grace_ms", r.stop_grace_ms, 0, 3'600'000);
    r.zero_downtime = j.value("zero_downtime", false);
    if (auto it = j.find("settings_schema"); it != j.end()) r.settings_schema = it->dump();
    for (const auto& p : j.value("problems", json::array()))
      r.problems.push_back(SettingsProblem{p.value("path", "$"), p.value("message", "")});
    for (const auto& s : j.value("services", json::array())) r.services.push_back(service_status_from(s));
    const json outputs = j.value("outputs", json::object());  // named: items() would outlive a temporary
    for (const auto& [name, o] : outputs.items()) {
      if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
        throw std::invalid_argument("output name '" + name.substr(0, 64) + "' must be letters, digits, '_' and '-'");
      r.outputs[name] = o.is_object() ? ProviderOutput{o.at("value").get<std::string>(), o.value("sensitive", false)}
                                      : ProviderOutput{o.get<std::string>(), false};
    }
    for (const auto& item : j.value("removed", json::array()))
      r.removed.push_back(ReceiptItem{item.at("kind").get<std::string>(), item.value("name", ""), item.value("outcome", "removed")});
    for (const auto& e : j.value("environments", json::array())) {
      EnvironmentListing listing{e.at("slug").get<std::string>(), e.value("dir", ""), {}};
      for (const auto& s : e.value("services", json::array())) listing.services.push_back(service_status_from(s));
      r.environments.push_back(std::move(listing));
    }
    r.log = j.value("log", "");
    return r;
  } catch (const std::exception& e) {  // the JSON library's errors and integer_or's
    std::string shown(text.substr(0, 200));
    return make_error(ErrorCode::kProvider, std::string("malformed provider response (") + e.what() + "): '" + shown + "'");
  }
}

}  // namespace prevue
