// prevue's command line: parses arguments, wires the concrete objects, and
// prints. Everything else lives in the libraries.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "core/clock.h"
#include "core/files.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/logger.h"
#include "engine/engine.h"
#include "engine/maintenance.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

fs::path default_state_dir() {
  if (const char* env = std::getenv("PREVUE_STATE_DIR"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg) return fs::path(xdg) / "prevue";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".local" / "state" / "prevue";
  return ".prevue-state";
}

fs::path default_provider_dir() {
  if (const char* env = std::getenv("PREVUE_PROVIDER_DIR"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "providers";
  fs::path beside = exe.parent_path() / "providers";
  if (fs::exists(beside / "local", ec)) return beside;
  return exe.parent_path().parent_path() / "lib" / "prevue" / "providers";
}

std::string age(std::int64_t since_ms, std::int64_t now_ms) {
  std::int64_t s = (now_ms - since_ms) / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

json env_json(const prevue::EnvironmentView& v) {
  const auto& e = v.record;
  json j{{"slug", e.slug},       {"repo", v.repo},          {"pr", e.pr},
         {"state", prevue::to_string(e.state)}, {"ref", e.ref}, {"commit", e.commit_sha},
         {"deployed_commit", e.deployed_sha}, {"url", e.url}, {"dir", e.dir},
         {"created_at_ms", e.created_at}, {"updated_at_ms", e.updated_at}};
  j["layers"] = json::array();
  for (const auto& layer : e.layers) j["layers"].push_back({{"name", layer.name}, {"provider", layer.provider}});
  if (e.state == prevue::EnvState::kFailed || !e.error.empty()) {
    j["failed_step"] = e.failed_step;
    j["error"] = e.error;
  }
  return j;
}

struct Globals {
  std::string state_dir;
  std::string provider_dir;
  std::string domain = "prevue.localhost";
};

// The store and engine for one command.
struct Wiring {
  prevue::SystemClock clock;
  prevue::SubprocessRunner runner;
  std::unique_ptr<prevue::Store> store;
  std::unique_ptr<prevue::Engine> engine;
};

int wire(const Globals& g, Wiring& w) {
  std::error_code ec;
  fs::path state = fs::absolute(g.state_dir.empty() ? default_state_dir() : fs::path(g.state_dir), ec);
  fs::create_directories(state, ec);
  if (ec) {
    std::cerr << "prevue: cannot create state directory " << state << ": " << ec.message() << "\n";
    return kExitFailed;
  }
  auto store = prevue::Store::open((state / "prevue.db").string(), w.clock);
  if (!store.ok()) {
    std::cerr << "prevue: " << store.error().message << "\n";
    return kExitFailed;
  }
  w.store = std::move(store).value();
  prevue::EngineConfig config;
  config.state_dir = state;
  config.provider_dir = fs::absolute(g.provider_dir.empty() ? default_provider_dir() : fs::path(g.provider_dir), ec);
  config.preview_domain = g.domain;
  w.engine = std::make_unique<prevue::Engine>(config, *w.store, w.runner, w.clock);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"prevue: ephemeral preview environments, one per pull request, from the templates in your repository"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the command
  app.set_version_flag("--version", "prevue 0.1.0");
  Globals g;
  app.add_option("--state-dir", g.state_dir, "State directory (default: $PREVUE_STATE_DIR, else ~/.local/state/prevue)");
  app.add_option("--provider-dir", g.provider_dir, "Directory of provider executables (default: $PREVUE_PROVIDER_DIR, else beside the binary)");
  app.add_option("--domain", g.domain, "Preview domain for host names")->capture_default_str();

  // up
  auto* up = app.add_subcommand("up", "Create or update a PR's environment, wait until it is ready, print its URL");
  prevue::UpRequest up_request;
  bool up_json = false;
  up->add_option("--repo", up_request.repo, "Repository: a local path or a URL")->required();
  up->add_option("--pr", up_request.pr, "Pull request number")->required()->check(CLI::PositiveNumber);
  auto* ref_opt = up->add_option("--ref", up_request.ref, "Branch or tag to deploy");
  auto* sha_opt = up->add_option("--sha", up_request.sha, "Commit to deploy");
  ref_opt->excludes(sha_opt);
  up->add_flag("--json", up_json, "Print the result as JSON (with timings)");

  // down
  auto* down = app.add_subcommand("down", "Tear a PR's environment down: stop its processes, remove its files and routes");
  std::string down_slug, down_repo;
  long down_pr = 0;
  bool down_all = false;
  down->add_option("slug", down_slug, "Environment slug (see `prevue ls`)");
  down->add_flag("--all", down_all, "Every environment in the state directory");
  bool down_json = false;
  down->add_flag("--json", down_json, "Print what was removed (the receipt) as JSON: one object, or an array with --all");
  auto* down_repo_opt = down->add_option("--repo", down_repo, "Repository (with --pr)");
  auto* down_pr_opt = down->add_option("--pr", down_pr, "Pull request number (with --repo)")->check(CLI::PositiveNumber);
  down_repo_opt->needs(down_pr_opt);
  down_pr_opt->needs(down_repo_opt);

  // ls
  auto* ls = app.add_subcommand("ls", "List environments");
  bool ls_json = false, ls_all = false;
  ls->add_flag("--json", ls_json, "Print JSON");
  ls->add_flag("--all,-a", ls_all, "Include destroyed environments");

  // logs
  auto* logs = app.add_subcommand("logs", "Show the steps and logs of an environment's latest run");
  std::string logs_slug, logs_service;
  size_t logs_lines = 100;
  logs->add_option("slug", logs_slug, "Environment slug")->required();
  logs->add_option("--service", logs_service, "Print the last lines of this service's own output instead");
  logs->add_option("--lines,-n", logs_lines, "With --service: how many lines")->capture_default_str();

  // render
  auto* render = app.add_subcommand("render", "Dry run: print the plan and the rendered files for a ref; runs nothing");
  std::string render_repo, render_ref, render_sha;
  long render_pr = 1;
  render->add_option("--repo", render_repo, "Repository: a local path or a URL")->required();
  auto* rref = render->add_option("--ref", render_ref, "Branch or tag");
  auto* rsha = render->add_option("--sha", render_sha, "Commit");
  rref->excludes(rsha);
  render->add_option("--pr", render_pr, "Pull request number to render for")->capture_default_str()->check(CLI::PositiveNumber);

  // serve
  auto* serve = app.add_subcommand("serve", "Run the service: watch repositories, build previews, proxy their links, expire leases");
  std::string serve_config;
  serve->add_option("--config", serve_config, "Configuration file (JSON; see docs/config.md)")->required();
  std::string serve_log_format = "text";
  serve->add_option("--log-format", serve_log_format, "Log lines as `text` (prevue: event key=value ...) or `json` (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  // gc
  auto* gc = app.add_subcommand("gc", "One cleanup pass for cron: expire leases, retry failed teardowns, sweep orphans");
  std::string gc_config;
  bool gc_dry_run = false;
  gc->add_option("--config", gc_config, "Configuration file (for its state dir and lease defaults)");
  gc->add_flag("--dry-run", gc_dry_run, "Print what would be done; change nothing");

  // extend
  auto* extend = app.add_subcommand("extend", "Push an environment's lease end out by a duration");
  std::string extend_slug, extend_by;
  extend->add_option("slug", extend_slug, "Environment slug")->required();
  extend->add_option("duration", extend_by, "How much longer, e.g. 2h or 3d")->required();

  // events
  auto* events = app.add_subcommand("events", "Show the latest events (webhook deliveries, polls, API calls) and what became of them");
  int events_limit = 50;
  bool events_json = false;
  events->add_option("--limit,-n", events_limit, "How many, newest first")->capture_default_str()->check(CLI::Range(1, 10000));
  events->add_flag("--json", events_json, "Print JSON");

  // pin
  auto* pin = app.add_subcommand("pin", "Keep an environment past its TTL and idle limits (a merge or close still ends it)");
  std::string pin_slug;
  bool pin_off = false;
  pin->add_option("slug", pin_slug, "Environment slug")->required();
  pin->add_flag("--off", pin_off, "Unpin");

  // CLI11 would only say "a subcommand is required" for a mistyped one.
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.rfind("-", 0) == 0) {
      if (word == "--state-dir" || word == "--provider-dir" || word == "--domain") ++i;
      continue;
    }
    bool known = false;
    std::string names;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->get_name() == word;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::cerr << "prevue: unknown command '" << word << "' (commands: " << names << "; see prevue --help)\n";
      return kExitUsage;
    }
    break;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  if (serve->parsed()) {
    auto config = prevue::load_config(serve_config);
    if (!config.ok()) {
      std::cerr << "prevue serve: " << config.error().message << "\n";
      return kExitFailed;
    }
    if (config->provider_dir.empty()) config->provider_dir = default_provider_dir();
    prevue::init_logging(*prevue::log_format_from_string(serve_log_format));
    prevue::Daemon daemon(std::move(config).value());
    int exit_code = daemon.run();
    prevue::flush_logging();
    return exit_code;
  }

  if (gc->parsed()) {
    prevue::Config config;
    if (!gc_config.empty()) {
      auto loaded = prevue::load_config(gc_config);
      if (!loaded.ok()) {
        std::cerr << "prevue gc: " << loaded.error().message << "\n";
        return kExitFailed;
      }
      config = std::move(loaded).value();
      g.state_dir = config.state_dir.string();
      if (!config.provider_dir.empty() && g.provider_dir.empty()) g.provider_dir = config.provider_dir.string();
      g.domain = config.domain;
    }
    // A dry run changes nothing, not even by creating an empty state directory.
    fs::path state_for_gc = fs::absolute(g.state_dir.empty() ? default_state_dir() : fs::path(g.state_dir));
    if (gc_dry_run && !fs::exists(state_for_gc / "prevue.db")) {
      std::cout << "nothing to clean (no prevue state in " << state_for_gc.string() << ")\n";
      return 0;
    }
    Wiring w;
    if (int rc = wire(g, w)) return rc;
    prevue::EngineConfig engine_config;
    engine_config.state_dir = state_for_gc;
    engine_config.provider_dir = fs::absolute(g.provider_dir.empty() ? default_provider_dir() : fs::path(g.provider_dir));
    engine_config.provider_settings = config.provider_settings;
    engine_config.postgres_servers = config.postgres_servers;
    prevue::ProviderClient providers(w.runner, engine_config.provider_dir);
    prevue::GcOptions options;
    options.dry_run = gc_dry_run;
    options.claim_ttl = config.claim_ttl;
    auto report = prevue::run_gc(*w.engine, *w.store, providers, engine_config, w.clock, options);
    // DNS: what the server holds is compared with the live routes, and fixed.
    std::string dns_checked;
    if (!gc_config.empty() && !gc_dry_run && config.dns_backend != "none") {
      auto envs = w.store->list_environments(false);
      auto routes = w.store->all_routes();
      if (!envs.ok() || !routes.ok()) {
        report.failures.push_back("dns: cannot read the live routes");
      } else {
        std::vector<std::string> hosts;
        for (const auto& live : prevue::live_hosts(*envs, *routes, config.domain)) hosts.push_back(live.host);
        auto backend = prevue::make_dns_backend(config);
        if (auto s = backend->reconcile(hosts); s.ok()) dns_checked = "checked: dns (" + backend->name() + ") holds the " + std::to_string(hosts.size()) + " live names";
        else report.failures.push_back("dns: " + s.error().message);
      }
    }
    for (const auto& line : report.actions) std::cout << line << "\n";
    for (const auto& line : report.failures) std::cerr << "prevue gc: could not clean: " << line << "\n";
    if (report.actions.empty() && report.failures.empty()) std::cout << "nothing to clean\n";
    if (!dns_checked.empty()) std::cout << dns_checked << "\n";
    return report.failures.empty() ? 0 : kExitFailed;
  }

  Wiring w;
  if (int rc = wire(g, w)) return rc;

  if (extend->parsed()) {
    auto by = prevue::parse_duration(extend_by);
    if (!by.ok()) {
      std::cerr << "prevue extend: " << by.error().message << "\n";
      return kExitUsage;
    }
    auto lease = prevue::extend_lease(*w.store, extend_slug, *by, w.clock.now_ms());
    if (!lease.ok()) {
      std::cerr << "prevue extend: " << lease.error().message << "\n";
      return kExitFailed;
    }
    std::cout << extend_slug << ": lease now ends in "
              << prevue::format_duration(prevue::Millis(std::max<std::int64_t>(0, lease->deadline() - w.clock.now_ms()))) << "\n";
    return 0;
  }

  if (events->parsed()) {
    auto recent = w.store->recent_events(events_limit);
    if (!recent.ok()) {
      std::cerr << "prevue events: " << recent.error().message << "\n";
      return kExitFailed;
    }
    if (events_json) {
      json arr = json::array();
      for (const auto& e : *recent)
        arr.push_back({{"id", e.id}, {"delivery_id", e.delivery_id}, {"source", e.source}, {"pr", e.pr}, {"action", e.action},
                       {"head_sha", e.head_sha}, {"status", e.status}, {"note", e.note}, {"received_at_ms", e.received_at}});
      std::cout << arr.dump(2) << "\n";
      return 0;
    }
    std::int64_t now = w.clock.now_ms();
    std::printf("%-6s %-5s %-9s %-5s %-8s %-10s %s\n", "ID", "AGE", "SOURCE", "PR", "ACTION", "STATUS", "NOTE");
    for (const auto& e : *recent)
      std::printf("%-6lld %-5s %-9s %-5ld %-8s %-10s %s\n", static_cast<long long>(e.id), age(e.received_at, now).c_str(),
                  e.source.c_str(), e.pr, e.action.c_str(), e.status.c_str(), e.note.c_str());
    return 0;
  }

  if (pin->parsed()) {
    auto lease = prevue::pin_lease(*w.store, pin_slug, !pin_off);
    if (!lease.ok()) {
      std::cerr << "prevue pin: " << lease.error().message << "\n";
      return kExitFailed;
    }
    std::cout << pin_slug << (pin_off ? ": unpinned\n" : ": pinned (a merge or close still ends it)\n");
    return 0;
  }
  prevue::Engine& engine = *w.engine;

  if (up->parsed()) {
    if (up_request.ref.empty() && up_request.sha.empty()) {
      std::cerr << "prevue up: give --ref REF or --sha SHA\n";
      return kExitUsage;
    }
    // Progress on stderr, one line per step with its time (the URL alone goes to stdout).
    auto up_started = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      char text[32];
      std::snprintf(text, sizeof text, "%6.1fs", std::chrono::duration<double>(std::chrono::steady_clock::now() - up_started).count());
      return std::string(text);
    };
    if (!up_json) {
      up_request.on_step_start = [&](const std::string& step) { std::cerr << "prevue up: " << elapsed() << "  " << step << " ...\n"; };
      up_request.on_step_done = [&](const std::string& step, bool ok, std::chrono::milliseconds took) {
        std::cerr << "prevue up: " << elapsed() << "  " << step << (ok ? " done" : " FAILED") << " (" << took.count() << " ms)\n";
      };
    }
    auto r = engine.up(up_request);
    double total_ms = std::chrono::duration<double, std::milli>(r.total).count();
    double child_ms = std::chrono::duration<double, std::milli>(r.child).count();
    if (up_json) {
      json j{{"ok", r.ok}, {"slug", r.environment.slug}, {"state", prevue::to_string(r.environment.state)},
             {"url", r.environment.url}, {"commit", r.environment.commit_sha},
             {"timing_ms", {{"total", total_ms}, {"children", child_ms}, {"prevue", total_ms - child_ms},
                            {"libgit2_init", std::chrono::duration<double, std::milli>(r.library_init).count()}}}};
      if (!r.ok) {
        j["failed_step"] = r.failed_step;
        j["error"] = r.error;
        j["log_tail"] = r.log_tail;
      }
      std::cout << j.dump(2) << "\n";
      return r.ok ? 0 : kExitFailed;
    }
    if (!r.ok) {
      if (r.failed_step.empty()) {
        std::cerr << "prevue up: " << r.error << "\n";
      } else {
        // The log's tail ends with the error itself (as the provider said it,
        // then as the step recorded it): the tail stops where the error
        // starts, and the error is shown once, after it.
        std::string tail = r.log_tail;
        std::string first_error_line = r.error.substr(0, r.error.find('\n'));
        if (auto at = first_error_line.empty() ? std::string::npos : tail.find(first_error_line); at != std::string::npos)
          tail.erase(tail.rfind('\n', at) == std::string::npos ? 0 : tail.rfind('\n', at));
        while (!tail.empty() && tail.back() == '\n') tail.pop_back();
        if (!tail.empty()) std::cerr << "--- last lines of the step's log ---\n" << tail << "\n---\n";
        std::cerr << "prevue up: environment " << r.environment.slug << " failed at step '" << r.failed_step << "': " << r.error << "\n";
        std::string again = "prevue" + (g.state_dir.empty() ? std::string() : " --state-dir '" + g.state_dir + "'");
        std::cerr << "(full log: " << again << " logs " << r.environment.slug << "; clean up: " << again << " down "
                  << r.environment.slug << ")\n";
      }
      return kExitFailed;
    }
    std::cerr << "prevue: " << r.environment.slug << " is ready at commit " << r.environment.commit_sha.substr(0, 12) << "\n";
    std::cout << r.environment.url << "\n";
    return 0;
  }

  if (down->parsed()) {
    prevue::DownResult r;
    if (int(!down_slug.empty()) + int(!down_repo.empty()) + int(down_all) > 1) {
      std::cerr << "prevue down: give one of a SLUG, --repo with --pr, or --all\n";
      return kExitUsage;
    }
    auto down_json_of = [](const prevue::DownResult& one) {
      json j{{"ok", one.ok}, {"slug", one.environment.slug}, {"already_gone", one.already_gone},
             {"receipt", json::parse(prevue::receipt_json(one.receipt))}};
      if (!one.ok) j["error"] = one.error;
      return j;
    };
    if (down_all) {
      auto envs = engine.list(false);
      if (!envs.ok()) {
        std::cerr << "prevue down: " << envs.error().message << "\n";
        return kExitFailed;
      }
      int failures = 0;
      json all = json::array();
      for (const auto& v : *envs) {
        auto one = engine.down_by_slug(v.record.slug);
        all.push_back(down_json_of(one));
        if (one.ok) {
          std::cerr << "prevue: " << v.record.slug << (one.already_gone ? " was already destroyed" : " destroyed") << "\n";
        } else {
          std::cerr << "prevue down: " << v.record.slug << ": " << one.error << "\n";
          ++failures;
        }
      }
      if (envs->empty()) std::cerr << "prevue: no environments to remove\n";
      if (down_json) std::cout << all.dump(2) << "\n";
      return failures ? kExitFailed : 0;
    }
    if (!down_slug.empty()) r = engine.down_by_slug(down_slug);
    else if (!down_repo.empty()) r = engine.down_by_pr(down_repo, down_pr);
    else {
      std::cerr << "prevue down: give a SLUG, --repo R --pr N, or --all\n";
      return kExitUsage;
    }
    if (down_json && (r.ok || !r.environment.slug.empty())) std::cout << down_json_of(r).dump(2) << "\n";
    if (!r.ok) {
      std::cerr << "prevue down: " << r.error << "\n";
      return kExitFailed;
    }
    std::cerr << "prevue: " << r.environment.slug << (r.already_gone ? " was already destroyed" : " destroyed") << "\n";
    if (!down_json)
      for (const auto& item : r.receipt) std::cerr << "  " << item.kind << " " << item.name << ": " << item.outcome << "\n";
    return 0;
  }

  if (ls->parsed()) {
    auto envs = engine.list(ls_all);
    if (!envs.ok()) {
      std::cerr << "prevue ls: " << envs.error().message << "\n";
      return kExitFailed;
    }
    if (ls_json) {
      json arr = json::array();
      for (const auto& v : *envs) arr.push_back(env_json(v));
      std::cout << arr.dump(2) << "\n";
      return 0;
    }
    std::int64_t now = w.clock.now_ms();
    std::printf("%-44s %-12s %-5s %-9s %-5s %s\n", "SLUG", "STATE", "PR", "COMMIT", "AGE", "URL / ERROR");
    for (const auto& v : *envs) {
      const auto& e = v.record;
      std::string detail = e.state == prevue::EnvState::kFailed ? e.failed_step + ": " + e.error : e.url;
      if (auto nl = detail.find('\n'); nl != std::string::npos) detail = detail.substr(0, nl) + " ...";
      std::printf("%-44s %-12s %-5ld %-9s %-5s %s\n", e.slug.c_str(), prevue::to_string(e.state), e.pr,
                  e.commit_sha.substr(0, 7).c_str(), age(e.created_at, now).c_str(), detail.c_str());
    }
    return 0;
  }

  if (logs->parsed()) {
    auto v = engine.view(logs_slug);
    if (!v.ok()) {
      std::cerr << "prevue logs: " << v.error().message << "\n";
      return kExitFailed;
    }
    const auto& e = v->record;
    if (!logs_service.empty()) {
      // The provider of the layer that runs the service tells (a process's log file, a container's output).
      auto text = w.engine->service_logs(e, logs_service, logs_lines);
      if (!text.ok()) {
        std::cerr << "prevue logs: " << text.error().message << "\n";
        return kExitFailed;
      }
      std::cout << prevue::tail_lines(*text, logs_lines);
      if (!text->empty() && text->back() != '\n') std::cout << "\n";
      return 0;
    }
    std::cout << e.slug << ": " << prevue::to_string(e.state);
    if (!e.error.empty()) std::cout << " (" << e.failed_step << ": " << e.error << ")";
    std::cout << "\n";
    if (!v->last_run) {
      std::cout << "no runs yet\n";
      return 0;
    }
    std::cout << "run " << v->last_run->id << " (" << prevue::to_string(v->last_run->kind) << ", "
              << prevue::to_string(v->last_run->state) << ")\n";
    for (const auto& s : v->steps) {
      std::cout << "== " << s.name << " [" << prevue::to_string(s.state) << ", " << (s.finished_at ? s.finished_at - s.started_at : 0)
                << " ms] ==\n" << s.log;
      if (!s.log.empty() && s.log.back() != '\n') std::cout << "\n";
    }
    return 0;
  }

  if (render->parsed()) {
    if (render_ref.empty() && render_sha.empty()) {
      std::cerr << "prevue render: give --ref REF or --sha SHA\n";
      return kExitUsage;
    }
    auto r = engine.render(render_repo, render_ref, render_sha, render_pr);
    if (!r.ok()) {
      std::cerr << "prevue render: " << r.error().message << "\n";
      return kExitFailed;
    }
    std::cout << "environment " << r->slug << " at " << r->commit << "\n\nplan: " << r->plan << "\nservices:\n";
    for (const auto& c : r->commands) std::cout << "  " << c << "\n";
    for (const auto& p : r->layer_plans) std::cout << "\nlayer " << p.layer << " (" << p.provider << "), nothing applied:\n" << p.text;
    for (const auto& f : r->files) {
      std::cout << "\n--- " << f.path << " ---\n" << f.content;
      if (!f.content.empty() && f.content.back() != '\n') std::cout << "\n";
    }
    return 0;
  }
  return kExitUsage;
}
