#include "seed/postgres.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <sstream>

#include "core/slug.h"
#include "webhook/signature.h"

namespace prevue::pg {

namespace {

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), size));
}

std::string percent_encode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += std::string("%") + hex[c >> 4] + hex[c & 15];
  }
  return out;
}

std::string trimmed_error(const char* message) {
  std::string text = message ? message : "unknown error";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// "prevue pool key=abc ready" -> {"key": "abc", "ready": ""}
std::map<std::string, std::string> comment_fields(const std::string& comment) {
  std::map<std::string, std::string> out;
  std::istringstream words(comment);
  std::string word;
  words >> word;
  if (word != "prevue") return out;
  while (words >> word) {
    auto eq = word.find('=');
    out[word.substr(0, eq)] = eq == std::string::npos ? "" : word.substr(eq + 1);
  }
  return out;
}

std::string template_name(const std::string& key) { return "prevue_tpl_" + key; }
std::string building_name(const std::string& key) { return "prevue_tplbuild_" + key; }
std::string pool_prefix(const std::string& key) { return "prevue_pool_" + key + "_"; }

// The databases prevue made on the server, with their comments.
Result<std::vector<std::pair<std::string, std::map<std::string, std::string>>>> prevue_databases(Connection& admin) {
  PREVUE_ASSIGN_OR_RETURN(auto found, admin.rows("SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
                                                 "WHERE datname LIKE 'prevue\\_%' ORDER BY datname"));
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> out;
  for (auto& row : found) out.emplace_back(row[0], comment_fields(row[1]));
  return out;
}

// One session-level advisory lock per template key: its build, and its
// pool's refill and sweep, run one at a time across every prevue instance.
Status lock_key(Connection& admin, const std::string& key) {
  return admin.exec("SELECT pg_advisory_lock(hashtext(" + admin.literal("prevue template " + key) + "))");
}
void unlock_key(Connection& admin, const std::string& key) {
  (void)admin.exec("SELECT pg_advisory_unlock(hashtext(" + admin.literal("prevue template " + key) + "))");
}

Status drop_database(Connection& admin, const std::string& name) {
  // WITH (FORCE) ends the sessions still connected to it (PostgreSQL 13+).
  return admin.exec("DROP DATABASE IF EXISTS " + admin.ident(name) + " WITH (FORCE)");
}

Status drop_role(Connection& admin, const std::string& name) { return admin.exec("DROP ROLE IF EXISTS " + admin.ident(name)); }

// A copy of the template named `name`, with a role of the same name owning
// it and everything in it (the template's objects are its own role's; the
// copy's become the copy's, so handing it over is renaming both).
Status clone_template(Connection& admin, const Server& server, const std::string& key, const std::string& name,
                      const std::string& comment, const std::string& login_password) {
  const std::string tpl = template_name(key);
  // The template takes no connections (ALLOW_CONNECTIONS false); any session
  // left from before that is ended, as CREATE DATABASE … TEMPLATE needs none.
  (void)admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " + admin.literal(tpl));
  PREVUE_TRY(admin.exec("CREATE DATABASE " + admin.ident(name) + " TEMPLATE " + admin.ident(tpl) + " STRATEGY FILE_COPY"));
  PREVUE_TRY(admin.exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = " + admin.literal(name) + ") THEN CREATE ROLE " +
                        admin.ident(name) + "; END IF; END$$;" + "ALTER ROLE " + admin.ident(name) +
                        (login_password.empty() ? " NOLOGIN PASSWORD NULL" : " LOGIN PASSWORD " + admin.literal(login_password)) +
                        "; ALTER DATABASE " + admin.ident(name) + " OWNER TO " + admin.ident(name) +
                        // Its role reaches it; other environments' roles do not (PUBLIC may connect by default).
                        "; REVOKE CONNECT, TEMPORARY ON DATABASE " + admin.ident(name) + " FROM PUBLIC"));
  PREVUE_ASSIGN_OR_RETURN(ConnectionInfo inside, parse_connection(server.url));
  inside.database = name;
  PREVUE_ASSIGN_OR_RETURN(Connection copy, Connection::open(inside));
  PREVUE_TRY(copy.exec("REASSIGN OWNED BY " + copy.ident(tpl) + " TO " + copy.ident(name)));
  // Last: only a copy with this comment is complete (a clone a crash cut short has none, and is swept).
  return admin.exec("COMMENT ON DATABASE " + admin.ident(name) + " IS " + admin.literal(comment));
}

// The template of `key`, built now if it is missing.
Status ensure_template(Connection& admin, const Server& server, const std::string& key, const TemplateBuilder& build, std::string& log) {
  const std::string tpl = template_name(key);
  PREVUE_ASSIGN_OR_RETURN(auto ready, admin.rows("SELECT 1 FROM pg_database WHERE datname = " + admin.literal(tpl)));
  if (!ready.empty()) return {};
  PREVUE_TRY(lock_key(admin, key));
  struct Unlock {
    Connection& admin;
    const std::string& key;
    ~Unlock() { unlock_key(admin, key); }
  } unlock{admin, key};
  PREVUE_ASSIGN_OR_RETURN(ready, admin.rows("SELECT 1 FROM pg_database WHERE datname = " + admin.literal(tpl)));
  if (!ready.empty()) {
    log += "template " + tpl + ": built meanwhile by another run\n";
    return {};
  }
  auto started = std::chrono::steady_clock::now();
  const std::string building = building_name(key);
  const std::string password = random_hex(16);
  PREVUE_TRY(drop_database(admin, building));  // what a build that died left
  // The role that owns what the seed makes: it logs in only while building.
  PREVUE_TRY(admin.exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = " + admin.literal(tpl) + ") THEN CREATE ROLE " +
                        admin.ident(tpl) + "; END IF; END$$; ALTER ROLE " + admin.ident(tpl) + " LOGIN PASSWORD " + admin.literal(password) +
                        "; COMMENT ON ROLE " + admin.ident(tpl) + " IS " + admin.literal("prevue template key=" + key)));
  PREVUE_TRY(admin.exec("CREATE DATABASE " + admin.ident(building) + " OWNER " + admin.ident(tpl)));
  PREVUE_ASSIGN_OR_RETURN(ConnectionInfo as_owner, parse_connection(server.url));
  as_owner.user = tpl;
  as_owner.password = password;
  as_owner.database = building;
  Status built = build(as_owner, log);
  if (!built.ok()) {
    (void)drop_database(admin, building);  // nothing half-made is left
    (void)admin.exec("ALTER ROLE " + admin.ident(tpl) + " NOLOGIN PASSWORD NULL");
    return built;
  }
  // The template is the admin's (so its objects' role owns no database),
  // takes no connections, and only then gets its name.
  PREVUE_TRY(admin.exec("ALTER ROLE " + admin.ident(tpl) + " NOLOGIN PASSWORD NULL"));
  PREVUE_TRY(admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " + admin.literal(building)));
  PREVUE_TRY(admin.exec("ALTER DATABASE " + admin.ident(building) + " OWNER TO CURRENT_USER"));
  PREVUE_TRY(admin.exec("ALTER DATABASE " + admin.ident(building) + " WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"));
  PREVUE_TRY(admin.exec("COMMENT ON DATABASE " + admin.ident(building) + " IS " +
                        admin.literal("prevue template key=" + key + " used=" + std::to_string(now_seconds()))));
  PREVUE_TRY(admin.exec("ALTER DATABASE " + admin.ident(building) + " RENAME TO " + admin.ident(tpl)));
  log += "template " + tpl + ": built in " +
         std::to_string(std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count()) + " ms\n";
  return {};
}

}  // namespace

std::string ConnectionInfo::url() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "postgres://" + percent_encode(user) + (password.empty() ? "" : ":" + percent_encode(password)) + "@" + h + ":" + port + "/" +
         percent_encode(database);
}

Result<ConnectionInfo> parse_connection(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (!options) {
    std::string why = error ? trimmed_error(error) : "out of memory";
    PQfreemem(error);
    return make_error(ErrorCode::kInvalidArgument, "not a PostgreSQL connection URL: " + why);
  }
  ConnectionInfo info;
  for (PQconninfoOption* o = options; o->keyword; ++o) {
    if (!o->val) continue;
    std::string key = o->keyword, value = o->val;
    if (key == "host" || key == "hostaddr") info.host = value;
    else if (key == "port") info.port = value;
    else if (key == "user") info.user = value;
    else if (key == "password") info.password = value;
    else if (key == "dbname") info.database = value;
  }
  PQconninfoFree(options);
  if (info.user.empty()) return make_error(ErrorCode::kInvalidArgument, "a PostgreSQL connection URL must name its user");
  return info;
}

Result<Connection> Connection::open(const ConnectionInfo& info, Millis timeout) {
  const std::string seconds = std::to_string(std::max<long long>(1, timeout.count() / 1000));
  const char* keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {info.host.c_str(), info.port.c_str(), info.user.c_str(), info.password.c_str(),
                          info.database.c_str(), seconds.c_str(), "prevue", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 0);
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    std::string why = conn ? trimmed_error(PQerrorMessage(conn)) : "out of memory";
    if (conn) PQfinish(conn);
    return make_error(ErrorCode::kIo, "cannot connect to PostgreSQL at " + info.host + ":" + info.port + " (database " + info.database +
                                          ", user " + info.user + "): " + why);
  }
  return Connection(conn);
}

Connection::Connection(Connection&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    if (conn_) PQfinish(conn_);
    conn_ = other.conn_;
    other.conn_ = nullptr;
  }
  return *this;
}
Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

Status Connection::exec(const std::string& sql) {
  PGresult* result = PQexec(conn_, sql.c_str());
  ExecStatusType status = PQresultStatus(result);
  Status out;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY)
    out = make_error(ErrorCode::kIo, trimmed_error(PQresultErrorMessage(result)));
  PQclear(result);
  return out;
}

Result<std::vector<std::vector<std::string>>> Connection::rows(const std::string& sql) {
  PGresult* result = PQexec(conn_, sql.c_str());
  if (PQresultStatus(result) != PGRES_TUPLES_OK) {
    std::string why = trimmed_error(PQresultErrorMessage(result));
    PQclear(result);
    return make_error(ErrorCode::kIo, why);
  }
  std::vector<std::vector<std::string>> out(static_cast<size_t>(PQntuples(result)));
  for (int r = 0; r < PQntuples(result); ++r)
    for (int c = 0; c < PQnfields(result); ++c) out[static_cast<size_t>(r)].emplace_back(PQgetvalue(result, r, c));
  PQclear(result);
  return out;
}

std::string Connection::ident(const std::string& name) const {
  char* quoted = PQescapeIdentifier(conn_, name.c_str(), name.size());
  std::string out = quoted ? quoted : "\"\"";
  PQfreemem(quoted);
  return out;
}

std::string Connection::literal(const std::string& text) const {
  char* quoted = PQescapeLiteral(conn_, text.c_str(), text.size());
  std::string out = quoted ? quoted : "''";
  PQfreemem(quoted);
  return out;
}

std::string environment_database(const std::string& slug, const std::string& seed) {
  std::string readable = slug.substr(0, 30);
  std::replace(readable.begin(), readable.end(), '-', '_');
  return "prevue_env_" + readable + "_" + sha256_hex(slug + "/" + seed).substr(0, 8);
}

Result<Handed> hand_over(const Server& server, const std::string& slug, const std::string& seed, const std::string& key,
                         const std::string& password, const TemplateBuilder& build, std::string& log) {
  PREVUE_ASSIGN_OR_RETURN(ConnectionInfo admin_info, parse_connection(server.url));
  PREVUE_ASSIGN_OR_RETURN(Connection admin, Connection::open(admin_info));
  const std::string name = environment_database(slug, seed);
  const std::string comment = "prevue env=" + slug + " seed=" + seed + " key=" + key;
  Handed handed;
  handed.key = key;
  handed.connection = admin_info;
  handed.connection.user = name;
  handed.connection.password = password;
  handed.connection.database = name;

  // A run that died mid-hand-over (its daemon killed) may have left its
  // session going, still copying or renaming for this environment: ended
  // first (one run per environment at a time: it cannot be a live one).
  PREVUE_TRY(admin.exec("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = 'prevue' AND "
                        "pid <> pg_backend_pid() AND position(" + admin.literal(name) + " in query) > 0"));
  PREVUE_ASSIGN_OR_RETURN(auto current, admin.rows("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = " +
                                                   admin.literal(name)));
  std::string previous;  // the environment's database at another key: replaced, then dropped
  if (!current.empty()) {
    auto fields = comment_fields(current[0][0]);
    if (fields["key"] == key) {
      // Kept (a push that leaves the seed alone), or a hand-over a crash cut
      // short finished here: the same login, the same comment.
      PREVUE_TRY(admin.exec("ALTER ROLE " + admin.ident(name) + " LOGIN PASSWORD " + admin.literal(password) + "; COMMENT ON DATABASE " +
                            admin.ident(name) + " IS " + admin.literal(comment) + "; COMMENT ON ROLE " + admin.ident(name) + " IS " +
                            admin.literal("prevue env=" + slug + " seed=" + seed)));
      handed.from = Handed::From::kKept;
      log += "database " + name + ": kept (seed unchanged, key " + key + ")\n";
      return handed;
    }
    previous = "prevue_old_" + name.substr(std::string("prevue_env_").size()) + "_" + random_hex(3);
    log += "database " + name + ": the seed changed (key " + fields["key"] + " -> " + key + "): a new copy replaces it\n";
  }
  // The template first: a build that fails leaves the environment's database as it was.
  PREVUE_TRY(ensure_template(admin, server, key, build, log));
  if (!previous.empty()) {
    PREVUE_TRY(admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " + admin.literal(name)));
    PREVUE_TRY(admin.exec("ALTER DATABASE " + admin.ident(name) + " RENAME TO " + admin.ident(previous)));
  }
  (void)admin.exec("COMMENT ON DATABASE " + admin.ident(template_name(key)) + " IS " +
                   admin.literal("prevue template key=" + key + " used=" + std::to_string(now_seconds())));

  // From the pool: the copy and its role renamed to the environment's, and
  // its login set, in one transaction (a copy another run took first is
  // gone by the time this one renames: the next is tried).
  auto started = std::chrono::steady_clock::now();
  PREVUE_ASSIGN_OR_RETURN(auto pool, admin.rows("SELECT datname FROM pg_database WHERE datname LIKE " +
                                                admin.literal(pool_prefix(key) + "%") +
                                                " AND shobj_description(oid, 'pg_database') LIKE '%ready%' ORDER BY datname"));
  for (const auto& row : pool) {
    const std::string& waiting = row[0];
    Status taken = admin.exec("BEGIN; ALTER DATABASE " + admin.ident(waiting) + " RENAME TO " + admin.ident(name) + "; ALTER ROLE " +
                              admin.ident(waiting) + " RENAME TO " + admin.ident(name) + "; ALTER ROLE " + admin.ident(name) +
                              " LOGIN PASSWORD " + admin.literal(password) + "; COMMENT ON DATABASE " + admin.ident(name) + " IS " +
                              admin.literal(comment) + "; COMMENT ON ROLE " + admin.ident(name) + " IS " +
                              admin.literal("prevue env=" + slug + " seed=" + seed) + "; COMMIT;");
    if (!taken.ok()) {
      (void)admin.exec("ROLLBACK");
      continue;
    }
    handed.from = Handed::From::kPool;
    log += "database " + name + ": from the pool (" + waiting + "), handed over in " +
           std::to_string(std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count()) + " ms\n";
    break;
  }
  if (handed.from != Handed::From::kPool) {
    // `name` is free: a clone a crash cut short was found above (its comment lacks this key) and moved aside.
    PREVUE_TRY(clone_template(admin, server, key, name, comment, password));
    PREVUE_TRY(admin.exec("COMMENT ON ROLE " + admin.ident(name) + " IS " + admin.literal("prevue env=" + slug + " seed=" + seed)));
    log += "database " + name + ": the pool was empty: cloned from " + template_name(key) + " in " +
           std::to_string(std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count()) + " ms\n";
  }
  if (!previous.empty()) {
    PREVUE_TRY(drop_database(admin, previous));
    log += "database " + previous + ": dropped (the previous copy)\n";
  }
  return handed;
}

Status refill(const Server& server, const std::string& key, std::string& log) {
  PREVUE_ASSIGN_OR_RETURN(ConnectionInfo admin_info, parse_connection(server.url));
  PREVUE_ASSIGN_OR_RETURN(Connection admin, Connection::open(admin_info));
  PREVUE_ASSIGN_OR_RETURN(auto tpl, admin.rows("SELECT 1 FROM pg_database WHERE datname = " + admin.literal(template_name(key))));
  if (tpl.empty()) return {};
  PREVUE_TRY(lock_key(admin, key));
  struct Unlock {
    Connection& admin;
    const std::string& key;
    ~Unlock() { unlock_key(admin, key); }
  } unlock{admin, key};
  PREVUE_ASSIGN_OR_RETURN(auto databases, prevue_databases(admin));
  int ready = 0;
  for (const auto& [name, fields] : databases) {
    if (name.rfind(pool_prefix(key), 0) != 0) continue;
    if (fields.count("ready")) {
      ++ready;
    } else {  // a clone a crash cut short (refills hold the lock: none is in progress)
      PREVUE_TRY(drop_database(admin, name));
      (void)drop_role(admin, name);
    }
  }
  for (; ready < server.pool; ++ready) {
    const std::string name = pool_prefix(key) + random_hex(4);
    auto started = std::chrono::steady_clock::now();
    PREVUE_TRY(clone_template(admin, server, key, name, "prevue pool key=" + key + " ready", ""));
    log += "pool " + key + ": " + name + " cloned in " +
           std::to_string(std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count()) + " ms\n";
  }
  return {};
}

Result<std::vector<ReceiptItem>> drop_environment(const Server& server, const std::string& slug) {
  PREVUE_ASSIGN_OR_RETURN(ConnectionInfo admin_info, parse_connection(server.url));
  PREVUE_ASSIGN_OR_RETURN(Connection admin, Connection::open(admin_info));
  std::vector<ReceiptItem> receipt;
  PREVUE_ASSIGN_OR_RETURN(auto databases, prevue_databases(admin));
  for (const auto& [name, fields] : databases) {
    auto env = fields.find("env");
    if (env == fields.end() || env->second != slug) continue;
    Status dropped = drop_database(admin, name);
    receipt.push_back({"database", name + " (" + server.name + ")", dropped.ok() ? "dropped" : "not dropped: " + dropped.error().message});
  }
  PREVUE_ASSIGN_OR_RETURN(auto roles, admin.rows("SELECT rolname FROM pg_roles WHERE rolname LIKE 'prevue\\_env\\_%' AND "
                                                 "shobj_description(oid, 'pg_authid') LIKE " + admin.literal("prevue env=" + slug + " %")));
  for (const auto& row : roles) {
    Status dropped = drop_role(admin, row[0]);
    receipt.push_back({"role", row[0] + " (" + server.name + ")", dropped.ok() ? "dropped" : "not dropped: " + dropped.error().message});
  }
  return receipt;
}

Result<std::vector<std::string>> sweep(const Server& server, const std::set<std::string>& live_slugs, bool dry_run) {
  PREVUE_ASSIGN_OR_RETURN(ConnectionInfo admin_info, parse_connection(server.url));
  PREVUE_ASSIGN_OR_RETURN(Connection admin, Connection::open(admin_info));
  std::vector<std::string> actions;
  auto act = [&](const std::string& what, const std::function<Status()>& drop) {
    if (dry_run) {
      actions.push_back("would drop " + what);
      return;
    }
    Status s = drop();
    actions.push_back((s.ok() ? "dropped " : "could not drop ") + what + (s.ok() ? "" : ": " + s.error().message));
  };
  PREVUE_ASSIGN_OR_RETURN(auto databases, prevue_databases(admin));
  std::set<std::string> keys_in_use;
  for (const auto& [name, fields] : databases)
    if (name.rfind("prevue_env_", 0) == 0 && fields.count("env") && live_slugs.count(fields.at("env"))) keys_in_use.insert(fields.at("key"));
  for (const auto& [name, fields] : databases) {
    const std::string what = "database " + name + " (" + server.name + ")";
    if (name.rfind("prevue_env_", 0) == 0 && (!fields.count("env") || !live_slugs.count(fields.at("env")))) {
      act(what + ", of no live environment", [&, n = name] { return drop_database(admin, n); });
    } else if (name.rfind("prevue_old_", 0) == 0) {
      act(what + ", replaced by a new copy", [&, n = name] { return drop_database(admin, n); });
    } else if (name.rfind("prevue_tpl_", 0) == 0) {
      const std::string key = name.substr(std::string("prevue_tpl_").size());
      int64_t used = fields.count("used") ? std::atoll(fields.at("used").c_str()) : 0;
      if (keys_in_use.count(key) || now_seconds() - used < server.keep_unused.count() / 1000) continue;
      act(what + " and its pool, a template no environment uses", [&, key]() -> Status {
        PREVUE_TRY(lock_key(admin, key));
        Status s;
        PREVUE_ASSIGN_OR_RETURN(auto all, prevue_databases(admin));
        for (const auto& [other, other_fields] : all)
          if (other.rfind(pool_prefix(key), 0) == 0 && s.ok()) {
            s = drop_database(admin, other);
            if (s.ok()) s = drop_role(admin, other);
          }
        if (s.ok()) s = admin.exec("ALTER DATABASE " + admin.ident(template_name(key)) + " WITH IS_TEMPLATE false");
        if (s.ok()) s = drop_database(admin, template_name(key));
        if (s.ok()) s = drop_role(admin, template_name(key));
        unlock_key(admin, key);
        return s;
      });
    } else if (name.rfind("prevue_pool_", 0) == 0) {
      // A copy whose template is gone (a sweep cut short) has nothing to be handed over for.
      const std::string rest = name.substr(std::string("prevue_pool_").size());
      const std::string key = rest.substr(0, rest.rfind('_'));
      bool has_template = std::any_of(databases.begin(), databases.end(), [&](const auto& d) { return d.first == template_name(key); });
      if (!has_template)
        act(what + ", a pool copy of a template that is gone", [&, n = name]() -> Status {
          PREVUE_TRY(drop_database(admin, n));
          return drop_role(admin, n);
        });
    } else if (name.rfind("prevue_tplbuild_", 0) == 0) {
      // A build holds its key's lock: one that can be taken now is a build that died.
      const std::string key = name.substr(std::string("prevue_tplbuild_").size());
      PREVUE_ASSIGN_OR_RETURN(auto free, admin.rows("SELECT pg_try_advisory_lock(hashtext(" + admin.literal("prevue template " + key) + "))"));
      if (!free.empty() && free[0][0] == "t") {
        act(what + ", a template build that died", [&, n = name] { return drop_database(admin, n); });
        unlock_key(admin, key);
      }
    }
  }
  // Roles of environments whose databases are gone.
  PREVUE_ASSIGN_OR_RETURN(auto roles, admin.rows("SELECT r.rolname, coalesce(shobj_description(r.oid, 'pg_authid'), '') FROM pg_roles r "
                                                 "WHERE r.rolname LIKE 'prevue\\_env\\_%'"));
  for (const auto& row : roles) {
    auto fields = comment_fields(row[1]);
    if (fields.count("env") && live_slugs.count(fields["env"])) continue;
    act("role " + row[0] + " (" + server.name + "), of no live environment", [&, n = row[0]] { return drop_role(admin, n); });
  }
  return actions;
}

std::string key_of(const std::string& material) { return sha256_hex(material).substr(0, 16); }

std::string derive_password(const std::string& secret, const std::string& what) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(what.data()), what.size(),
       digest, &size);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), size)).substr(0, 32);
}

PoolRefiller::~PoolRefiller() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PoolRefiller::request(const Server& server, const std::string& key) {
  {
    std::lock_guard lock(mutex_);
    for (const auto& [s, k] : queue_)
      if (s.name == server.name && k == key) return;  // already asked
    queue_.emplace_back(server, key);
    if (!thread_.joinable()) thread_ = std::thread([this] { work(); });
  }
  wake_.notify_all();
}

void PoolRefiller::work() {
  for (;;) {
    std::pair<Server, std::string> next;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to do
      next = queue_.front();
      queue_.erase(queue_.begin());
    }
    std::string log;
    Status s = refill(next.first, next.second, log);
    // The daemon's log (stderr): nobody's run waits for this.
    if (!log.empty()) std::cerr << "prevue: postgres " << next.first.name << ": " << log;
    if (!s.ok()) std::cerr << "prevue: postgres " << next.first.name << ": refilling the pool of " << next.second << " failed: " << s.error().message << "\n";
  }
}

}  // namespace prevue::pg
