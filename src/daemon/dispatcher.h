// Dispatch: at most one operation per pull request at a time. A request
// for the target already running is nothing new; a newer target (a push
// during a build, a merge during an update) cancels the running operation,
// which stops before its next step, and the reconcile after it starts the
// newer one. A target that failed waits before it is tried again
// (RetryBackoff), and the caller is asked to reconcile when the wait is
// over. On the daemon's main thread; the operation runs wherever `start`
// puts it and reports back through finished().
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/clock.h"
#include "daemon/pr_key.h"
#include "daemon/retry_backoff.h"
#include "daemon/timers.h"
#include "http/http.h"

namespace prevue {

enum class OpKind { kUp, kDown, kSleep };
const char* to_string(OpKind kind);

struct Operation {
  PrKey key;
  OpKind kind = OpKind::kUp;
  std::string sha;   // up: the commit
  std::string ref;   // up: the branch
  std::string slug;  // the environment's, when it exists
  std::string reason;       // why it was asked for (the log)
  bool from_sleep = false;  // an up that wakes a sleeping environment
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  std::int64_t started_ms = 0;  // when it started (the dispatcher's clock)
  // The step it is at, set by whoever runs it: a holding page shows it.
  std::shared_ptr<SharedText> step = std::make_shared<SharedText>();
};

class Dispatcher {
 public:
  using Start = std::function<void(const Operation&)>;
  Dispatcher(const Clock& clock, Timers& timers, Start start, std::function<void()> retry_due)
      : clock_(clock), timers_(timers), start_(std::move(start)), retry_due_(std::move(retry_due)) {}

  enum class Outcome { kStarted, kRunning, kSuperseding, kBackingOff };
  Outcome dispatch(Operation op);
  // The operation for `key` is over (on the main thread); returns it.
  Operation finished(PrKey key, bool ok);
  // Every running operation stops before its next step (a shutdown).
  void cancel_all();
  // The failures of `key` are forgotten: its next dispatch starts at once (a redeploy asked for by hand).
  void forget_failure(PrKey key) { backoff_.forget(key); }

  const std::map<PrKey, Operation>& in_flight() const { return in_flight_; }

 private:
  enum : Timers::Id { kRetryTimer = 1 };
  static std::string target(const Operation& op) { return std::string(to_string(op.kind)) + "@" + op.sha; }
  void arm_retry_timer();

  const Clock& clock_;
  Timers& timers_;
  Start start_;
  std::function<void()> retry_due_;
  std::map<PrKey, Operation> in_flight_;
  RetryBackoff backoff_;
};

}  // namespace prevue
