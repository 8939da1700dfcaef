#include "lease/lease_scheduler.h"

namespace prevue {

void LeaseScheduler::schedule(std::int64_t env_id, std::int64_t deadline_ms) {
  auto it = by_env_.find(env_id);
  if (it != by_env_.end()) {
    if (it->second == deadline_ms) return;
    by_deadline_.erase({it->second, env_id});
    if (deadline_ms == kNever) {
      by_env_.erase(it);
      return;
    }
    it->second = deadline_ms;
  } else {
    if (deadline_ms == kNever) return;
    by_env_.emplace(env_id, deadline_ms);
  }
  by_deadline_.emplace(deadline_ms, env_id);
}

void LeaseScheduler::remove(std::int64_t env_id) { schedule(env_id, kNever); }

std::optional<std::int64_t> LeaseScheduler::next_deadline() const {
  if (by_deadline_.empty()) return std::nullopt;
  return by_deadline_.begin()->first;
}

std::optional<std::int64_t> LeaseScheduler::deadline_of(std::int64_t env_id) const {
  auto it = by_env_.find(env_id);
  if (it == by_env_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::int64_t> LeaseScheduler::take_due(std::int64_t now_ms, size_t limit) {
  std::vector<std::int64_t> due;
  while (!by_deadline_.empty() && due.size() < limit && by_deadline_.begin()->first <= now_ms) {
    auto [deadline, env_id] = *by_deadline_.begin();
    by_deadline_.erase(by_deadline_.begin());
    by_env_.erase(env_id);
    due.push_back(env_id);
  }
  return due;
}

void LeaseScheduler::touch(std::int64_t env_id, std::int64_t now_ms) {
  std::lock_guard lock(activity_mutex_);
  auto& last = activity_[env_id];
  if (now_ms > last) last = now_ms;
}

std::vector<std::pair<std::int64_t, std::int64_t>> LeaseScheduler::take_activity() {
  std::unordered_map<std::int64_t, std::int64_t> taken;
  {
    std::lock_guard lock(activity_mutex_);
    taken.swap(activity_);
  }
  return {taken.begin(), taken.end()};
}

}  // namespace prevue
