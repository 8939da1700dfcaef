// The lease scheduler's memory: every lease's next deadline, ordered, so the
// daemon keeps one timer armed at the earliest; and proxy hits, coalesced so
// the store is written at most once per environment per flush, not per
// request. The truth stays in the store: an expiry pass re-reads each lease
// it is about to act on. Pure and single-threaded but for touch(), which the
// proxy's threads call.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prevue {

class LeaseScheduler {
 public:
  static constexpr std::int64_t kNever = INT64_MAX;

  // Sets (or moves) the environment's deadline; kNever removes it.
  void schedule(std::int64_t env_id, std::int64_t deadline_ms);
  void remove(std::int64_t env_id);
  std::optional<std::int64_t> next_deadline() const;
  std::optional<std::int64_t> deadline_of(std::int64_t env_id) const;
  // Removes and returns the environments due at `now`, most overdue first, at most `limit`.
  std::vector<std::int64_t> take_due(std::int64_t now_ms, size_t limit);
  size_t size() const { return by_env_.size(); }

  // A proxy hit (thread-safe, cheap): remembered, not written.
  void touch(std::int64_t env_id, std::int64_t now_ms);
  // The hits since the last call: (environment, latest hit).
  std::vector<std::pair<std::int64_t, std::int64_t>> take_activity();

 private:
  // A binary min-heap of (deadline, env) with lazy deletion: a renewal pushes
  // a new entry and leaves the old one to be skipped when it surfaces (it no
  // longer matches by_env_). Compacted when stale entries outnumber live ones.
  void compact_if_needed();
  void drop_stale_top();
  std::vector<std::pair<std::int64_t, std::int64_t>> heap_;  // (deadline, env)
  std::unordered_map<std::int64_t, std::int64_t> by_env_;    // env -> current deadline
  std::mutex activity_mutex_;
  std::unordered_map<std::int64_t, std::int64_t> activity_;
};

}  // namespace prevue
