// The lease scheduler with a fake clock: nothing here sleeps.
#include "lease/lease_scheduler.h"

#include <gtest/gtest.h>

#include "core/clock.h"
#include "engine/reconcile.h"
#include "store/store.h"

namespace prevue {
namespace {

TEST(LeaseScheduler, KeepsTheEarliestDeadlineAndMovesRenewedOnes) {
  LeaseScheduler s;
  EXPECT_FALSE(s.next_deadline());
  s.schedule(1, 500);
  s.schedule(2, 300);
  s.schedule(3, 400);
  EXPECT_EQ(*s.next_deadline(), 300);
  s.schedule(2, 900);  // renewed
  EXPECT_EQ(*s.next_deadline(), 400);
  s.remove(3);
  EXPECT_EQ(*s.next_deadline(), 500);
  s.schedule(1, LeaseScheduler::kNever);  // pinned
  EXPECT_EQ(*s.next_deadline(), 900);
  EXPECT_EQ(s.size(), 1u);
}

TEST(LeaseScheduler, TakesDueMostOverdueFirstAndBounded) {
  LeaseScheduler s;
  for (int i = 1; i <= 10; ++i) s.schedule(i, 100 * i);
  auto due = s.take_due(450, 3);
  EXPECT_EQ(due, (std::vector<std::int64_t>{1, 2, 3}));
  due = s.take_due(450, 3);
  EXPECT_EQ(due, (std::vector<std::int64_t>{4}));
  EXPECT_TRUE(s.take_due(450, 3).empty());
  EXPECT_EQ(*s.next_deadline(), 500);
}

TEST(LeaseScheduler, CoalescesHits) {
  LeaseScheduler s;
  for (int i = 0; i < 1000; ++i) s.touch(7, 1000 + i);
  s.touch(8, 5);
  auto activity = s.take_activity();
  ASSERT_EQ(activity.size(), 2u);
  for (auto [env, at] : activity) EXPECT_EQ(at, env == 7 ? 1999 : 5);
  EXPECT_TRUE(s.take_activity().empty());
}

// The whole lease life with a fake clock, as the daemon drives it: a push
// sets the lease, hits renew the idle limit, the TTL ends it, a merge
// revokes it after the grace.
TEST(LeaseLife, ExpiryRenewalAndRevocationWithAFakeClock) {
  FakeClock clock;
  const std::int64_t start = clock.now_ms();
  LeaseRecord lease{1, /*ttl*/ 3'600'000, /*idle*/ 600'000, EndAction::kDestroy, /*grace*/ 120'000, start + 3'600'000, start, false, 0};
  LeaseScheduler s;
  s.schedule(1, lease.deadline());
  EXPECT_EQ(*s.next_deadline(), start + 600'000);  // idle first

  // A proxy hit after 9 minutes renews the idle limit.
  clock.advance(std::chrono::minutes(9));
  s.touch(1, clock.now_ms());
  for (auto [env, at] : s.take_activity()) lease.last_active = at;
  s.schedule(1, lease.deadline());
  clock.advance(std::chrono::minutes(2));
  EXPECT_TRUE(s.take_due(clock.now_ms(), 10).empty());  // would have expired without the hit

  // Idle for ten minutes: due.
  clock.advance(std::chrono::minutes(9));
  EXPECT_EQ(s.take_due(clock.now_ms(), 10), std::vector<std::int64_t>{1});

  // Kept busy, the TTL still ends it.
  lease.last_active = start + 3'500'000;
  s.schedule(1, lease.deadline());
  EXPECT_EQ(*s.next_deadline(), start + 3'600'000);

  // A merge revokes it; the grace decides, even for a pinned lease.
  lease.pinned = true;
  lease.revoked_at = clock.now_ms();
  s.schedule(1, lease.deadline());
  EXPECT_EQ(*s.next_deadline(), clock.now_ms() + 120'000);
  PullRequestRecord pr{1, 1, PrStatus::kMerged, "abc", "f", "main", "", false, {}, "", 0, lease.revoked_at};
  EnvironmentRecord env;
  env.state = EnvState::kReady;
  EXPECT_EQ(decide(pr, env, lease, clock.now_ms()).action, ReconcileAction::kWait);
  clock.advance(std::chrono::minutes(2));
  EXPECT_EQ(decide(pr, env, lease, clock.now_ms()).action, ReconcileAction::kDown);
}

}  // namespace
}  // namespace prevue
