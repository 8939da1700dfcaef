// `prevue serve`: the long-running service. One io_context thread owns the
// daemon's state (reconciler, lease scheduler, API); environment operations
// run on a worker pool of `concurrency` threads, git polling on its own
// thread, and the proxy on its own threads.
#pragma once

#include <memory>

#include "core/clock.h"
#include "daemon/config.h"

namespace prevue {

class Daemon {
 public:
  // Time comes from `clock` (tests hand in a FakeClock).
  explicit Daemon(Config config, const Clock& clock = system_clock());
  ~Daemon();
  // Runs until SIGTERM or SIGINT; returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prevue
