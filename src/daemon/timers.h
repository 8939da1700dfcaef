// One-shot timers read against the injected clock, on the thread that owns
// them. The daemon's run on its io_context; a test's are fired by hand as
// it moves a FakeClock (tests/unit/manual_timers.h), so whatever is built on
// them is tested without sleeping.
#pragma once

#include <cstdint>
#include <functional>

namespace prevue {

class Timers {
 public:
  using Id = int;
  virtual ~Timers() = default;
  // `fire` runs once the clock reaches `at_ms`; a later call for the same
  // id replaces the wait, and a cancelled or replaced wait never fires.
  virtual void at(Id id, std::int64_t at_ms, std::function<void()> fire) = 0;
  virtual void cancel(Id id) = 0;
  // `work` runs soon on the same thread, after what is running now.
  virtual void post(std::function<void()> work) = 0;
};

}  // namespace prevue
