// Lease changes a user asks for, and `prevue gc`: one pass of expiry,
// teardown retries and the orphan sweep, safe beside the daemon and beside
// another gc (each teardown is claimed in the store first).
#pragma once

#include <string>
#include <vector>

#include "core/claim_owner.h"
#include "engine/engine.h"

namespace prevue {

// Pushes the lease's end out by `by` from now (or from its current end, if
// later) and counts as activity.
Result<LeaseRecord> extend_lease(Store& store, const std::string& slug, Millis by, std::int64_t now_ms);
Result<LeaseRecord> pin_lease(Store& store, const std::string& slug, bool pinned);

// What a lease's end does to its environment, decided in one place for the
// daemon and gc: a revoked lease (merge, close) always destroys.
enum class LeaseEnd { kDestroy, kSleep, kNothing };
LeaseEnd lease_end_action(const LeaseRecord& lease, const EnvironmentRecord& env);

// Claims an environment for `self` (daemon and gc alike). A claim held by a
// process that is provably dead (core/claim_owner.h: a killed daemon on this
// machine) is taken over at once; a live holder's claim is respected.
struct ClaimResult {
  bool claimed = false;
  std::string holder;          // who holds it, when not claimed
  std::string taken_over_from;  // the dead owner replaced, if any
};
Result<ClaimResult> claim_environment(Store& store, std::int64_t env_id, const ClaimOwner& self, Millis ttl);

struct GcOptions {
  bool dry_run = false;
  ClaimOwner owner = ClaimOwner::self("gc");
  Millis claim_ttl = Millis(30LL * 60'000);
  int batch = 1000;
};

struct GcReport {
  std::vector<std::string> actions;   // one line per thing done (or, dry run, to do)
  std::vector<std::string> failures;  // one line per thing that could not be cleaned
  int skipped_claimed = 0;
};

GcReport run_gc(Engine& engine, Store& store, ProviderClient& providers, const EngineConfig& config, const Clock& clock,
                const GcOptions& options);

// What a provider holds that no live environment in the store owns, keyed
// by (provider, slug); or, with no provider, an environment directory left
// behind with nothing running.
struct Orphan {
  std::string provider;  // empty: directories only
  std::string slug;
  std::string dir;
};
// The host names that should resolve now: each live environment's route
// hosts, or `<slug>.<domain>` (its building page) before it has routes. One
// rule for the daemon's proxy and DNS and for `prevue gc`'s DNS reconcile.
struct LiveHost {
  std::string host;
  std::int64_t env_id = 0;
  const RouteRecord* route = nullptr;  // null: no routes yet
};
std::vector<LiveHost> live_hosts(const std::vector<EnvironmentRecord>& environments, const std::vector<RouteRecord>& routes,
                                 const std::string& domain);

// A provider whose `list` fails is skipped and named in `unlisted`.
Result<std::vector<Orphan>> find_orphans(Store& store, ProviderClient& providers, const EngineConfig& config,
                                         std::vector<std::string>* unlisted = nullptr);
Status destroy_orphan(ProviderClient& providers, Store& store, const EngineConfig& config, const Orphan& orphan);

// Whether a ready environment's services still run, by each layer's
// `status`: stopped when a service it lists is not running, or no layer
// runs a service (after a reboot; a container or process killed by hand);
// unknown when a provider could not say (its call failed). A provider
// without `status` is taken at its word that it runs.
enum class Liveness { kRunning, kStopped, kUnknown };
Liveness services_liveness(ProviderClient& providers, const EngineConfig& config, const EnvironmentRecord& env);

}  // namespace prevue
