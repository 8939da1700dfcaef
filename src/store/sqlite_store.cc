#include <sqlite3.h>

#include <cstring>

#include "store/migrations.h"
#include "store/store.h"

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

namespace {

RunState run_state_from(const std::string& s) {
  if (s == "succeeded") return RunState::kSucceeded;
  if (s == "failed") return RunState::kFailed;
  return RunState::kRunning;
}

// One prepared statement; binds by position, steps, reads columns.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  Statement& bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); return *this; }
  Statement& bind(int i, const std::string& v) { sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); return *this; }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::string error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

Error db_error(sqlite3* db, const std::string& what) {
  int code = sqlite3_extended_errcode(db);
  ErrorCode ours = (code & 0xff) == SQLITE_CONSTRAINT ? ErrorCode::kConflict : ErrorCode::kIo;
  return make_error(ours, what + ": " + sqlite3_errmsg(db));
}

constexpr const char* kEnvColumns =
    "id, repo_id, pr, slug, state, ref, commit_sha, deployed_sha, dir, url, failed_step, error, provider, seeded, "
    "created_at, updated_at, service_revisions";

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
  r.provider = s.text(12);
  r.seeded = s.integer(13) != 0;
  r.created_at = s.integer(14);
  r.updated_at = s.integer(15);
  r.service_revisions = s.text(16);
  return r;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, const Clock& clock) : db_(db), clock_(clock) {}
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
    PREVUE_TRY(exec("PRAGMA journal_mode=WAL"));
    PREVUE_TRY(exec("PRAGMA synchronous=NORMAL"));
    PREVUE_TRY(exec("PRAGMA foreign_keys=ON"));
    return migrate();
  }

  int schema_version() override {
    Statement s(db_, "PRAGMA user_version");
    return s.step() == SQLITE_ROW ? static_cast<int>(s.integer(0)) : -1;
  }

  Result<RepositoryRecord> upsert_repository(const std::string& key, const std::string& name,
                                             const std::string& mirror_path) override {
    Statement ins(db_, "INSERT INTO repositories(key, name, mirror_path, created_at) VALUES(?,?,?,?) "
                       "ON CONFLICT(key) DO NOTHING");
    ins.bind(1, key).bind(2, name).bind(3, mirror_path).bind(4, clock_.now_ms());
    if (ins.step() != SQLITE_DONE) return db_error(db_, "cannot record repository");
    Statement get(db_, "SELECT id, key, name, mirror_path FROM repositories WHERE key = ?");
    get.bind(1, key);
    if (get.step() != SQLITE_ROW) return db_error(db_, "cannot read repository");
    return RepositoryRecord{get.integer(0), get.text(1), get.text(2), get.text(3)};
  }

  Result<std::optional<RepositoryRecord>> find_repository(std::int64_t id) override {
    Statement get(db_, "SELECT id, key, name, mirror_path FROM repositories WHERE id = ?");
    get.bind(1, id);
    int rc = get.step();
    if (rc == SQLITE_DONE) return std::optional<RepositoryRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read repository");
    return std::optional<RepositoryRecord>(RepositoryRecord{get.integer(0), get.text(1), get.text(2), get.text(3)});
  }

  Result<EnvironmentRecord> insert_environment(EnvironmentRecord r) override {
    r.created_at = r.updated_at = clock_.now_ms();
    Statement s(db_, "INSERT INTO environments(repo_id, pr, slug, state, ref, commit_sha, deployed_sha, dir, url, "
                     "failed_step, error, provider, seeded, created_at, updated_at, service_revisions) "
                     "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, r.repo_id).bind(2, static_cast<std::int64_t>(r.pr)).bind(3, r.slug).bind(4, std::string(to_string(r.state)));
    s.bind(5, r.ref).bind(6, r.commit_sha).bind(7, r.deployed_sha).bind(8, r.dir).bind(9, r.url);
    s.bind(10, r.failed_step).bind(11, r.error).bind(12, r.provider).bind(13, std::int64_t(r.seeded));
    s.bind(14, r.created_at).bind(15, r.updated_at).bind(16, r.service_revisions);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot create environment " + r.slug);
    r.id = sqlite3_last_insert_rowid(db_);
    return r;
  }

  Result<std::optional<EnvironmentRecord>> find_environment(std::int64_t repo_id, long pr) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE repo_id = ? AND pr = ?";
    Statement s(db_, sql.c_str());
    s.bind(1, repo_id).bind(2, static_cast<std::int64_t>(pr));
    return one_env(s);
  }

  Result<std::optional<EnvironmentRecord>> find_environment_by_slug(const std::string& slug) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments WHERE slug = ?";
    Statement s(db_, sql.c_str());
    s.bind(1, slug);
    return one_env(s);
  }

  Status update_environment(EnvironmentRecord& r) override {
    PREVUE_TRY(exec("BEGIN IMMEDIATE"));
    Status result = update_in_transaction(r);
    PREVUE_TRY(exec(result.ok() ? "COMMIT" : "ROLLBACK"));
    return result;
  }

  Result<std::vector<EnvironmentRecord>> list_environments(bool include_destroyed) override {
    std::string sql = std::string("SELECT ") + kEnvColumns + " FROM environments " +
                      (include_destroyed ? "" : "WHERE state <> 'destroyed' ") + "ORDER BY repo_id, pr";
    Statement s(db_, sql.c_str());
    std::vector<EnvironmentRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_env(s));
    if (rc != SQLITE_DONE) return db_error(db_, "cannot list environments");
    return out;
  }

  Result<RunRecord> begin_run(std::int64_t env_id, RunKind kind, const std::string& target_sha) override {
    RunRecord run{0, env_id, kind, target_sha, RunState::kRunning, "", clock_.now_ms(), 0};
    Statement s(db_, "INSERT INTO runs(env_id, kind, target_sha, state, started_at) VALUES(?,?,?,?,?)");
    s.bind(1, env_id).bind(2, std::string(to_string(kind))).bind(3, target_sha).bind(4, std::string("running")).bind(5, run.started_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record run");
    run.id = sqlite3_last_insert_rowid(db_);
    return run;
  }

  Status finish_run(std::int64_t run_id, RunState state, const std::string& error) override {
    Statement s(db_, "UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE id = ?");
    s.bind(1, std::string(to_string(state))).bind(2, error).bind(3, clock_.now_ms()).bind(4, run_id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot finish run");
    return {};
  }

  Result<std::optional<RunRecord>> last_run(std::int64_t env_id) override {
    Statement s(db_, "SELECT id, env_id, kind, target_sha, state, error, started_at, finished_at FROM runs "
                     "WHERE env_id = ? ORDER BY id DESC LIMIT 1");
    s.bind(1, env_id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<RunRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read runs");
    RunRecord r{s.integer(0), s.integer(1), s.text(2) == "down" ? RunKind::kDown : RunKind::kUp, s.text(3),
                run_state_from(s.text(4)), s.text(5), s.integer(6), s.integer(7)};
    return std::optional<RunRecord>(r);
  }

  Result<StepRecord> begin_step(std::int64_t run_id, const std::string& name) override {
    StepRecord step;
    step.run_id = run_id;
    step.name = name;
    step.started_at = clock_.now_ms();
    Statement s(db_, "INSERT INTO steps(run_id, seq, name, state, started_at) "
                     "VALUES(?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1), ?2, 'running', ?3)");
    s.bind(1, run_id).bind(2, name).bind(3, step.started_at);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot record step");
    step.id = sqlite3_last_insert_rowid(db_);
    return step;
  }

  Status finish_step(std::int64_t step_id, RunState state, const std::string& log, std::int64_t child_ms) override {
    Statement s(db_, "UPDATE steps SET state = ?, log = ?, finished_at = ?, child_ms = ? WHERE id = ?");
    s.bind(1, std::string(to_string(state))).bind(2, log).bind(3, clock_.now_ms()).bind(4, child_ms).bind(5, step_id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot finish step");
    return {};
  }

  Result<std::vector<StepRecord>> steps_of_run(std::int64_t run_id) override {
    Statement s(db_, "SELECT id, run_id, seq, name, state, log, started_at, finished_at, child_ms FROM steps "
                     "WHERE run_id = ? ORDER BY seq");
    s.bind(1, run_id);
    std::vector<StepRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      out.push_back(StepRecord{s.integer(0), s.integer(1), static_cast<int>(s.integer(2)), s.text(3),
                               run_state_from(s.text(4)), s.text(5), s.integer(6), s.integer(7), s.integer(8)});
    }
    if (rc != SQLITE_DONE) return db_error(db_, "cannot read steps");
    return out;
  }

  Status replace_routes(std::int64_t env_id, const std::vector<RouteRecord>& routes) override {
    PREVUE_TRY(exec("BEGIN IMMEDIATE"));
    Status result = [&]() -> Status {
      Statement del(db_, "DELETE FROM routes WHERE env_id = ?");
      del.bind(1, env_id);
      if (del.step() != SQLITE_DONE) return db_error(db_, "cannot replace routes");
      for (const auto& route : routes) {
        Statement ins(db_, "INSERT INTO routes(host, env_id, route, service, upstream) VALUES(?,?,?,?,?)");
        ins.bind(1, route.host).bind(2, env_id).bind(3, route.route).bind(4, route.service).bind(5, route.upstream);
        if (ins.step() != SQLITE_DONE) return db_error(db_, "host " + route.host + " is taken");
      }
      return {};
    }();
    PREVUE_TRY(exec(result.ok() ? "COMMIT" : "ROLLBACK"));
    return result;
  }

  Result<std::vector<RouteRecord>> routes_of(std::int64_t env_id) override {
    Statement s(db_, "SELECT host, env_id, route, service, upstream FROM routes WHERE env_id = ? ORDER BY host");
    s.bind(1, env_id);
    std::vector<RouteRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(RouteRecord{s.text(0), s.integer(1), s.text(2), s.text(3), s.text(4)});
    if (rc != SQLITE_DONE) return db_error(db_, "cannot read routes");
    return out;
  }

  Result<std::optional<RouteRecord>> find_route(const std::string& host) override {
    Statement s(db_, "SELECT host, env_id, route, service, upstream FROM routes WHERE host = ?");
    s.bind(1, host);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<RouteRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read routes");
    return std::optional<RouteRecord>(RouteRecord{s.text(0), s.integer(1), s.text(2), s.text(3), s.text(4)});
  }

  Status upsert_lease(const LeaseRecord& l) override {
    Statement s(db_, "INSERT INTO leases(env_id, ttl_ms, idle_ms, end_action, grace_ms, expires_at, last_active, pinned) "
                     "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(env_id) DO UPDATE SET ttl_ms = excluded.ttl_ms, "
                     "idle_ms = excluded.idle_ms, end_action = excluded.end_action, grace_ms = excluded.grace_ms, "
                     "expires_at = excluded.expires_at, last_active = excluded.last_active, pinned = excluded.pinned");
    s.bind(1, l.env_id).bind(2, l.ttl_ms).bind(3, l.idle_ms).bind(4, l.end_action).bind(5, l.grace_ms);
    s.bind(6, l.expires_at).bind(7, l.last_active).bind(8, std::int64_t(l.pinned));
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot write lease");
    return {};
  }

  Result<std::optional<LeaseRecord>> lease_of(std::int64_t env_id) override {
    Statement s(db_, "SELECT env_id, ttl_ms, idle_ms, end_action, grace_ms, expires_at, last_active, pinned FROM leases "
                     "WHERE env_id = ?");
    s.bind(1, env_id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<LeaseRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read lease");
    return std::optional<LeaseRecord>(LeaseRecord{s.integer(0), s.integer(1), s.integer(2), s.text(3), s.integer(4),
                                                  s.integer(5), s.integer(6), s.integer(7) != 0});
  }

  Status delete_lease(std::int64_t env_id) override {
    Statement s(db_, "DELETE FROM leases WHERE env_id = ?");
    s.bind(1, env_id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot delete lease");
    return {};
  }

 private:
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
      PREVUE_TRY(exec("BEGIN IMMEDIATE"));
      // Re-read inside the write lock: another process may have migrated meanwhile.
      if (schema_version() >= migration.version) {
        PREVUE_TRY(exec("COMMIT"));
        continue;
      }
      Status applied = exec(migration.sql);
      if (applied.ok()) applied = exec(("PRAGMA user_version = " + std::to_string(migration.version)).c_str());
      if (!applied.ok()) {
        (void)exec("ROLLBACK");
        return make_error(ErrorCode::kIo, "migration " + std::to_string(migration.version) + " failed: " + applied.error().message);
      }
      PREVUE_TRY(exec("COMMIT"));
    }
    int latest = kMigrations[std::size(kMigrations) - 1].version;
    if (schema_version() > latest)
      return make_error(ErrorCode::kConflict, "the state database has schema version " + std::to_string(schema_version()) +
                                                  ", newer than this prevue understands (" + std::to_string(latest) + ")");
    return {};
  }

  Result<std::optional<EnvironmentRecord>> one_env(Statement& s) {
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<EnvironmentRecord>();
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read environment");
    return std::optional<EnvironmentRecord>(read_env(s));
  }

  Status update_in_transaction(EnvironmentRecord& r) {
    Statement get(db_, "SELECT state FROM environments WHERE id = ?");
    get.bind(1, r.id);
    int rc = get.step();
    if (rc == SQLITE_DONE) return make_error(ErrorCode::kNotFound, "environment " + r.slug + " no longer exists");
    if (rc != SQLITE_ROW) return db_error(db_, "cannot read environment");
    auto stored = env_state_from_string(get.text(0));
    if (stored && *stored != r.state && !is_allowed_transition(*stored, r.state))
      return make_error(ErrorCode::kConflict, "environment " + r.slug + " cannot go from " + to_string(*stored) + " to " +
                                                  to_string(r.state));
    r.updated_at = clock_.now_ms();
    Statement s(db_, "UPDATE environments SET state=?, ref=?, commit_sha=?, deployed_sha=?, dir=?, url=?, failed_step=?, "
                     "error=?, provider=?, seeded=?, updated_at=?, service_revisions=? WHERE id=?");
    s.bind(1, std::string(to_string(r.state))).bind(2, r.ref).bind(3, r.commit_sha).bind(4, r.deployed_sha).bind(5, r.dir);
    s.bind(6, r.url).bind(7, r.failed_step).bind(8, r.error).bind(9, r.provider).bind(10, std::int64_t(r.seeded));
    s.bind(11, r.updated_at).bind(12, r.service_revisions).bind(13, r.id);
    if (s.step() != SQLITE_DONE) return db_error(db_, "cannot update environment " + r.slug);
    return {};
  }

  sqlite3* db_;
  const Clock& clock_;
};

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& path, const Clock& clock) {
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
