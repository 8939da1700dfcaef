#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <thread>
#include <unordered_map>

#include "store/migrations.h"
#include "store/store.h"
#include "core/files.h"

namespace prevue {

const char* to_string(RunKind kind) { return kind == RunKind::kUp ? "up" : "down"; }
const char* to_string(RunState state) {
  switch (state) {
    case RunState::kRunning: return "running";
    case RunState::kSucceeded: return "succeeded";
    case RunState::kFailed: return "failed";
  }
  return "unknown";
}

const char* to_string(PrStatus status) {
  switch (status) {
    case PrStatus::kOpen: return "open";
    case PrStatus::kClosed: return "closed";
    case PrStatus::kMerged: return "merged";
  }
  return "open";
}

std::int64_t LeaseRecord::deadline() const {
  constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  if (revoked_at != 0) return revoked_at + grace_ms;
  if (pinned) return kNever;
  return std::min(expires_at, last_active + idle_ms);
}

namespace {

PrStatus pr_status_from(const std::string& s) {
  if (s == "closed") return PrStatus::kClosed;
  if (s == "merged") return PrStatus::kMerged;
  return PrStatus::kOpen;
}

constexpr const char* kLeaseColumns =
    "env_id, ttl_ms, idle_ms, end_action, grace_ms, expires_at, last_active, pinned, revoked_at";
constexpr const char* kPrColumns =
    "repo_id, pr, status, head_sha, head_ref, base_ref, author, fork, labels, expired_sha, updated_at, closed_at";
constexpr const char* kReportColumns =
    "repo_id, pr, host, host_repo, comment_id, deployment_id, deployment_sha, sent_status, sent_comment, last_error, updated_at";
constexpr const char* kEventColumns =
    "id, delivery_id, source, repo_id, pr, action, head_sha, base_sha, head_ref, base_ref, author, fork, labels, "
    "received_at, processed_at, status, note";

RunState run_state_from(const std::string& s) {
  if (s == "succeeded") return RunState::kSucceeded;
  if (s == "failed") return RunState::kFailed;
  return RunState::kRunning;
}

// Prepared statements, kept for the connection's life: preparing costs
// more than running most of prevue's statements.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  }
  sqlite3_stmt* get(const char* sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) return nullptr;
    cache_.emplace(sql, stmt);
    return stmt;
  }

 private:
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One use of a cached statement: binds by position, steps, reads columns,
// and resets it for the next use.
class Statement {
 public:
  Statement(sqlite3* db, StatementCache* cache, const char* sql) : db_(db), stmt_(cache->get(sql)) {}
  ~Statement() {
    if (stmt_) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepared() const { return stmt_ != nullptr; }
  Statement& bind(int i, std::int64_t v) { if (stmt_) sqlite3_bind_int64(stmt_, i, v); return *this; }
  Statement& bind(int i, const std::string& v) {
    if (stmt_) sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR; }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::string error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

Error db_error(sqlite3* db, const std::string& what) {
  int code = sqlite3_extended_errcode(db);
  ErrorCode ours = (code & 0xff) == SQLITE_CONSTRAINT ? ErrorCode::kConflict : ErrorCode::kIo;
  return make_error(ours, what + ": " + sqlite3_errmsg(db));
}

constexpr const char* kEnvColumns =
    "id, repo_id, pr, slug, state, ref, commit_sha, deployed_sha, dir, url, failed_step, error, layers, seeded, "
    "created_at, updated_at, service_revisions";

// A list of names as a column holds it: one per line (a label may hold a
// comma; no name holds a line break: the webhook normaliser drops such).
std::string encode_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += item + "\n";
  return out;
}

// Layers as the column holds them: one "name provider" line each.
std::string encode_layers(const std::vector<EnvironmentLayer>& layers) {
  std::string out;
  for (const auto& layer : layers) out += layer.name + " " + layer.provider + "\n";
  return out;
}

std::vector<EnvironmentLayer> decode_layers(const std::string& text) {
  std::vector<EnvironmentLayer> out;
  for (const auto& line : nonempty_lines(text)) {
    auto space = line.find(' ');
    if (space != std::string::npos) out.push_back(EnvironmentLayer{line.substr(0, space), line.substr(space + 1)});
  }
  return out;
}

EnvironmentRecord read_env(const Statement& s) {
  EnvironmentRecord r;
  r.id = s.integer(0);
  r.repo_id = s.integer(1);
  r.pr = static_cast<long>(s.integer(2));
  r.slug = s.text(3);
  r.state = env_state_from_string(s.text(4)).value_or(EnvState::kFailed);
  r.ref = s.text(5);
  r.commit_sha = s.text(6);
  r.deployed_sha = s.text(7);
  r.dir = s.text(8);
  r.url = s.text(9);
  r.failed_step = s.text(10);
  r.error = s.text(11);
  r.layers = decode_layers(s.text(12));
  r.seeded = s.integer(13) != 0;
  r.created_at = s.integer(14);
  r.updated_at = s.integer(15);
  r.service_revisions = s.text(16);
  return r;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, const Clock& clock) : db_(db), cache_(db), clock_(clock) {}
  // close_v2 keeps the connection until cache_ (destroyed after this body)
  // has finalized its statements.
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  Status configure() {
    // WAL lets readers (prevue ls, the proxy) run beside the writer; the
    // busy timeout lets two prevue processes share the file.
    sqlite3_busy_timeout(db_, 10'000);
    // A short-lived CLI process must not pay a WAL checkpoint and the WAL
    // file's deletion on every exit; sqlite checkpoints as the WAL grows.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    int persist = 1;
    sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    // Turning a new file to WAL takes an exclusive lock and sqlite does not
    // wait for it through the busy handler: two processes opening a new
    // state directory at once (prevue up and prevue ls) would see
    // "database is locked". Retried within the same 10 s.
    Status wal = exec("PRAGMA journal_mode=WAL");
    for (int attempt = 0; !wal.ok() && sqlite3_errcode(db_) == SQLITE_BUSY && attempt < 500; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      wal = exec("PRAGMA journal_mode=WAL");
    }
    PREVUE_TRY(wal);
    PREVUE_TRY(exec("PRAGMA synchronous=NORMAL"));
    // Foreign keys go on after the migrations: a migration that rebuilds a
    // table drops it while other tables still refer to it.
    PREVUE_TRY(migrate());
    return exec("PRAGMA foreign_keys=ON");
  }

  Status in_transaction(const std::function<Status()>& body) override {
    PREVUE_TRY(run("BEGIN IMMEDIATE"));
    Status result;
    try {
      result = body();
    } catch (...) {
      (void)run("ROLLBACK");
      throw;
    }
    if (!result.ok()) {
      (void)run("ROLLBACK");
      return result;
    }
    return run("COMMIT");
  }

  int schema_version() override {
    Statement s(db_, &cache_, "PRAGMA user_version");
    return s.step() == SQLITE_ROW ? static_cast<int>(s.integer(0)) : -1;
  }

  Result<RepositoryRecord> upsert_repository(const std::string& key, const std::string& name,
                                             const std::string& mirror_path) override {
    Statement ins(db_, &cache_, "INSERT INTO repositories(key, name, mirror_path, created_at) VALUES(?,?,?,?) "
                       "ON CONFLICT(key) DO NOTHING");
    ins.bind(1, key).bind(2, name).bind(3, mirror_path).bind(4, clock_.now_ms());
    if (ins.step() != SQLITE_DONE) return db_error(db_, "cannot record repository");
    Statement get(db_, &cache_, "SELECT id, key, name, mirror_path FROM repositories WHERE key = ?");
    get.bind(1, key);
    auto row = optional_row<RepositoryRecord>(get, read_repository, "cannot read repository");
    if (!row.ok()) return row.error();
    if (!row->has_value()) return db_error(db_, "cannot read repository");
    return **row;
  }

  Result<std::optional<RepositoryRecord>> find_repository(std::int64_t id) override {
    Statement get(db_, &cache_, "SELECT id, key, name, mirror_path FROM repositories WHERE id = ?");
    get.bind(1, id);
    return optional_row<RepositoryRecord>(get, read_repository, "cannot read repository");
  }

  Result<EnvironmentRecord> insert_environment(EnvironmentRecord r) override {
    r.created_at = r.updated_at = clock_.now_ms();
    Statement s(db_, &cache_, "INSERT INTO environments(repo_id, pr, slug, state, ref, commit_sha, deployed_sha, dir, url, "
                     "failed_step, error, layers, seeded, created_at, updated_at, service_revisions) "
                     "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, r.repo_id).bind(2, static_cast<std::int64_t>(r.pr)).bind(3, r.slug).bind(4, std::string(to_string(r.state)));
    s.bind(5, r.ref).bind(6, r.commit_sha).bind(7, r.deployed_sha).bind(8, r.dir).bind(9, r.url);
    s.bind(10, r.failed_step).bind(11, r.error).bind(12, encode_layers(r.layers)).bind(13, std::int64_t(r.seeded));
    s.bind(14, r.created_at).bind(15, r.updated_at).bind(16, r.service_revisions);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot create environment " + r.slug);
    r.id = sqlite3_last_insert_rowid(db_);
    return r;
  }

  Result<std::optional<EnvironmentRecord>> find_environment(std::int64_t repo_id, long pr) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE repo_id = ? AND pr = ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, repo_id).bind(2, static_cast<std::int64_t>(pr));
    return one_env(s);
  }

  Result<std::optional<EnvironmentRecord>> find_environment_by_slug(const std::string& slug) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE slug = ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, slug);
    return one_env(s);
  }

  Result<std::optional<EnvironmentRecord>> find_environment_by_id(std::int64_t id) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE id = ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, id);
    return one_env(s);
  }

  Status update_environment(EnvironmentRecord& r) override {
    return in_transaction([&] { return update_in_transaction(r); });
  }

  Result<std::vector<EnvironmentRecord>> list_environments(bool include_destroyed) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments " +
                      (include_destroyed ? "" : "WHERE state <> 'destroyed' ") + "ORDER BY repo_id, pr";
    Statement s(db_, &cache_, sql.c_str());
    return all_rows<EnvironmentRecord>(s, read_env, "cannot list environments");
  }

  Result<RunRecord> begin_run(std::int64_t env_id, RunKind kind, const std::string& target_sha) override {
    RunRecord run{0, env_id, kind, target_sha, RunState::kRunning, "", clock_.now_ms(), 0};
    Statement s(db_, &cache_, "INSERT INTO runs(env_id, kind, target_sha, state, started_at) VALUES(?,?,?,?,?)");
    s.bind(1, env_id).bind(2, std::string(to_string(kind))).bind(3, target_sha).bind(4, std::string("running")).bind(5, run.started_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record run");
    run.id = sqlite3_last_insert_rowid(db_);
    return run;
  }

  Status finish_run(std::int64_t run_id, RunState state, const std::string& error) override {
    Statement s(db_, &cache_, "UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE id = ?");
    s.bind(1, std::string(to_string(state))).bind(2, error).bind(3, clock_.now_ms()).bind(4, run_id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot finish run");
    return {};
  }

  Result<std::optional<RunRecord>> last_run(std::int64_t env_id) override {
    Statement s(db_, &cache_, "SELECT id, env_id, kind, target_sha, state, error, started_at, finished_at FROM runs "
                     "WHERE env_id = ? ORDER BY id DESC LIMIT 1");
    s.bind(1, env_id);
    return optional_row<RunRecord>(
        s,
        [](const Statement& r) {
          return RunRecord{r.integer(0), r.integer(1), r.text(2) == "down" ? RunKind::kDown : RunKind::kUp, r.text(3),
                           run_state_from(r.text(4)), r.text(5), r.integer(6), r.integer(7)};
        },
        "cannot read runs");
  }

  Result<StepRecord> begin_step(std::int64_t run_id, const std::string& name) override {
    StepRecord step;
    step.run_id = run_id;
    step.name = name;
    step.started_at = clock_.now_ms();
    Statement s(db_, &cache_, "INSERT INTO steps(run_id, seq, name, state, started_at) "
                     "VALUES(?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1), ?2, 'running', ?3)");
    s.bind(1, run_id).bind(2, name).bind(3, step.started_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record step");
    step.id = sqlite3_last_insert_rowid(db_);
    return step;
  }

  Status finish_step(std::int64_t step_id, RunState state, const std::string& log, std::int64_t child_ms) override {
    Statement s(db_, &cache_, "UPDATE steps SET state = ?, log = ?, finished_at = ?, child_ms = ? WHERE id = ?");
    s.bind(1, std::string(to_string(state))).bind(2, log).bind(3, clock_.now_ms()).bind(4, child_ms).bind(5, step_id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot finish step");
    return {};
  }

  Result<std::vector<StepRecord>> steps_of_run(std::int64_t run_id) override {
    Statement s(db_, &cache_, "SELECT id, run_id, seq, name, state, log, started_at, finished_at, child_ms FROM steps "
                     "WHERE run_id = ? ORDER BY seq");
    s.bind(1, run_id);
    return all_rows<StepRecord>(
        s,
        [](const Statement& r) {
          return StepRecord{r.integer(0), r.integer(1), static_cast<int>(r.integer(2)), r.text(3),
                            run_state_from(r.text(4)), r.text(5), r.integer(6), r.integer(7), r.integer(8)};
        },
        "cannot read steps");
  }

  Status replace_routes(std::int64_t env_id, const std::vector<RouteRecord>& routes) override {
    return in_transaction([&]() -> Status {
      Statement del(db_, &cache_, "DELETE FROM routes WHERE env_id = ?");
      del.bind(1, env_id);
      if (del.step() != SQLITE_DONE) return db_error(db_, "cannot replace routes");
      for (const auto& route : routes) {
        Statement ins(db_, &cache_, "INSERT INTO routes(host, env_id, route, service, upstream) VALUES(?,?,?,?,?)");
        ins.bind(1, route.host).bind(2, env_id).bind(3, route.route).bind(4, route.service).bind(5, route.upstream.text());
        if (ins.step() != SQLITE_DONE) return db_error(db_, "host " + route.host + " is taken");
      }
      return {};
    });
  }

  Result<std::vector<RouteRecord>> routes_of(std::int64_t env_id) override {
    Statement s(db_, &cache_, "SELECT host, env_id, route, service, upstream FROM routes WHERE env_id = ? ORDER BY host");
    s.bind(1, env_id);
    return all_rows<RouteRecord>(s, read_route, "cannot read routes");
  }

  Result<std::vector<RouteRecord>> all_routes() override {
    Statement s(db_, &cache_, "SELECT host, env_id, route, service, upstream FROM routes ORDER BY host");
    return all_rows<RouteRecord>(s, read_route, "cannot read routes");
  }

  Result<std::optional<RouteRecord>> find_route(const std::string& host) override {
    Statement s(db_, &cache_, "SELECT host, env_id, route, service, upstream FROM routes WHERE host = ?");
    s.bind(1, host);
    return optional_row<RouteRecord>(s, read_route, "cannot read routes");
  }

  Status upsert_lease(const LeaseRecord& l) override {
    Statement s(db_, &cache_, "INSERT INTO leases(env_id, ttl_ms, idle_ms, end_action, grace_ms, expires_at, last_active, pinned, "
                     "revoked_at, deadline) VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(env_id) DO UPDATE SET "
                     "ttl_ms = excluded.ttl_ms, idle_ms = excluded.idle_ms, end_action = excluded.end_action, "
                     "grace_ms = excluded.grace_ms, expires_at = excluded.expires_at, last_active = excluded.last_active, "
                     "pinned = excluded.pinned, revoked_at = excluded.revoked_at, deadline = excluded.deadline");
    s.bind(1, l.env_id).bind(2, l.ttl_ms).bind(3, l.idle_ms).bind(4, std::string(to_string(l.end_action))).bind(5, l.grace_ms);
    s.bind(6, l.expires_at).bind(7, l.last_active).bind(8, std::int64_t(l.pinned)).bind(9, l.revoked_at).bind(10, l.deadline());
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot write lease");
    return {};
  }

  Result<std::optional<LeaseRecord>> lease_of(std::int64_t env_id) override {
    std::string sql = std::string("SELECT ") + kLeaseColumns + " FROM leases WHERE env_id = ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, env_id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<LeaseRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read lease");
    return std::optional<LeaseRecord>(read_lease(s));
  }

  Status delete_lease(std::int64_t env_id) override {
    Statement s(db_, &cache_, "DELETE FROM leases WHERE env_id = ?");
    s.bind(1, env_id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot delete lease");
    return {};
  }

  Result<std::vector<LeaseRecord>> due_leases(std::int64_t now, int limit) override {
    std::string sql = std::string("SELECT ") + kLeaseColumns + " FROM leases WHERE deadline <= ? ORDER BY deadline LIMIT ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, now).bind(2, std::int64_t(limit));
    return all_rows<LeaseRecord>(s, read_lease, "cannot read leases");
  }

  Result<std::vector<LeaseRecord>> all_leases() override {
    std::string sql = std::string("SELECT ") + kLeaseColumns + " FROM leases ORDER BY env_id";
    Statement s(db_, &cache_, sql.c_str());
    return all_rows<LeaseRecord>(s, read_lease, "cannot read leases");
  }

  Result<std::vector<RepositoryRecord>> list_repositories() override {
    Statement s(db_, &cache_, "SELECT id, key, name, mirror_path FROM repositories ORDER BY id");
    return all_rows<RepositoryRecord>(s, read_repository, "cannot list repositories");
  }

  Result<bool> insert_event(EventRecord& e) override {
    e.received_at = clock_.now_ms();
    Statement s(db_, &cache_, "INSERT INTO events(delivery_id, source, repo_id, pr, action, head_sha, base_sha, head_ref, base_ref, "
                     "author, fork, labels, received_at, status, note, processed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                     "ON CONFLICT(delivery_id) DO NOTHING");
    s.bind(1, e.delivery_id).bind(2, e.source).bind(3, e.repo_id).bind(4, std::int64_t(e.pr)).bind(5, e.action);
    s.bind(6, e.head_sha).bind(7, e.base_sha).bind(8, e.head_ref).bind(9, e.base_ref).bind(10, e.author);
    s.bind(11, std::int64_t(e.fork)).bind(12, encode_lines(e.labels)).bind(13, e.received_at).bind(14, e.status).bind(15, e.note);
    s.bind(16, e.processed_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record event");
    if (sqlite3_changes(db_) == 0) return false;
    e.id = sqlite3_last_insert_rowid(db_);
    return true;
  }

  Result<bool> has_event(const std::string& delivery_id) override {
    Statement s(db_, &cache_, "SELECT 1 FROM events WHERE delivery_id = ?");
    s.bind(1, delivery_id);
    int rc = s.step();
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) return db_error(db_, "cannot look up event");
    return false;
  }

  Result<std::vector<EventRecord>> recent_events(int limit) override {
    std::string sql = std::string("SELECT ") + kEventColumns + " FROM events ORDER BY id DESC LIMIT ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, std::int64_t(limit));
    return all_rows<EventRecord>(s, read_event, "cannot read events");
  }

  Result<std::int64_t> inbox_depth() override {
    Statement s(db_, &cache_, "SELECT COUNT(*) FROM events WHERE processed_at = 0");
    if (s.step() != SQLITE_ROW) return db_error(db_, "cannot count events");
    return s.integer(0);
  }

  Status upsert_pull_request(const PullRequestRecord& p) override {
    Statement s(db_, &cache_, "INSERT INTO pull_requests(repo_id, pr, status, head_sha, head_ref, base_ref, author, fork, labels, "
                     "expired_sha, updated_at, closed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(repo_id, pr) DO UPDATE SET "
                     "status = excluded.status, head_sha = excluded.head_sha, head_ref = excluded.head_ref, "
                     "base_ref = excluded.base_ref, author = excluded.author, fork = excluded.fork, labels = excluded.labels, "
                     "expired_sha = excluded.expired_sha, updated_at = excluded.updated_at, closed_at = excluded.closed_at");
    s.bind(1, p.repo_id).bind(2, std::int64_t(p.pr)).bind(3, std::string(to_string(p.status))).bind(4, p.head_sha);
    s.bind(5, p.head_ref).bind(6, p.base_ref).bind(7, p.author).bind(8, std::int64_t(p.fork)).bind(9, encode_lines(p.labels));
    s.bind(10, p.expired_sha).bind(11, p.updated_at ? p.updated_at : clock_.now_ms()).bind(12, p.closed_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record pull request");
    return {};
  }

  Result<std::optional<PullRequestRecord>> find_pull_request(std::int64_t repo_id, long pr) override {
    std::string sql = std::string("SELECT ") + kPrColumns + " FROM pull_requests WHERE repo_id = ? AND pr = ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, repo_id).bind(2, std::int64_t(pr));
    return optional_row<PullRequestRecord>(s, read_pr, "cannot read pull request");
  }

  Result<std::optional<PullRequestRecord>> find_pull_request_by_branch(std::int64_t repo_id, const std::string& branch) override {
    std::string sql = std::string("SELECT ") + kPrColumns +
                      " FROM pull_requests WHERE repo_id = ? AND head_ref = ? ORDER BY pr DESC LIMIT 1";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, repo_id).bind(2, branch);
    return optional_row<PullRequestRecord>(s, read_pr, "cannot read pull request");
  }

  Result<std::vector<PullRequestRecord>> list_pull_requests() override {
    std::string sql = std::string("SELECT ") + kPrColumns + " FROM pull_requests ORDER BY repo_id, pr";
    Statement s(db_, &cache_, sql.c_str());
    return all_rows<PullRequestRecord>(s, read_pr, "cannot list pull requests");
  }

  Result<long> next_pr_number(std::int64_t repo_id) override {
    Statement s(db_, &cache_, "SELECT MAX(n) FROM (SELECT MAX(pr) AS n FROM pull_requests WHERE repo_id = ?1 "
                     "UNION ALL SELECT MAX(pr) FROM environments WHERE repo_id = ?1)");
    s.bind(1, repo_id);
    if (s.step() != SQLITE_ROW) return db_error(db_, "cannot number pull request");
    return static_cast<long>(s.integer(0) + 1);
  }

  Status insert_share_link(const ShareLinkRecord& link) override {
    Statement s(db_, &cache_, "INSERT INTO share_links(id, env_id, created_at, expires_at, revoked_at, created_by, note) VALUES(?,?,?,?,?,?,?)");
    s.bind(1, link.id).bind(2, link.env_id).bind(3, link.created_at).bind(4, link.expires_at).bind(5, link.revoked_at);
    s.bind(6, link.created_by).bind(7, link.note);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record share link");
    return {};
  }

  Result<std::vector<ShareLinkRecord>> share_links_of(std::int64_t env_id) override {
    Statement s(db_, &cache_, "SELECT id, env_id, created_at, expires_at, revoked_at, created_by, note FROM share_links WHERE env_id = ? "
                              "ORDER BY created_at, id");
    s.bind(1, env_id);
    return all_rows<ShareLinkRecord>(
        s, [](const Statement& r) { return ShareLinkRecord{r.text(0), r.integer(1), r.integer(2), r.integer(3), r.integer(4), r.text(5), r.text(6)}; },
        "cannot read share links");
  }

  Result<bool> revoke_share_link(std::int64_t env_id, const std::string& id, std::int64_t now) override {
    Statement s(db_, &cache_, "UPDATE share_links SET revoked_at = ? WHERE env_id = ? AND id = ? AND revoked_at = 0");
    s.bind(1, now).bind(2, env_id).bind(3, id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot revoke share link");
    return sqlite3_changes(db_) > 0;
  }

  Result<std::map<std::int64_t, std::vector<std::string>>> live_share_links(std::int64_t now) override {
    Statement s(db_, &cache_, "SELECT env_id, id FROM share_links WHERE revoked_at = 0 AND expires_at > ?");
    s.bind(1, now);
    std::map<std::int64_t, std::vector<std::string>> live;
    for (int rc = s.step(); rc != SQLITE_DONE; rc = s.step()) {
      if (rc != SQLITE_ROW) return db_error(db_, "cannot read share links");
      live[s.integer(0)].push_back(s.text(1));
    }
    return live;
  }

  Status insert_session(const SessionRecord& session) override {
    Statement s(db_, &cache_, "INSERT INTO sessions(id, who, role, created_at, expires_at, revoked_at) VALUES(?,?,?,?,?,?)");
    s.bind(1, session.id).bind(2, session.who).bind(3, session.role).bind(4, session.created_at).bind(5, session.expires_at);
    s.bind(6, session.revoked_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record session");
    return {};
  }

  Result<std::optional<SessionRecord>> find_session(const std::string& id) override {
    Statement s(db_, &cache_, "SELECT id, who, role, created_at, expires_at, revoked_at FROM sessions WHERE id = ?");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<SessionRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read session");
    return std::optional<SessionRecord>(SessionRecord{s.text(0), s.text(1), s.text(2), s.integer(3), s.integer(4), s.integer(5)});
  }

  Result<bool> revoke_session(const std::string& id, std::int64_t now) override {
    Statement s(db_, &cache_, "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at = 0");
    s.bind(1, now).bind(2, id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot revoke session");
    return sqlite3_changes(db_) > 0;
  }

  Status delete_sessions_ended_before(std::int64_t cutoff) override {
    Statement s(db_, &cache_, "DELETE FROM sessions WHERE expires_at < ?1 OR (revoked_at <> 0 AND revoked_at < ?1)");
    s.bind(1, cutoff);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot delete old sessions");
    return {};
  }

  Status append_timeline(std::int64_t env_id, const std::string& kind, const std::string& detail,
                         std::int64_t duration_ms) override {
    Statement s(db_, &cache_, "INSERT INTO timeline(env_id, at, kind, detail, duration_ms) VALUES(?,?,?,?,?)");
    s.bind(1, env_id).bind(2, clock_.now_ms()).bind(3, kind).bind(4, detail).bind(5, duration_ms);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot append to timeline");
    return {};
  }

  Result<std::vector<TimelineEntry>> timeline_of(std::int64_t env_id) override {
    Statement s(db_, &cache_, "SELECT id, env_id, at, kind, detail, duration_ms FROM timeline WHERE env_id = ? ORDER BY id");
    s.bind(1, env_id);
    return all_rows<TimelineEntry>(
        s, [](const Statement& r) { return TimelineEntry{r.integer(0), r.integer(1), r.integer(2), r.text(3), r.text(4), r.integer(5)}; },
        "cannot read timeline");
  }

  Result<bool> try_claim(std::int64_t env_id, const std::string& owner, std::int64_t ttl_ms) override {
    std::int64_t now = clock_.now_ms();
    Statement s(db_, &cache_, "INSERT INTO claims(env_id, owner, expires_at) VALUES(?1, ?2, ?3) ON CONFLICT(env_id) DO UPDATE SET "
                     "owner = excluded.owner, expires_at = excluded.expires_at WHERE claims.owner = ?2 OR claims.expires_at <= ?4");
    s.bind(1, env_id).bind(2, owner).bind(3, now + ttl_ms).bind(4, now);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot claim environment");
    return sqlite3_changes(db_) > 0;
  }

  Result<std::optional<std::string>> claim_holder(std::int64_t env_id) override {
    Statement s(db_, &cache_, "SELECT owner FROM claims WHERE env_id = ? AND expires_at > ?");
    s.bind(1, env_id).bind(2, clock_.now_ms());
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read claim");
    return std::optional<std::string>(s.text(0));
  }

  Result<bool> take_over_claim(std::int64_t env_id, const std::string& from, const std::string& owner, std::int64_t ttl_ms) override {
    std::int64_t now = clock_.now_ms();
    Statement s(db_, &cache_, "UPDATE claims SET owner = ?3, expires_at = ?4 WHERE env_id = ?1 AND owner = ?2");
    s.bind(1, env_id).bind(2, from).bind(3, owner).bind(4, now + ttl_ms);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot take over claim");
    return sqlite3_changes(db_) > 0;
  }

  Status release_claim(std::int64_t env_id, const std::string& owner) override {
    Statement s(db_, &cache_, "DELETE FROM claims WHERE env_id = ? AND owner = ?");
    s.bind(1, env_id).bind(2, owner);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot release claim");
    return {};
  }

  Status set_report_target(std::int64_t repo_id, long pr, const std::string& host, const std::string& host_repo) override {
    // A target that changes host or repository starts over: the old ids mean nothing there.
    Statement s(db_, &cache_, "INSERT INTO reports(repo_id, pr, host, host_repo, updated_at) VALUES(?1,?2,?3,?4,?5) "
                     "ON CONFLICT(repo_id, pr) DO UPDATE SET host = excluded.host, host_repo = excluded.host_repo, "
                     "comment_id = '', deployment_id = '', deployment_sha = '', sent_status = '', sent_comment = '', "
                     "last_error = '', updated_at = excluded.updated_at "
                     "WHERE reports.host <> excluded.host OR reports.host_repo <> excluded.host_repo");
    s.bind(1, repo_id).bind(2, std::int64_t(pr)).bind(3, host).bind(4, host_repo).bind(5, clock_.now_ms());
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record report target");
    return {};
  }

  Result<std::optional<ReportRecord>> report_of(std::int64_t repo_id, long pr) override {
    std::string sql = std::string("SELECT ") + kReportColumns + " FROM reports WHERE repo_id = ? AND pr = ?";
    Statement s(db_, &cache_, sql.c_str());
    s.bind(1, repo_id).bind(2, std::int64_t(pr));
    return optional_row<ReportRecord>(s, read_report, "cannot read report");
  }

  Result<std::vector<ReportRecord>> all_reports() override {
    std::string sql = std::string("SELECT ") + kReportColumns + " FROM reports ORDER BY repo_id, pr";
    Statement s(db_, &cache_, sql.c_str());
    return all_rows<ReportRecord>(s, read_report, "cannot list reports");
  }

  Status save_report(const ReportRecord& r) override {
    Statement s(db_, &cache_, "UPDATE reports SET comment_id=?, deployment_id=?, deployment_sha=?, sent_status=?, sent_comment=?, "
                     "last_error=?, updated_at=? WHERE repo_id=? AND pr=? AND host=? AND host_repo=?");
    s.bind(1, r.comment_id).bind(2, r.deployment_id).bind(3, r.deployment_sha).bind(4, r.sent_status).bind(5, r.sent_comment);
    s.bind(6, r.last_error).bind(7, clock_.now_ms()).bind(8, r.repo_id).bind(9, std::int64_t(r.pr)).bind(10, r.host).bind(11, r.host_repo);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot save report");
    if (sqlite3_changes(db_) == 0)
      return make_error(ErrorCode::kNotFound, "no report target for PR " + std::to_string(r.pr) + " on " + r.host + " " + r.host_repo);
    return {};
  }

 private:
  static ReportRecord read_report(const Statement& s) {
    return ReportRecord{s.integer(0), static_cast<long>(s.integer(1)), s.text(2), s.text(3), s.text(4), s.text(5),
                        s.text(6),    s.text(7),                       s.text(8), s.text(9), s.integer(10)};
  }
  static RepositoryRecord read_repository(const Statement& s) { return {s.integer(0), s.text(1), s.text(2), s.text(3)}; }
  // An endpoint the store cannot read back (only prevue writes them) is an empty one: no upstream.
  static RouteRecord read_route(const Statement& s) {
    return {s.text(0), s.integer(1), s.text(2), s.text(3), Endpoint::parse(s.text(4)).value_or(Endpoint{})};
  }
  static LeaseRecord read_lease(const Statement& s) {
    // The schema's CHECK admits only 'destroy' and 'sleep'.
    return LeaseRecord{s.integer(0), s.integer(1), s.integer(2), end_action_from_string(s.text(3)).value_or(EndAction::kDestroy), s.integer(4),
                       s.integer(5), s.integer(6), s.integer(7) != 0, s.integer(8)};
  }
  static PullRequestRecord read_pr(const Statement& s) {
    return PullRequestRecord{s.integer(0), static_cast<long>(s.integer(1)), pr_status_from(s.text(2)), s.text(3), s.text(4),
                             s.text(5), s.text(6), s.integer(7) != 0, nonempty_lines(s.text(8)), s.text(9), s.integer(10), s.integer(11)};
  }
  static EventRecord read_event(const Statement& s) {
    EventRecord e;
    e.id = s.integer(0);
    e.delivery_id = s.text(1);
    e.source = s.text(2);
    e.repo_id = s.integer(3);
    e.pr = static_cast<long>(s.integer(4));
    e.action = s.text(5);
    e.head_sha = s.text(6);
    e.base_sha = s.text(7);
    e.head_ref = s.text(8);
    e.base_ref = s.text(9);
    e.author = s.text(10);
    e.fork = s.integer(11) != 0;
    e.labels = nonempty_lines(s.text(12));
    e.received_at = s.integer(13);
    e.processed_at = s.integer(14);
    e.status = s.text(15);
    e.note = s.text(16);
    return e;
  }
  template <class T, class Read>
  Result<std::vector<T>> all_rows(Statement& s, Read read, const char* what) {
    std::vector<T> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read(s));
    if (rc != SQLITE_DONE) return db_error(db_, what);
    return out;
  }
  template <class T, class Read>
  Result<std::optional<T>> optional_row(Statement& s, Read read, const char* what) {
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<T>();
    if (rc != SQLITE_ROW) return db_error(db_, what);
    return std::optional<T>(read(s));
  }

  // A statement without results, prepared once: BEGIN and COMMIT run on
  // every write, and sqlite3_exec would parse them each time.
  Status run(const char* sql) {
    Statement s(db_, &cache_, sql);
    if (s.step() != SQLITE_DONE) return make_error(ErrorCode::kIo, std::string("store: ") + s.error());
    return {};
  }

  Status exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : "unknown error";
      sqlite3_free(message);
      return make_error(ErrorCode::kIo, std::string("store: ") + text);
    }
    return {};
  }

  Status migrate() {
    int current = schema_version();
    for (const auto& migration : kMigrations) {
      if (migration.version <= current) continue;
      Status applied = in_transaction([&]() -> Status {
        // Re-read inside the write lock: another process may have migrated meanwhile.
        if (schema_version() >= migration.version) return {};
        PREVUE_TRY(exec(migration.sql));
        PREVUE_TRY(foreign_keys_intact());
        return exec(("PRAGMA user_version = " + std::to_string(migration.version)).c_str());
      });
      if (!applied.ok())
        return make_error(ErrorCode::kIo, "migration " + std::to_string(migration.version) + " failed: " + applied.error().message);
    }
    int latest = kMigrations[std::size(kMigrations) - 1].version;
    if (schema_version() > latest)
      return make_error(ErrorCode::kConflict, "the state database has schema version " + std::to_string(schema_version()) +
                                                  ", newer than this prevue understands (" + std::to_string(latest) + ")");
    return {};
  }

  // What PRAGMA foreign_keys=ON would have refused, checked once a migration is done.
  Status foreign_keys_intact() {
    Statement check(db_, &cache_, "PRAGMA foreign_key_check");
    int rc = check.step();
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) return db_error(db_, "cannot check foreign keys");
    return make_error(ErrorCode::kConflict, "a row of table '" + check.text(0) + "' refers to a missing row of '" + check.text(2) + "'");
  }

  Result<std::optional<EnvironmentRecord>> one_env(Statement& s) {
    return optional_row<EnvironmentRecord>(s, read_env, "cannot read environment");
  }

  Status update_in_transaction(EnvironmentRecord& r) {
    Statement get(db_, &cache_, "SELECT state FROM environments WHERE id = ?");
    get.bind(1, r.id);
    int rc = get.step();
    if (rc == SQLITE_DONE) return make_error(ErrorCode::kNotFound, "environment " + r.slug + " no longer exists");
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read environment");
    auto stored = env_state_from_string(get.text(0));
    if (stored && *stored != r.state && !is_allowed_transition(*stored, r.state))
      return make_error(ErrorCode::kConflict, "environment " + r.slug + " cannot go from " + to_string(*stored) + " to " +
                                                  to_string(r.state));
    r.updated_at = clock_.now_ms();
    Statement s(db_, &cache_, "UPDATE environments SET state=?, ref=?, commit_sha=?, deployed_sha=?, dir=?, url=?, failed_step=?, "
                     "error=?, layers=?, seeded=?, updated_at=?, service_revisions=? WHERE id=?");
    s.bind(1, std::string(to_string(r.state))).bind(2, r.ref).bind(3, r.commit_sha).bind(4, r.deployed_sha).bind(5, r.dir);
    s.bind(6, r.url).bind(7, r.failed_step).bind(8, r.error).bind(9, encode_layers(r.layers)).bind(10, std::int64_t(r.seeded));
    s.bind(11, r.updated_at).bind(12, r.service_revisions).bind(13, r.id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot update environment " + r.slug);
    return {};
  }

  sqlite3* db_;
  StatementCache cache_;
  const Clock& clock_;
};

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& path, const Clock& clock) {
  // SQLite's memory statistics take one process-wide mutex on every
  // allocation, which the daemon's threads (each with its own connection)
  // would contend for; prevue never reads them. Only possible before SQLite
  // initializes, so once, before the first connection.
  static const bool memory_statistics_off = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)memory_statistics_off;
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return make_error(ErrorCode::kIo, "cannot open state database " + path + ": " + message);
  }
  auto store = std::make_unique<SqliteStore>(db, clock);
  Status configured = store->configure();
  if (!configured.ok()) return configured.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace prevue
