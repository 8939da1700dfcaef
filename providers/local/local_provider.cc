#include "local_provider.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "core/files.h"
#include "http_probe.h"
#include "core/slug.h"

extern char** environ;

namespace prevue::local {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStateFile = "local.json";  // in the environment's records directory

void log(const std::string& line) { std::cerr << "local: " << line << std::endl; }

// ---- process identity -------------------------------------------------------

struct ProcStat {
  char state = '?';
  long pgid = 0;
  unsigned long long start_time = 0;
};

// /proc/<pid>/stat; fields after the parenthesised command name.
bool read_proc_stat(long pid, ProcStat& out) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return false;
  auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (fields >> field) f.push_back(field);
  // f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
  if (f.size() < 20) return false;
  out.state = f[0][0];
  out.pgid = std::stol(f[2]);
  out.start_time = std::stoull(f[19]);
  return true;
}

// Alive, not a zombie, and the same process we started (pids get reused).
bool is_alive(long pid, unsigned long long start_time) {
  if (pid <= 0) return false;
  ProcStat st;
  if (!read_proc_stat(pid, st)) return false;
  if (st.state == 'Z' || st.state == 'X') return false;
  return start_time == 0 || st.start_time == start_time;
}

void reap_children() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// Live (non-zombie) members of process group `pgid`.
std::vector<long> group_members(long pgid) {
  std::vector<long> members;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcStat st;
    long pid = std::stol(name);
    if (read_proc_stat(pid, st) && st.pgid == pgid && st.state != 'Z' && st.state != 'X') members.push_back(pid);
  }
  return members;
}

bool wait_group_gone(long pgid, std::chrono::milliseconds budget) {
  auto deadline = Clock::now() + budget;
  while (true) {
    reap_children();
    if (group_members(pgid).empty()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The stop signal (SIGTERM, or SIGINT where the manifest asks) to the whole
// group, then KILL after the grace period.
// Returns what happened, for the teardown's receipt.
std::string stop_group(const std::string& service, long pid, unsigned long long start_time, std::int64_t grace_ms, int stop_signal) {
  if (pid <= 0) return "not running";
  // Only signal a group whose leader is still the process we started, or
  // whose leader is gone but members remain (pgid cannot be reused then).
  if (!is_alive(pid, start_time) && group_members(pid).empty()) return "already gone";
  ::kill(-static_cast<pid_t>(pid), stop_signal);
  if (wait_group_gone(pid, std::chrono::milliseconds(grace_ms))) {
    log("stopped service=" + service + " pid=" + std::to_string(pid));
    return "stopped";
  }
  ::kill(-static_cast<pid_t>(pid), SIGKILL);
  wait_group_gone(pid, std::chrono::milliseconds(2000));
  log("killed service=" + service + " pid=" + std::to_string(pid) + " (did not stop within grace period)");
  return "killed after its grace";
}

// ---- state file ---------------------------------------------------------------

// A version an update replaced: it serves until prune, after the routes moved.
struct Retiring {
  long pid = 0;
  unsigned long long start_time = 0;
};

struct ServiceRecord {
  int port = 0;
  long pid = 0;
  unsigned long long start_time = 0;
  std::string spec_hash;
  std::string revision;            // of the running version
  int next_port = 0;               // reserved by allocate for the version that replaces it
  std::vector<Retiring> retiring;  // replaced versions not stopped yet
};

struct EnvRecord {
  std::string slug;
  std::map<std::string, ServiceRecord> services;
};

Result<EnvRecord> load(const fs::path& dir) {
  EnvRecord rec;
  auto text = prevue::read_file(dir / kStateFile);
  if (!text.ok()) return rec;  // nothing recorded yet
  try {
    json j = json::parse(*text);
    rec.slug = j.value("slug", "");
    const json services = j.value("services", json::object());
    for (const auto& [name, s] : services.items()) {
      ServiceRecord& r = rec.services[name];
      r = ServiceRecord{s.value("port", 0), s.value("pid", 0L), s.value("start_time", 0ULL), s.value("spec_hash", ""),
                        s.value("revision", ""), s.value("next_port", 0), {}};
      for (const auto& old : s.value("retiring", json::array()))
        r.retiring.push_back(Retiring{old.value("pid", 0L), old.value("start_time", 0ULL)});
    }
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kParse, (dir / kStateFile).string() + " is corrupt: " + e.what());
  }
  return rec;
}

Status save(const fs::path& dir, const EnvRecord& rec) {
  json services = json::object();
  for (const auto& [name, s] : rec.services) {
    json retiring = json::array();
    for (const auto& old : s.retiring) retiring.push_back({{"pid", old.pid}, {"start_time", old.start_time}});
    services[name] = {{"port", s.port},         {"pid", s.pid},
                      {"start_time", s.start_time}, {"spec_hash", s.spec_hash},
                      {"revision", s.revision}, {"next_port", s.next_port},
                      {"retiring", retiring}};
  }
  return write_file_atomic(dir / kStateFile, json{{"slug", rec.slug}, {"services", services}}.dump(2));
}

// ---- ports and health ---------------------------------------------------------

int free_port(const std::set<int>& avoid) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port = ntohs(addr.sin_port);
    ::close(fd);
    if (port != 0 && !avoid.count(port)) return port;
  }
  return 0;
}

// Ports recorded by every environment under the records root, so two
// environments are never handed the same port.
std::set<int> ports_in_use(const fs::path& records_root) {
  std::set<int> ports;
  std::error_code ec;
  if (records_root.empty()) return ports;
  for (const auto& entry : fs::directory_iterator(records_root, ec)) {
    auto rec = load(entry.path());
    if (!rec.ok()) continue;
    for (const auto& [name, s] : rec->services) {
      ports.insert(s.port);
      if (s.next_port) ports.insert(s.next_port);
    }
  }
  return ports;
}

// ---- spawning -----------------------------------------------------------------

std::vector<std::string> merged_environment(const ProviderService& svc, int port) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string_view::npos) env[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  for (const auto& [k, v] : svc.env) env[k] = v;
  env["PORT"] = std::to_string(port);
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct Spawned {
  pid_t pid = -1;
  std::string error;
};

// The stop signals held back while a service is started and recorded: a run
// stopped in between (a newer push) used to leave a process no record
// named, which no teardown could find. Delivered when this goes.
class StopSignalsHeld {
 public:
  StopSignalsHeld() {
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    ::pthread_sigmask(SIG_BLOCK, &stops, &before_);
  }
  ~StopSignalsHeld() { ::pthread_sigmask(SIG_SETMASK, &before_, nullptr); }
  StopSignalsHeld(const StopSignalsHeld&) = delete;
  StopSignalsHeld& operator=(const StopSignalsHeld&) = delete;

 private:
  sigset_t before_;
};

// argv only, never a shell. `detached` gives the child a session of its own
// (so it outlives us); otherwise a process group of its own (so a timeout
// kills everything it started). stdout and stderr go to `output_fd`.
Spawned spawn(std::vector<std::string> argv, std::vector<std::string> env, const std::string& workdir, int output_fd,
              bool detached) {
  Spawned result;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, output_fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str());
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t none;  // a child never inherits signals held back here (StopSignalsHeld)
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (detached) {
    flags |= POSIX_SPAWN_SETSID;
  } else {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);
  auto c_argv = c_strings(argv);
  auto c_env = c_strings(env);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    result.error = "cannot start '" + argv[0] + "' in " + workdir + ": " + std::strerror(rc);
    return result;
  }
  result.pid = pid;
  return result;
}

std::string file_tail(const fs::path& path, size_t lines) {
  auto text = prevue::read_file(path);
  return text.ok() ? tail_lines(*text, lines) : std::string();
}

// Runs the build command to completion (or its timeout), output to stderr.
Status run_build(const ProviderService& svc, int port) {
  log("build service=" + svc.name);
  auto spawned = spawn(svc.build, merged_environment(svc, port), svc.workdir, STDERR_FILENO, /*detached=*/false);
  if (spawned.pid < 0) return make_error(ErrorCode::kProvider, "build of " + svc.name + ": " + spawned.error);
  auto deadline = Clock::now() + std::chrono::milliseconds(svc.build_timeout_ms);
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(spawned.pid, &status, WNOHANG);
    if (done == spawned.pid) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
      std::string how = WIFEXITED(status) ? "exited with " + std::to_string(WEXITSTATUS(status))
                                          : "died of signal " + std::to_string(WTERMSIG(status));
      return make_error(ErrorCode::kProvider, "build of " + svc.name + " failed: it " + how);
    }
    if (Clock::now() >= deadline) {
      ::kill(-spawned.pid, SIGKILL);
      ::waitpid(spawned.pid, nullptr, 0);
      return make_error(ErrorCode::kTimeout, "build of " + svc.name + " timed out after " +
                                                 std::to_string(svc.build_timeout_ms) + " ms and was killed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// What decides a restart. With a revision, prevue has said what the service
// is built from; values that change every commit (PREVUE_COMMIT) must not
// restart a service whose own files did not change. Without one, the whole
// spec counts.
std::string spec_hash(const ProviderService& svc, int port) {
  json j = svc.revision.empty()
               ? json{{"workdir", svc.workdir}, {"build", svc.build}, {"run", svc.run}, {"env", svc.env},
                      {"health", svc.health_path}, {"port", port}}
               : json{{"workdir", svc.workdir}, {"revision", svc.revision}, {"port", port}};
  return stable_hash_hex(j.dump());
}

// ---- verbs --------------------------------------------------------------------

Status check_environment(const ProviderRequest& r) {
  if (!is_valid_dns_label(r.environment.slug))
    return make_error(ErrorCode::kInvalidArgument, "environment slug '" + r.environment.slug + "' is not a DNS label");
  if (r.environment.dir.empty() || fs::path(r.environment.dir).is_relative())
    return make_error(ErrorCode::kInvalidArgument, "environment dir must be an absolute path");
  if (r.environment.records_dir.empty() || fs::path(r.environment.records_dir).is_relative())
    return make_error(ErrorCode::kInvalidArgument, "environment records_dir must be an absolute path");
  return {};
}

Endpoint loopback(int port) { return port ? Endpoint{"127.0.0.1", static_cast<unsigned short>(port)} : Endpoint{}; }

// ---- settings ("local": {...} in prevue.json) ----------------------------------

constexpr const char* kSettingsSchema = R"schema({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "settings of the local provider",
  "type": "object",
  "properties": {
    "stop_signal": { "enum": ["SIGTERM", "SIGINT"], "description": "sent to a service's process group to stop it (default SIGTERM)" },
    "update": { "enum": ["side_by_side", "in_place"],
                "description": "side_by_side (default): a changed service starts on a new port and the old one serves until the routes move; in_place: the old one stops first (for apps that cannot run twice)" }
  },
  "additionalProperties": false
})schema";

struct Settings {
  int stop_signal = SIGTERM;
  bool side_by_side = true;  // updates without downtime
};

// Checks the settings block and the services against what this provider
// needs; each problem names its path in prevue.json.
std::vector<SettingsProblem> settings_problems(const ProviderRequest& r, Settings* out) {
  std::vector<SettingsProblem> problems;
  Settings settings;
  json j = json::parse(r.settings.empty() ? "{}" : r.settings);
  for (const auto& [key, value] : j.items()) {
    if (key == "stop_signal") {
      if (value == "SIGTERM") settings.stop_signal = SIGTERM;
      else if (value == "SIGINT") settings.stop_signal = SIGINT;
      else problems.push_back({"$.local.stop_signal", "must be \"SIGTERM\" or \"SIGINT\""});
    } else if (key == "update") {
      if (value == "side_by_side") settings.side_by_side = true;
      else if (value == "in_place") settings.side_by_side = false;
      else problems.push_back({"$.local.update", "must be \"side_by_side\" or \"in_place\""});
    } else {
      problems.push_back({"$.local." + key, "unknown setting (the local provider knows: stop_signal, update)"});
    }
  }
  // allocate is told services' names and revisions only; validate and apply their commands.
  bool commands_given = r.verb == ProviderVerb::kValidate || r.verb == ProviderVerb::kApply;
  for (const auto& svc : r.services)
    if (commands_given && svc.run.empty())
      problems.push_back({"$.services." + svc.name + ".run", "the local provider needs a command to run"});
  if (out) *out = settings;
  return problems;
}

// The same environment gets the same ports back. A running service whose
// revision changes gets a second port for the version that replaces it
// (zero downtime: both run until the routes move), kept until apply uses it.
// Only the allocate verb reserves or releases a next port: apply allocates
// too (for a caller that skipped allocate), and must not start a version on
// a port its rendered command was not told.
Status allocate(const ProviderRequest& r, const Settings& settings, EnvRecord& rec, ProviderResponse& resp, bool reserve_next) {
  fs::path records = r.environment.records_dir;
  std::set<int> taken = ports_in_use(r.records_root);
  rec.slug = r.environment.slug;
  for (const auto& svc : r.services) {
    auto& s = rec.services[svc.name];
    if (s.port == 0) {
      s.port = free_port(taken);
      if (s.port == 0) return make_error(ErrorCode::kProvider, "no free port for service " + svc.name);
      taken.insert(s.port);
    }
    bool running = is_alive(s.pid, s.start_time);
    bool replaced = settings.side_by_side && running && !svc.revision.empty() && !s.revision.empty() && svc.revision != s.revision;
    if (reserve_next && replaced && s.next_port == 0) {
      s.next_port = free_port(taken);
      if (s.next_port == 0) return make_error(ErrorCode::kProvider, "no free port for the new version of service " + svc.name);
      taken.insert(s.next_port);
    }
    if (reserve_next && !replaced) s.next_port = 0;
    resp.services.push_back(ServiceStatus{svc.name, loopback(s.next_port ? s.next_port : s.port), s.pid, running, false});
  }
  return save(records, rec);
}

// Stops what an update replaced.
void stop_retiring(const std::string& name, ServiceRecord& s, std::int64_t grace_ms, int stop_signal,
                   std::vector<ReceiptItem>* receipt = nullptr) {
  for (const auto& old : s.retiring) {
    std::string outcome = stop_group(name + " (replaced)", old.pid, old.start_time, grace_ms, stop_signal);
    if (receipt) receipt->push_back({"process", name + " replaced version (pid " + std::to_string(old.pid) + ")", outcome});
  }
  s.retiring.clear();
}

Status apply(const ProviderRequest& r, const Settings& settings, EnvRecord& rec, ProviderResponse& resp) {
  fs::path records = r.environment.records_dir;
  ProviderResponse allocated;
  PREVUE_TRY(allocate(r, settings, rec, allocated, /*reserve_next=*/false));
  std::error_code ec;
  fs::create_directories(records / "logs", ec);
  struct Started {
    const ProviderService* svc;
    fs::path log_path;
  };
  std::vector<Started> started;
  Status failure;
  // What to go back to for a service whose new version fails: the old one, still serving.
  std::map<std::string, ServiceRecord> previous;
  for (const auto& svc : r.services) {
    auto& s = rec.services[svc.name];
    const int port = s.next_port ? s.next_port : s.port;
    std::string hash = spec_hash(svc, port);
    bool running = is_alive(s.pid, s.start_time);
    if (running && s.spec_hash == hash) {
      resp.services.push_back(ServiceStatus{svc.name, loopback(s.port), s.pid, true, false});
      continue;
    }
    if (running && port != s.port) {
      previous[svc.name] = s;  // keeps serving on its own port while the new version starts
    } else if (running) {
      stop_group(svc.name, s.pid, s.start_time, r.stop_grace_ms, settings.stop_signal);
    }
    s.port = port;
    s.next_port = 0;
    s.pid = 0;
    s.spec_hash.clear();
    if (auto it = previous.find(svc.name); it != previous.end()) s.retiring.push_back(Retiring{it->second.pid, it->second.start_time});
    PREVUE_TRY(save(records, rec));
    if (!svc.build.empty()) {
      failure = run_build(svc, s.port);
      if (!failure.ok()) break;
    }
    fs::path log_path = records / "logs" / (svc.name + ".log");
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return make_error(ErrorCode::kIo, "cannot open " + log_path.string());
    StopSignalsHeld held;  // until the record below names the process
    auto spawned = spawn(svc.run, merged_environment(svc, s.port), svc.workdir, fd, /*detached=*/true);
    ::close(fd);
    if (spawned.pid < 0) {
      failure = make_error(ErrorCode::kProvider, "service " + svc.name + ": " + spawned.error);
      break;
    }
    ProcStat st;
    read_proc_stat(spawned.pid, st);
    s.pid = spawned.pid;
    s.start_time = st.start_time;
    s.spec_hash = hash;
    s.revision = svc.revision;
    // Recorded before waiting for health: a crash now still leaves a record to clean up.
    PREVUE_TRY(save(records, rec));
    log("started service=" + svc.name + " pid=" + std::to_string(s.pid) + " port=" + std::to_string(s.port));
    started.push_back(Started{&svc, log_path});
    resp.services.push_back(ServiceStatus{svc.name, loopback(s.port), s.pid, true, true});
  }

  // Wait for every (re)started service's health check, all at once.
  std::vector<bool> healthy(started.size(), false);
  for (size_t i = 0; failure.ok() && i < started.size(); ++i) {
    const auto& svc = *started[i].svc;
    auto& s = rec.services[svc.name];
    auto deadline = Clock::now() + std::chrono::milliseconds(svc.ready_timeout_ms);
    while (true) {
      int status = http_status(loopback(s.port), svc.health_path, 1000);
      if (status >= 200 && status < 400) {
        log("healthy service=" + svc.name + " path=" + svc.health_path + " status=" + std::to_string(status));
        healthy[i] = true;
        break;
      }
      reap_children();
      if (!is_alive(s.pid, s.start_time)) {
        failure = make_error(ErrorCode::kProvider, "service " + svc.name + " exited before it became healthy; last lines of " +
                                                       started[i].log_path.string() + ":\n" + file_tail(started[i].log_path, 20));
        break;
      }
      if (Clock::now() >= deadline) {
        std::string last = status ? "it answered " + std::to_string(status) : "nothing answered";
        failure = make_error(ErrorCode::kTimeout, "service " + svc.name + " did not pass its health check GET " +
                                                      svc.health_path + " on port " + std::to_string(s.port) + " within " +
                                                      std::to_string(svc.ready_timeout_ms) + " ms (" + last +
                                                      "); last lines of its log:\n" + file_tail(started[i].log_path, 20));
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  if (!failure.ok()) {
    // A version restarted in place that never became healthy is stopped, not left half-up.
    for (size_t i = 0; i < started.size(); ++i) {
      const std::string& name = started[i].svc->name;
      if (healthy[i] || previous.count(name)) continue;
      auto& s = rec.services[name];
      stop_group(name, s.pid, s.start_time, r.stop_grace_ms, settings.stop_signal);
      s.pid = 0;
      s.spec_hash.clear();
    }
    // The update did not happen: each new version started beside an old one
    // stops (healthy or not, started or not), and the old one, still serving, is its record again.
    for (auto& [name, old] : previous) {
      auto& s = rec.services[name];
      if (s.pid) stop_group(name, s.pid, s.start_time, r.stop_grace_ms, settings.stop_signal);
      int new_port = s.port;
      s = old;
      s.next_port = new_port;  // reused by the next attempt
    }
    (void)save(records, rec);
    return failure;
  }
  return {};
}

bool is_inside(const fs::path& child, const fs::path& parent) {
  auto c = fs::weakly_canonical(child);
  auto p = fs::weakly_canonical(parent);
  auto [pe, ce] = std::mismatch(p.begin(), p.end(), c.begin(), c.end());
  return pe == p.end() && c != p;
}

// Stops every process the environment runs and removes this provider's
// records of it; the environment's directory is prevue's to remove.
Status destroy(const ProviderRequest& r, const Settings& settings, std::vector<ReceiptItem>& receipt) {
  fs::path records = r.environment.records_dir;
  std::error_code ec;
  if (!fs::exists(records, ec)) return {};  // already gone: destroy is idempotent
  auto rec = load(records);
  if (rec.ok()) {
    for (auto& [name, s] : rec->services) {
      stop_retiring(name, s, r.stop_grace_ms, settings.stop_signal, &receipt);
      std::string outcome = stop_group(name, s.pid, s.start_time, r.stop_grace_ms, settings.stop_signal);
      receipt.push_back({"process", name + (s.pid > 0 ? " (pid " + std::to_string(s.pid) + ")" : ""), outcome});
    }
  } else {
    log("warning: " + rec.error().message);
  }
  // Only ever delete what is clearly ours.
  bool ours = fs::exists(records / kStateFile, ec) || (!r.records_root.empty() && is_inside(records, r.records_root));
  if (!ours) return make_error(ErrorCode::kInvalidArgument, "refusing to remove " + records.string() + ": not a local provider record");
  fs::remove_all(records, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot remove " + records.string() + ": " + ec.message());
  receipt.push_back({"directory", records.string() + " (its records and service logs)", "removed"});
  log("destroyed slug=" + r.environment.slug);
  return {};
}

// Stops every service, keeping the directory, data and ports: apply wakes it.
Status sleep(const ProviderRequest& r, const Settings& settings, EnvRecord& rec) {
  for (auto& [name, s] : rec.services) {
    stop_retiring(name, s, r.stop_grace_ms, settings.stop_signal);
    stop_group(name, s.pid, s.start_time, r.stop_grace_ms, settings.stop_signal);
    s.pid = 0;
    s.spec_hash.clear();
  }
  return save(r.environment.records_dir, rec);
}

// After the routes moved to the new versions: requests already sent to a
// replaced one get a moment to finish, then it stops.
constexpr std::chrono::milliseconds kDrain{1000};
Status prune(const ProviderRequest& r, const Settings& settings, EnvRecord& rec, ProviderResponse& resp) {
  bool any = false;
  for (const auto& [name, s] : rec.services) any = any || !s.retiring.empty();
  if (!any) return {};
  std::this_thread::sleep_for(kDrain);
  for (auto& [name, s] : rec.services) stop_retiring(name, s, r.stop_grace_ms, settings.stop_signal, &resp.removed);
  return save(r.environment.records_dir, rec);
}

void status(const ProviderRequest& r, ProviderResponse& resp) {
  auto rec = load(r.environment.records_dir);
  if (!rec.ok()) return;
  for (const auto& [name, s] : rec->services)
    resp.services.push_back(ServiceStatus{name, loopback(s.port), s.pid, is_alive(s.pid, s.start_time), false});
}

void list(const ProviderRequest& r, ProviderResponse& resp) {
  std::error_code ec;
  if (r.records_root.empty()) return;
  for (const auto& entry : fs::directory_iterator(r.records_root, ec)) {
    if (!fs::exists(entry.path() / kStateFile)) continue;
    auto rec = load(entry.path());
    EnvironmentListing listing{entry.path().filename().string(), entry.path().string(), {}};
    if (rec.ok()) {
      if (!rec->slug.empty()) listing.slug = rec->slug;
      for (const auto& [name, s] : rec->services)
        listing.services.push_back(ServiceStatus{name, loopback(s.port), s.pid, is_alive(s.pid, s.start_time), false});
    }
    resp.environments.push_back(std::move(listing));
  }
}

}  // namespace

int handle(const ProviderRequest& request, ProviderResponse& response) {
  Status result;
  try {
    switch (request.verb) {
      case ProviderVerb::kDescribe:
        response.name = "local";
        response.capabilities = {"validate", "allocate", "apply", "prune", "sleep", "destroy", "status", "list", "logs"};
        response.zero_downtime = true;
        response.stop_signal = SIGTERM;
        response.stop_grace_ms = 10'000;  // it stops its services within the request's stop grace
        response.settings_schema = kSettingsSchema;
        break;
      case ProviderVerb::kValidate:
        response.problems = settings_problems(request, nullptr);
        if (!response.problems.empty()) result = make_error(ErrorCode::kInvalidArgument, "the manifest does not suit the local provider");
        break;
      case ProviderVerb::kList:
        list(request, response);
        break;
      case ProviderVerb::kExec:
      case ProviderVerb::kPut:
        // Its services are processes on this host: a seed runs beside them, not inside.
        result = make_error(ErrorCode::kInvalidArgument, "the local provider runs nothing inside a service, nor puts files there");
        break;
      case ProviderVerb::kLogs: {
        // What the service printed, from the file its processes write.
        // A service name is [a-z0-9_-]: anything else cannot name a log file of ours.
        bool named = request.services.size() == 1 && !request.services.front().name.empty() &&
                     request.services.front().name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos;
        auto text = named ? read_file(fs::path(request.environment.records_dir) / "logs" / (request.services.front().name + ".log"))
                          : Result<std::string>(make_error(ErrorCode::kInvalidArgument, "name one service"));
        if (!text.ok()) result = make_error(ErrorCode::kNotFound, "no output recorded for that service");
        else response.log = tail_lines(*text, static_cast<size_t>(request.log_lines));
        break;
      }
      case ProviderVerb::kAllocate:
      case ProviderVerb::kApply:
      case ProviderVerb::kPrune:
      case ProviderVerb::kSleep:
      case ProviderVerb::kDestroy:
      case ProviderVerb::kStatus: {
        result = check_environment(request);
        if (!result.ok()) {
          response.ok = false;
          response.error_code = "bad_request";
          response.error_message = result.error().message;
          return kProviderExitBadRequest;
        }
        Settings settings;
        if (auto problems = settings_problems(request, &settings);
            !problems.empty() && (request.verb == ProviderVerb::kApply || request.verb == ProviderVerb::kAllocate)) {
          result = make_error(ErrorCode::kInvalidArgument, problems.front().path + " " + problems.front().message);
          break;
        }
        const fs::path records = request.environment.records_dir;
        if (request.verb == ProviderVerb::kStatus) {
          status(request, response);
          break;
        }
        if (request.verb == ProviderVerb::kDestroy) {
          std::error_code ec;
          std::optional<FileLock> lock;  // not created for records that are already gone
          if (fs::exists(records, ec)) lock.emplace(records / "lock");
          result = destroy(request, settings, response.removed);
          break;
        }
        // One mutating call per environment at a time: a call orphaned by a
        // killed prevue may still be running when the next one starts.
        std::error_code ec;
        fs::create_directories(records, ec);
        FileLock lock(records / "lock");
        auto rec = load(records);
        if (!rec.ok()) {
          result = rec.error();
          break;
        }
        if (request.verb == ProviderVerb::kSleep) result = sleep(request, settings, *rec);
        else if (request.verb == ProviderVerb::kPrune) result = prune(request, settings, *rec, response);
        else if (request.verb == ProviderVerb::kAllocate) result = allocate(request, settings, *rec, response, /*reserve_next=*/true);
        else result = apply(request, settings, *rec, response);
        break;
      }
      case ProviderVerb::kPlan:
        response.error_code = "bad_request";
        response.error_message = "verb plan is not implemented by the local provider";
        return kProviderExitBadRequest;
    }
  } catch (const std::exception& e) {
    result = make_error(ErrorCode::kInternal, std::string("local provider: ") + e.what());
  }
  response.ok = result.ok();
  if (!result.ok()) {
    response.error_code = to_string(result.error().code);
    response.error_message = result.error().message;
    log("error: " + result.error().message);
    return kProviderExitFailed;
  }
  return kProviderExitOk;
}

}  // namespace prevue::local
