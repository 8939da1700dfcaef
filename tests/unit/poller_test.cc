// The poller on a real repository made by the test: branches become pull
// requests (opened, updated, merged, closed), and so do a host's
// refs/pull/N/head, with nothing recorded twice.
#include "daemon/poller.h"

#include <gtest/gtest.h>

#include "core/clock.h"
#include "test_repo.h"

namespace prevue {
namespace {

class Poller : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Store::open(":memory:", clock_).value();
    origin_.write("README", "base\n");
    base_sha_ = origin_.commit("base");
    repo_ = store_->upsert_repository(origin_.path().string(), "app", (origin_.scratch() / "mirror.git").string()).value();
  }

  // One poll; the notes it wrote.
  std::vector<std::string> poll(PullRequestSource source = PullRequestSource::kAuto) {
    WatchedRepository watched;
    watched.url = origin_.path().string();
    watched.pull_requests = source;
    std::vector<std::string> notes;
    Status s = poll_repository(*store_, repo_, watched, clock_.now_ms(), notes);
    EXPECT_TRUE(s.ok()) << s.error().message;
    clock_.advance(std::chrono::seconds(1));
    return notes;
  }

  std::string commit_on(const std::string& branch, const std::string& file) {
    origin_.git({"checkout", "-q", "-B", branch});
    origin_.write(file, branch + " " + file + "\n");
    std::string sha = origin_.commit(branch + ": " + file);
    origin_.git({"checkout", "-q", "main"});
    return sha;
  }

  PullRequestRecord pr(long number) { return store_->find_pull_request(repo_.id, number).value().value(); }

  FakeClock clock_;
  testing::TestRepo origin_{"poller"};
  std::unique_ptr<Store> store_;
  RepositoryRecord repo_;
  std::string base_sha_;
};

TEST_F(Poller, ABranchIsAPullRequestFromOpenedToMerged) {
  EXPECT_TRUE(poll().empty()) << "the base alone is no pull request";
  std::string first = commit_on("feature/login", "a.txt");
  EXPECT_EQ(poll().size(), 1u);
  PullRequestRecord opened = pr(1);
  EXPECT_EQ(opened.status, PrStatus::kOpen);
  EXPECT_EQ(opened.head_ref, "feature/login");
  EXPECT_EQ(opened.head_sha, first);
  EXPECT_EQ(opened.base_ref, "main");
  EXPECT_TRUE(poll().empty()) << "nothing changed, nothing recorded";

  std::string second = commit_on("feature/login", "b.txt");
  EXPECT_EQ(poll().size(), 1u);
  EXPECT_EQ(pr(1).head_sha, second);

  origin_.git({"merge", "-q", "--no-ff", "-m", "merge", "feature/login"});
  EXPECT_EQ(poll().size(), 1u);
  EXPECT_EQ(pr(1).status, PrStatus::kMerged);
}

TEST_F(Poller, ADeletedBranchClosesItsPullRequestAndNewWorkOpensAnother) {
  commit_on("spike", "x.txt");
  poll();
  ASSERT_EQ(pr(1).status, PrStatus::kOpen);
  origin_.git({"branch", "-q", "-D", "spike"});
  EXPECT_EQ(poll().size(), 1u);
  EXPECT_EQ(pr(1).status, PrStatus::kClosed);
  commit_on("spike", "y.txt");  // the same name, new work
  EXPECT_EQ(poll().size(), 1u);
  EXPECT_EQ(pr(2).status, PrStatus::kOpen);
  EXPECT_EQ(pr(2).head_ref, "spike");
}

TEST_F(Poller, AHostsPullRefsAreItsPullRequests) {
  std::string sha = commit_on("topic", "t.txt");
  origin_.git({"update-ref", "refs/pull/7/head", sha});
  origin_.git({"update-ref", "refs/pull/oops/head", sha});  // not a number: ignored
  EXPECT_EQ(poll().size(), 1u);
  EXPECT_EQ(pr(7).head_ref, "refs/pull/7/head");
  EXPECT_EQ(pr(7).head_sha, sha);
  EXPECT_FALSE(store_->find_pull_request(repo_.id, 1).value().has_value()) << "with pull refs, branches are not PRs";
  origin_.git({"update-ref", "-d", "refs/pull/7/head"});
  EXPECT_EQ(poll().size(), 1u);
  EXPECT_EQ(pr(7).status, PrStatus::kClosed);
}

TEST_F(Poller, AMissingBaseIsAnErrorThatNamesIt) {
  WatchedRepository watched;
  watched.base = "trunk";
  std::vector<std::string> notes;
  Status s = poll_repository(*store_, repo_, watched, clock_.now_ms(), notes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("base branch"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace prevue
