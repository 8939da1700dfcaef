// PostgreSQL seeding (docs/manifest.md#postgres-seeds): a template database
// per seed key, built once from the repository's dump, SQL files and
// migration command; a warm pool of clones of it; and an environment's
// database handed over from the pool by renaming (milliseconds).
//
// Everything prevue makes on a server is named `prevue_…` and carries a
// comment saying what it is; those comments are the records (nothing about
// a database is kept beside it), so a teardown or `prevue gc` finds what
// to drop from the server itself:
//   prevue_tpl_<key>          template (ALLOW_CONNECTIONS false), and the role owning its objects
//   prevue_tplbuild_<key>     a template being built (dropped if a build died)
//   prevue_pool_<key>_<id>    a clone waiting, with a role of the same name owning its objects
//   prevue_env_<slug…>_<hash> an environment's database, and its login role of the same name
//   prevue_old_<…>            an environment's previous database, dropped after a swap
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/result.h"
#include "provider/protocol.h"

struct pg_conn;

namespace prevue::pg {

using Millis = std::chrono::milliseconds;

// The parts of a connection URL (or libpq conninfo string).
struct ConnectionInfo {
  std::string host = "127.0.0.1", port = "5432", user, password, database = "postgres";
  std::string url() const;  // postgres://user:password@host:port/database, each part percent-encoded
};
Result<ConnectionInfo> parse_connection(const std::string& url);

// One libpq connection. Statements go as text (the simple query protocol,
// several per call, one implicit transaction); values are quoted with the
// server's own rules (ident, literal).
class Connection {
 public:
  static Result<Connection> open(const ConnectionInfo& info, Millis timeout = Millis(10'000));
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  ~Connection();

  Status exec(const std::string& sql);
  Result<std::vector<std::vector<std::string>>> rows(const std::string& sql);
  std::string ident(const std::string& name) const;
  std::string literal(const std::string& text) const;

 private:
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  pg_conn* conn_ = nullptr;
};

// A server of prevue's config (`postgres.servers.NAME`).
struct Server {
  std::string name;
  std::string url;               // a role with CREATEDB and CREATEROLE (a superuser works)
  int pool = 2;                  // clones kept warm per template in use
  Millis keep_unused{3'600'000};  // a template no environment uses is dropped after this long
  // Dumps the operator keeps for seeds to name ("server_dump"): a production
  // snapshot no repository carries. Name -> an absolute path on prevue's host.
  std::map<std::string, std::string> dumps;
};

// What an environment's app gets.
struct Handed {
  ConnectionInfo connection;  // its own database and login role
  std::string key;
  enum class From { kKept, kPool, kClone } from = From::kClone;
};

// How to build a template when the key has none yet: `build` fills the
// database it is given (connection as the role that will own its objects).
using TemplateBuilder = std::function<Status(const ConnectionInfo& building, std::string& log)>;

// Gives environment `slug`'s seed `seed` its database at `key`: the one it
// has when already at that key (kept: data entered by reviewers stays), else
// a pool clone renamed to it, else a clone made now; the previous database
// (another key) is dropped after. The template is built first if missing.
Result<Handed> hand_over(const Server& server, const std::string& slug, const std::string& seed, const std::string& key,
                         const std::string& password, const TemplateBuilder& build, std::string& log);

// Brings the pool of `key` up to server.pool clones (in the background of a run).
Status refill(const Server& server, const std::string& key, std::string& log);

// Drops environment `slug`'s databases and roles on the server (connections
// ended first); each one a line of the receipt.
Result<std::vector<ReceiptItem>> drop_environment(const Server& server, const std::string& slug);

// What no live environment owns: environments' databases and roles, the
// previous databases of a swap, half-built templates and pool clones, and
// templates (with their pools) no live environment uses, unused for
// server.keep_unused. Each one a line (dry_run: what would go).
Result<std::vector<std::string>> sweep(const Server& server, const std::set<std::string>& live_slugs, bool dry_run);

// Names (exposed for tests).
std::string environment_database(const std::string& slug, const std::string& seed);

// A seed key: 16 hex digits of SHA-256 of what builds the template.
std::string key_of(const std::string& material);
// An environment's password: HMAC-SHA256(secret, what) in hex, so every run
// (and every prevue instance sharing the secret) derives the same one and
// none is stored.
std::string derive_password(const std::string& secret, const std::string& what);

// Refills pools on a thread of its own, one request after another, so no
// run waits for it; the destructor finishes what was asked, then returns.
class PoolRefiller {
 public:
  PoolRefiller() = default;
  PoolRefiller(const PoolRefiller&) = delete;
  ~PoolRefiller();
  void request(const Server& server, const std::string& key);

 private:
  void work();
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::pair<Server, std::string>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace prevue::pg
