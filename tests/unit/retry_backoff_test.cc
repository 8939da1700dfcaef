// A failed operation waits before the same target is tried again (the
// daemon's dispatch asks RetryBackoff), with the caller's clock.
#include "daemon/retry_backoff.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

const PrKey kPr{1, 42};

TEST(RetryBackoff, TheWaitDoublesFromOneSecondToFiveMinutes) {
  RetryBackoff b;
  std::int64_t now = 1'000'000;
  std::vector<std::int64_t> waits;
  for (int failure = 0; failure < 12; ++failure) {
    b.record(kPr, "up@c1", false, now);
    std::int64_t until = *b.next_retry(now);
    waits.push_back(until - now);
    EXPECT_TRUE(b.waiting(kPr, "up@c1", until - 1));
    EXPECT_FALSE(b.waiting(kPr, "up@c1", until));
    now = until;
  }
  EXPECT_EQ(waits, (std::vector<std::int64_t>{1'000, 2'000, 4'000, 8'000, 16'000, 32'000, 64'000, 128'000, 256'000, 300'000,
                                              300'000, 300'000}));
}

TEST(RetryBackoff, ANewTargetStartsAtOnceAndASuccessForgets) {
  RetryBackoff b;
  b.record(kPr, "up@c1", false, 0);
  b.record(kPr, "up@c1", false, 1'000);
  EXPECT_TRUE(b.waiting(kPr, "up@c1", 2'000));
  EXPECT_FALSE(b.waiting(kPr, "up@c2", 2'000)) << "a push is tried at once";
  EXPECT_FALSE(b.waiting(kPr, "down@", 2'000)) << "so is a teardown";
  EXPECT_FALSE(b.waiting({1, 43}, "up@c1", 2'000)) << "another PR is not held back";
  b.record(kPr, "up@c2", false, 2'000);  // the new target's first failure: one second again
  EXPECT_EQ(*b.next_retry(2'000), 3'000);
  b.record(kPr, "up@c2", true, 3'000);
  EXPECT_FALSE(b.waiting(kPr, "up@c2", 3'000));
  EXPECT_FALSE(b.next_retry(3'000));
}

TEST(RetryBackoff, TheNextRetryIsTheEarliestWaitNotYetOver) {
  RetryBackoff b;
  b.record({1, 1}, "up@a", false, 0);       // until 1 000
  b.record({1, 2}, "up@b", false, 500);     // until 1 500
  EXPECT_EQ(*b.next_retry(0), 1'000);
  EXPECT_EQ(*b.next_retry(1'000), 1'500);  // the first is over: it was retried by the pass that asked
  EXPECT_FALSE(b.next_retry(1'500));
}

}  // namespace
}  // namespace prevue
