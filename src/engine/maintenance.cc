#include <algorithm>

#include "engine/maintenance.h"

#include <filesystem>
#include <map>
#include <set>

namespace prevue {

namespace {

Result<std::pair<EnvironmentRecord, LeaseRecord>> env_and_lease(Store& store, const std::string& slug) {
  auto env = store.find_environment_by_slug(slug);
  if (!env.ok()) return env.error();
  if (!env->has_value() || (*env)->state == EnvState::kDestroyed)
    return make_error(ErrorCode::kNotFound, "no live environment called '" + slug + "'");
  auto lease = store.lease_of((*env)->id);
  if (!lease.ok()) return lease.error();
  if (!lease->has_value()) return make_error(ErrorCode::kNotFound, "environment " + slug + " has no lease yet (it was never ready)");
  return std::make_pair(**env, **lease);
}

}  // namespace

Result<LeaseRecord> extend_lease(Store& store, const std::string& slug, Millis by, std::int64_t now_ms) {
  if (by.count() <= 0) return make_error(ErrorCode::kInvalidArgument, "extend by a positive duration");
  auto found = env_and_lease(store, slug);
  if (!found.ok()) return found.error();
  LeaseRecord lease = found->second;
  lease.expires_at = std::max(lease.expires_at, now_ms) + by.count();
  lease.last_active = now_ms;
  PREVUE_TRY(store.upsert_lease(lease));
  (void)store.append_timeline(lease.env_id, "renewed", "extended by " + format_duration(by), 0);
  return lease;
}

Result<LeaseRecord> pin_lease(Store& store, const std::string& slug, bool pinned) {
  auto found = env_and_lease(store, slug);
  if (!found.ok()) return found.error();
  LeaseRecord lease = found->second;
  lease.pinned = pinned;
  PREVUE_TRY(store.upsert_lease(lease));
  (void)store.append_timeline(lease.env_id, "renewed", pinned ? "pinned" : "unpinned", 0);
  return lease;
}

LeaseEnd lease_end_action(const LeaseRecord& lease, const EnvironmentRecord& env) {
  if (env.state == EnvState::kDestroyed) return LeaseEnd::kNothing;
  if (lease.revoked_at != 0 || lease.end_action != EndAction::kSleep) return LeaseEnd::kDestroy;
  return env.state == EnvState::kReady ? LeaseEnd::kSleep : LeaseEnd::kNothing;
}

Result<std::vector<Orphan>> find_orphans(Store& store, ProviderClient& providers, const EngineConfig& config,
                                         std::vector<std::string>* unlisted) {
  auto envs = store.list_environments(false);
  if (!envs.ok()) return envs.error();
  std::set<std::pair<std::string, std::string>> live;  // (provider, slug)
  std::set<std::string> live_slugs;
  for (const auto& e : *envs) {
    for (const auto& layer : e.layers) live.insert({layer.provider, e.slug});
    live_slugs.insert(e.slug);
  }
  std::vector<Orphan> orphans;
  // Every installed provider, not only those live environments use: one a
  // manifest stopped using may still hold something.
  for (const auto& name : providers.installed()) {
    ProviderRequest r = config.provider_request(ProviderVerb::kList, name, "");
    ProviderCall call = providers.call(name, r, config.provider_timeout);
    // One broken provider does not keep the others' orphans alive.
    std::string failure = !call.response.ok() ? call.response.error().message : !call.response->ok ? call.response->error_message : "";
    if (!failure.empty()) {
      if (unlisted) unlisted->push_back("provider " + name + " list: " + failure);
      continue;
    }
    for (const auto& listed : call.response->environments)
      if (!live.count({name, listed.slug})) orphans.push_back(Orphan{name, listed.slug, listed.dir});
  }
  // Directories of environments no provider holds any more (a run killed
  // after it exported files, before the provider recorded anything).
  std::set<std::string> covered = live_slugs;  // live, or swept with a provider's orphan
  for (const auto& o : orphans) covered.insert(o.slug);
  for (const auto& root : {config.envs_root(), config.records_root()}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
      std::string slug = entry.path().filename().string();
      if (entry.is_directory(ec) && covered.insert(slug).second) orphans.push_back(Orphan{"", slug, config.env_dir(slug).string()});
    }
  }
  return orphans;
}

Status destroy_orphan(ProviderClient& providers, Store& store, const EngineConfig& config, const Orphan& orphan) {
  if (!orphan.provider.empty()) {
    ProviderRequest r = config.provider_request(ProviderVerb::kDestroy, orphan.provider, orphan.slug);
    ProviderCall call = providers.call(orphan.provider, r, config.provider_timeout);
    if (!call.response.ok()) return call.response.error();
    if (!call.response->ok) return make_error(ErrorCode::kProvider, call.response->error_message);
  }
  // The directories go only when no live environment has the slug (the
  // orphan may be an old provider's leftovers of an environment that lives on).
  auto live = store.find_environment_by_slug(orphan.slug);
  if (!live.ok()) return live.error();
  if (live->has_value() && (*live)->state != EnvState::kDestroyed) return {};
  std::error_code ec;
  std::filesystem::remove_all(config.env_dir(orphan.slug), ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot remove " + config.env_dir(orphan.slug).string() + ": " + ec.message());
  std::filesystem::remove_all(config.records_dir(orphan.slug), ec);
  return {};
}

Result<ClaimResult> claim_environment(Store& store, std::int64_t env_id, const ClaimOwner& self, Millis ttl) {
  const std::string me = self.text();
  ClaimResult result;
  for (int attempt = 0; attempt < 3; ++attempt) {  // the holder may change between the reads
    auto got = store.try_claim(env_id, me, ttl.count());
    if (!got.ok()) return got.error();
    if (*got) {
      result.claimed = true;
      return result;
    }
    auto holder = store.claim_holder(env_id);
    if (!holder.ok()) return holder.error();
    if (!holder->has_value()) continue;  // released or expired meanwhile
    result.holder = **holder;
    auto parsed = ClaimOwner::parse(result.holder);
    if (!parsed || !provably_dead(*parsed, self)) return result;
    auto taken = store.take_over_claim(env_id, result.holder, me, ttl.count());
    if (!taken.ok()) return taken.error();
    if (*taken) {
      result.claimed = true;
      result.taken_over_from = result.holder;
      return result;
    }
  }
  return result;
}

GcReport run_gc(Engine& engine, Store& store, ProviderClient& providers, const EngineConfig& config, const Clock& clock,
                const GcOptions& options) {
  GcReport report;
  auto claimed = [&](std::int64_t env_id, const std::string& slug) {
    if (options.dry_run) return true;
    auto got = claim_environment(store, env_id, options.owner, options.claim_ttl);
    if (got.ok() && got->claimed) {
      if (!got->taken_over_from.empty())
        report.actions.push_back("took over " + slug + " from " + got->taken_over_from + " (no longer running)");
      return true;
    }
    ++report.skipped_claimed;
    report.actions.push_back("skip " + slug + ": claimed by " + (got.ok() ? got->holder : got.error().message));
    return false;
  };
  auto teardown = [&](const EnvironmentRecord& env, const std::string& why) {
    if (options.dry_run) {
      report.actions.push_back("would destroy " + env.slug + " (" + why + ")");
      return;
    }
    DownResult r = engine.down_by_slug(env.slug);
    if (!r.ok) report.failures.push_back("destroy " + env.slug + ": " + r.error);
    else if (!r.already_gone) report.actions.push_back("destroyed " + env.slug + " (" + why + ")");
  };

  std::set<std::int64_t> handled;  // acted on (or, dry run, would be) by an earlier pass: listed once

  // 1. Leases that ran out, most overdue first.
  std::int64_t now = clock.now_ms();
  auto due = store.due_leases(now, options.batch);
  if (!due.ok()) {
    report.failures.push_back("read leases: " + due.error().message);
  } else {
    for (const auto& lease : *due) {
      auto env = store.find_environment_by_id(lease.env_id);
      if (!env.ok() || !env->has_value()) continue;
      const EnvironmentRecord& e = **env;
      LeaseEnd end = lease_end_action(lease, e);
      if (end == LeaseEnd::kNothing || !claimed(e.id, e.slug)) continue;
      // Re-read under the claim: the daemon may have renewed or acted meanwhile.
      auto fresh = store.lease_of(e.id);
      if (!options.dry_run && (!fresh.ok() || !fresh->has_value() || (*fresh)->deadline() > clock.now_ms())) {
        (void)store.release_claim(e.id, options.owner.text());
        continue;
      }
      std::string why = lease.revoked_at ? "pull request closed" : "lease ran out";
      handled.insert(e.id);
      if (end == LeaseEnd::kSleep) {
        if (options.dry_run) {
          report.actions.push_back("would put " + e.slug + " to sleep (" + why + ")");
        } else {
          DownResult r = engine.sleep(e.slug);
          if (!r.ok) report.failures.push_back("sleep " + e.slug + ": " + r.error);
          else if (!r.already_gone) report.actions.push_back("put " + e.slug + " to sleep (" + why + ")");
        }
      } else {
        // (Engine::down keeps an open PR's environment down until its next push.)
        if (!options.dry_run && !lease.revoked_at) (void)store.append_timeline(e.id, "expired", why, 0);
        teardown(e, why);
      }
      if (!options.dry_run) (void)store.release_claim(e.id, options.owner.text());
    }
  }

  // 2. Teardowns that failed or were interrupted, and closed PRs' leftovers.
  auto envs = store.list_environments(false);
  if (envs.ok()) {
    for (const auto& e : *envs) {
      if (handled.count(e.id)) continue;
      bool retry = e.state == EnvState::kDestroying;
      std::string why = "retry an unfinished teardown";
      if (!retry) {
        auto pr = store.find_pull_request(e.repo_id, e.pr);
        auto lease = store.lease_of(e.id);
        bool closed = pr.ok() && pr->has_value() && (*pr)->status != PrStatus::kOpen;
        bool in_grace = lease.ok() && lease->has_value() && (*lease)->in_grace(now);
        retry = closed && !in_grace;
        why = "pull request closed";
      }
      if (!retry || !claimed(e.id, e.slug)) continue;
      teardown(e, why);
      if (!options.dry_run) (void)store.release_claim(e.id, options.owner.text());
    }
  }

  // 3. Orphans: what a provider holds that no live environment owns.
  auto orphans = find_orphans(store, providers, config, &report.failures);
  if (!orphans.ok()) {
    report.failures.push_back(orphans.error().message);
  } else {
    for (const auto& orphan : *orphans) {
      std::string what = orphan.slug + " (" + (orphan.provider.empty() ? "directories" : orphan.provider) + ")";
      if (options.dry_run) {
        report.actions.push_back("would sweep orphan " + what);
        continue;
      }
      // Re-check: the daemon may have created it with this provider between the listing and now.
      auto owner = store.find_environment_by_slug(orphan.slug);
      if (owner.ok() && owner->has_value() && (*owner)->state != EnvState::kDestroyed &&
          (orphan.provider.empty() || std::any_of((*owner)->layers.begin(), (*owner)->layers.end(),
                                                  [&](const EnvironmentLayer& l) { return l.provider == orphan.provider; })))
        continue;
      Status s = destroy_orphan(providers, store, config, orphan);
      if (!s.ok()) report.failures.push_back("sweep orphan " + orphan.slug + ": " + s.error().message);
      else report.actions.push_back("swept orphan " + what);
    }
  }

  // 4. PostgreSQL: what postgres seeds made that no live environment owns
  // (read after the teardowns above), and templates nobody uses any more.
  if (!engine.config().postgres_servers.empty()) {
    auto live = store.list_environments(false);
    if (!live.ok()) {
      report.failures.push_back("postgres: cannot read the live environments: " + live.error().message);
    } else {
      std::set<std::string> slugs;
      for (const auto& e : *live) slugs.insert(e.slug);
      for (const auto& [name, server] : engine.config().postgres_servers) {
        auto swept = pg::sweep(server, slugs, options.dry_run);
        if (!swept.ok()) {
          report.failures.push_back("postgres " + name + ": " + swept.error().message);
          continue;
        }
        for (const auto& line : *swept)
          (line.rfind("could not", 0) == 0 ? report.failures : report.actions).push_back("postgres: " + line);
      }
    }
  }
  return report;
}

std::vector<LiveHost> live_hosts(const std::vector<EnvironmentRecord>& environments, const std::vector<RouteRecord>& routes,
                                 const std::string& domain) {
  std::map<std::int64_t, std::vector<const RouteRecord*>> by_env;
  for (const auto& r : routes) by_env[r.env_id].push_back(&r);
  std::vector<LiveHost> out;
  for (const auto& e : environments) {
    if (e.state == EnvState::kDestroying || e.state == EnvState::kDestroyed) continue;
    auto it = by_env.find(e.id);
    if (it == by_env.end()) {
      out.push_back({e.slug + "." + domain, e.id, nullptr});
      continue;
    }
    for (const RouteRecord* r : it->second) out.push_back({r->host, e.id, r});
  }
  return out;
}

Liveness services_liveness(ProviderClient& providers, const EngineConfig& config, const EnvironmentRecord& env) {
  size_t services = 0;
  bool unasked = false;  // a layer whose provider has no `status`
  for (const auto& layer : env.layers) {
    auto described = providers.describe(layer.provider);
    if (!described.ok()) return Liveness::kUnknown;
    if (!described->can(ProviderVerb::kStatus)) {
      unasked = true;
      continue;
    }
    ProviderRequest r = config.provider_request(ProviderVerb::kStatus, layer.provider, env.slug, env.pr, env.deployed_sha);
    ProviderCall call = providers.call(layer.provider, r, config.provider_timeout);
    if (!call.response.ok() || !call.response->ok) return Liveness::kUnknown;
    for (const auto& s : call.response->services)
      if (!s.running) return Liveness::kStopped;
    services += call.response->services.size();
  }
  return services > 0 || unasked ? Liveness::kRunning : Liveness::kStopped;
}

}  // namespace prevue
