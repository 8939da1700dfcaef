// Time is injected: domain code reads a Clock, tests hand in a FakeClock.
#pragma once

#include <chrono>
#include <cstdint>

namespace prevue {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch (what the store records).
  virtual std::int64_t now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// The process's one SystemClock.
inline const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  std::int64_t now_ms() const override { return now_; }
  void advance(std::chrono::milliseconds by) { now_ += by.count(); }
  void set(std::int64_t ms) { now_ = ms; }

 private:
  std::int64_t now_;
};

}  // namespace prevue
