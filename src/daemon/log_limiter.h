// Identical log lines are rate-limited: a loop that fails the same way over
// and over writes one line per interval, then says how many it held back,
// instead of a megabyte a second.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "core/slug.h"

namespace prevue {

class LogLimiter {
 public:
  explicit LogLimiter(std::int64_t interval_ms = 10'000) : interval_ms_(interval_ms) {}

  // Whether `line` may be written at `now_ms`; when it may, `*suppressed`
  // is how many identical lines were held back since it was last written.
  // Distinct lines are never held back unless they collide in the table of
  // recent lines (then one of them is let through early, never lost).
  bool admit(std::string_view line, std::int64_t now_ms, std::uint64_t* suppressed) {
    std::uint64_t hash = stable_hash(line);
    std::lock_guard lock(mutex_);
    Slot& slot = slots_[hash % slots_.size()];
    if (slot.hash == hash && slot.used && now_ms - slot.last_written_ms < interval_ms_) {
      ++slot.suppressed;
      return false;
    }
    *suppressed = slot.hash == hash && slot.used ? slot.suppressed : 0;
    slot = Slot{hash, now_ms, 0, true};
    return true;
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::int64_t last_written_ms = 0;
    std::uint64_t suppressed = 0;
    bool used = false;
  };
  std::int64_t interval_ms_;
  std::mutex mutex_;
  std::array<Slot, 512> slots_{};
};

}  // namespace prevue
