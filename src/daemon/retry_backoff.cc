#include "daemon/retry_backoff.h"

#include <algorithm>

namespace prevue {

bool RetryBackoff::waiting(PrKey key, const std::string& target, std::int64_t now_ms) const {
  auto f = failures_.find(key);
  return f != failures_.end() && f->second.target == target && now_ms < f->second.not_before_ms;
}

void RetryBackoff::record(PrKey key, const std::string& target, bool ok, std::int64_t now_ms) {
  if (ok) {
    failures_.erase(key);
    return;
  }
  Failures& f = failures_[key];
  if (f.target != target) f = Failures{target, 0, 0};
  ++f.count;
  std::int64_t wait = std::min<std::int64_t>(kFirstWaitMs << std::min(f.count - 1, 20), kLongestWaitMs);
  f.not_before_ms = now_ms + wait;
}

std::optional<std::int64_t> RetryBackoff::next_retry(std::int64_t now_ms) const {
  std::optional<std::int64_t> next;
  for (const auto& [key, f] : failures_)
    if (f.not_before_ms > now_ms) next = next ? std::min(*next, f.not_before_ms) : f.not_before_ms;
  return next;
}

}  // namespace prevue
