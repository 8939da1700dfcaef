// Timers a test fires by moving a FakeClock: what the daemon's io_context
// would run as time passes, run in time order, without sleeping.
#pragma once

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>

#include "core/clock.h"
#include "daemon/timers.h"

namespace prevue {

class ManualTimers final : public Timers {
 public:
  explicit ManualTimers(FakeClock& clock) : clock_(clock) {}

  void at(Id id, std::int64_t at_ms, std::function<void()> fire) override { waits_[id] = {at_ms, std::move(fire)}; }
  void cancel(Id id) override { waits_.erase(id); }
  void post(std::function<void()> work) override { posted_.push_back(std::move(work)); }

  bool armed(Id id) const { return waits_.count(id) != 0; }

  // Moves the clock forward by `by`, running posted work and every wait whose
  // time comes, in time order, the clock standing at each wait's time.
  void advance(std::chrono::milliseconds by) {
    const std::int64_t end = clock_.now_ms() + by.count();
    for (;;) {
      run_posted();
      auto next = std::min_element(waits_.begin(), waits_.end(),
                                   [](const auto& a, const auto& b) { return a.second.at_ms < b.second.at_ms; });
      if (next == waits_.end() || next->second.at_ms > end) break;
      clock_.set(std::max(clock_.now_ms(), next->second.at_ms));
      auto fire = std::move(next->second.fire);
      waits_.erase(next);  // before firing: it may arm the same timer again
      fire();
    }
    clock_.set(end);
    run_posted();
  }

 private:
  void run_posted() {
    while (!posted_.empty()) {
      auto work = std::move(posted_.front());
      posted_.pop_front();
      work();
    }
  }

  struct Wait {
    std::int64_t at_ms;
    std::function<void()> fire;
  };
  FakeClock& clock_;
  std::map<Id, Wait> waits_;
  std::deque<std::function<void()>> posted_;
};

}  // namespace prevue
