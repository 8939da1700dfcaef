#include "daemon/lease_keeper.h"

#include <algorithm>

#include "daemon/logger.h"
#include "engine/maintenance.h"

namespace prevue {

LeaseKeeper::LeaseKeeper(Store& store, const Clock& clock, Timers& timers, LeaseKeeperSettings settings, LeaseRequests requests,
                         Metrics& metrics)
    : store_(store), clock_(clock), timers_(timers), settings_(settings), requests_(std::move(requests)), metrics_(metrics) {}

Status LeaseKeeper::start() {
  auto all = store_.all_leases();
  if (!all.ok()) return all.error();
  for (const auto& lease : *all) scheduler_.schedule(lease.env_id, lease.deadline());
  arm_expiry_timer();
  arm_flush_timer();
  return {};
}

void LeaseKeeper::stop() {
  if (stopped_) return;
  stopped_ = true;
  timers_.cancel(kExpiryTimer);
  timers_.cancel(kFlushTimer);
  flush_activity();
}

// The deadline as the lease says. (A sleeping environment's ended lease
// surfaces once more and is dropped: lease_end_action has nothing for it.)
void LeaseKeeper::schedule(const LeaseRecord& lease) {
  auto before = scheduler_.next_deadline();
  scheduler_.schedule(lease.env_id, lease.deadline());
  if (scheduler_.next_deadline() != before) arm_expiry_timer();
}

void LeaseKeeper::touch(std::int64_t env_id) { scheduler_.touch(env_id, clock_.now_ms()); }

void LeaseKeeper::wake(std::int64_t env_id) {
  auto env = store_.find_environment_by_id(env_id);
  if (!env.ok() || !env->has_value() || (*env)->state != EnvState::kSleeping) return;
  const EnvironmentRecord& e = **env;
  log_event("lease.wake", "slug=" + e.slug);
  // A visit is activity: renew before waking so the lease does not end again at once.
  if (auto lease = store_.lease_of(env_id); lease.ok() && lease->has_value()) {
    LeaseRecord l = **lease;
    std::int64_t now = clock_.now_ms();
    l.last_active = now;
    l.expires_at = std::max(l.expires_at, now + l.ttl_ms);
    (void)store_.upsert_lease(l);
    schedule(l);
    metrics_.lease_renewals++;
  }
  requests_.wake(e, "a request woke it");
}

void LeaseKeeper::arm_expiry_timer() {
  if (stopped_) return;
  auto next = scheduler_.next_deadline();
  if (!next) {
    timers_.cancel(kExpiryTimer);
    return;
  }
  timers_.at(kExpiryTimer, *next, [this] { expiry_pass(); });
}

void LeaseKeeper::arm_flush_timer() {
  if (stopped_) return;
  timers_.at(kFlushTimer, clock_.now_ms() + settings_.activity_flush.count(), [this] {
    flush_activity();
    arm_flush_timer();
  });
}

// Bounded: at most `expiry_batch` leases a pass, most overdue first; the
// truth is re-read from the store before acting. Re-arms itself.
void LeaseKeeper::expiry_pass() {
  if (stopped_) return;
  flush_activity();
  std::int64_t now = clock_.now_ms();
  auto due = scheduler_.take_due(now, settings_.expiry_batch);
  for (std::int64_t env_id : due) {
    auto lease = store_.lease_of(env_id);
    auto env = store_.find_environment_by_id(env_id);
    if (!lease.ok() || !lease->has_value() || !env.ok() || !env->has_value()) continue;
    const LeaseRecord& l = **lease;
    const EnvironmentRecord& e = **env;
    if (l.deadline() > now) {
      schedule(l);  // renewed meanwhile (an extend, a hit flushed by gc)
      continue;
    }
    switch (lease_end_action(l, e)) {
      case LeaseEnd::kNothing:
        break;
      case LeaseEnd::kSleep:
        metrics_.lease_expiries++;
        (void)store_.append_timeline(e.id, "expired", "idle or TTL limit reached: going to sleep", 0);
        log_event("lease.expired", "slug=" + e.slug + " end=sleep");
        requests_.sleep(e, "lease ran out");
        break;
      case LeaseEnd::kDestroy:
        if (l.revoked_at == 0) {
          metrics_.lease_expiries++;
          (void)store_.append_timeline(e.id, "expired", "idle or TTL limit reached", 0);
          log_event("lease.expired", "slug=" + e.slug + " end=destroy");
        }
        requests_.destroy(e, l.revoked_at ? "pull request closed, grace over" : "lease ran out");
        break;
    }
  }
  if (due.size() == settings_.expiry_batch) {
    timers_.post([this] { expiry_pass(); });  // more are due: continue without starving the loop
    return;
  }
  arm_expiry_timer();
}

// Proxy hits, coalesced in memory, written once per environment per flush.
void LeaseKeeper::flush_activity() {
  for (auto [env_id, at] : scheduler_.take_activity()) {
    auto lease = store_.lease_of(env_id);
    if (!lease.ok() || !lease->has_value() || (*lease)->last_active >= at) continue;
    LeaseRecord l = **lease;
    // The timeline notes a renewal at most once a minute, not every flush.
    if (at - l.last_active > 60'000) (void)store_.append_timeline(env_id, "renewed", "visited through the proxy", 0);
    l.last_active = at;
    (void)store_.upsert_lease(l);
    schedule(l);
    metrics_.lease_renewals++;
  }
}

}  // namespace prevue
