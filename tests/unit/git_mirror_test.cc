#include "git/git_mirror.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>
#include <sys/stat.h>

#include "core/files.h"
#include "unit/test_repo.h"

namespace prevue {
namespace {

using prevue::testing::TestRepo;

class GitMirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_.write("prevue.json", "{\"version\": 1}");
    repo_.write("app/server.py", "print('v1')\n");
    repo_.write("app/run.sh", "#!/bin/sh\n", /*executable=*/true);
    repo_.write("api/main.py", "api v1\n");
    first_ = repo_.commit("first");
    repo_.git({"tag", "v1"});
    repo_.git({"checkout", "-q", "-b", "feature"});
    repo_.write("app/server.py", "print('v2')\n");
    second_ = repo_.commit("second");
    repo_.git({"checkout", "-q", "main"});
    auto m = GitMirror::open(repo_.scratch() / "mirror.git", repo_.path().string());
    ASSERT_TRUE(m.ok()) << m.error().message;
    mirror_.emplace(std::move(m).value());
    auto fetched = mirror_->fetch();
    ASSERT_TRUE(fetched.ok()) << fetched.error().message;
  }

  TestRepo repo_{"mirror"};
  std::optional<GitMirror> mirror_;
  std::string first_, second_;
};

TEST_F(GitMirrorTest, ResolvesBranchesTagsAndShas) {
  EXPECT_EQ(mirror_->resolve_ref("main")->sha, first_);
  EXPECT_EQ(mirror_->resolve_ref("feature")->sha, second_);
  EXPECT_EQ(mirror_->resolve_ref("feature")->ref, "refs/heads/feature");
  EXPECT_EQ(mirror_->resolve_ref("v1")->sha, first_);
  EXPECT_EQ(mirror_->resolve_ref("refs/heads/feature")->sha, second_);
  EXPECT_EQ(mirror_->resolve_sha(second_)->sha, second_);
  EXPECT_EQ(mirror_->resolve_sha(second_.substr(0, 8))->sha, second_);
}

TEST_F(GitMirrorTest, ClearErrorsForBadRefs) {
  auto unknown = mirror_->resolve_ref("no-such-branch");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_NE(unknown.error().message.find("unknown ref 'no-such-branch'"), std::string::npos);
  EXPECT_EQ(mirror_->resolve_ref("bad..name").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(mirror_->resolve_ref("HEAD~1").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(mirror_->resolve_sha("xyz").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(mirror_->resolve_sha("0000000000").error().code, ErrorCode::kNotFound);
}

TEST_F(GitMirrorTest, ReadsFilesAtACommitWithoutAWorkTree) {
  EXPECT_EQ(**mirror_->read_file(first_, "app/server.py"), "print('v1')\n");
  EXPECT_EQ(**mirror_->read_file(second_, "app/server.py"), "print('v2')\n");
  EXPECT_FALSE(mirror_->read_file(first_, "missing.txt")->has_value());
  EXPECT_FALSE(mirror_->read_file(first_, "app")->has_value());  // a directory is not a file
}

TEST_F(GitMirrorTest, ListsAndExportsTrees) {
  auto files = mirror_->list_files(first_, "app");
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  auto all = mirror_->list_files(first_, ".");
  EXPECT_EQ(all->size(), 4u);
  auto out = repo_.scratch() / "export";
  auto exported = mirror_->export_tree(second_, "app", out);
  ASSERT_TRUE(exported.ok());
  EXPECT_EQ(exported->size(), 2u);
  EXPECT_EQ(*read_file(out / "app/server.py"), "print('v2')\n");
  struct stat st {};
  ASSERT_EQ(::stat((out / "app/run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  EXPECT_FALSE(std::filesystem::exists(out / "api"));
  EXPECT_EQ(mirror_->list_files(first_, "nope").error().code, ErrorCode::kNotFound);
}

TEST_F(GitMirrorTest, EntryIdsChangeOnlyWithTheirContent) {
  EXPECT_NE(*mirror_->entry_id(first_, "app"), *mirror_->entry_id(second_, "app"));
  EXPECT_EQ(*mirror_->entry_id(first_, "api"), *mirror_->entry_id(second_, "api"));
  EXPECT_EQ(*mirror_->entry_id(first_, "nope"), "");
}

TEST_F(GitMirrorTest, AncestryAndBranches) {
  EXPECT_TRUE(*mirror_->is_ancestor(first_, second_));
  EXPECT_FALSE(*mirror_->is_ancestor(second_, first_));
  auto branches = mirror_->branches();
  ASSERT_TRUE(branches.ok());
  EXPECT_EQ(branches->size(), 2u);
}

TEST_F(GitMirrorTest, FetchPrunesDeletedBranches) {
  repo_.git({"branch", "-D", "feature"});
  ASSERT_TRUE(mirror_->fetch().ok());
  EXPECT_EQ(mirror_->resolve_ref("feature").error().code, ErrorCode::kNotFound);
  // The commit is still in the object database.
  EXPECT_EQ(mirror_->resolve_sha(second_)->sha, second_);
}

TEST_F(GitMirrorTest, BuildsStartingTogetherShareOneNewMirror) {
  // Two builds of one repository at once (two webhooks): both create-or-open
  // the same new mirror and fetch into it; neither may fail on git's locks.
  for (int round = 0; round < 5; ++round) {
    auto path = repo_.scratch() / ("shared-" + std::to_string(round) + ".git");
    std::vector<std::string> errors(4);
    std::vector<std::thread> builds;
    for (size_t i = 0; i < errors.size(); ++i)
      builds.emplace_back([&, i] {
        auto m = GitMirror::open(path, repo_.path().string());
        if (!m.ok()) {
          errors[i] = m.error().message;
          return;
        }
        if (auto f = m->fetch(); !f.ok()) errors[i] = f.error().message;
        else if (auto r = m->resolve_ref("feature"); !r.ok() || r->sha != second_) errors[i] = "feature not fetched";
      });
    for (auto& t : builds) t.join();
    for (const auto& e : errors) EXPECT_EQ(e, "") << "round " << round;
  }
}

TEST(GitMirror, UnreachableSourceIsAClearError) {
  auto dir = std::filesystem::temp_directory_path() / ("prevue-mirror-bad-" + std::to_string(::getpid()));
  auto m = GitMirror::open(dir / "m.git", "/nonexistent/repository/path");
  ASSERT_TRUE(m.ok());
  auto fetched = m->fetch();
  ASSERT_FALSE(fetched.ok());
  EXPECT_NE(fetched.error().message.find("fetch from '/nonexistent/repository/path' failed"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prevue
