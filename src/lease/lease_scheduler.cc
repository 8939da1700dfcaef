#include "lease/lease_scheduler.h"

#include <algorithm>
#include <functional>

namespace prevue {

namespace {
constexpr auto kLater = std::greater<std::pair<std::int64_t, std::int64_t>>();  // min-heap on deadline
}  // namespace

void LeaseScheduler::schedule(std::int64_t env_id, std::int64_t deadline_ms) {
  if (deadline_ms == kNever) {
    by_env_.erase(env_id);
  } else {
    auto [it, inserted] = by_env_.try_emplace(env_id, deadline_ms);
    if (!inserted) {
      if (it->second == deadline_ms) return;
      it->second = deadline_ms;
    }
    heap_.emplace_back(deadline_ms, env_id);
    std::push_heap(heap_.begin(), heap_.end(), kLater);
  }
  compact_if_needed();
}

void LeaseScheduler::remove(std::int64_t env_id) { schedule(env_id, kNever); }

void LeaseScheduler::drop_stale_top() {
  while (!heap_.empty()) {
    auto [deadline, env_id] = heap_.front();
    auto it = by_env_.find(env_id);
    if (it != by_env_.end() && it->second == deadline) return;
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    heap_.pop_back();
  }
}

void LeaseScheduler::compact_if_needed() {
  if (heap_.size() < 1024 || heap_.size() < 2 * by_env_.size()) return;
  heap_.clear();
  heap_.reserve(by_env_.size());
  for (const auto& [env_id, deadline] : by_env_) heap_.emplace_back(deadline, env_id);
  std::make_heap(heap_.begin(), heap_.end(), kLater);
}

std::optional<std::int64_t> LeaseScheduler::next_deadline() const {
  // const: the top may be stale; scan past stale entries without popping.
  if (by_env_.empty()) return std::nullopt;
  const_cast<LeaseScheduler*>(this)->drop_stale_top();
  return heap_.front().first;
}

std::optional<std::int64_t> LeaseScheduler::deadline_of(std::int64_t env_id) const {
  auto it = by_env_.find(env_id);
  if (it == by_env_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::int64_t> LeaseScheduler::take_due(std::int64_t now_ms, size_t limit) {
  std::vector<std::int64_t> due;
  while (due.size() < limit) {
    drop_stale_top();
    if (heap_.empty() || heap_.front().first > now_ms) break;
    std::int64_t env_id = heap_.front().second;
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    heap_.pop_back();
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
