// `prevue serve`: the long-running service. One io_context thread owns the
// daemon's state (reconciler, lease scheduler, API); environment operations
// run on a worker pool of `concurrency` threads, git polling on its own
// thread, and the proxy on its own threads.
#pragma once

#include <memory>

#include "daemon/config.h"

namespace prevue {

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();
  // Runs until SIGTERM or SIGINT; returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prevue
