// The store's written contract (store.h), run against a real sqlite file
// and against ":memory:".
#include "store/store.h"

#include "store/migrations.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <atomic>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace prevue {
namespace {

class StoreContract : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      dir_ = std::filesystem::temp_directory_path() / ("prevue-store-" + std::to_string(::getpid()) + "-" +
                                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
      path_ = (dir_ / "prevue.db").string();
    } else {
      path_ = ":memory:";
    }
    auto opened = Store::open(path_, clock_);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened).value();
    repo_ = store_->upsert_repository("/repos/app", "app", "/state/mirrors/app.git").value();
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  EnvironmentRecord new_env(long pr, const std::string& slug) {
    EnvironmentRecord e;
    e.repo_id = repo_.id;
    e.pr = pr;
    e.slug = slug;
    e.dir = "/state/envs/" + slug;
    auto r = store_->insert_environment(e);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : e;
  }

  FakeClock clock_;
  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
  RepositoryRecord repo_;
};

TEST_P(StoreContract, MigratesToLatestVersion) { EXPECT_EQ(store_->schema_version(), 7); }

TEST_P(StoreContract, UpsertRepositoryIsIdempotent) {
  auto again = store_->upsert_repository("/repos/app", "other", "/elsewhere");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, repo_.id);
  EXPECT_EQ(again->mirror_path, "/state/mirrors/app.git");
}

TEST_P(StoreContract, AbsentIsEmptyNotError) {
  auto env = store_->find_environment_by_slug("nope");
  ASSERT_TRUE(env.ok());
  EXPECT_FALSE(env->has_value());
  auto run = store_->last_run(999);
  ASSERT_TRUE(run.ok());
  EXPECT_FALSE(run->has_value());
  auto lease = store_->lease_of(999);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
}

TEST_P(StoreContract, EnvironmentUniquePerPrAndSlug) {
  new_env(1, "pr-1-a");
  EnvironmentRecord dup;
  dup.repo_id = repo_.id;
  dup.pr = 1;
  dup.slug = "pr-1-b";
  dup.dir = "/x";
  auto r = store_->insert_environment(dup);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kConflict);
  dup.pr = 2;
  dup.slug = "pr-1-a";
  EXPECT_EQ(store_->insert_environment(dup).error().code, ErrorCode::kConflict);
}

TEST_P(StoreContract, LayersAreKeptInOrder) {
  EnvironmentRecord e = new_env(1, "pr-1-a");
  EXPECT_TRUE(e.layers.empty());
  e.layers = {{"infra", "terraform"}, {"app", "compose"}};
  ASSERT_TRUE(store_->update_environment(e).ok());
  auto read = store_->find_environment_by_slug("pr-1-a");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->layers, e.layers);
  auto listed = store_->list_environments(false);
  ASSERT_TRUE(listed.ok() && listed->size() == 1);
  EXPECT_EQ(listed->front().layers, e.layers);
}

TEST_P(StoreContract, LabelsAreKeptWholeCommasIncluded) {
  PullRequestRecord pr;
  pr.repo_id = repo_.id;
  pr.pr = 5;
  pr.labels = {"ok-to-test", "needs review, urgent"};
  pr.updated_at = 1;
  ASSERT_TRUE(store_->upsert_pull_request(pr).ok());
  auto read = store_->find_pull_request(repo_.id, 5);
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->labels, pr.labels);
  pr.labels.clear();
  ASSERT_TRUE(store_->upsert_pull_request(pr).ok());
  EXPECT_TRUE((*store_->find_pull_request(repo_.id, 5))->labels.empty());
}

TEST_P(StoreContract, StateMachineIsEnforced) {
  EnvironmentRecord e = new_env(1, "pr-1-a");
  e.state = EnvState::kReady;  // pending -> ready skips provisioning
  auto s = store_->update_environment(e);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kConflict);
  for (EnvState next : {EnvState::kProvisioning, EnvState::kReady, EnvState::kDestroying, EnvState::kDestroyed, EnvState::kPending}) {
    e.state = next;
    ASSERT_TRUE(store_->update_environment(e).ok()) << to_string(next);
  }
  ASSERT_TRUE(store_->update_environment(e).ok());  // staying in a state is allowed
  e.state = EnvState::kDestroyed;                    // pending -> destroyed skips teardown
  EXPECT_EQ(store_->update_environment(e).error().code, ErrorCode::kConflict);
}

TEST_P(StoreContract, UpdateWritesFieldsAndTime) {
  EnvironmentRecord e = new_env(1, "pr-1-a");
  clock_.advance(std::chrono::seconds(5));
  e.state = EnvState::kProvisioning;
  e.commit_sha = "abc";
  e.service_revisions = "web 1\n";
  e.seeded = true;
  ASSERT_TRUE(store_->update_environment(e).ok());
  auto back = store_->find_environment(repo_.id, 1);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->commit_sha, "abc");
  EXPECT_EQ((*back)->service_revisions, "web 1\n");
  EXPECT_TRUE((*back)->seeded);
  EXPECT_EQ((*back)->updated_at - (*back)->created_at, 5000);
}

TEST_P(StoreContract, UpdateOfMissingRowIsNotFound) {
  EnvironmentRecord ghost;
  ghost.id = 12345;
  ghost.slug = "ghost";
  EXPECT_EQ(store_->update_environment(ghost).error().code, ErrorCode::kNotFound);
}

TEST_P(StoreContract, ListOrdersAndHidesDestroyed) {
  EnvironmentRecord b = new_env(7, "pr-7");
  new_env(3, "pr-3");
  b.state = EnvState::kDestroying;
  ASSERT_TRUE(store_->update_environment(b).ok());
  b.state = EnvState::kDestroyed;
  ASSERT_TRUE(store_->update_environment(b).ok());
  auto live = store_->list_environments(false);
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].pr, 3);
  auto all = store_->list_environments(true);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].pr, 3);
  EXPECT_EQ((*all)[1].pr, 7);
}

TEST_P(StoreContract, RunsAndStepsInOrder) {
  EnvironmentRecord e = new_env(1, "pr-1");
  auto run1 = store_->begin_run(e.id, RunKind::kUp, "c1");
  auto run2 = store_->begin_run(e.id, RunKind::kDown, "c1");
  ASSERT_TRUE(run1.ok() && run2.ok());
  auto s1 = store_->begin_step(run2->id, "destroy");
  auto s2 = store_->begin_step(run2->id, "routes");
  clock_.advance(std::chrono::milliseconds(40));
  ASSERT_TRUE(store_->finish_step(s1->id, RunState::kFailed, "boom\n", 12).ok());
  ASSERT_TRUE(store_->finish_run(run2->id, RunState::kFailed, "boom").ok());
  auto last = store_->last_run(e.id);
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->id, run2->id);
  EXPECT_EQ((*last)->kind, RunKind::kDown);
  EXPECT_EQ((*last)->state, RunState::kFailed);
  auto steps = store_->steps_of_run(run2->id);
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].name, "destroy");
  EXPECT_EQ((*steps)[0].seq, 1);
  EXPECT_EQ((*steps)[0].log, "boom\n");
  EXPECT_EQ((*steps)[0].child_ms, 12);
  EXPECT_EQ((*steps)[0].finished_at - (*steps)[0].started_at, 40);
  EXPECT_EQ((*steps)[1].seq, 2);
  EXPECT_EQ((*steps)[1].state, RunState::kRunning);
  EXPECT_EQ(s2->name, "routes");
}

TEST_P(StoreContract, RoutesReplaceAtomicallyAndHostsAreUnique) {
  EnvironmentRecord a = new_env(1, "pr-1");
  EnvironmentRecord b = new_env(2, "pr-2");
  ASSERT_TRUE(store_->replace_routes(a.id, {{"pr-1.x", a.id, "web", "web", Endpoint{"127.0.0.1", 1}}, {"api-pr-1.x", a.id, "api", "api", Endpoint{"127.0.0.1", 2}}}).ok());
  // b may not take a's host; the failed replace leaves b's routes untouched.
  ASSERT_TRUE(store_->replace_routes(b.id, {{"pr-2.x", b.id, "web", "web", Endpoint{"127.0.0.1", 3}}}).ok());
  auto clash = store_->replace_routes(b.id, {{"pr-2b.x", b.id, "web", "web", Endpoint{"127.0.0.1", 3}}, {"pr-1.x", b.id, "web", "web", Endpoint{"127.0.0.1", 3}}});
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, ErrorCode::kConflict);
  auto routes_b = store_->routes_of(b.id);
  ASSERT_EQ(routes_b->size(), 1u);
  EXPECT_EQ((*routes_b)[0].host, "pr-2.x");
  auto routes_a = store_->routes_of(a.id);
  ASSERT_EQ(routes_a->size(), 2u);
  EXPECT_EQ((*routes_a)[0].host, "api-pr-1.x");  // ordered by host
  auto all = store_->all_routes();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].host, "api-pr-1.x");  // ordered by host, across environments
  EXPECT_EQ((*all)[2].env_id, b.id);
  auto found = store_->find_route("pr-1.x");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->upstream, (Endpoint{"127.0.0.1", 1}));  // typed, as written
  ASSERT_TRUE(store_->replace_routes(a.id, {}).ok());
  EXPECT_FALSE(store_->find_route("pr-1.x")->has_value());
}

TEST_P(StoreContract, LeasesUpsertAndDelete) {
  EnvironmentRecord e = new_env(1, "pr-1");
  LeaseRecord l{e.id, 1000, 500, EndAction::kSleep, 10, 2000, 1500, false, 0};
  ASSERT_TRUE(store_->upsert_lease(l).ok());
  l.expires_at = 9000;
  l.pinned = true;
  ASSERT_TRUE(store_->upsert_lease(l).ok());
  auto back = store_->lease_of(e.id);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->expires_at, 9000);
  EXPECT_TRUE((*back)->pinned);
  EXPECT_EQ((*back)->end_action, EndAction::kSleep);
  ASSERT_TRUE(store_->delete_lease(e.id).ok());
  EXPECT_FALSE(store_->lease_of(e.id)->has_value());
}

TEST_P(StoreContract, LeaseDeadlines) {
  LeaseRecord l{1, 100, 50, EndAction::kDestroy, 30, 1000, 900, false, 0};
  EXPECT_EQ(l.deadline(), 950);  // idle limit first
  l.last_active = 990;
  EXPECT_EQ(l.deadline(), 1000);  // then the TTL
  l.pinned = true;
  EXPECT_EQ(l.deadline(), std::numeric_limits<std::int64_t>::max());
  l.revoked_at = 2000;
  EXPECT_EQ(l.deadline(), 2030);  // a merge ends even a pinned lease, after the grace
}

TEST_P(StoreContract, DueLeasesAreBoundedAndMostOverdueFirst) {
  for (int i = 1; i <= 5; ++i) {
    EnvironmentRecord e = new_env(i, "pr-" + std::to_string(i));
    ASSERT_TRUE(store_->upsert_lease(LeaseRecord{e.id, 0, 1'000'000, EndAction::kDestroy, 0, 100 * (6 - i), 0, false, 0}).ok());
  }
  auto due = store_->due_leases(300, 2);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].deadline(), 100);
  EXPECT_EQ((*due)[1].deadline(), 200);
  EXPECT_EQ(store_->due_leases(300, 100)->size(), 3u);
  EXPECT_EQ(store_->due_leases(50, 100)->size(), 0u);
  EXPECT_EQ(store_->all_leases()->size(), 5u);
}

TEST_P(StoreContract, EventsAreRecordedOncePerDeliveryId) {
  EventRecord e;
  e.delivery_id = "gh-123";
  e.source = "github";
  e.repo_id = repo_.id;
  e.pr = 4;
  e.action = "opened";
  EXPECT_FALSE(*store_->has_event("gh-123"));
  auto first = store_->insert_event(e);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  EXPECT_TRUE(*store_->has_event("gh-123"));
  EXPECT_EQ(*store_->inbox_depth(), 1);  // received, not processed
  EventRecord again = e;
  EXPECT_FALSE(*store_->insert_event(again));
  // Recorded together with its outcome: never in the inbox's backlog.
  EventRecord done = e;
  done.delivery_id = "gh-124";
  done.status = "processed";
  done.note = "opened PR 4";
  done.processed_at = 1000;
  EXPECT_TRUE(*store_->insert_event(done));
  EXPECT_EQ(*store_->inbox_depth(), 1);
  auto recent = store_->recent_events(10);
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].note, "opened PR 4");
  EXPECT_EQ((*recent)[0].status, "processed");
}

TEST_P(StoreContract, PullRequestsByNumberAndBranch) {
  EXPECT_EQ(*store_->next_pr_number(repo_.id), 1);
  PullRequestRecord p{repo_.id, 1, PrStatus::kOpen, "abc", "feature/x", "main", "", false, {}, "", 0, 0};
  ASSERT_TRUE(store_->upsert_pull_request(p).ok());
  EXPECT_EQ(*store_->next_pr_number(repo_.id), 2);
  EXPECT_EQ((*store_->find_pull_request_by_branch(repo_.id, "feature/x"))->pr, 1);
  p.status = PrStatus::kMerged;
  ASSERT_TRUE(store_->upsert_pull_request(p).ok());
  PullRequestRecord again{repo_.id, 2, PrStatus::kOpen, "def", "feature/x", "main", "", false, {}, "", 0, 0};
  ASSERT_TRUE(store_->upsert_pull_request(again).ok());
  EXPECT_EQ((*store_->find_pull_request_by_branch(repo_.id, "feature/x"))->pr, 2);  // the newest
  EXPECT_FALSE(store_->find_pull_request_by_branch(repo_.id, "other")->has_value());
  EXPECT_EQ((*store_->find_pull_request(repo_.id, 1))->status, PrStatus::kMerged);
  EXPECT_EQ(store_->list_pull_requests()->size(), 2u);
}

TEST_P(StoreContract, ReportTargetsKeepTheirIdsUntilTheTargetMoves) {
  ASSERT_TRUE(store_->set_report_target(repo_.id, 4, "github", "octo/app").ok());
  auto r = store_->report_of(repo_.id, 4);
  ASSERT_TRUE(r.ok() && r->has_value());
  ReportRecord rec = **r;
  rec.comment_id = "77";
  rec.deployment_id = "5";
  rec.deployment_sha = "abc";
  rec.sent_status = "success@abc";
  ASSERT_TRUE(store_->save_report(rec).ok());
  // The same target again (every delivery sets it) keeps what was sent.
  ASSERT_TRUE(store_->set_report_target(repo_.id, 4, "github", "octo/app").ok());
  EXPECT_EQ(store_->report_of(repo_.id, 4).value()->comment_id, "77");
  EXPECT_EQ(store_->all_reports()->size(), 1u);
  // Moved to another repository: the old ids mean nothing there.
  ASSERT_TRUE(store_->set_report_target(repo_.id, 4, "github", "octo/other").ok());
  auto moved = **store_->report_of(repo_.id, 4);
  EXPECT_EQ(moved.comment_id, "");
  EXPECT_EQ(moved.sent_status, "");
  // A save for the old target finds nothing to update.
  EXPECT_EQ(store_->save_report(rec).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(store_->report_of(repo_.id, 5)->has_value());
}

TEST_P(StoreContract, ClaimsExcludeOthersUntilTheyExpire) {
  EXPECT_TRUE(*store_->try_claim(7, "gc-a", 1000));
  EXPECT_TRUE(*store_->try_claim(7, "gc-a", 1000));   // ours already
  EXPECT_FALSE(*store_->try_claim(7, "gc-b", 1000));  // someone else's
  clock_.advance(std::chrono::milliseconds(1001));
  EXPECT_TRUE(*store_->try_claim(7, "gc-b", 1000));   // a crashed claimer does not block forever
  ASSERT_TRUE(store_->release_claim(7, "gc-a").ok()); // not ours any more: no effect
  EXPECT_FALSE(*store_->try_claim(7, "gc-a", 1000));
  ASSERT_TRUE(store_->release_claim(7, "gc-b").ok());
  EXPECT_TRUE(*store_->try_claim(7, "gc-a", 1000));
}

TEST_P(StoreContract, ClaimHolderAndTakeOver) {
  EXPECT_FALSE(store_->claim_holder(7)->has_value());
  ASSERT_TRUE(*store_->try_claim(7, "daemon/a", 1000));
  EXPECT_EQ(**store_->claim_holder(7), "daemon/a");
  EXPECT_FALSE(*store_->take_over_claim(7, "daemon/other", "daemon/b", 1000));  // not held by that owner
  EXPECT_TRUE(*store_->take_over_claim(7, "daemon/a", "daemon/b", 1000));
  EXPECT_EQ(**store_->claim_holder(7), "daemon/b");
  EXPECT_FALSE(*store_->try_claim(7, "daemon/a", 1000));
  clock_.advance(std::chrono::milliseconds(1001));
  EXPECT_FALSE(store_->claim_holder(7)->has_value());  // expired
}

TEST_P(StoreContract, TimelineInOrder) {
  EnvironmentRecord e = new_env(1, "pr-1");
  ASSERT_TRUE(store_->append_timeline(e.id, "received", "opened", 0).ok());
  clock_.advance(std::chrono::milliseconds(5));
  ASSERT_TRUE(store_->append_timeline(e.id, "step", "apply", 420).ok());
  auto t = store_->timeline_of(e.id);
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].kind, "received");
  EXPECT_EQ((*t)[1].duration_ms, 420);
  EXPECT_EQ((*t)[1].at - (*t)[0].at, 5);
}

TEST_P(StoreContract, SurvivesReopen) {
  if (!GetParam()) GTEST_SKIP() << "memory store does not persist";
  new_env(1, "pr-1");
  store_.reset();
  auto reopened = Store::open(path_, clock_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE((*reopened)->find_environment_by_slug("pr-1")->has_value());
  EXPECT_EQ((*reopened)->schema_version(), 7);
}

TEST_P(StoreContract, RefusesNewerSchema) {
  if (!GetParam()) GTEST_SKIP() << "needs a file";
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto reopened = Store::open(path_, clock_);
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.error().message.find("newer than this prevue"), std::string::npos);
}

// A state file written by an older prevue (schema 2) keeps its rows through
// migration 3's table rebuilds, and the rebuilt tables keep their constraints.
TEST(StoreMigration, RebuiltTablesKeepRowsAndConstraints) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("prevue-migrate-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string path = (dir / "prevue.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const auto& migration : kMigrations) {
    if (migration.version > 2) continue;
    ASSERT_EQ(sqlite3_exec(db, migration.sql, nullptr, nullptr, nullptr), SQLITE_OK);
  }
  const char* rows =
      "PRAGMA user_version = 2;"
      "INSERT INTO repositories VALUES(1, '/repos/app', 'app', '/m', 1);"
      "INSERT INTO environments(id, repo_id, pr, slug, state, dir, created_at, updated_at) VALUES(7, 1, 42, 'pr-42', 'ready', '/e', 1, 2);"
      "INSERT INTO leases VALUES(7, 100, 50, 'sleep', 10, 500, 400, 1, 0, 450);"
      "INSERT INTO pull_requests(repo_id, pr, status, head_sha, head_ref, labels, updated_at) VALUES(1, 42, 'open', 'abc', 'feature/x', 'bug,ok-to-test', 3);"
      "INSERT INTO runs(id, env_id, kind, state, started_at) VALUES(3, 7, 'create', 'done', 1);"
      "INSERT INTO timeline(env_id, at, kind, detail) VALUES(7, 5, 'ready', 'up');";
  ASSERT_EQ(sqlite3_exec(db, rows, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  FakeClock clock;
  auto opened = Store::open(path, clock);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  EXPECT_EQ(store.schema_version(), 7);
  auto env = store.find_environment_by_slug("pr-42");
  ASSERT_TRUE(env.ok() && env->has_value());
  EXPECT_EQ((*env)->id, 7);
  EXPECT_EQ((*env)->state, EnvState::kReady);
  // Migration 4: the provider it ran on is the one layer of the short form.
  EXPECT_EQ((*env)->layers, (std::vector<EnvironmentLayer>{{"main", "local"}}));
  auto lease = store.lease_of(7);
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->end_action, EndAction::kSleep);
  EXPECT_TRUE((*lease)->pinned);
  auto pr = store.find_pull_request(1, 42);
  ASSERT_TRUE(pr.ok() && pr->has_value());
  EXPECT_EQ((*pr)->head_ref, "feature/x");
  EXPECT_EQ((*pr)->labels, (std::vector<std::string>{"bug", "ok-to-test"}));  // migration 5: one per line
  EXPECT_EQ(store.timeline_of(7)->size(), 1u);
  opened->reset();

  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "PRAGMA foreign_keys=ON", nullptr, nullptr, nullptr);
  for (const char* refused : {"UPDATE environments SET state = 'bogus' WHERE id = 7", "UPDATE leases SET end_action = 'explode'",
                              "UPDATE pull_requests SET status = 'reverted'",
                              "INSERT INTO runs(env_id, kind, state, started_at) VALUES(99, 'create', 'done', 1)"})
    EXPECT_NE(sqlite3_exec(db, refused, nullptr, nullptr, nullptr), SQLITE_OK) << refused;
  for (const char* accepted : {"UPDATE environments SET state = 'destroyed' WHERE id = 7", "UPDATE leases SET end_action = 'destroy'",
                               "UPDATE pull_requests SET status = 'merged'"})
    EXPECT_EQ(sqlite3_exec(db, accepted, nullptr, nullptr, nullptr), SQLITE_OK) << accepted;
  sqlite3_close(db);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& backend) { return backend.param ? "SqliteFile" : "Memory"; });

}  // namespace
}  // namespace prevue

namespace prevue {
namespace {

// `prevue up` and `prevue ls` started together on a new state directory:
// both open (and one creates) the same file; neither may fail with
// "database is locked".
TEST(SqliteStore, ProcessesOpeningANewFileTogetherAllSucceed) {
  FakeClock clock;
  auto dir = std::filesystem::temp_directory_path() / ("prevue-store-race-" + std::to_string(::getpid()));
  for (int round = 0; round < 20; ++round) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string path = (dir / "prevue.db").string();
    std::vector<std::thread> openers;
    std::atomic<int> failures{0};
    std::string last_error;
    std::mutex error_mutex;
    for (int i = 0; i < 4; ++i) {
      openers.emplace_back([&] {
        auto store = Store::open(path, clock);
        if (!store.ok()) {
          ++failures;
          std::lock_guard lock(error_mutex);
          last_error = store.error().message;
        }
      });
    }
    for (auto& t : openers) t.join();
    ASSERT_EQ(failures.load(), 0) << "round " << round << ": " << last_error;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prevue
