// The daemon's lease timers (LeaseKeeper, the unit `prevue serve` runs) on a
// real store, with a fake clock and timers fired by moving it: TTL and idle
// expiry, sleep, wake, a closed PR's grace, proxy hits flushed, batches.
#include "daemon/lease_keeper.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "manual_timers.h"

namespace prevue {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

struct Request {
  std::string what;  // "sleep", "destroy", "wake"
  std::string slug;
  std::string why;
  std::int64_t at_ms;
  bool operator==(const Request&) const = default;
};

class LeaseKeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Store::open(":memory:", clock_).value();
    repo_ = store_->upsert_repository("/repos/app", "app", "/m").value();
  }

  LeaseKeeper& keeper(size_t batch = 100) {
    LeaseRequests requests;
    auto record = [this](const char* what) {
      return [this, what](const EnvironmentRecord& e, const std::string& why) {
        requests_.push_back({what, e.slug, why, clock_.now_ms()});
      };
    };
    requests.sleep = record("sleep");
    requests.destroy = record("destroy");
    requests.wake = record("wake");
    keeper_ = std::make_unique<LeaseKeeper>(*store_, clock_, timers_, LeaseKeeperSettings{batch, Millis(5'000)},
                                            std::move(requests), metrics_);
    EXPECT_TRUE(keeper_->start().ok());
    return *keeper_;
  }

  // A ready environment with a lease as a run that made it ready writes it.
  EnvironmentRecord ready(long pr, milliseconds ttl, milliseconds idle, EndAction end, EnvState state = EnvState::kReady) {
    EnvironmentRecord e;
    e.repo_id = repo_.id;
    e.pr = pr;
    e.slug = "pr-" + std::to_string(pr);
    e.dir = "/envs/" + e.slug;
    e = store_->insert_environment(e).value();
    for (EnvState s : {EnvState::kProvisioning, EnvState::kReady}) {
      e.state = s;
      EXPECT_TRUE(store_->update_environment(e).ok());
    }
    if (state != EnvState::kReady) {
      e.state = state;
      EXPECT_TRUE(store_->update_environment(e).ok());
    }
    std::int64_t now = clock_.now_ms();
    EXPECT_TRUE(store_->upsert_lease(LeaseRecord{e.id, ttl.count(), idle.count(), end, 0, now + ttl.count(), now, false, 0}).ok());
    return e;
  }

  LeaseRecord lease(const EnvironmentRecord& e) { return store_->lease_of(e.id).value().value(); }

  std::vector<std::string> timeline_kinds(const EnvironmentRecord& e) {
    std::vector<std::string> kinds;
    auto timeline = store_->timeline_of(e.id);  // kept: the loop reads into it
    for (const auto& t : timeline.value()) kinds.push_back(t.kind);
    return kinds;
  }

  FakeClock clock_;
  ManualTimers timers_{clock_};
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  RepositoryRecord repo_;
  std::unique_ptr<LeaseKeeper> keeper_;
  std::vector<Request> requests_;
};

TEST_F(LeaseKeeperTest, TtlEndsTheLeaseAtItsDeadlineNotBefore) {
  auto e = ready(1, hours(1), hours(24), EndAction::kDestroy);
  const std::int64_t start = clock_.now_ms();
  keeper();
  timers_.advance(minutes(59));
  EXPECT_TRUE(requests_.empty());
  timers_.advance(minutes(2));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0], (Request{"destroy", "pr-1", "lease ran out", start + 3'600'000}));  // on the dot
  EXPECT_EQ(metrics_.lease_expiries.load(), 1u);
  EXPECT_EQ(timeline_kinds(e).back(), "expired");
  timers_.advance(hours(48));
  EXPECT_EQ(requests_.size(), 1u) << "an ended lease is acted on once";
}

TEST_F(LeaseKeeperTest, IdleWithTheSleepEndAsksForSleep) {
  ready(1, hours(72), minutes(10), EndAction::kSleep);
  keeper();
  timers_.advance(minutes(10) + seconds(1));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].what, "sleep");
  EXPECT_EQ(requests_[0].why, "lease ran out");
}

TEST_F(LeaseKeeperTest, ProxyHitsRenewTheIdleLimitOnceFlushed) {
  auto e = ready(1, hours(72), minutes(10), EndAction::kDestroy);
  LeaseKeeper& k = keeper();
  timers_.advance(minutes(9));
  k.touch(e.id);  // a reviewer opens the preview at 9 min
  const std::int64_t hit = clock_.now_ms();
  EXPECT_LT(lease(e).last_active, hit) << "hits are coalesced, not written per request";
  timers_.advance(seconds(5));  // one flush interval
  EXPECT_EQ(lease(e).last_active, hit);
  EXPECT_EQ(k.next_deadline(), hit + 600'000);
  timers_.advance(minutes(9));  // past the first deadline: renewed, nothing happens
  EXPECT_TRUE(requests_.empty());
  timers_.advance(minutes(1));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].at_ms, hit + 600'000);
}

TEST_F(LeaseKeeperTest, AHitNotYetFlushedCountsWhenTheLeaseEnds) {
  auto e = ready(1, hours(72), minutes(10), EndAction::kDestroy);
  keeper(100);
  timers_.advance(minutes(10) - milliseconds(1));
  keeper_->touch(e.id);  // a millisecond before the end, between flushes
  timers_.advance(milliseconds(2));
  EXPECT_TRUE(requests_.empty()) << "the expiry pass flushes first";
}

TEST_F(LeaseKeeperTest, WakeRenewsTheLeaseAndAsksForTheEnvironment) {
  auto e = ready(1, hours(1), minutes(10), EndAction::kSleep, EnvState::kSleeping);
  LeaseKeeper& k = keeper();
  timers_.advance(hours(3));  // asleep for long: its lease has ended
  requests_.clear();
  const std::int64_t now = clock_.now_ms();
  k.wake(e.id);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0], (Request{"wake", "pr-1", "a request woke it", now}));
  EXPECT_EQ(lease(e).last_active, now);
  EXPECT_EQ(lease(e).expires_at, now + 3'600'000);
  EXPECT_EQ(k.next_deadline(), now + 600'000);
  EXPECT_EQ(metrics_.lease_renewals.load(), 1u);
  // A wake for an environment that is not asleep is no request.
  auto awake = ready(2, hours(1), minutes(10), EndAction::kSleep);
  k.wake(awake.id);
  EXPECT_EQ(requests_.size(), 1u);
}

TEST_F(LeaseKeeperTest, AClosedPullRequestGoesWhenItsGraceRunsOut) {
  auto e = ready(1, hours(72), hours(24), EndAction::kSleep);
  LeaseKeeper& k = keeper();
  LeaseRecord l = lease(e);
  l.grace_ms = 3'600'000;
  l.revoked_at = clock_.now_ms();  // merged now
  ASSERT_TRUE(store_->upsert_lease(l).ok());
  k.schedule(l);
  timers_.advance(minutes(59));
  EXPECT_TRUE(requests_.empty());
  timers_.advance(minutes(2));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].what, "destroy") << "a closed PR's preview goes even when its lease would sleep";
  EXPECT_EQ(requests_[0].why, "pull request closed, grace over");
  EXPECT_EQ(metrics_.lease_expiries.load(), 0u) << "a revocation is not an expiry";
}

TEST_F(LeaseKeeperTest, AnExtendMovesTheDeadline) {
  auto e = ready(1, hours(1), hours(24), EndAction::kDestroy);
  LeaseKeeper& k = keeper();
  timers_.advance(minutes(30));
  LeaseRecord l = lease(e);
  l.expires_at += 3'600'000;  // `prevue extend 1h`
  ASSERT_TRUE(store_->upsert_lease(l).ok());
  k.schedule(l);
  timers_.advance(minutes(45));
  EXPECT_TRUE(requests_.empty());
  timers_.advance(minutes(46));
  EXPECT_EQ(requests_.size(), 1u);
}

TEST_F(LeaseKeeperTest, ARenewalTheKeeperDidNotSeeIsReadBackBeforeActing) {
  auto e = ready(1, hours(1), hours(24), EndAction::kDestroy);
  keeper();
  LeaseRecord l = lease(e);
  l.expires_at += 3'600'000;  // written by another process (`prevue extend` on the CLI), not scheduled here
  ASSERT_TRUE(store_->upsert_lease(l).ok());
  timers_.advance(minutes(61));
  EXPECT_TRUE(requests_.empty()) << "the store is the truth";
  timers_.advance(hours(1));
  EXPECT_EQ(requests_.size(), 1u) << "and the new deadline is kept";
}

TEST_F(LeaseKeeperTest, ManyDueAtOnceAreTakenInBoundedPasses) {
  for (long pr = 1; pr <= 25; ++pr) ready(pr, hours(1), hours(24), EndAction::kDestroy);
  keeper(10);
  timers_.advance(hours(2));
  EXPECT_EQ(requests_.size(), 25u);
}

TEST_F(LeaseKeeperTest, StopWritesTheLastHitsAndEndsTheTimers) {
  auto e = ready(1, hours(1), hours(24), EndAction::kDestroy);
  LeaseKeeper& k = keeper();
  timers_.advance(seconds(1));
  k.touch(e.id);
  const std::int64_t hit = clock_.now_ms();
  k.stop();
  EXPECT_EQ(lease(e).last_active, hit);
  EXPECT_FALSE(timers_.armed(1));
  EXPECT_FALSE(timers_.armed(2));
  timers_.advance(hours(5));
  EXPECT_TRUE(requests_.empty());
}

}  // namespace
}  // namespace prevue
