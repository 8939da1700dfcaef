// The engine: turns a request for a PR's environment into a plan and walks
// it through git, the provider, the seeder and the store, recording every
// step (with its log) so a crash or a failure can be read and resumed.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/redact.h"
#include "manifest/manifest.h"
#include "plan/plan.h"
#include "provider/process_runner.h"
#include "provider/provider_client.h"
#include "seed/postgres.h"
#include "store/store.h"

namespace prevue {

struct EngineConfig {
  std::filesystem::path state_dir;     // prevue.db, mirrors/, envs/, locks/
  std::filesystem::path provider_dir;  // provider executables by name
  std::string preview_domain = "prevue.localhost";
  // When set ("http://{host}:8080"), links go through the proxy; otherwise
  // they point straight at the primary route's upstream.
  std::string public_url_template;
  Millis provider_timeout = Millis(30LL * 60'000);
  Millis stop_grace = Millis(5'000);
  LeasePolicy lease_defaults;  // what a manifest does not say of its lease
  // {{ secret.NAME }} values for trusted pull requests; untrusted ones
  // render them empty. Redacted from every step log and stored error.
  std::map<std::string, std::string> secrets;
  // Each provider's operator settings from prevue's config (JSON text),
  // sent with every request to it as `operator`.
  std::map<std::string, std::string> provider_settings;
  // PostgreSQL servers for `postgres` seeds, by name (prevue's config,
  // "postgres"). Kept in the state directory by whoever has them, so
  // `prevue down` and `prevue gc` without the config reach the same servers.
  std::map<std::string, pg::Server> postgres_servers;
  // Refills warm pools in the background; the daemon shares one across its
  // runs (each run has an Engine of its own); unset, an Engine makes its own.
  std::shared_ptr<pg::PoolRefiller> pool_refiller;

  // The link a reviewer gets for `host` through the proxy (public_url_template
  // with {host} filled in); empty when links go straight to the upstream.
  std::string public_url(const std::string& host) const;

  // Where things live under state_dir. An environment's directory holds the
  // repository's files and nothing else; prevue's records of it and each
  // provider's records sit beside, so a repository may commit any folder.
  std::filesystem::path envs_root() const { return state_dir / "envs"; }
  std::filesystem::path env_dir(const std::string& slug) const { return envs_root() / slug; }
  std::filesystem::path records_root() const { return state_dir / "records"; }
  std::filesystem::path records_dir(const std::string& slug) const { return records_root() / slug; }
  std::filesystem::path provider_records_root(const std::string& provider) const { return state_dir / "providers" / provider; }
  // A request for `verb` on environment `slug`, with the paths and stop grace every verb gets.
  ProviderRequest provider_request(ProviderVerb verb, const std::string& provider, const std::string& slug, long pr = 0,
                                   const std::string& commit = "") const;
};

// Asks the provider to check the manifest's settings block and services
// (`validate`); an error lists each problem at its JSON path.
Status validate_with_provider(ProviderClient& providers, const EngineConfig& config, const Manifest& manifest,
                              const std::string& origin);

struct UpRequest {
  std::string repo;  // local path or URL
  long pr = 0;
  std::string ref;   // branch or tag; with `sha` too, it only names the slug and PREVUE_REF
  std::string sha;   // the exact commit (wins over ref)
  // Set by another thread when a newer commit supersedes this run: the run
  // stops before its next step (it is resumed by the next one).
  const std::atomic<bool>* cancelled = nullptr;
  // An untrusted pull request (from a fork): prevue.json, its templates and
  // seed files come from this ref (the base branch), only the application
  // code from the PR's commit. Empty: trusted, everything from the commit.
  std::string config_ref;
  // Called once the routes step has stored the new upstreams, before the
  // versions they replace are stopped: the daemon points its proxy at them
  // and returns once it has, so no request goes to a stopped version.
  std::function<void(const std::string& slug)> on_routes_changed;
  // Runs the store write that makes the environment `ready`; the daemon runs
  // it together with its route refresh, so nobody sees `ready` in the API
  // while the proxy still shows the building page. Optional.
  std::function<Status(const std::function<Status()>& mark_ready)> publish_ready;
  // Told as each step starts and ends (the CLI shows progress); optional.
  std::function<void(const std::string& step)> on_step_start;
  std::function<void(const std::string& step, bool ok, std::chrono::milliseconds took)> on_step_done;
};

struct UpResult {
  bool ok = false;
  EnvironmentRecord environment;
  std::string plan;          // described
  std::string failed_step;
  std::string error;
  std::string log_tail;      // of the failed step
  std::chrono::nanoseconds total{0};
  std::chrono::nanoseconds child{0};  // spent in child processes (provider, builds, seeds, health waits)
  std::chrono::nanoseconds library_init{0};  // libgit2's one-time initialisation, when this call paid it
};

struct DownResult {
  bool ok = false;
  bool already_gone = false;
  EnvironmentRecord environment;
  std::string error;
  // What the teardown removed, each with what happened: the provider's
  // resources, then prevue's routes, lease and directories. Kept in the
  // timeline ("receipt").
  std::vector<ReceiptItem> receipt;
};

// A receipt as JSON text (the timeline's detail, `prevue down --json`).
std::string receipt_json(const std::vector<ReceiptItem>& receipt);

struct RenderedFile {
  std::string path;
  std::string content;
};

struct RenderReport {
  std::string slug;
  std::string commit;
  std::string plan;
  std::vector<RenderedFile> files;     // templates, rendered
  std::vector<std::string> commands;   // services' argv and env, rendered
  struct LayerPlan {
    std::string layer, provider, text;  // what the provider's `plan` said (terraform: what would be created)
  };
  std::vector<LayerPlan> layer_plans;
};

struct EnvironmentView {
  EnvironmentRecord record;
  std::string repo;
  std::optional<RunRecord> last_run;
  std::vector<StepRecord> steps;
};

class GitMirror;
class RenderContext;
struct UpRun;  // one `up`'s state, walked by the steps of its plan (engine.cc)

class Engine {
 public:
  Engine(EngineConfig config, Store& store, ProcessRunner& runner, const Clock& clock);

  const EngineConfig& config() const { return config_; }
  UpResult up(const UpRequest& request);
  DownResult down_by_slug(const std::string& slug);
  // Stops the environment's processes, keeping its data and routes (the
  // `sleep` end of a lease); the next `up` at the same commit wakes it.
  DownResult sleep(const std::string& slug);
  DownResult down_by_pr(const std::string& repo, long pr);
  Result<RenderReport> render(const std::string& repo, const std::string& ref, const std::string& sha, long pr);
  Result<std::vector<EnvironmentView>> list(bool include_destroyed);
  // The last `lines` lines a service of the environment printed, asked of
  // the provider of the layer that runs it (`logs`).
  Result<std::string> service_logs(const EnvironmentRecord& environment, const std::string& service, size_t lines);
  Result<EnvironmentView> view(const std::string& slug);

  // "/abs/path" for an existing local repository, the URL otherwise.
  static Result<std::string> repository_key(const std::string& repo);
  // The repository's row, created (with its mirror's path) on first use.
  Result<RepositoryRecord> repository(const std::string& repo);

 private:
  // The steps of `up`, each a function of the run's state.
  Status up_step(UpRun& run, const PlanStep& step, std::string& log);
  Status fetch_step(UpRun& run, std::string& log);
  Status resolve_step(UpRun& run, std::string& log);
  Status manifest_step(UpRun& run, std::string& log);
  Status plan_step(UpRun& run, std::string& log);
  Status retire_step(UpRun& run, const PlanStep& step, std::string& log);
  Status allocate_step(UpRun& run, const PlanStep& step, std::string& log);
  Status render_step(UpRun& run, const PlanStep& step, std::string& log);
  Status apply_step(UpRun& run, const PlanStep& step, std::string& log);
  Status seed_step(UpRun& run, const PlanStep& step, std::string& log);
  Status seed_in_service(UpRun& run, const SeedStep& spec, std::string& log);
  // A command run in a service of the seed's layer (`exec`), or a file put there (`put`, when put_source is set).
  struct ServiceCall {
    std::string service;
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
    std::string put_source, put_target;
  };
  Result<std::string> call_in_service(UpRun& run, const SeedStep& spec, const ServiceCall& call);
  // A `postgres` seed: the environment's database from the seed key's template (docs/manifest.md).
  Status postgres_seed(UpRun& run, const SeedStep& spec, std::string& log);
  // One in a service of the environment's own layer (its compose `db`).
  Status postgres_seed_in_service(UpRun& run, const SeedStep& spec, std::string& log);
  Result<std::string> postgres_seed_key(const UpRun& run, const SeedStep& spec, const std::string& server_dump) const;
  // A dump of the operator's (postgres.SERVER.dumps.NAME) as a file here: a path as it is, a URL fetched into the state.
  Result<std::string> operator_dump(UpRun& run, const pg::Server& server, const SeedStep& spec, const std::string& where, std::string& log);
  const pg::Server* postgres_server(const std::string& name) const;
  Status routes_step(UpRun& run, std::string& log);
  Status prune_step(UpRun& run, const PlanStep& step, std::string& log);
  // The lease a successful run leaves: renewed from now by the manifest's policy, pinned as it was.
  LeaseRecord renewed_lease(const UpRun& run);
  Status ready_step(UpRun& run, std::string& log);
  // The repository's files at the run's commit into the environment directory.
  Status export_files(UpRun& run, std::string& log);
  // One verb of the provider of the run's layer `layer`, with that layer's settings.
  Result<ProviderResponse> call_layer(UpRun& run, size_t layer, ProviderVerb verb, std::vector<ProviderService> services,
                                      std::string& log);

  void remember_postgres_servers();
  // `render`: each layer whose provider can `plan` says what it would do.
  Status dry_run_layers(GitMirror& git, const Manifest& manifest, const std::string& commit, RenderReport& report,
                        const RenderContext& context, long pr);

  DownResult down(EnvironmentRecord env);
  // prevue's routes and lease of an environment go (the end of a teardown).
  Status unroute(const EnvironmentRecord& env, std::vector<ReceiptItem>& receipt, std::string& log);
  // One provider verb on a layer of an existing environment (destroy, sleep), its log appended.
  Status environment_verb(const EnvironmentRecord& env, const EnvironmentLayer& layer, ProviderVerb verb, std::string& log,
                          std::vector<ReceiptItem>* removed = nullptr);

  EngineConfig config_;
  Store& store_;
  ProcessRunner& runner_;
  const Clock& clock_;
  ProviderClient providers_;
  std::string postgres_secret_;      // derives environments' database passwords (<state>/postgres-secret)
  std::shared_ptr<pg::PoolRefiller> pool_refiller_;  // refills warm pools after runs, off their path
  Redactor redact_;
};

}  // namespace prevue
