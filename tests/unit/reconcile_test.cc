#include "engine/reconcile.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

PullRequestRecord open_pr(const std::string& head) {
  return PullRequestRecord{1, 5, PrStatus::kOpen, head, "feature", "main", "", false, {}, "", 0, 0};
}

EnvironmentRecord env_in(EnvState state, const std::string& deployed, const std::string& commit = "") {
  EnvironmentRecord e;
  e.state = state;
  e.deployed_sha = deployed;
  e.commit_sha = commit.empty() ? deployed : commit;
  return e;
}

TEST(Reconcile, OpenPrWithoutEnvironmentIsCreated) {
  auto d = decide(open_pr("a1"), std::nullopt, std::nullopt, 0);
  EXPECT_EQ(d.action, ReconcileAction::kUp);
  EXPECT_EQ(d.sha, "a1");
  EXPECT_EQ(decide(open_pr("a1"), env_in(EnvState::kDestroyed, ""), std::nullopt, 0).action, ReconcileAction::kUp);
}

TEST(Reconcile, ConvergedIsLeftAlone) {
  EXPECT_EQ(decide(open_pr("a1"), env_in(EnvState::kReady, "a1"), std::nullopt, 0).action, ReconcileAction::kNone);
  EXPECT_EQ(decide(open_pr("a1"), env_in(EnvState::kSleeping, "a1"), std::nullopt, 0).action, ReconcileAction::kNone);
}

TEST(Reconcile, PushUpdatesAndWakes) {
  EXPECT_EQ(decide(open_pr("b2"), env_in(EnvState::kReady, "a1"), std::nullopt, 0).action, ReconcileAction::kUp);
  EXPECT_EQ(decide(open_pr("b2"), env_in(EnvState::kSleeping, "a1"), std::nullopt, 0).action, ReconcileAction::kUp);
}

TEST(Reconcile, InterruptedRunsAreResumed) {
  EXPECT_EQ(decide(open_pr("a1"), env_in(EnvState::kProvisioning, ""), std::nullopt, 0).action, ReconcileAction::kUp);
  EXPECT_EQ(decide(open_pr("a1"), env_in(EnvState::kDestroying, "a1"), std::nullopt, 0).action, ReconcileAction::kDown);
}

TEST(Reconcile, FailureIsNotRetriedUntilANewPush) {
  EXPECT_EQ(decide(open_pr("a1"), env_in(EnvState::kFailed, "", "a1"), std::nullopt, 0).action, ReconcileAction::kNone);
  EXPECT_EQ(decide(open_pr("b2"), env_in(EnvState::kFailed, "", "a1"), std::nullopt, 0).action, ReconcileAction::kUp);
}

TEST(Reconcile, ExpiredLeaseWaitsForANewPush) {
  PullRequestRecord pr = open_pr("a1");
  pr.expired_sha = "a1";
  EXPECT_EQ(decide(pr, env_in(EnvState::kDestroyed, ""), std::nullopt, 0).action, ReconcileAction::kNone);
  pr.head_sha = "b2";
  EXPECT_EQ(decide(pr, env_in(EnvState::kDestroyed, ""), std::nullopt, 0).action, ReconcileAction::kUp);
}

TEST(Reconcile, ClosedOrMergedIsTornDownAfterGrace) {
  PullRequestRecord pr = open_pr("a1");
  pr.status = PrStatus::kMerged;
  LeaseRecord lease{1, 1000, 1000, EndAction::kDestroy, 5000, 99999, 0, false, 100};
  EXPECT_EQ(decide(pr, env_in(EnvState::kReady, "a1"), lease, 200).action, ReconcileAction::kWait);
  EXPECT_EQ(decide(pr, env_in(EnvState::kReady, "a1"), lease, 5100).action, ReconcileAction::kDown);
  EXPECT_EQ(decide(pr, env_in(EnvState::kFailed, "", "a1"), std::nullopt, 0).action, ReconcileAction::kDown);
  EXPECT_EQ(decide(pr, env_in(EnvState::kDestroyed, ""), std::nullopt, 0).action, ReconcileAction::kNone);
  pr.status = PrStatus::kClosed;
  EXPECT_EQ(decide(pr, env_in(EnvState::kSleeping, "a1"), std::nullopt, 0).action, ReconcileAction::kDown);
}

TEST(Trust, AForkIsTrustedOnlyByAListedAuthorOrAWholeTrustedLabel) {
  PullRequestRecord pr;
  pr.author = "mallory";
  EXPECT_TRUE(is_trusted(pr, {}, {}));  // not a fork
  pr.fork = true;
  EXPECT_FALSE(is_trusted(pr, {"alice"}, {"ok-to-test"}));
  EXPECT_TRUE(is_trusted(pr, {"mallory"}, {}));
  pr.labels = {"bug", "ok-to-test"};
  EXPECT_TRUE(is_trusted(pr, {}, {"ok-to-test"}));
  // A label is one name, commas and all: "ok-to-test,x" is not "ok-to-test".
  pr.labels = {"ok-to-test,x", "x,ok-to-test"};
  EXPECT_FALSE(is_trusted(pr, {}, {"ok-to-test"}));
  EXPECT_TRUE(is_trusted(pr, {}, {"ok-to-test,x"}));
}

}  // namespace
}  // namespace prevue
