// The daemon's lease timers: when a preview's lease ends (its TTL, its idle
// limit, a closed pull request's grace) the keeper asks for the preview to
// sleep or go; proxy hits renew leases, coalesced in memory and written
// once per environment per flush; a request for a sleeping preview renews
// its lease and asks for it to wake. It runs on the daemon's main thread
// (touch() excepted) with the injected clock and timers, so every rule here
// is tested with a fake clock (tests/unit/lease_keeper_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/duration.h"
#include "daemon/metrics.h"
#include "daemon/timers.h"
#include "lease/lease_scheduler.h"
#include "store/store.h"

namespace prevue {

struct LeaseKeeperSettings {
  size_t expiry_batch = 100;        // leases acted on per pass; more are left to the next, posted at once
  Millis activity_flush = Millis(5'000);  // how often proxy hits are written back
};

// What the keeper asks of the daemon, with a reason for the logs and the PR.
struct LeaseRequests {
  std::function<void(const EnvironmentRecord&, const std::string& why)> sleep;
  std::function<void(const EnvironmentRecord&, const std::string& why)> destroy;
  std::function<void(const EnvironmentRecord&, const std::string& why)> wake;
};

class LeaseKeeper {
 public:
  LeaseKeeper(Store& store, const Clock& clock, Timers& timers, LeaseKeeperSettings settings, LeaseRequests requests,
              Metrics& metrics);

  // Schedules every stored lease and starts the flush timer.
  Status start();
  // Writes back the last hits and cancels the timers.
  void stop();

  // A lease written elsewhere (a run made it ready, an API extend): its new deadline.
  void schedule(const LeaseRecord& lease);
  // A proxy hit on the environment, now (any thread; cheap).
  void touch(std::int64_t env_id);
  // A request for a sleeping environment: its lease is renewed and it is asked to wake.
  void wake(std::int64_t env_id);
  // Writes the coalesced hits to the store (also before each expiry pass).
  void flush_activity();

  // When the earliest lease ends (for tests and the metrics); nullopt: none.
  std::optional<std::int64_t> next_deadline() const { return scheduler_.next_deadline(); }

 private:
  enum : Timers::Id { kExpiryTimer = 1, kFlushTimer = 2 };
  void arm_expiry_timer();
  void arm_flush_timer();
  void expiry_pass();

  Store& store_;
  const Clock& clock_;
  Timers& timers_;
  LeaseKeeperSettings settings_;
  LeaseRequests requests_;
  Metrics& metrics_;
  LeaseScheduler scheduler_;
  bool stopped_ = false;
};

}  // namespace prevue
