// An operation that failed is not started again for the same target at
// once: it waits 1 s, doubling per failure up to 5 min. A new target (a
// push, or another kind of operation) starts at once, and a success forgets
// the failures. Keyed by pull request; the clock is the caller's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "daemon/pr_key.h"

namespace prevue {

class RetryBackoff {
 public:
  static constexpr std::int64_t kFirstWaitMs = 1'000;
  static constexpr std::int64_t kLongestWaitMs = 5 * 60'000;

  // Whether `target` (the operation and its commit) for `key` must wait now.
  bool waiting(PrKey key, const std::string& target, std::int64_t now_ms) const;
  // What became of the operation on `target`.
  void record(PrKey key, const std::string& target, bool ok, std::int64_t now_ms);
  // Forgets the failures of `key` (a retry asked for by hand).
  void forget(PrKey key) { failures_.erase(key); }
  // When the earliest wait not yet over ends (the caller reconciles then).
  std::optional<std::int64_t> next_retry(std::int64_t now_ms) const;

 private:
  struct Failures {
    std::string target;
    int count = 0;
    std::int64_t not_before_ms = 0;
  };
  std::map<PrKey, Failures> failures_;
};

}  // namespace prevue
