#include "core/claim_owner.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/maintenance.h"
#include "store/store.h"
#include "daemon/log_limiter.h"

namespace prevue {
namespace {

// A real process that has exited and been reaped: its pid names nothing now.
long dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

TEST(ClaimOwner, TextRoundTrips) {
  ClaimOwner self = ClaimOwner::self("daemon");
  EXPECT_EQ(self.pid, ::getpid());
  EXPECT_GT(self.start_time, 0u);
  auto back = ClaimOwner::parse(self.text());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->text(), self.text());
  for (const char* bad : {"", "daemon-123", "gc-host-77", "a/b/c/d", "a/b/c/x/1", "a/b/c/1/2/3", "a//c/1/2"})
    EXPECT_FALSE(ClaimOwner::parse(bad).has_value()) << bad;
}

TEST(ClaimOwner, DeadOnlyWhenProvablyGoneFromThisMachine) {
  ClaimOwner self = ClaimOwner::self("daemon");
  EXPECT_FALSE(provably_dead(self, self));

  ClaimOwner gone = self;
  gone.pid = dead_pid();
  EXPECT_TRUE(provably_dead(gone, self));

  ClaimOwner reused = self;  // our parent's pid, but not the process that claimed
  reused.pid = ::getppid();
  reused.start_time = process_start_time(reused.pid).value() + 1;
  EXPECT_TRUE(provably_dead(reused, self));
  reused.start_time -= 1;
  EXPECT_FALSE(provably_dead(reused, self));  // that very process, still running

  ClaimOwner elsewhere = gone;
  elsewhere.host = "another-host";
  EXPECT_FALSE(provably_dead(elsewhere, self));
  ClaimOwner earlier_boot = gone;
  earlier_boot.boot_id = "another-boot";
  EXPECT_FALSE(provably_dead(earlier_boot, self));
}

TEST(ClaimEnvironment, TakesOverADeadOwnersClaimAndRespectsALiveOne) {
  SystemClock clock;
  auto store = std::move(Store::open(":memory:", clock)).value();
  ClaimOwner self = ClaimOwner::self("daemon");

  ClaimOwner killed = self;
  killed.pid = dead_pid();
  ASSERT_TRUE(*store->try_claim(1, killed.text(), 30 * 60'000));
  auto taken = claim_environment(*store, 1, self, Millis(60'000));
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(taken->claimed);
  EXPECT_EQ(taken->taken_over_from, killed.text());
  EXPECT_EQ(**store->claim_holder(1), self.text());

  ClaimOwner live = self;  // our parent: running
  live.pid = ::getppid();
  live.start_time = process_start_time(live.pid).value();
  ASSERT_TRUE(*store->try_claim(2, live.text(), 30 * 60'000));
  auto respected = claim_environment(*store, 2, self, Millis(60'000));
  ASSERT_TRUE(respected.ok());
  EXPECT_FALSE(respected->claimed);
  EXPECT_EQ(respected->holder, live.text());

  ASSERT_TRUE(*store->try_claim(3, "gc-oldhost-77", 30 * 60'000));  // an owner we cannot judge
  EXPECT_FALSE(claim_environment(*store, 3, self, Millis(60'000))->claimed);
}

TEST(LogLimiter, RepeatsAreHeldBackAndCounted) {
  LogLimiter limiter(10'000);
  std::uint64_t held = 99;
  EXPECT_TRUE(limiter.admit("op.start pr=1", 0, &held));
  EXPECT_EQ(held, 0u);
  for (int i = 1; i <= 500; ++i) EXPECT_FALSE(limiter.admit("op.start pr=1", i, &held));
  EXPECT_TRUE(limiter.admit("op.start pr=2", 600, &held));  // another line is not held back
  EXPECT_TRUE(limiter.admit("op.start pr=1", 10'001, &held));
  EXPECT_EQ(held, 500u);
  EXPECT_FALSE(limiter.admit("op.start pr=1", 10'002, &held));
}

}  // namespace
}  // namespace prevue
