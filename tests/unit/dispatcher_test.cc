// The daemon's dispatch (Dispatcher) with a fake clock and timers: one
// operation per pull request, a newer target supersedes the running one,
// a failed target waits and is retried when its wait is over.
#include "daemon/dispatcher.h"

#include <gtest/gtest.h>

#include "manual_timers.h"

namespace prevue {
namespace {

const PrKey kPr{1, 42};

class DispatcherTest : public ::testing::Test {
 protected:
  Operation up(const std::string& sha, PrKey key = kPr) {
    Operation op;
    op.key = key;
    op.kind = OpKind::kUp;
    op.sha = sha;
    op.ref = "feature";
    return op;
  }

  FakeClock clock_;
  ManualTimers timers_{clock_};
  std::vector<std::string> started_;
  int retries_due_ = 0;
  Dispatcher dispatcher_{clock_, timers_, [this](const Operation& op) { started_.push_back(std::string(to_string(op.kind)) + "@" + op.sha); },
                         [this] { ++retries_due_; }};
};

TEST_F(DispatcherTest, OneOperationPerPullRequestAndANewerTargetCancelsTheRunningOne) {
  EXPECT_EQ(dispatcher_.dispatch(up("c1")), Dispatcher::Outcome::kStarted);
  EXPECT_EQ(dispatcher_.in_flight().at(kPr).started_ms, clock_.now_ms()) << "the holding page's \"so far\" counts from here";
  auto running = dispatcher_.in_flight().at(kPr).cancelled;
  EXPECT_EQ(dispatcher_.dispatch(up("c1")), Dispatcher::Outcome::kRunning);
  EXPECT_FALSE(running->load()) << "asking again for the same target changes nothing";
  EXPECT_EQ(dispatcher_.dispatch(up("c2")), Dispatcher::Outcome::kSuperseding);
  EXPECT_TRUE(running->load()) << "a push during a build stops the build before its next step";
  EXPECT_EQ(dispatcher_.dispatch(up("c1", {1, 43})), Dispatcher::Outcome::kStarted) << "other pull requests run beside it";
  EXPECT_EQ(started_, (std::vector<std::string>{"up@c1", "up@c1"}));
  // The cancelled one reports back; the reconcile after it starts the newer target.
  EXPECT_EQ(dispatcher_.finished(kPr, false).sha, "c1");
  EXPECT_EQ(dispatcher_.dispatch(up("c2")), Dispatcher::Outcome::kStarted);
}

TEST_F(DispatcherTest, AFailedTargetWaitsAndIsRetriedWhenItsWaitIsOver) {
  dispatcher_.dispatch(up("c1"));
  dispatcher_.finished(kPr, false);
  EXPECT_EQ(dispatcher_.dispatch(up("c1")), Dispatcher::Outcome::kBackingOff);
  timers_.advance(std::chrono::milliseconds(999));
  EXPECT_EQ(retries_due_, 0);
  timers_.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(retries_due_, 1) << "the daemon is asked to reconcile when the wait ends";
  EXPECT_EQ(dispatcher_.dispatch(up("c1")), Dispatcher::Outcome::kStarted);
  dispatcher_.finished(kPr, false);  // the second failure waits two seconds
  timers_.advance(std::chrono::milliseconds(1'999));
  EXPECT_EQ(dispatcher_.dispatch(up("c1")), Dispatcher::Outcome::kBackingOff);
  timers_.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(retries_due_, 2);
  EXPECT_EQ(dispatcher_.dispatch(up("c1")), Dispatcher::Outcome::kStarted);
}

TEST_F(DispatcherTest, AFailedBuildHoldsBackNeitherATeardownNorAPush) {
  dispatcher_.dispatch(up("c1"));
  dispatcher_.finished(kPr, false);
  EXPECT_EQ(dispatcher_.dispatch(up("c2")), Dispatcher::Outcome::kStarted) << "a push is tried at once";
  dispatcher_.finished(kPr, false);
  Operation teardown;
  teardown.key = kPr;
  teardown.kind = OpKind::kDown;
  EXPECT_EQ(dispatcher_.dispatch(teardown), Dispatcher::Outcome::kStarted) << "a merge is not held back by a failed build";
  dispatcher_.finished(kPr, true);
  EXPECT_EQ(dispatcher_.dispatch(up("c2")), Dispatcher::Outcome::kStarted) << "after a success, failures are forgotten";
}

TEST_F(DispatcherTest, CancelAllStopsEveryOperationAndTheRetries) {
  dispatcher_.dispatch(up("c1"));
  dispatcher_.dispatch(up("c1", {1, 43}));
  dispatcher_.finished({1, 43}, false);
  dispatcher_.cancel_all();
  EXPECT_TRUE(dispatcher_.in_flight().at(kPr).cancelled->load());
  timers_.advance(std::chrono::minutes(10));
  EXPECT_EQ(retries_due_, 0);
}

}  // namespace
}  // namespace prevue
