#include "daemon/dispatcher.h"

#include "daemon/logger.h"

namespace prevue {

const char* to_string(OpKind kind) { return kind == OpKind::kUp ? "up" : kind == OpKind::kDown ? "down" : "sleep"; }

Dispatcher::Outcome Dispatcher::dispatch(Operation op) {
  if (auto running = in_flight_.find(op.key); running != in_flight_.end()) {
    const Operation& current = running->second;
    if (current.kind == op.kind && current.sha == op.sha) return Outcome::kRunning;
    if (!current.cancelled->exchange(true))
      log_event("reconcile.supersede", "pr=" + std::to_string(op.key.second) + " running=" + to_string(current.kind) + "@" +
                                           current.sha.substr(0, 12) + " wanted=" + to_string(op.kind) + "@" + op.sha.substr(0, 12));
    return Outcome::kSuperseding;
  }
  if (backoff_.waiting(op.key, target(op), clock_.now_ms())) return Outcome::kBackingOff;
  op.started_ms = clock_.now_ms();
  auto [it, inserted] = in_flight_.emplace(op.key, std::move(op));
  start_(it->second);
  return Outcome::kStarted;
}

Operation Dispatcher::finished(PrKey key, bool ok) {
  auto it = in_flight_.find(key);
  if (it == in_flight_.end()) return Operation{key};
  Operation op = std::move(it->second);
  in_flight_.erase(it);
  backoff_.record(key, target(op), ok, clock_.now_ms());
  if (!ok) arm_retry_timer();
  return op;
}

void Dispatcher::cancel_all() {
  for (auto& [key, op] : in_flight_) op.cancelled->store(true);
  timers_.cancel(kRetryTimer);
}

void Dispatcher::arm_retry_timer() {
  auto next = backoff_.next_retry(clock_.now_ms());
  if (!next) return;
  timers_.at(kRetryTimer, *next, [this] {
    retry_due_();
    arm_retry_timer();
  });
}

}  // namespace prevue
