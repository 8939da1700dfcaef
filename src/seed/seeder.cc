#include "seed/seeder.h"

#include <sqlite3.h>

#include "core/files.h"

namespace prevue {

namespace {

Status run_sql_files(const SeedStep& step, const SeedContext& ctx, const std::filesystem::path& database, std::string& log) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return make_error(ErrorCode::kIo, "cannot open " + database.string() + ": " + message);
  }
  sqlite3_busy_timeout(db, 10'000);
  Status result;
  for (const auto& file : step.files) {
    auto sql = ctx.git.read_file(ctx.commit, file);
    if (!sql.ok()) {
      result = sql.error();
      break;
    }
    if (!sql->has_value()) {
      result = make_error(ErrorCode::kNotFound, "seed file " + file + " does not exist at commit " + ctx.commit.substr(0, 12));
      break;
    }
    // Each file applies whole or not at all.
    std::string script = "BEGIN;\n" + **sql + "\n;COMMIT;";
    char* message = nullptr;
    if (sqlite3_exec(db, script.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : sqlite3_errmsg(db);
      sqlite3_free(message);
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      result = make_error(ErrorCode::kInvalidArgument, "SQL error in " + file + ": " + text);
      break;
    }
    log += "applied " + file + " to " + step.database + "\n";
  }
  sqlite3_close_v2(db);
  return result;
}

}  // namespace

Status run_seed_step(const SeedStep& step, const SeedContext& ctx, std::string& log) {
  switch (step.kind) {
    case SeedKind::kSqlite: {
      std::filesystem::path database = ctx.env_dir / step.database;
      if (!step.snapshot.empty()) {
        auto snapshot = ctx.git.read_file(ctx.commit, step.snapshot);
        if (!snapshot.ok()) return snapshot.error();
        if (!snapshot->has_value())
          return make_error(ErrorCode::kNotFound, "seed snapshot " + step.snapshot + " does not exist at commit " + ctx.commit.substr(0, 12));
        // Stale WAL/journal files from an earlier copy would corrupt the fresh one.
        std::error_code ec;
        for (const char* suffix : {"-wal", "-shm", "-journal"}) std::filesystem::remove(database.string() + suffix, ec);
        PREVUE_TRY(write_file_atomic(database, **snapshot, Durability::kAtomicOnly));
        log += "copied snapshot " + step.snapshot + " to " + step.database + " (" + std::to_string((*snapshot)->size()) + " bytes)\n";
      }
      return run_sql_files(step, ctx, database, log);
    }
    case SeedKind::kSql: {
      std::error_code ec;
      std::filesystem::create_directories((ctx.env_dir / step.database).parent_path(), ec);
      return run_sql_files(step, ctx, ctx.env_dir / step.database, log);
    }
    case SeedKind::kCommand: {
      ProcessSpec spec;
      for (size_t i = 0; i < step.run.size(); ++i) {
        auto arg = render_text(step.run[i], ctx.render, "prevue.json seed " + step.name + " run[" + std::to_string(i) + "]");
        if (!arg.ok()) return arg.error();
        spec.argv.push_back(std::move(*arg));
      }
      spec.cwd = ctx.env_dir / step.workdir;
      spec.env = ctx.env;
      spec.timeout = step.timeout;
      log += "$ " + describe_argv(spec.argv) + "\n";
      auto outcome = ctx.runner.run(spec);
      if (!outcome.ok()) return outcome.error();
      log += outcome->stdout_data;
      log += outcome->stderr_data;
      if (outcome->timed_out)
        return make_error(ErrorCode::kTimeout, "seed command " + step.name + " timed out after " + format_duration(step.timeout));
      if (outcome->exit_code != 0)
        return make_error(ErrorCode::kProvider, "seed command " + step.name + " failed (" +
                                                    (outcome->signal ? "signal " + std::to_string(outcome->signal)
                                                                     : "exit code " + std::to_string(outcome->exit_code)) + ")");
      return {};
    }
    case SeedKind::kPostgres: break;  // a server's work, not a file's: the engine runs it (seed/postgres.h)
  }
  return make_error(ErrorCode::kInternal, "seed " + step.name + ": no file-based seeding for kind " + to_string(step.kind));
}

}  // namespace prevue
