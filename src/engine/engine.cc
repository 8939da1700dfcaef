#include "engine/engine.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cctype>
#include <fstream>
#include <functional>
#include <tuple>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/duration.h"
#include "core/files.h"
#include "core/redact.h"
#include "core/slug.h"
#include "git/git_mirror.h"
#include "manifest/render.h"
#include "seed/seeder.h"
#include "webhook/signature.h"

namespace prevue {

namespace fs = std::filesystem;

namespace {

constexpr size_t kLogTailLines = 25;
constexpr const char* kExportedList = "exported.txt";  // in the environment's records directory

// Records each step of a run in the store, with its log and the time spent
// in child processes; remembers the first failure.
class StepRecorder {
 public:
  StepRecorder(Store& store, ProcessRunner& runner, std::int64_t run_id, std::int64_t env_id, const Redactor& redact,
               const std::atomic<bool>* cancelled = nullptr, const UpRequest* progress = nullptr)
      : store_(store), runner_(runner), run_id_(run_id), env_id_(env_id), redact_(redact), cancelled_(cancelled), progress_(progress) {}

  bool run(const std::string& name, const std::function<Status(std::string& log)>& body) {
    if (failed()) return false;
    if (cancelled_ && cancelled_->load()) {
      failed_step_ = name;
      error_ = "superseded by a newer commit before this step";
      superseded_ = true;
      return false;
    }
    auto started = std::chrono::steady_clock::now();
    if (progress_ && progress_->on_step_start) progress_->on_step_start(name);
    auto step = store_.begin_step(run_id_, name);
    auto child_before = runner_.child_time();
    std::string log;
    Status status;
    try {
      status = body(log);
    } catch (const std::exception& e) {
      status = make_error(ErrorCode::kInternal, std::string("internal error: ") + e.what());
    }
    auto child_ms = std::chrono::duration_cast<std::chrono::milliseconds>(runner_.child_time() - child_before).count();
    if (!status.ok()) {
      if (!log.empty() && log.back() != '\n') log += '\n';
      log += "error: " + status.error().message + "\n";
      failed_step_ = name;
      error_ = redact_(status.error().message);
      superseded_ = status.error().code == ErrorCode::kCancelled;  // stopped mid-step by a newer commit
    }
    log = redact_(std::move(log));
    if (!status.ok()) log_ = log;
    if (step.ok()) (void)store_.finish_step(step->id, status.ok() ? RunState::kSucceeded : RunState::kFailed, log, child_ms);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    (void)store_.append_timeline(env_id_, "step", name + (status.ok() ? "" : " (failed)"), took);
    if (progress_ && progress_->on_step_done) progress_->on_step_done(name, status.ok(), std::chrono::milliseconds(took));
    return status.ok();
  }

  bool superseded() const { return superseded_; }

  bool failed() const { return !failed_step_.empty(); }
  const std::string& failed_step() const { return failed_step_; }
  const std::string& error() const { return error_; }
  const std::string& log() const { return log_; }

 private:
  Store& store_;
  ProcessRunner& runner_;
  std::int64_t run_id_;
  std::int64_t env_id_;
  const Redactor& redact_;
  const std::atomic<bool>* cancelled_;
  const UpRequest* progress_;
  bool superseded_ = false;
  std::string failed_step_, error_, log_;
};

std::string short_sha(const std::string& sha) { return sha.substr(0, 7); }

// The repository-relative path `rel` under `root`, refusing any path that
// would land outside it (through "..", or through a symlink the repository
// itself placed there).
Result<fs::path> path_inside(const fs::path& root, const std::string& rel) {
  if (!is_safe_relative_path(rel)) return make_error(ErrorCode::kInvalidArgument, "unsafe path '" + rel + "'");
  fs::path target = root / rel;
  std::error_code ec;
  fs::path parent = fs::weakly_canonical(target.parent_path(), ec);
  fs::path base = fs::weakly_canonical(root, ec);
  auto [b, p] = std::mismatch(base.begin(), base.end(), parent.begin(), parent.end());
  if (b != base.end()) return make_error(ErrorCode::kInvalidArgument, "path '" + rel + "' leaves the environment directory");
  return target;
}

std::string encode_revisions(const std::map<std::string, std::string>& revisions) {
  std::string out;
  for (const auto& [name, rev] : revisions) out += name + " " + rev + "\n";
  return out;
}

std::map<std::string, std::string> decode_revisions(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string name, rev;
  while (in >> name >> rev) out[name] = rev;
  return out;
}

const RouteSpec& primary_route(const Manifest& m) {
  for (const auto& r : m.routes)
    if (r.name == "web") return r;
  return m.routes.front();
}

std::string route_host(const Manifest& m, const RouteSpec& route, const std::string& slug, const std::string& domain) {
  if (&route == &primary_route(m)) return slug + "." + domain;
  return dns_words(route.name + "-" + slug, kMaxDnsLabel) + "." + domain;
}

// prevue.json at `commit`, parsed; errors name the commit (and `what` was asked for).
Result<Manifest> read_manifest(const GitMirror& git, const std::string& commit, const std::string& what) {
  auto text = git.read_file(commit, std::string(kManifestPath));
  if (!text.ok()) return text.error();
  if (!text->has_value())
    return make_error(ErrorCode::kNotFound, "no prevue.json at the root of commit " + short_sha(commit) + " (" + what + ")");
  return parse_manifest(**text, "prevue.json at " + short_sha(commit));
}

// The values placeholders see; the same for `up` and the dry run, which
// only differ in how ports, links and secrets are known.
struct ContextSource {
  const Manifest& manifest;
  std::string slug, dir, commit, domain;
  long pr = 0;
  std::function<std::string(const ServiceSpec&)> port;
  std::function<std::string(const RouteSpec&, const std::string& host)> url;
  std::function<std::string(const std::string& value)> secret;
  const std::map<std::string, std::string>& secrets;
};

// Returns the context and the primary route's link.
std::pair<RenderContext, std::string> make_context(const ContextSource& src) {
  RenderContext context;
  std::string primary_url;
  const RouteSpec& primary = primary_route(src.manifest);
  for (const auto& route : src.manifest.routes) {
    std::string host = route_host(src.manifest, route, src.slug, src.domain);
    std::string url = src.url(route, host);
    context.set("host." + route.name, host);
    context.set("url." + route.name, url);
    if (&route == &primary) primary_url = url;
  }
  context.set("pr.number", std::to_string(src.pr));
  context.set("commit.sha", src.commit);
  context.set("commit.short", short_sha(src.commit));
  context.set("env.slug", src.slug);
  context.set("env.dir", src.dir);
  context.set("env.url", primary_url);
  for (const auto& s : src.manifest.services) context.set("port." + s.name, src.port(s));
  for (const auto& [k, v] : src.manifest.params) context.set("param." + k, v);
  for (const auto& [k, v] : src.secrets) context.set("secret." + k, src.secret(v));
  return {std::move(context), primary_url};
}

Result<std::vector<std::string>> render_argv(const std::vector<std::string>& argv, const RenderContext& context,
                                             const std::string& origin) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    auto arg = render_text(argv[i], context, origin + "[" + std::to_string(i) + "]");
    if (!arg.ok()) return arg.error();
    out.push_back(std::move(arg).value());
  }
  return out;
}

Result<std::map<std::string, std::string>> render_service_env(const ServiceSpec& s, const RenderContext& context) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : s.env) {
    auto value = render_text(v, context, "prevue.json $.services." + s.name + ".env." + k);
    if (!value.ok()) return value.error();
    out[k] = std::move(value).value();
  }
  return out;
}

// A layer's settings block with every string value rendered (a Terraform
// variable may be "{{ pr.number }}" or an earlier layer's output). The
// origin names the place in prevue.json, as for a service's argv.
Result<std::string> render_settings(const std::string& settings, const std::string& provider, const RenderContext& context) {
  nlohmann::json tree = nlohmann::json::parse(settings, nullptr, false);
  if (tree.is_discarded()) return make_error(ErrorCode::kInvalidArgument, "prevue.json $." + provider + " is not a JSON object");
  std::function<Status(nlohmann::json&, const std::string&)> walk = [&](nlohmann::json& node, const std::string& path) -> Status {
    if (node.is_string()) {
      auto rendered = render_text(node.get<std::string>(), context, "prevue.json " + path);
      if (!rendered.ok()) return rendered.error();
      node = std::move(rendered).value();
    } else if (node.is_object()) {
      for (auto& [key, value] : node.items()) PREVUE_TRY(walk(value, path + "." + key));
    } else if (node.is_array()) {
      for (size_t i = 0; i < node.size(); ++i) PREVUE_TRY(walk(node[i], path + "[" + std::to_string(i) + "]"));
    }
    return {};
  };
  PREVUE_TRY(walk(tree, "$." + provider));
  return tree.dump();
}

// A template's source as read from git at `commit`.
using TemplateSource = Result<std::optional<std::string>>;

Result<std::string> render_template(const TemplateSource& source, const std::string& commit, const TemplateFile& t,
                                    const RenderContext& context) {
  if (!source.ok()) return source.error();
  if (!source->has_value())
    return make_error(ErrorCode::kNotFound, "template " + t.source + " does not exist at commit " + short_sha(commit));
  return render_text(**source, context, t.source);
}

// Whether `text` names service `service`'s port or the link of a route it answers.
bool mentions_service(const std::string& text, const Manifest& m, const std::string& service) {
  auto mentions = [&](const std::string& name) {
    for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + 1)) {
      size_t end = at + name.size();
      if (end == text.size() || !(std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_' || text[end] == '-'))
        return true;
    }
    return false;
  };
  if (mentions("port." + service)) return true;
  for (const auto& route : m.routes)
    if (route.service == service && mentions("url." + route.name)) return true;
  return false;
}

// A service's revision changes exactly when something it is built from does:
// the tree ids of its declared paths (the whole commit when it declares
// none), the manifest itself, and the revisions of the services whose port
// or link it is given (in its command, environment or a template among its
// paths): a service that moves to a new port takes its clients along.
Result<std::map<std::string, std::string>> service_revisions(const GitMirror& git, const Manifest& m, const std::string& commit,
                                                             const std::string& config_commit) {
  std::map<std::string, std::string> own;
  auto manifest_id = git.entry_id(config_commit, std::string(kManifestPath));
  if (!manifest_id.ok()) return manifest_id.error();
  for (const auto& service : m.services) {
    std::string material = *manifest_id;
    if (service.paths.empty()) material += ":" + commit;
    for (const auto& path : service.paths) {
      auto id = git.entry_id(commit, path);
      if (!id.ok()) return id.error();
      material += ":" + path + "=" + *id;
    }
    own[service.name] = material;
  }
  std::map<std::string, std::string> out;
  for (const auto& service : m.services) {
    std::string given;  // everything the service is handed
    for (const auto& arg : service.run) given += arg + "\n";
    for (const auto& arg : service.build) given += arg + "\n";
    for (const auto& [k, v] : service.env) given += v + "\n";
    for (const auto& t : m.templates) {
      bool its_own = std::any_of(service.paths.begin(), service.paths.end(), [&](const std::string& p) {
        return p == "." || t.source == p || t.source.rfind(p + "/", 0) == 0;
      });
      if (!its_own) continue;
      auto text = git.read_file(config_commit, t.source);
      if (text.ok() && text->has_value()) given += **text + "\n";
    }
    std::string material = own[service.name];
    for (const auto& other : m.services)
      if (other.name != service.name && mentions_service(given, m, other.name)) material += "|" + other.name + ":" + own[other.name];
    out[service.name] = stable_hash_hex(material);
  }
  return out;
}

}  // namespace

Engine::Engine(EngineConfig config, Store& store, ProcessRunner& runner, const Clock& clock)
    : config_(std::move(config)),
      store_(store),
      runner_(runner),
      clock_(clock),
      providers_(runner, config_.provider_dir),
      pool_refiller_(config_.pool_refiller ? config_.pool_refiller : std::make_shared<pg::PoolRefiller>()),
      redact_(config_.secrets) {
  remember_postgres_servers();
}

// The servers of the config, kept in the state directory (mode 0600: the
// URLs hold passwords) for the commands that run without it; and the secret
// environments' database passwords are derived from.
void Engine::remember_postgres_servers() {
  const fs::path kept = config_.state_dir / "postgres.json";
  std::error_code ec;
  if (!config_.postgres_servers.empty()) {
    nlohmann::json servers = nlohmann::json::object();
    for (const auto& [name, server] : config_.postgres_servers)
      servers[name] = {{"url", server.url}, {"pool", server.pool}, {"keep_unused_ms", server.keep_unused.count()}, {"dumps", server.dumps}};
    auto known = read_file(kept);
    if (!known.ok() || nlohmann::json::parse(*known, nullptr, false) != servers) {
      fs::create_directories(config_.state_dir, ec);
      (void)write_file_atomic(kept, servers.dump(2) + "\n", Durability::kAtomicOnly, FileAccess::kOwnerOnly);  // URLs hold passwords
    }
  } else if (auto text = read_file(kept); text.ok()) {
    nlohmann::json servers = nlohmann::json::parse(*text, nullptr, false);
    if (servers.is_object())
      for (const auto& [name, s] : servers.items())
        if (s.is_object() && s.value("url", nlohmann::json()).is_string())
          config_.postgres_servers[name] = pg::Server{name, s["url"].get<std::string>(), s.value("pool", 2),
                                                      Millis(s.value("keep_unused_ms", std::int64_t{3'600'000})),
                                                      s.value("dumps", std::map<std::string, std::string>{})};
  }
  if (config_.postgres_servers.empty()) return;
  auto secret = kept_secret(config_.state_dir / "postgres-secret", [] { return random_hex(32); });
  postgres_secret_ = secret.ok() ? *secret : random_hex(32);  // a state that cannot be written: this process's own
}

Result<std::string> Engine::repository_key(const std::string& repo) {
  if (repo.empty()) return make_error(ErrorCode::kInvalidArgument, "no repository given (--repo PATH or URL)");
  std::error_code ec;
  if (fs::exists(repo, ec)) return fs::canonical(repo, ec).string();
  bool url = repo.find("://") != std::string::npos ||
             (repo.find('@') != std::string::npos && repo.find(':') != std::string::npos);
  if (!url) return make_error(ErrorCode::kNotFound, "repository '" + repo + "' is neither an existing path nor a URL");
  return repo;
}

ProviderRequest EngineConfig::provider_request(ProviderVerb verb, const std::string& provider, const std::string& slug, long pr,
                                               const std::string& commit) const {
  ProviderRequest r;
  r.verb = verb;
  r.state_root = envs_root().string();
  r.records_root = provider_records_root(provider).string();
  if (!slug.empty())
    r.environment = ProviderEnvironment{slug, env_dir(slug).string(), (provider_records_root(provider) / slug).string(), pr, commit};
  r.stop_grace_ms = stop_grace.count();
  if (auto it = provider_settings.find(provider); it != provider_settings.end()) r.operator_settings = it->second;
  return r;
}

Status validate_with_provider(ProviderClient& providers, const EngineConfig& config, const Manifest& manifest,
                              const std::string& origin) {
  for (const auto& layer : manifest.layers) {
    auto described = providers.describe(layer.provider);
    if (!described.ok()) return described.error();
    if (!described->can(ProviderVerb::kValidate)) continue;
    ProviderRequest r = config.provider_request(ProviderVerb::kValidate, layer.provider, "");
    r.settings = layer.provider_settings;
    for (const auto& name : layer.services) {
      const ServiceSpec& s = *manifest.find_service(name);
      ProviderService svc;
      svc.name = s.name;
      svc.build = s.build;
      svc.run = s.run;
      svc.port_name = s.port;
      svc.health_path = s.health.path;
      r.services.push_back(std::move(svc));
    }
    ProviderCall call = providers.call(layer.provider, r, Millis(60'000));
    if (!call.response.ok()) return call.response.error();
    if (call.response->ok) continue;
    std::string message = origin + ": provider '" + layer.provider + "' refuses " +
                          (manifest.short_form ? std::string("it") : "layer '" + layer.name + "'") + ":";
    for (const auto& p : call.response->problems) {
      // The provider names paths in its block ("$.local.update"); in a layer, that block is the layer's.
      std::string path = p.path;
      if (!manifest.short_form && path.rfind("$", 0) == 0) {
        auto index = std::to_string(&layer - manifest.layers.data());
        path = "$.layers[" + index + "]" + path.substr(1);
      }
      message += "\n  " + path + " " + p.message;
    }
    if (call.response->problems.empty()) message += " " + call.response->error_message;
    return make_error(ErrorCode::kInvalidArgument, message);
  }
  return {};
}

std::string EngineConfig::public_url(const std::string& host) const {
  std::string url = public_url_template;
  if (auto at = url.find("{host}"); at != std::string::npos) url.replace(at, 6, host);
  return url;
}

Result<RepositoryRecord> Engine::repository(const std::string& repo) {
  auto key = repository_key(repo);
  if (!key.ok()) return key.error();
  std::string name = repo_short_name(*key);
  const std::string hex = stable_hash_hex(*key);
  fs::path mirror = config_.state_dir / "mirrors" / (name + "-" + hex.substr(0, 8) + ".git");
  return store_.upsert_repository(*key, name, mirror.string());
}

// One `up`'s state: each step of the plan reads what the steps before it
// wrote here, and nothing else passes between them.
struct UpRun {
  const UpRequest& request;
  RepositoryRecord repo;
  EnvironmentRecord env;
  CurrentEnvironment current;  // as stored when the run began: what the plan step plans from
  UpResult& result;
  std::vector<PlanStep> steps;  // walked in order; the plan step appends to them

  std::optional<GitMirror> git;
  std::string commit;
  std::string config_commit;  // where prevue.json, templates and seeds are read: the commit, or the base's for a fork
  Manifest manifest;
  std::vector<TemplateSource> template_sources;  // as manifest.templates, read once (the plan step)
  std::map<std::string, std::string> revisions;
  struct LayerState {
    ProviderResponse allocated;
    ProviderResponse applied;
    std::vector<ProviderService> services;  // rendered, for apply
  };
  std::vector<LayerState> layers;  // as manifest.layers
  RenderContext context;
  std::map<std::string, std::string> shared_env;
  std::string url;
  // What postgres seeds made ({{ seed.NAME.… }}, and PG* for the services):
  // they run before the context is made, which then takes these in.
  std::map<std::string, std::string> seed_values;
  std::map<std::string, std::string> seed_env;
  std::vector<std::pair<std::string, std::string>> pools_used;  // (server, key): refilled after the run

  // Where a service answers: what its layer's apply reported, else what allocate reserved.
  Endpoint endpoint_of(const std::string& service) const {
    const Layer* layer = manifest.layer_of_service(service);
    if (layer == nullptr) return {};
    const LayerState& state = layers[static_cast<size_t>(layer - manifest.layers.data())];
    if (const ServiceStatus* s = state.applied.service(service); s && !s->endpoint.empty()) return s->endpoint;
    if (const ServiceStatus* s = state.allocated.service(service)) return s->endpoint;
    return {};
  }
};

UpResult Engine::up(const UpRequest& request) {
  auto started = std::chrono::steady_clock::now();
  auto child_before = runner_.child_time();
  UpResult result;
  auto finish = [&](UpResult& r) -> UpResult& {
    r.total = std::chrono::steady_clock::now() - started;
    r.child = runner_.child_time() - child_before;
    return r;
  };
  auto fail_early = [&](const std::string& message) -> UpResult {
    result.error = message;
    return finish(result);
  };
  auto init_started = std::chrono::steady_clock::now();
  init_git_library();
  result.library_init = std::chrono::steady_clock::now() - init_started;
  if (request.pr <= 0) return fail_early("the PR number must be a positive integer");
  if (request.ref.empty() && request.sha.empty()) return fail_early("give --ref or --sha");
  auto repo = repository(request.repo);
  if (!repo.ok()) return fail_early(repo.error().message);

  // Find or create the environment row first, so every later failure is visible in `prevue ls`.
  auto existing = store_.find_environment(repo->id, request.pr);
  if (!existing.ok()) return fail_early(existing.error().message);
  EnvironmentRecord env;
  if (existing->has_value()) {
    env = **existing;
  } else {
    env.repo_id = repo->id;
    env.pr = request.pr;
    env.slug = make_slug(repo->key, request.pr, request.ref);
    env.dir = config_.env_dir(env.slug).string();
    auto inserted = store_.insert_environment(env);
    if (inserted.ok()) {
      env = *inserted;
    } else {
      // Another `prevue up` for the same PR may have created it a moment ago.
      auto raced = store_.find_environment(repo->id, request.pr);
      if (!raced.ok() || !raced->has_value()) return fail_early(inserted.error().message);
      env = **raced;
    }
  }
  // One run per environment at a time, across processes.
  FileLock lock(config_.state_dir / "locks" / (env.slug + ".lock"));
  // Re-read under the lock: another process may have changed it meanwhile.
  if (auto fresh = store_.find_environment_by_slug(env.slug); fresh.ok() && fresh->has_value()) env = **fresh;
  if (env.state == EnvState::kDestroying)
    return fail_early("environment " + env.slug + " is being torn down; run `prevue down " + env.slug + "` to finish first");
  if (env.state == EnvState::kDestroyed) {
    env.state = EnvState::kPending;
    env.failed_step.clear();
    env.error.clear();
    if (auto s = store_.update_environment(env); !s.ok()) return fail_early(s.error().message);
  }

  auto run_record = store_.begin_run(env.id, RunKind::kUp, request.sha);
  if (!run_record.ok()) return fail_early(run_record.error().message);
  (void)store_.append_timeline(env.id, "received",
                               "up requested at " + (request.sha.empty() ? request.ref : request.sha.substr(0, 12)), 0);
  CurrentEnvironment current{env.state, env.deployed_sha, env.seeded, decode_revisions(env.service_revisions), env.layers};
  env.state = EnvState::kProvisioning;
  env.ref = request.ref;
  env.failed_step.clear();
  env.error.clear();
  if (auto s = store_.update_environment(env); !s.ok()) return fail_early(s.error().message);

  UpRun run{request, *repo, env, current, result, up_prelude()};
  StepRecorder steps(store_, runner_, run_record->id, env.id, redact_, request.cancelled, &request);
  // The plan step appends to the plan while it is walked: index, and copy each step.
  for (size_t i = 0; i < run.steps.size(); ++i) {
    const PlanStep step = run.steps[i];
    if (!steps.run(step.name, [&](std::string& log) { return up_step(run, step, log); })) break;
  }
  env = run.env;

  if (steps.failed() && steps.superseded()) {
    // Left `provisioning`: the newer commit's run resumes from here.
    (void)store_.finish_run(run_record->id, RunState::kFailed, steps.error());
    (void)store_.append_timeline(env.id, "superseded", steps.error(), 0);
    result.failed_step = steps.failed_step();
    result.error = steps.error();
  } else if (steps.failed()) {
    env.state = EnvState::kFailed;
    env.failed_step = steps.failed_step();
    env.error = steps.error();
    (void)store_.update_environment(env);
    (void)store_.finish_run(run_record->id, RunState::kFailed, steps.error());
    (void)store_.append_timeline(env.id, "failed", steps.failed_step() + ": " + steps.error(), 0);
    result.failed_step = steps.failed_step();
    result.error = steps.error();
    result.log_tail = tail_lines(steps.log(), kLogTailLines);
  } else {
    (void)store_.finish_run(run_record->id, RunState::kSucceeded, "");
    result.ok = true;
  }
  // A pool a run drew from (or found empty) is refilled off its path.
  for (const auto& [server, key] : run.pools_used)
    if (const pg::Server* s = postgres_server(server)) pool_refiller_->request(*s, key);
  result.environment = env;
  return finish(result);
}

Status Engine::up_step(UpRun& run, const PlanStep& step, std::string& log) {
  switch (step.kind) {
    case StepKind::kFetch: return fetch_step(run, log);
    case StepKind::kResolve: return resolve_step(run, log);
    case StepKind::kManifest: return manifest_step(run, log);
    case StepKind::kPlan: return plan_step(run, log);
    case StepKind::kRetire: return retire_step(run, step, log);
    case StepKind::kAllocate: return allocate_step(run, step, log);
    case StepKind::kRender: return render_step(run, step, log);
    case StepKind::kApply: return apply_step(run, step, log);
    case StepKind::kSeed: return seed_step(run, step, log);
    case StepKind::kRoutes: return routes_step(run, log);
    case StepKind::kPrune: return prune_step(run, step, log);
    case StepKind::kReady: return ready_step(run, log);
    case StepKind::kDestroy:
    case StepKind::kUnroute:
    case StepKind::kSleep: break;
  }
  return make_error(ErrorCode::kInternal, std::string("step ") + to_string(step.kind) + " is not part of an up");
}

Result<ProviderResponse> Engine::call_layer(UpRun& run, size_t layer, ProviderVerb verb, std::vector<ProviderService> services,
                                            std::string& log) {
  const Layer& spec = run.manifest.layers[layer];
  ProviderRequest r = config_.provider_request(verb, spec.provider, run.env.slug, run.env.pr, run.commit);
  PREVUE_ASSIGN_OR_RETURN(r.settings, render_settings(spec.provider_settings, spec.provider, run.context));
  if (verb == ProviderVerb::kApply) {
    r.environment.repository = run.repo.key;
    r.environment.ref = run.request.ref;
    r.environment.url = run.url;
    // The lease this run will leave, for providers that label it (kube-janitor's janitor/expires).
    if (LeaseRecord lease = renewed_lease(run); !lease.pinned) r.environment.lease_deadline_ms = lease.deadline();
  }
  r.services = std::move(services);
  ProviderCall call = providers_.call(spec.provider, r, config_.provider_timeout, run.request.cancelled);
  log += call.log;
  if (!call.response.ok()) return call.response.error();
  if (!call.response->ok)
    return make_error(ErrorCode::kProvider, call.response->error_message.empty() ? "provider failed" : call.response->error_message);
  return std::move(call.response).value();
}

Status Engine::fetch_step(UpRun& run, std::string& log) {
  auto opened = GitMirror::open(run.repo.mirror_path, run.repo.key);
  if (!opened.ok()) return opened.error();
  run.git.emplace(std::move(opened).value());
  PREVUE_TRY(run.git->fetch());
  log += "fetched " + run.repo.key + " into " + run.repo.mirror_path + "\n";
  return {};
}

Status Engine::resolve_step(UpRun& run, std::string& log) {
  const UpRequest& request = run.request;
  auto resolved = request.sha.empty() ? run.git->resolve_ref(request.ref) : run.git->resolve_sha(request.sha);
  if (!resolved.ok() && !request.sha.empty() && !request.ref.empty())
    return make_error(resolved.error().code, resolved.error().message + " (ref " + request.ref + ")");
  if (!resolved.ok()) return resolved.error();
  run.commit = resolved->sha;
  run.config_commit = run.commit;
  run.env.commit_sha = run.commit;
  log += (request.sha.empty() ? request.ref : request.sha) + " is commit " + run.commit + "\n";
  if (!request.config_ref.empty()) {
    auto base = run.git->resolve_ref(request.config_ref);
    if (!base.ok()) return make_error(base.error().code, "untrusted pull request: its base " + base.error().message);
    run.config_commit = base->sha;
    log += "untrusted pull request (from a fork): prevue.json, templates and seeds come from " + request.config_ref + " at " +
           run.config_commit + "; only the application code from " + short_sha(run.commit) + "\n";
  }
  return store_.update_environment(run.env);
}

Status Engine::manifest_step(UpRun& run, std::string& log) {
  auto parsed = read_manifest(*run.git, run.config_commit, run.request.ref.empty() ? run.request.sha : run.request.ref);
  if (!parsed.ok()) return parsed.error();
  run.manifest = std::move(parsed).value();
  PREVUE_TRY(validate_with_provider(providers_, config_, run.manifest, "prevue.json at " + short_sha(run.config_commit)));
  run.layers.assign(run.manifest.layers.size(), {});
  log += "read prevue.json: " + std::to_string(run.manifest.services.size()) + " service(s)";
  for (const auto& layer : run.manifest.layers)
    log += (&layer == &run.manifest.layers.front() ? "; layers: " : ", ") + layer.name + " (" + layer.provider + ")";
  log += "\n";
  return {};
}

Status Engine::plan_step(UpRun& run, std::string& log) {
  auto revs = service_revisions(*run.git, run.manifest, run.commit, run.config_commit);
  if (!revs.ok()) return revs.error();
  run.revisions = std::move(revs).value();
  std::vector<int> template_layers;
  run.template_sources.clear();
  for (const auto& t : run.manifest.templates) {
    const TemplateSource& text = run.template_sources.emplace_back(run.git->read_file(run.config_commit, t.source));
    template_layers.push_back(text.ok() && text->has_value() ? run.manifest.last_output_layer(**text) : -1);
  }
  Plan plan = make_plan(run.manifest, run.commit, &run.current, run.revisions, template_layers);
  run.result.plan = describe_plan(plan);
  log += run.result.plan;
  // Recorded before anything runs, so a teardown (or a crash) finds every
  // provider that may hold something: the new layers, and the retiring
  // ones until their retire step is done.
  std::vector<EnvironmentLayer> layers;
  for (const auto& step : plan.steps)
    if (step.kind == StepKind::kRetire) layers.push_back(step.target);
  for (auto& layer : recorded_layers(run.manifest)) layers.push_back(std::move(layer));
  run.env.layers = std::move(layers);
  PREVUE_TRY(store_.update_environment(run.env));
  for (auto& step : plan.steps) run.steps.push_back(std::move(step));
  return store_.append_timeline(run.env.id, "planned", std::string(to_string(plan.action)) + " at " + short_sha(run.commit), 0);
}

Status Engine::retire_step(UpRun& run, const PlanStep& step, std::string& log) {
  EnvironmentRecord& env = run.env;
  PREVUE_TRY(environment_verb(env, step.target, ProviderVerb::kDestroy, log));
  log += "provider " + step.target.provider + " destroyed what it ran; the environment starts afresh\n";
  PREVUE_TRY(store_.replace_routes(env.id, {}));
  std::erase(env.layers, step.target);
  env.deployed_sha.clear();
  env.seeded = false;
  env.service_revisions.clear();
  return store_.update_environment(env);
}

Status Engine::allocate_step(UpRun& run, const PlanStep& step, std::string& log) {
  const auto layer = static_cast<size_t>(step.layer);
  std::vector<ProviderService> services;
  for (const auto& name : run.manifest.layers[layer].services) {
    const ServiceSpec& s = *run.manifest.find_service(name);
    ProviderService svc{s.name, "", {}, 0, {}, {}, s.port};
    svc.revision = run.revisions[s.name];  // a provider updating without downtime gives a changed service a new endpoint
    services.push_back(std::move(svc));
  }
  auto response = call_layer(run, layer, ProviderVerb::kAllocate, std::move(services), log);
  if (!response.ok()) return response.error();
  run.layers[layer].allocated = std::move(response).value();
  for (const auto& name : run.manifest.layers[layer].services) {
    Endpoint endpoint = run.endpoint_of(name);
    log += name + ": " + (endpoint.empty() ? "no endpoint" : endpoint.text()) + "\n";
  }
  return {};
}

Status Engine::export_files(UpRun& run, std::string& log) {
  const fs::path dir = run.env.dir;
  std::error_code ec;
  const fs::path records = config_.records_dir(run.env.slug);
  fs::create_directories(records, ec);
  fs::create_directories(dir, ec);
  // "<blob id> <path>" per line, from the previous deploy.
  std::map<std::string, std::string> previous;
  if (auto text = read_file(records / kExportedList); text.ok()) {
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      auto space = line.find(' ');
      if (space != std::string::npos) previous[line.substr(space + 1)] = line.substr(0, space);
    }
  }
  std::map<std::string, std::string> exported;
  for (const auto& path : run.manifest.export_paths) {
    auto files = run.git->export_tree(run.commit, path, dir, &previous);
    if (!files.ok()) return files.error();
    for (const auto& f : *files) exported[f.path] = f.blob_sha;
  }
  // Files an earlier commit exported that this one no longer has.
  for (const auto& [path, blob] : previous) {
    if (!exported.count(path) && is_safe_relative_path(path)) fs::remove(dir / path, ec);
  }
  std::string listing;
  for (const auto& [path, blob] : exported) listing += blob + " " + path + "\n";
  PREVUE_TRY(write_file_atomic(records / kExportedList, listing, Durability::kAtomicOnly));
  log += "exported " + std::to_string(exported.size()) + " file(s) at " + short_sha(run.commit) + "\n";
  return {};
}

Status Engine::render_step(UpRun& run, const PlanStep& step, std::string& log) {
  EnvironmentRecord& env = run.env;
  const fs::path dir = env.dir;
  if (step.layer == 0) {
    // Context first: templates and service commands see the same values.
    ContextSource src{run.manifest, env.slug, env.dir, run.commit, config_.preview_domain, env.pr,
                      [&](const ServiceSpec& s) {
                        Endpoint endpoint = run.endpoint_of(s.name);
                        return endpoint.empty() ? std::string() : std::to_string(endpoint.port);
                      },
                      [&](const RouteSpec& route, const std::string& host) {
                        if (!config_.public_url_template.empty()) return config_.public_url(host);
                        // Straight at the service: unknown until apply where the provider picks the port (Docker does).
                        Endpoint endpoint = run.endpoint_of(route.service);
                        return endpoint.empty() ? std::string() : "http://" + endpoint.text() + "/";
                      },
                      // An untrusted pull request gets no secrets: the names render empty.
                      [&](const std::string& value) { return run.request.config_ref.empty() ? value : std::string(); },
                      config_.secrets};
    std::tie(run.context, run.url) = make_context(src);
    run.shared_env = {{"ENV_NAME", "preview"},         {"PREVUE_SLUG", env.slug},   {"PREVUE_PR", std::to_string(env.pr)},
                      {"PREVUE_COMMIT", run.commit},   {"PREVUE_COMMIT_SHORT", short_sha(run.commit)},
                      {"PREVUE_URL", run.url},         {"PREVUE_ENV_DIR", env.dir}, {"PREVUE_REF", run.request.ref}};
    for (const auto& [name, value] : run.seed_values) run.context.set(name, value);
    for (const auto& [name, value] : run.seed_env) run.shared_env[name] = value;
    // The repository's files at the commit, then the rendered templates over them.
    PREVUE_TRY(export_files(run, log));
  }
  for (int index : step.templates) {
    const TemplateFile& t = run.manifest.templates[static_cast<size_t>(index)];
    auto rendered = render_template(run.template_sources[static_cast<size_t>(index)], run.config_commit, t, run.context);
    if (!rendered.ok()) return rendered.error();
    auto target = path_inside(dir, t.target);
    if (!target.ok()) return target.error();
    if (auto on_disk = read_file(*target); on_disk.ok() && *on_disk == *rendered) {
      log += "rendered " + t.source + " -> " + t.target + " (unchanged)\n";
      continue;
    }
    PREVUE_TRY(write_file_atomic(*target, *rendered, Durability::kAtomicOnly));
    log += "rendered " + t.source + " -> " + t.target + "\n";
  }
  if (step.layer < 0 || static_cast<size_t>(step.layer) >= run.manifest.layers.size()) return {};
  auto& services = run.layers[static_cast<size_t>(step.layer)].services;
  services.clear();
  for (const auto& name : run.manifest.layers[static_cast<size_t>(step.layer)].services) {
    const ServiceSpec& s = *run.manifest.find_service(name);
    ProviderService svc;
    svc.name = s.name;
    auto workdir = path_inside(dir, s.workdir == "." ? "./" : s.workdir + "/.");
    if (!workdir.ok()) return workdir.error();
    svc.workdir = (dir / s.workdir).lexically_normal().string();
    auto run_argv = render_argv(s.run, run.context, "prevue.json $.services." + s.name + ".run");
    if (!run_argv.ok()) return run_argv.error();
    svc.run = std::move(run_argv).value();
    auto build = render_argv(s.build, run.context, "prevue.json $.services." + s.name + ".build");
    if (!build.ok()) return build.error();
    svc.build = std::move(build).value();
    auto service_env = render_service_env(s, run.context);
    if (!service_env.ok()) return service_env.error();
    svc.env = run.shared_env;
    for (auto& [k, v] : *service_env) svc.env[k] = std::move(v);
    svc.build_timeout_ms = s.build_timeout.count();
    svc.port_name = s.port;
    svc.health_path = s.health.path;
    svc.ready_timeout_ms = s.health.timeout.count();
    svc.revision = run.revisions[s.name];
    services.push_back(std::move(svc));
  }
  return {};
}

Status Engine::apply_step(UpRun& run, const PlanStep& step, std::string& log) {
  const auto layer = static_cast<size_t>(step.layer);
  auto response = call_layer(run, layer, ProviderVerb::kApply, run.layers[layer].services, log);
  if (!response.ok()) return response.error();
  ProviderResponse& applied = run.layers[layer].applied = std::move(response).value();
  for (const auto& s : applied.services)
    log += s.name + ": " + (s.restarted ? "started" : "unchanged") + (s.pid ? " pid " + std::to_string(s.pid) : "") +
           (s.endpoint.empty() ? "" : " at " + s.endpoint.text()) + "\n";
  // Outputs are for the layers, templates and seeds after this one; sensitive ones are hidden like secrets.
  const std::string& layer_name = run.manifest.layers[layer].name;
  for (const auto& [key, output] : applied.outputs) {
    run.context.set("output." + layer_name + "." + key, output.value);
    // The short form's one layer needs no qualifying: {{ output.NAME }}.
    const std::string name = run.manifest.short_form ? key : layer_name + "." + key;
    run.context.set("output." + name, output.value);
    if (output.sensitive) redact_.add("output " + name, output.value);
    log += "output " + name + (output.sensitive ? " (sensitive)" : " = " + output.value) + "\n";
  }
  return {};
}

Status Engine::seed_step(UpRun& run, const PlanStep& step, std::string& log) {
  SeedContext seed{*run.git, run.config_commit, run.env.dir, run.context, run.shared_env, runner_};
  const SeedStep& spec = run.manifest.seed[static_cast<size_t>(step.seed_index)];
  if (spec.kind == SeedKind::kPostgres) return spec.service.empty() ? postgres_seed(run, spec, log) : postgres_seed_in_service(run, spec, log);
  if (!spec.service.empty()) return seed_in_service(run, spec, log);
  if (spec.kind != SeedKind::kCommand) PREVUE_TRY(path_inside(run.env.dir, spec.database));
  return run_seed_step(spec, seed, log);
}

const pg::Server* Engine::postgres_server(const std::string& name) const {
  if (name.empty()) return config_.postgres_servers.size() == 1 ? &config_.postgres_servers.begin()->second : nullptr;
  auto it = config_.postgres_servers.find(name);
  return it == config_.postgres_servers.end() ? nullptr : &it->second;
}

// The seed's key is what builds its template: the git ids of the dump, the
// SQL files and the paths the migration reads, the operator's dump (its
// path, size and time), and the migration command.
Result<std::string> Engine::postgres_seed_key(const UpRun& run, const SeedStep& spec, const std::string& server_dump) const {
  std::string material = "prevue postgres seed 1\n";
  std::vector<std::string> inputs;
  if (!spec.dump.empty()) inputs.push_back(spec.dump);
  inputs.insert(inputs.end(), spec.files.begin(), spec.files.end());
  inputs.insert(inputs.end(), spec.paths.begin(), spec.paths.end());
  for (const auto& path : inputs) {
    auto id = run.git->entry_id(run.config_commit, path);
    if (!id.ok()) return make_error(ErrorCode::kNotFound, "seed " + spec.name + ": " + path + " does not exist at " + short_sha(run.config_commit));
    material += path + " " + *id + "\n";
  }
  if (!server_dump.empty()) {  // the operator's dump: known by its size and time (hashing gigabytes per run would not do)
    std::error_code ec;
    auto size = fs::file_size(server_dump, ec);
    if (ec) return make_error(ErrorCode::kNotFound, "seed " + spec.name + ": the dump " + server_dump + " cannot be read: " + ec.message());
    material += "server dump " + server_dump + " " + std::to_string(size) + " " +
                std::to_string(fs::last_write_time(server_dump, ec).time_since_epoch().count()) + "\n";
  }
  material += "run " + describe_argv(spec.run) + "\nworkdir " + spec.workdir + "\n";
  if (!spec.run_in.empty()) material += "in " + spec.run_in + "\n";
  return pg::key_of(material);
}

// The operator's dump as a file here. One at an http(s) URL is kept in
// <state>/dumps/SERVER/NAME and asked for again on each run, conditionally
// (its ETag, its Last-Modified as the file's time): unchanged, the file and
// so the seed's key stay as they are; a copy whose bytes did not change is
// not taken either. When the URL does not answer, the copy kept is used.
Result<std::string> Engine::operator_dump(UpRun& run, const pg::Server& server, const SeedStep& spec, const std::string& where,
                                          std::string& log) {
  const std::string& name = spec.server_dump;
  if (where.rfind("http://", 0) != 0 && where.rfind("https://", 0) != 0) return where;
  redact_.add("dump " + name + " url", where);  // it may carry credentials
  const fs::path dir = config_.state_dir / "dumps" / server.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, ec);
  const fs::path kept = dir / name, etag = dir / (name + ".etag");
  const std::string unique = "." + std::to_string(::getpid()) + "." + std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  const fs::path incoming = dir / (name + unique + ".part"), incoming_etag = dir / (name + unique + ".etag.part");
  struct Cleanup {
    std::vector<fs::path> paths;
    ~Cleanup() {
      std::error_code ignored;
      for (const auto& p : paths) fs::remove(p, ignored);
    }
  } cleanup{{incoming, incoming_etag}};
  const bool have = fs::is_regular_file(kept, ec);
  ProcessSpec p;
  p.argv = {"curl", "--fail", "--silent", "--show-error", "--location", "--max-redirs", "5", "--proto", "=http,https", "--remote-time",
            "--etag-save", incoming_etag.string(), "--output", incoming.string(), "--write-out", "%{http_code}"};
  if (have) {
    p.argv.insert(p.argv.end(), {"--time-cond", kept.string()});
    if (fs::is_regular_file(etag, ec)) p.argv.insert(p.argv.end(), {"--etag-compare", etag.string()});
  }
  p.argv.push_back(where);
  p.timeout = spec.timeout;
  p.stop_signal = SIGTERM;
  p.cancelled = run.request.cancelled;
  auto fetched = runner_.run(p);
  const bool answered = fetched.ok() && !fetched->timed_out && !fetched->cancelled && fetched->exit_code == 0;
  if (!answered) {
    std::string why = !fetched.ok() ? fetched.error().message
                      : fetched->timed_out ? "no answer within " + format_duration(p.timeout)
                      : fetched->cancelled ? "stopped"
                                           : tail_lines(fetched->stderr_data, 3);
    if (fetched.ok() && fetched->cancelled) return make_error(ErrorCode::kCancelled, "the dump " + name + ": fetch stopped: a newer commit supersedes this run");
    if (!have) return make_error(ErrorCode::kIo, "the dump " + name + " cannot be fetched from its URL: " + redact_(why));
    log += "the dump " + name + ": its URL did not answer (" + redact_(why) + "); using the copy kept\n";
    return kept.string();
  }
  if (fetched->stdout_data == "304" || !fs::is_regular_file(incoming, ec)) {
    log += "the dump " + name + ": unchanged at its URL\n";
    return kept.string();
  }
  auto same_bytes = [](const fs::path& a, const fs::path& b) {
    std::error_code e;
    if (fs::file_size(a, e) != fs::file_size(b, e) || e) return false;
    std::ifstream x(a, std::ios::binary), y(b, std::ios::binary);
    std::vector<char> bx(1 << 16), by(1 << 16);
    while (x && y) {
      x.read(bx.data(), static_cast<std::streamsize>(bx.size()));
      y.read(by.data(), static_cast<std::streamsize>(by.size()));
      if (x.gcount() != y.gcount() || !std::equal(bx.begin(), bx.begin() + x.gcount(), by.begin())) return false;
    }
    return true;
  };
  if (have && same_bytes(incoming, kept)) {
    log += "the dump " + name + ": fetched, the same bytes as the copy kept\n";
  } else {
    fs::permissions(incoming, fs::perms::owner_read | fs::perms::owner_write, ec);
    fs::rename(incoming, kept, ec);
    if (ec) return make_error(ErrorCode::kInternal, "the dump " + name + ": cannot keep it at " + kept.string() + ": " + ec.message());
    log += "the dump " + name + ": fetched (" + std::to_string(fs::file_size(kept, ec)) + " bytes)\n";
  }
  if (fs::is_regular_file(incoming_etag, ec) && fs::file_size(incoming_etag, ec) > 0) fs::rename(incoming_etag, etag, ec);
  return kept.string();
}

// The environment gets a database at that key (kept, from the pool, or
// cloned), its URL as {{ seed.NAME.url }} and, for the first postgres seed,
// the PG* variables; the password is derived, and redacted like a secret.
Status Engine::postgres_seed(UpRun& run, const SeedStep& spec, std::string& log) {
  const pg::Server* server = postgres_server(spec.server);
  if (!server) {
    std::string known;
    for (const auto& [name, s] : config_.postgres_servers) known += (known.empty() ? "" : ", ") + name;
    return make_error(ErrorCode::kInvalidArgument,
                      "seed " + spec.name + ": " +
                          (spec.server.empty() ? std::string("name its PostgreSQL server (\"server\")")
                                               : "no PostgreSQL server '" + spec.server + "'") +
                          " in prevue's config (\"postgres\"; " + (known.empty() ? "none configured" : "configured: " + known) + ")");
  }
  std::string server_dump;  // the operator's dump, by its path
  if (!spec.server_dump.empty()) {
    auto it = server->dumps.find(spec.server_dump);
    if (it == server->dumps.end())
      return make_error(ErrorCode::kNotFound, "seed " + spec.name + ": PostgreSQL server " + server->name + " has no dump called '" +
                                                  spec.server_dump + "' in prevue's config (postgres." + server->name + ".dumps)");
    PREVUE_ASSIGN_OR_RETURN(server_dump, operator_dump(run, *server, spec, it->second, log));
  }
  PREVUE_ASSIGN_OR_RETURN(const std::string key, postgres_seed_key(run, spec, server_dump));
  const std::string password = pg::derive_password(postgres_secret_, run.env.slug + "/" + spec.name + "/" + server->name);
  redact_.add("seed " + spec.name + " password", password);

  auto build = [&](const pg::ConnectionInfo& building, std::string& build_log) -> Status {
    const fs::path scratch = config_.state_dir / "tmp" / ("seed-" + key + "-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(scratch, ec);
    fs::create_directories(scratch, ec);
    struct Cleanup {
      fs::path dir;
      ~Cleanup() {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
      }
    } cleanup{scratch};
    std::map<std::string, std::string> pg_env{{"PGHOST", building.host},         {"PGPORT", building.port},
                                              {"PGUSER", building.user},         {"PGPASSWORD", building.password},
                                              {"PGDATABASE", building.database}, {"DATABASE_URL", building.url()}};
    auto run_tool = [&](std::vector<std::string> argv, const fs::path& cwd, const std::string& what) -> Status {
      ProcessSpec p;
      p.argv = std::move(argv);
      p.cwd = cwd;
      p.env = pg_env;
      p.timeout = spec.timeout;
      p.stop_signal = SIGTERM;
      p.stop_grace = Millis(5'000);
      p.cancelled = run.request.cancelled;
      build_log += "$ " + describe_argv(p.argv) + "\n";
      auto outcome = runner_.run(p);
      if (!outcome.ok()) return make_error(outcome.error().code, "seed " + spec.name + ": " + what + ": " + outcome.error().message);
      build_log += outcome->stdout_data + outcome->stderr_data;
      if (outcome->timed_out) return make_error(ErrorCode::kTimeout, "seed " + spec.name + ": " + what + " did not finish within " + format_duration(spec.timeout));
      if (outcome->cancelled) return make_error(ErrorCode::kCancelled, "seed " + spec.name + ": " + what + " stopped: a newer commit supersedes this run");
      if (outcome->exit_code != 0)
        return make_error(ErrorCode::kInvalidArgument, "seed " + spec.name + ": " + what + " failed (exit " + std::to_string(outcome->exit_code) +
                                                           "):\n" + tail_lines(outcome->stderr_data + outcome->stdout_data, 20));
      return {};
    };
    // pg_dump's custom format starts "PGDMP"; anything else is SQL text.
    auto restore = [&](const fs::path& file, const std::string& what) -> Status {
      std::ifstream in(file, std::ios::binary);
      char magic[5] = {};
      in.read(magic, sizeof magic);
      if (std::string_view(magic, static_cast<size_t>(in.gcount())) == "PGDMP")
        PREVUE_TRY(run_tool({"pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", building.database, file.string()},
                            scratch, "restoring " + what));
      else
        PREVUE_TRY(run_tool({"psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--file", file.string()},
                            scratch, "loading " + what));
      build_log += "restored " + what + "\n";
      return {};
    };
    if (!spec.dump.empty()) {
      auto dump = run.git->read_file(run.config_commit, spec.dump);
      if (!dump.ok()) return dump.error();
      if (!dump->has_value()) return make_error(ErrorCode::kNotFound, "seed " + spec.name + ": " + spec.dump + " is missing");
      const fs::path file = scratch / "seed.dump";
      PREVUE_TRY(write_file_atomic(file, **dump, Durability::kAtomicOnly));
      PREVUE_TRY(restore(file, spec.dump));
    }
    if (!server_dump.empty()) PREVUE_TRY(restore(server_dump, "the dump " + spec.server_dump + " (" + server_dump + ")"));
    if (!spec.files.empty()) {
      PREVUE_ASSIGN_OR_RETURN(pg::Connection conn, pg::Connection::open(building));
      for (const auto& file : spec.files) {
        auto sql = run.git->read_file(run.config_commit, file);
        if (!sql.ok()) return sql.error();
        if (!sql->has_value()) return make_error(ErrorCode::kNotFound, "seed " + spec.name + ": " + file + " is missing");
        // One file, one transaction (the simple protocol runs a script's statements as one).
        if (Status applied = conn.exec(**sql); !applied.ok())
          return make_error(ErrorCode::kInvalidArgument, "seed " + spec.name + ": SQL error in " + file + ": " + applied.error().message);
        build_log += "applied " + file + "\n";
      }
    }
    if (!spec.run.empty()) {
      // The migration reads the repository: its files at the commit, in the scratch directory.
      for (const auto& path : run.manifest.export_paths)
        if (auto exported = run.git->export_tree(run.config_commit, path, scratch / "repo", nullptr); !exported.ok()) return exported.error();
      PREVUE_TRY(path_inside(scratch / "repo", spec.workdir == "." ? "./" : spec.workdir + "/."));  // no way out of the checkout
      PREVUE_TRY(run_tool(spec.run, (scratch / "repo" / spec.workdir).lexically_normal(), "the migration " + describe_argv(spec.run)));
    }
    return {};
  };
  auto handed = pg::hand_over(*server, run.env.slug, spec.name, key, password, build, log);
  if (!handed.ok()) return make_error(handed.error().code, handed.error().message.rfind("seed ", 0) == 0
                                                               ? handed.error().message
                                                               : "seed " + spec.name + ": " + handed.error().message);
  const pg::ConnectionInfo& db = handed->connection;
  const std::string prefix = "seed." + spec.name + ".";
  run.seed_values[prefix + "url"] = db.url();
  run.seed_values[prefix + "host"] = db.host;
  run.seed_values[prefix + "port"] = db.port;
  run.seed_values[prefix + "database"] = db.database;
  run.seed_values[prefix + "user"] = db.user;
  run.seed_values[prefix + "password"] = db.password;
  redact_.add("seed " + spec.name + " url", db.url());
  bool first = std::none_of(run.manifest.seed.begin(), run.manifest.seed.begin() + (&spec - run.manifest.seed.data()),
                            [](const SeedStep& s) { return s.kind == SeedKind::kPostgres; });
  if (first)
    run.seed_env = {{"PGHOST", db.host}, {"PGPORT", db.port}, {"PGDATABASE", db.database}, {"PGUSER", db.user}, {"PGPASSWORD", db.password}};
  run.pools_used.emplace_back(server->name, key);
  return {};
}

// One call to the provider of the seed's layer, aimed at one of its
// services: a command run inside it (`exec`, with `env`), or a file put in
// whole (`put`). Returns what the provider logged.
Result<std::string> Engine::call_in_service(UpRun& run, const SeedStep& spec, const ServiceCall& call) {
  const Layer* layer = run.manifest.seed_layer(spec);
  const bool exec = call.put_source.empty();
  auto described = providers_.describe(layer->provider);
  if (!described.ok()) return described.error();
  if (!described->can(exec ? ProviderVerb::kExec : ProviderVerb::kPut))
    return make_error(ErrorCode::kInvalidArgument, "seed " + spec.name + ": provider " + layer->provider + " cannot " +
                                                       (exec ? "run a command" : "put a file") + " inside service " + call.service);
  ProviderRequest r = config_.provider_request(exec ? ProviderVerb::kExec : ProviderVerb::kPut, layer->provider, run.env.slug,
                                               run.env.pr, run.commit);
  r.settings = layer->provider_settings;
  r.exec_timeout_ms = spec.timeout.count();
  ProviderService target;
  target.name = call.service;
  target.run = call.argv;
  target.env = call.env;
  r.services.push_back(std::move(target));
  r.put_source = call.put_source;
  r.put_target = call.put_target;
  ProviderCall done = providers_.call(layer->provider, r, spec.timeout + config_.stop_grace + Millis(30'000), run.request.cancelled);
  if (!done.response.ok()) return done.response.error();
  if (!done.response->ok)
    return make_error(ErrorCode::kProvider, "seed " + spec.name + ": " + done.response->error_message +
                                                (done.response->log.empty() ? "" : ":\n" + tail_lines(done.response->log, 20)));
  return done.response->log;
}

// A seed that targets a service: the provider of the service's layer runs
// a command inside it (`exec`, with the environment's variables), or takes
// a SQLite database built here from the repository and puts it in whole
// (`put`: the service sees the old file or the finished one, never a half).
Status Engine::seed_in_service(UpRun& run, const SeedStep& spec, std::string& log) {
  ServiceCall call{spec.service};
  std::filesystem::path built;  // the database made here, removed once put
  if (spec.kind == SeedKind::kCommand) {
    auto argv = render_argv(spec.run, run.context, "prevue.json seed " + spec.name + " run");
    if (!argv.ok()) return argv.error();
    call.argv = std::move(argv).value();
    call.env = run.shared_env;
    log += "$ (in " + spec.service + ") " + describe_argv(call.argv) + "\n";
  } else {
    const std::filesystem::path scratch = config_.records_dir(run.env.slug);
    std::error_code ec;
    std::filesystem::create_directories(scratch, ec);
    SeedStep here = spec;
    here.database = "seed-" + dns_words(spec.name, 40) + ".db";
    built = scratch / here.database;
    std::filesystem::remove(built, ec);  // from an interrupted run: the database is made from scratch
    SeedContext context{*run.git, run.config_commit, scratch, run.context, run.shared_env, runner_};
    Status made = run_seed_step(here, context, log);
    if (!made.ok()) {
      std::filesystem::remove(built, ec);
      return made;
    }
    call.put_source = built.string();
    call.put_target = spec.database;
    log += "putting it into " + spec.service + " at " + spec.database + "\n";
  }
  auto done = call_in_service(run, spec, call);
  if (!built.empty()) {
    std::error_code ec;
    std::filesystem::remove(built, ec);
  }
  if (!done.ok()) return done.error();
  log += *done;
  return {};
}

// A postgres seed in the environment's own service (a compose file's `db`):
// PostgreSQL's client tools run inside that container (`exec`, as `user`
// over its local socket). The database is built under a name of its own,
// then swapped in for `database` and marked with the seed's key (its
// comment), so a push that leaves the key alone keeps it, and what
// reviewers wrote; a crash midway leaves the old database, or one without
// the mark, and the next run builds again.
Status Engine::postgres_seed_in_service(UpRun& run, const SeedStep& spec, std::string& log) {
  PREVUE_ASSIGN_OR_RETURN(const std::string key, postgres_seed_key(run, spec, ""));
  std::string password;
  if (!spec.password.empty()) {
    PREVUE_ASSIGN_OR_RETURN(password, render_text(spec.password, run.context, "prevue.json seed " + spec.name + " password"));
    redact_.add("seed " + spec.name + " password", password);
  }
  // Names are letters, digits and '_' (the manifest checks), so quoting them is enough.
  auto ident = [](const std::string& name) { return "\"" + name + "\""; };
  const std::string marker = "prevue seed=" + spec.name + " key=" + key;
  const std::string building = "prevue_build_" + spec.name;
  const std::string scratch_in_container = "/tmp/prevue-seed-" + spec.name;
  auto exec = [&](const std::string& service, std::vector<std::string> argv, std::map<std::string, std::string> env = {}) {
    return call_in_service(run, spec, ServiceCall{service, std::move(argv), std::move(env)});
  };
  auto psql = [&](const std::string& database, const std::vector<std::string>& statements) {
    std::vector<std::string> argv{"psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set", "ON_ERROR_STOP=1",
                                  "--username", spec.user, "--dbname", database};
    for (const auto& statement : statements) argv.insert(argv.end(), {"--command", statement});
    return exec(spec.service, std::move(argv));
  };

  // The server may still be starting: wait until it takes connections.
  const auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  for (;;) {
    auto ready = psql("postgres", {"SELECT 1"});
    if (ready.ok()) break;
    if (ready.error().code == ErrorCode::kCancelled || (run.request.cancelled && run.request.cancelled->load()))
      return make_error(ErrorCode::kCancelled, "seed " + spec.name + ": stopped: a newer commit supersedes this run");
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(ErrorCode::kTimeout, "seed " + spec.name + ": PostgreSQL in " + spec.service + " took no connection within " +
                                                 format_duration(spec.timeout) + ": " + ready.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  PREVUE_ASSIGN_OR_RETURN(std::string current,
                          psql("postgres", {"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '" +
                                                spec.database + "'"}));
  std::istringstream lines(current);
  for (std::string line; std::getline(lines, line);)
    if (line == marker) {
      log += "database " + spec.database + " in " + spec.service + ": kept (seed " + key + " unchanged)\n";
      return {};
    }

  auto build = [&]() -> Status {
    PREVUE_TRY(psql("postgres", {"DROP DATABASE IF EXISTS " + ident(building) + " WITH (FORCE)",
                                                                "CREATE DATABASE " + ident(building)}));
    log += "building " + building + " in " + spec.service + " (seed " + key + ")\n";
    // A file from the repository, put into the container, then loaded there.
    auto load = [&](const std::string& path, bool whole_dump) -> Status {
      auto content = run.git->read_file(run.config_commit, path);
      if (!content.ok()) return content.error();
      if (!content->has_value()) return make_error(ErrorCode::kNotFound, "seed " + spec.name + ": " + path + " is missing");
      const fs::path here = config_.records_dir(run.env.slug) / ("seed-" + spec.name + ".in");
      std::error_code ec;
      fs::create_directories(here.parent_path(), ec);
      PREVUE_TRY(write_file_atomic(here, **content, Durability::kAtomicOnly));
      auto put = call_in_service(run, spec, ServiceCall{spec.service, {}, {}, here.string(), scratch_in_container});
      fs::remove(here, ec);
      if (!put.ok()) return put.error();
      // pg_dump's custom format starts "PGDMP"; anything else is SQL text, in one transaction.
      const bool custom = whole_dump && (*content)->rfind("PGDMP", 0) == 0;
      std::vector<std::string> argv =
          custom ? std::vector<std::string>{"pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--username", spec.user,
                                            "--dbname", building, scratch_in_container}
                 : std::vector<std::string>{"psql", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--single-transaction",
                                            "--username", spec.user, "--dbname", building, "--file", scratch_in_container};
      log += "$ (in " + spec.service + ") " + describe_argv(argv) + "\n";
      auto loaded = exec(spec.service, std::move(argv));
      (void)exec(spec.service, {"rm", "-f", "--", scratch_in_container});
      if (!loaded.ok()) return make_error(loaded.error().code, "seed " + spec.name + ": loading " + path + ": " + loaded.error().message);
      log += *loaded + (whole_dump ? "restored " : "applied ") + path + "\n";
      return {};
    };
    if (!spec.dump.empty()) PREVUE_TRY(load(spec.dump, true));
    for (const auto& file : spec.files) PREVUE_TRY(load(file, false));
    if (!spec.run.empty()) {
      // Beside the server, over its socket; from another service, by the server's service name.
      const bool beside = spec.run_in == spec.service;
      std::map<std::string, std::string> env = run.shared_env;
      env["PGUSER"] = spec.user;
      env["PGDATABASE"] = building;
      if (!password.empty()) env["PGPASSWORD"] = password;
      if (beside) {
        env["DATABASE_URL"] = "postgres://" + spec.user + "@/" + building;
      } else {
        env["PGHOST"] = spec.service;
        env["PGPORT"] = "5432";
        env["DATABASE_URL"] = pg::ConnectionInfo{spec.service, "5432", spec.user, password, building}.url();
      }
      auto argv = render_argv(spec.run, run.context, "prevue.json seed " + spec.name + " run");
      if (!argv.ok()) return argv.error();
      log += "$ (in " + spec.run_in + ") " + describe_argv(*argv) + "\n";
      auto migrated = exec(spec.run_in, std::move(argv).value(), std::move(env));
      if (!migrated.ok())
        return make_error(migrated.error().code, "seed " + spec.name + ": the migration " + describe_argv(spec.run) + ": " + migrated.error().message);
      log += *migrated;
    }
    PREVUE_TRY(psql("postgres", {"DROP DATABASE IF EXISTS " + ident(spec.database) + " WITH (FORCE)",
                                              "ALTER DATABASE " + ident(building) + " RENAME TO " + ident(spec.database),
                                              "COMMENT ON DATABASE " + ident(spec.database) + " IS '" + marker + "'"}));
    log += "database " + spec.database + " in " + spec.service + ": seeded (seed " + key + ")\n";
    return {};
  };
  Status built = build();
  if (!built.ok()) (void)psql("postgres", {"DROP DATABASE IF EXISTS " + ident(building) + " WITH (FORCE)"});  // nothing half-made left
  return built;
}

Status Engine::routes_step(UpRun& run, std::string& log) {
  std::vector<RouteRecord> routes;
  for (const auto& route : run.manifest.routes) {
    Endpoint upstream = run.endpoint_of(route.service);
    if (upstream.empty())
      return make_error(ErrorCode::kProvider, "route " + route.name + ": provider " +
                                                  run.manifest.layer_of_service(route.service)->provider + " gave service " +
                                                  route.service + " no endpoint");
    RouteRecord r{*run.context.find("host." + route.name), run.env.id, route.name, route.service, upstream};
    log += r.host + " -> " + upstream.text() + " (" + route.service + ")\n";
    routes.push_back(std::move(r));
  }
  PREVUE_TRY(store_.replace_routes(run.env.id, routes));
  // A link straight at the service (no proxy) is known for sure only now: a
  // provider may pick its port at apply (Docker does).
  if (config_.public_url_template.empty()) run.url = "http://" + run.endpoint_of(primary_route(run.manifest).service).text() + "/";
  if (run.request.on_routes_changed) run.request.on_routes_changed(run.env.slug);
  return {};
}

Status Engine::prune_step(UpRun& run, const PlanStep& step, std::string& log) {
  const Layer& layer = run.manifest.layers[static_cast<size_t>(step.layer)];
  auto described = providers_.describe(layer.provider);
  if (!described.ok()) return described.error();
  if (!described->can(ProviderVerb::kPrune)) {
    log += "provider " + layer.provider + " replaces services in place: nothing to stop\n";
    return {};
  }
  auto response = call_layer(run, static_cast<size_t>(step.layer), ProviderVerb::kPrune, {}, log);
  return response.ok() ? Status{} : Status(response.error());
}

LeaseRecord Engine::renewed_lease(const UpRun& run) {
  std::int64_t now = clock_.now_ms();
  LeasePolicy policy = run.manifest.lease.over(config_.lease_defaults);
  auto lease = store_.lease_of(run.env.id);
  return LeaseRecord{run.env.id,
                     policy.ttl.count(),
                     policy.idle.count(),
                     policy.end,
                     policy.grace.count(),
                     now + policy.ttl.count(),
                     now,
                     lease.ok() && lease->has_value() && (*lease)->pinned,
                     0};
}

Status Engine::ready_step(UpRun& run, std::string& log) {
  EnvironmentRecord& env = run.env;
  env.state = EnvState::kReady;
  env.deployed_sha = run.commit;
  env.url = run.url;
  env.seeded = true;
  env.service_revisions = encode_revisions(run.revisions);
  if (run.request.publish_ready) PREVUE_TRY(run.request.publish_ready([&] { return store_.update_environment(env); }));
  else PREVUE_TRY(store_.update_environment(env));
  // Every successful run renews the lease: a push is activity.
  PREVUE_TRY(store_.upsert_lease(renewed_lease(run)));
  log += "ready at " + run.url + "\n";
  return store_.append_timeline(env.id, "ready", run.url, 0);
}

DownResult Engine::down_by_slug(const std::string& slug) {
  auto env = store_.find_environment_by_slug(slug);
  if (!env.ok()) return DownResult{false, false, {}, env.error().message};
  if (!env->has_value()) return DownResult{false, false, {}, "no environment called '" + slug + "' (see `prevue ls`)"};
  return down(**env);
}

DownResult Engine::down_by_pr(const std::string& repo, long pr) {
  auto record = repository(repo);
  if (!record.ok()) return DownResult{false, false, {}, record.error().message};
  auto env = store_.find_environment(record->id, pr);
  if (!env.ok()) return DownResult{false, false, {}, env.error().message};
  if (!env->has_value()) return DownResult{false, false, {}, "no environment for PR " + std::to_string(pr) + " of " + record->key};
  return down(**env);
}

Status Engine::environment_verb(const EnvironmentRecord& env, const EnvironmentLayer& layer, ProviderVerb verb, std::string& log,
                                std::vector<ReceiptItem>* removed) {
  ProviderRequest r = config_.provider_request(verb, layer.provider, env.slug, env.pr, env.deployed_sha);
  ProviderCall call = providers_.call(layer.provider, r, config_.provider_timeout);
  log += call.log;
  if (!call.response.ok()) return call.response.error();
  if (!call.response->ok) return make_error(ErrorCode::kProvider, call.response->error_message);
  if (removed) {
    for (ReceiptItem item : call.response->removed) {
      item.by = layer.provider;
      item.layer = layer.name;
      log += item.kind + " " + item.name + ": " + item.outcome + "\n";
      removed->push_back(std::move(item));
    }
  }
  return {};
}

std::string receipt_json(const std::vector<ReceiptItem>& receipt) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& item : receipt) {
    nlohmann::json one = {{"by", item.by}, {"kind", item.kind}, {"name", item.name}, {"outcome", item.outcome}};
    if (!item.layer.empty()) one["layer"] = item.layer;
    items.push_back(std::move(one));
  }
  return items.dump();
}

Status Engine::unroute(const EnvironmentRecord& env, std::vector<ReceiptItem>& receipt, std::string& log) {
  auto routes = store_.routes_of(env.id);
  if (!routes.ok()) return routes.error();
  PREVUE_TRY(store_.replace_routes(env.id, {}));
  PREVUE_TRY(store_.delete_lease(env.id));
  for (const auto& route : *routes) {
    receipt.push_back({"route", route.host + " -> " + route.upstream.text(), "removed", "prevue"});
    // Published by the daemon (or `prevue gc`), which withdraws names no live route has.
    receipt.push_back({"dns", route.host, "withdrawn at the next DNS publish", "prevue"});
  }
  receipt.push_back({"lease", env.slug, "removed", "prevue"});
  log += "routes and lease removed\n";
  return {};
}

DownResult Engine::down(EnvironmentRecord env) {
  DownResult result;
  // One run per environment at a time, across processes.
  FileLock lock(config_.state_dir / "locks" / (env.slug + ".lock"));
  if (auto fresh = store_.find_environment_by_slug(env.slug); fresh.ok() && fresh->has_value()) env = **fresh;
  if (env.state == EnvState::kDestroyed) {
    result.ok = true;
    result.already_gone = true;
    result.environment = env;
    return result;
  }
  auto run = store_.begin_run(env.id, RunKind::kDown, env.deployed_sha);
  if (!run.ok()) return DownResult{false, false, env, run.error().message};
  env.state = EnvState::kDestroying;
  if (auto s = store_.update_environment(env); !s.ok()) return DownResult{false, false, env, s.error().message};

  StepRecorder steps(store_, runner_, run->id, env.id, redact_);
  std::vector<ReceiptItem>& receipt = result.receipt;
  // Last layer first: nothing is left running against a layer that is gone.
  for (const PlanStep& step : make_down_plan(env.layers).steps) {
    bool ok = steps.run(step.name, [&](std::string& log) -> Status {
      if (step.kind == StepKind::kUnroute) return unroute(env, receipt, log);
      PREVUE_TRY(environment_verb(env, step.target, ProviderVerb::kDestroy, log, &receipt));
      std::erase(env.layers, step.target);  // a retry resumes with the layers still standing
      return store_.update_environment(env);
    });
    if (!ok) break;
  }
  // The environment's PostgreSQL databases and roles, on every server prevue knows (their comments name it).
  if (!steps.failed() && !config_.postgres_servers.empty())
    steps.run("drop databases", [&](std::string& log) -> Status {
      for (const auto& [name, server] : config_.postgres_servers) {
        auto dropped = pg::drop_environment(server, env.slug);
        if (!dropped.ok()) return make_error(dropped.error().code, "PostgreSQL server " + name + ": " + dropped.error().message);
        for (auto& item : *dropped) {
          log += item.kind + " " + item.name + ": " + item.outcome + "\n";
          item.by = "prevue";
          receipt.push_back(std::move(item));
        }
      }
      return {};
    });
  if (steps.failed()) {
    // Stays `destroying` with the error, so a retry (or gc) finishes the job.
    env.error = steps.error();
    env.failed_step = steps.failed_step();
    (void)store_.update_environment(env);
    (void)store_.finish_run(run->id, RunState::kFailed, steps.error());
    return DownResult{false, false, env, steps.failed_step() + ": " + steps.error(), receipt};
  }
  for (const fs::path& dir : {fs::path(env.dir), config_.records_dir(env.slug)}) {
    std::error_code ec;
    bool existed = fs::exists(dir, ec);
    fs::remove_all(dir, ec);
    receipt.push_back({"directory", dir.string(), ec ? "not removed: " + ec.message() : existed ? "removed" : "already gone", "prevue"});
  }
  // Taken down while its pull request is open (by hand, or its lease ran
  // out): it stays down until the next push, or the reconciler would bring
  // it straight back.
  if (auto pr = store_.find_pull_request(env.repo_id, env.pr); pr.ok() && pr->has_value() && (*pr)->status == PrStatus::kOpen &&
                                                                (*pr)->expired_sha != (*pr)->head_sha) {
    PullRequestRecord p = **pr;
    p.expired_sha = p.head_sha;
    (void)store_.upsert_pull_request(p);
  }
  env.state = EnvState::kDestroyed;
  env.deployed_sha.clear();
  env.url.clear();
  env.seeded = false;
  env.service_revisions.clear();
  env.failed_step.clear();
  env.error.clear();
  if (auto s = store_.update_environment(env); !s.ok()) return DownResult{false, false, env, s.error().message};
  (void)store_.finish_run(run->id, RunState::kSucceeded, "");
  (void)store_.append_timeline(env.id, "receipt", receipt_json(receipt), 0);
  (void)store_.append_timeline(env.id, "destroyed", "", 0);
  result.ok = true;
  result.environment = env;
  return result;
}

DownResult Engine::sleep(const std::string& slug) {
  auto found = store_.find_environment_by_slug(slug);
  if (!found.ok()) return DownResult{false, false, {}, found.error().message};
  if (!found->has_value()) return DownResult{false, false, {}, "no environment called '" + slug + "'"};
  EnvironmentRecord env = **found;
  FileLock lock(config_.state_dir / "locks" / (env.slug + ".lock"));
  if (auto fresh = store_.find_environment_by_slug(env.slug); fresh.ok() && fresh->has_value()) env = **fresh;
  if (env.state == EnvState::kSleeping) return DownResult{true, true, env, ""};
  if (env.state != EnvState::kReady)
    return DownResult{false, false, env, "environment " + slug + " is " + to_string(env.state) + ", not ready: cannot sleep"};
  auto run = store_.begin_run(env.id, RunKind::kDown, env.deployed_sha);
  if (!run.ok()) return DownResult{false, false, env, run.error().message};
  StepRecorder steps(store_, runner_, run->id, env.id, redact_);
  for (const PlanStep& step : make_sleep_plan(env.layers).steps) {
    bool ok = steps.run(step.name, [&](std::string& log) -> Status {
      auto described = providers_.describe(step.target.provider);
      if (!described.ok()) return described.error();
      // What cannot sleep (a database a provider made, say) is kept as it is.
      if (!described->can(ProviderVerb::kSleep)) {
        log += "provider " + step.target.provider + " cannot sleep: layer " + step.target.name + " kept as it is\n";
        return {};
      }
      return environment_verb(env, step.target, ProviderVerb::kSleep, log);
    });
    if (!ok) break;
  }
  if (steps.failed()) {
    (void)store_.finish_run(run->id, RunState::kFailed, steps.error());
    return DownResult{false, false, env, steps.error()};
  }
  env.state = EnvState::kSleeping;
  if (auto s = store_.update_environment(env); !s.ok()) return DownResult{false, false, env, s.error().message};
  (void)store_.finish_run(run->id, RunState::kSucceeded, "");
  (void)store_.append_timeline(env.id, "slept", "processes stopped; data and route kept", 0);
  return DownResult{true, false, env, ""};
}

Result<RenderReport> Engine::render(const std::string& repo_arg, const std::string& ref, const std::string& sha, long pr) {
  if (ref.empty() == sha.empty()) return make_error(ErrorCode::kInvalidArgument, "give exactly one of --ref or --sha");
  auto repo = repository(repo_arg);
  if (!repo.ok()) return repo.error();
  auto opened = GitMirror::open(repo->mirror_path, repo->key);
  if (!opened.ok()) return opened.error();
  GitMirror git = std::move(opened).value();
  PREVUE_TRY(git.fetch());
  auto resolved = sha.empty() ? git.resolve_ref(ref) : git.resolve_sha(sha);
  if (!resolved.ok()) return resolved.error();
  const std::string commit = resolved->sha;
  auto manifest = read_manifest(git, commit, sha.empty() ? ref : sha);
  if (!manifest.ok()) return manifest.error();
  PREVUE_TRY(validate_with_provider(providers_, config_, *manifest, "prevue.json at " + short_sha(commit)));

  RenderReport report;
  report.commit = commit;
  report.slug = make_slug(repo->key, pr, ref);
  auto revisions = service_revisions(git, *manifest, commit, commit);
  if (!revisions.ok()) return revisions.error();
  report.plan = describe_plan(make_plan(*manifest, commit, nullptr, *revisions));

  // Ports are only known once a provider allocates them, and a dry run
  // shows no secret: both appear symbolically.
  std::map<std::string, std::string> secret_names;
  for (const auto& [k, v] : config_.secrets) secret_names[k] = "<secret " + k + ">";
  ContextSource src{*manifest, report.slug, config_.env_dir(report.slug).string(), commit,
                    config_.preview_domain, pr,
                    [](const ServiceSpec& s) { return "<port." + s.name + ">"; },
                    [](const RouteSpec&, const std::string& host) { return "http://" + host + "/"; },
                    [](const std::string& shown) { return shown; },
                    secret_names};
  RenderContext context = make_context(src).first;
  // Outputs exist only once their layer has applied, and a secret the
  // daemon's config would give is not in a dry run's: both show by name.
  auto name_outputs = [&](std::string_view text) {
    for (const auto& name : placeholders_in(text)) {
      if (name.rfind("output.", 0) == 0 && manifest->last_output_layer("{{" + name + "}}") >= 0)
        context.set(name, "<" + name + ">");
      if (name.rfind("secret.", 0) == 0 && !context.find(name)) context.set(name, "<secret " + name.substr(7) + ">");
      if (name.rfind("seed.", 0) == 0 && !context.find(name)) context.set(name, "<" + name + ">");  // made by the run
    }
  };
  for (const auto& s : manifest->services) {
    for (const auto& arg : s.run) name_outputs(arg);
    for (const auto& [k, v] : s.env) name_outputs(v);
  }
  for (const auto& layer : manifest->layers) name_outputs(layer.provider_settings);

  for (const auto& t : manifest->templates) {
    TemplateSource source = git.read_file(commit, t.source);
    if (source.ok() && source->has_value()) name_outputs(**source);
    auto rendered = render_template(source, commit, t, context);
    if (!rendered.ok()) return rendered.error();
    report.files.push_back(RenderedFile{t.target, *rendered});
  }
  for (const auto& s : manifest->services) {
    auto argv = render_argv(s.run, context, "prevue.json $.services." + s.name + ".run");
    if (!argv.ok()) return argv.error();
    std::string line = s.name + ": (in " + s.workdir + ") " + describe_argv(*argv);
    auto service_env = render_service_env(s, context);
    if (!service_env.ok()) return service_env.error();
    for (const auto& [k, v] : *service_env) line += "\n    " + k + "=" + v;
    report.commands.push_back(line);
  }
  PREVUE_TRY(dry_run_layers(git, *manifest, commit, report, context, pr));
  return report;
}

// A provider that can `plan` (terraform) shows what its layer would do,
// on the files at the commit in a scratch directory that is removed after:
// nothing is created, no environment's state is touched.
Status Engine::dry_run_layers(GitMirror& git, const Manifest& manifest, const std::string& commit, RenderReport& report,
                              const RenderContext& context, long pr) {
  std::optional<fs::path> scratch;
  std::error_code ec;
  for (const auto& layer : manifest.layers) {
    auto described = providers_.describe(layer.provider);
    if (!described.ok()) return described.error();
    if (!described->can(ProviderVerb::kPlan)) continue;
    if (!scratch) {
      fs::create_directories(config_.state_dir / "tmp", ec);
      std::string made = (config_.state_dir / "tmp" / "render-XXXXXX").string();
      if (!::mkdtemp(made.data())) return make_error(ErrorCode::kIo, "cannot make a scratch directory for the dry run in " + made);
      scratch = made;
      fs::create_directories(*scratch / "env", ec);
      for (const auto& path : manifest.export_paths) {
        auto files = git.export_tree(commit, path, *scratch / "env", nullptr);
        if (!files.ok()) {
          fs::remove_all(*scratch, ec);
          return files.error();
        }
      }
      for (const auto& file : report.files)
        if (auto target = path_inside(*scratch / "env", file.path); target.ok())
          (void)write_file_atomic(*target, file.content, Durability::kAtomicOnly);
    }
    ProviderRequest r = config_.provider_request(ProviderVerb::kPlan, layer.provider, report.slug, pr, commit);
    r.environment.dir = (*scratch / "env").string();
    r.environment.records_dir = (*scratch / ("records-" + layer.name)).string();
    r.environment.url = "http://" + report.slug + "." + config_.preview_domain + "/";
    auto settings = render_settings(layer.provider_settings, layer.provider, context);
    if (!settings.ok()) {
      fs::remove_all(*scratch, ec);
      return settings.error();
    }
    r.settings = *settings;
    ProviderCall call = providers_.call(layer.provider, r, config_.provider_timeout);
    std::string outcome = !call.response.ok() ? "could not plan: " + call.response.error().message
                          : call.response->ok  ? call.response->log
                                               : "could not plan: " + call.response->error_message;
    report.layer_plans.push_back({layer.name, layer.provider, outcome});
  }
  if (scratch) fs::remove_all(*scratch, ec);
  return {};
}

Result<std::vector<EnvironmentView>> Engine::list(bool include_destroyed) {
  auto envs = store_.list_environments(include_destroyed);
  if (!envs.ok()) return envs.error();
  std::vector<EnvironmentView> out;
  for (auto& env : *envs) {
    EnvironmentView view;
    view.record = env;
    if (auto repo = store_.find_repository(env.repo_id); repo.ok() && repo->has_value()) view.repo = (*repo)->key;
    if (auto run = store_.last_run(env.id); run.ok()) view.last_run = *run;
    out.push_back(std::move(view));
  }
  return out;
}

Result<std::string> Engine::service_logs(const EnvironmentRecord& env, const std::string& service, size_t lines) {
  std::string why;  // each provider's answer, when none has the output
  for (const auto& layer : env.layers) {
    auto described = providers_.describe(layer.provider);
    if (!described.ok() || !described->can(ProviderVerb::kLogs)) continue;
    ProviderRequest r = config_.provider_request(ProviderVerb::kLogs, layer.provider, env.slug, env.pr, env.deployed_sha);
    r.services.push_back(ProviderService{.name = service});
    r.log_lines = static_cast<std::int64_t>(lines);
    ProviderCall call = providers_.call(layer.provider, r, Millis(60'000));
    if (call.response.ok() && call.response->ok) return call.response->log;
    why += "\n  " + layer.provider + ": " + (call.response.ok() ? call.response->error_message : call.response.error().message);
  }
  return make_error(ErrorCode::kNotFound, "no output recorded for service '" + service + "' of " + env.slug + why);
}

Result<EnvironmentView> Engine::view(const std::string& slug) {
  auto env = store_.find_environment_by_slug(slug);
  if (!env.ok()) return env.error();
  if (!env->has_value()) return make_error(ErrorCode::kNotFound, "no environment called '" + slug + "' (see `prevue ls`)");
  EnvironmentView view;
  view.record = **env;
  if (auto repo = store_.find_repository(view.record.repo_id); repo.ok() && repo->has_value()) view.repo = (*repo)->key;
  auto run = store_.last_run(view.record.id);
  if (!run.ok()) return run.error();
  view.last_run = *run;
  if (view.last_run) {
    auto steps = store_.steps_of_run(view.last_run->id);
    if (!steps.ok()) return steps.error();
    view.steps = std::move(steps).value();
  }
  return view;
}

}  // namespace prevue
