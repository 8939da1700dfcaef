// Numbered schema migrations, applied in order at open. Never edit a
// migration that has shipped: add the next number.
#pragma once

namespace prevue {

struct Migration {
  int version;
  const char* sql;
};

inline constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE repositories (
  id          INTEGER PRIMARY KEY,
  key         TEXT NOT NULL UNIQUE,
  name        TEXT NOT NULL,
  mirror_path TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE TABLE environments (
  id           INTEGER PRIMARY KEY,
  repo_id      INTEGER NOT NULL REFERENCES repositories(id),
  pr           INTEGER NOT NULL,
  slug         TEXT NOT NULL UNIQUE,
  state        TEXT NOT NULL CHECK (state IN ('pending','provisioning','ready','sleeping','failed','destroying','destroyed')),
  ref          TEXT NOT NULL DEFAULT '',
  commit_sha   TEXT NOT NULL DEFAULT '',
  deployed_sha TEXT NOT NULL DEFAULT '',
  dir          TEXT NOT NULL,
  url          TEXT NOT NULL DEFAULT '',
  failed_step  TEXT NOT NULL DEFAULT '',
  error        TEXT NOT NULL DEFAULT '',
  provider     TEXT NOT NULL DEFAULT 'local',
  seeded       INTEGER NOT NULL DEFAULT 0,
  service_revisions TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  UNIQUE (repo_id, pr)
);
CREATE INDEX environments_by_state ON environments(state);
CREATE TABLE runs (
  id          INTEGER PRIMARY KEY,
  env_id      INTEGER NOT NULL REFERENCES environments(id),
  kind        TEXT NOT NULL,
  target_sha  TEXT NOT NULL DEFAULT '',
  state       TEXT NOT NULL,
  error       TEXT NOT NULL DEFAULT '',
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_env ON runs(env_id, id);
CREATE TABLE steps (
  id          INTEGER PRIMARY KEY,
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  seq         INTEGER NOT NULL,
  name        TEXT NOT NULL,
  state       TEXT NOT NULL,
  log         TEXT NOT NULL DEFAULT '',
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0,
  child_ms    INTEGER NOT NULL DEFAULT 0,
  UNIQUE (run_id, seq)
);
CREATE TABLE routes (
  host     TEXT PRIMARY KEY,
  env_id   INTEGER NOT NULL REFERENCES environments(id),
  route    TEXT NOT NULL,
  service  TEXT NOT NULL,
  upstream TEXT NOT NULL
);
CREATE INDEX routes_by_env ON routes(env_id);
CREATE TABLE leases (
  env_id      INTEGER PRIMARY KEY REFERENCES environments(id),
  ttl_ms      INTEGER NOT NULL,
  idle_ms     INTEGER NOT NULL,
  end_action  TEXT NOT NULL CHECK (end_action IN ('destroy','sleep')),
  grace_ms    INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  last_active INTEGER NOT NULL,
  pinned      INTEGER NOT NULL DEFAULT 0,
  revoked_at  INTEGER NOT NULL DEFAULT 0,
  deadline    INTEGER NOT NULL
);
CREATE INDEX leases_by_deadline ON leases(deadline);
CREATE TABLE pull_requests (
  repo_id     INTEGER NOT NULL REFERENCES repositories(id),
  pr          INTEGER NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('open','closed','merged')),
  head_sha    TEXT NOT NULL DEFAULT '',
  head_ref    TEXT NOT NULL DEFAULT '',
  base_ref    TEXT NOT NULL DEFAULT '',
  author      TEXT NOT NULL DEFAULT '',
  fork        INTEGER NOT NULL DEFAULT 0,
  labels      TEXT NOT NULL DEFAULT '',
  expired_sha TEXT NOT NULL DEFAULT '',
  updated_at  INTEGER NOT NULL,
  closed_at   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (repo_id, pr)
);
CREATE INDEX pull_requests_by_branch ON pull_requests(repo_id, head_ref, pr);
CREATE TABLE events (
  id           INTEGER PRIMARY KEY,
  delivery_id  TEXT NOT NULL UNIQUE,
  source       TEXT NOT NULL,
  repo_id      INTEGER NOT NULL DEFAULT 0,  -- 0: a delivery for no watched repository (kept, with why)
  pr           INTEGER NOT NULL,
  action       TEXT NOT NULL,
  head_sha     TEXT NOT NULL DEFAULT '',
  base_sha     TEXT NOT NULL DEFAULT '',
  head_ref     TEXT NOT NULL DEFAULT '',
  base_ref     TEXT NOT NULL DEFAULT '',
  author       TEXT NOT NULL DEFAULT '',
  fork         INTEGER NOT NULL DEFAULT 0,
  labels       TEXT NOT NULL DEFAULT '',
  received_at  INTEGER NOT NULL,
  processed_at INTEGER NOT NULL DEFAULT 0,
  status       TEXT NOT NULL DEFAULT 'received',
  note         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_unprocessed ON events(processed_at) WHERE processed_at = 0;
CREATE TABLE timeline (
  id          INTEGER PRIMARY KEY,
  env_id      INTEGER NOT NULL REFERENCES environments(id),
  at          INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  detail      TEXT NOT NULL DEFAULT '',
  duration_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX timeline_by_env ON timeline(env_id, id);
CREATE TABLE claims (
  env_id     INTEGER PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
)sql"},
    // Reporting back to the git hosts: where each pull request came from,
    // the host's ids for what prevue made there (the one comment, the
    // current deployment), and what was last sent, so nothing is sent twice.
    {2, R"sql(
CREATE TABLE reports (
  repo_id        INTEGER NOT NULL,
  pr             INTEGER NOT NULL,
  host           TEXT NOT NULL,
  host_repo      TEXT NOT NULL,
  comment_id     TEXT NOT NULL DEFAULT '',
  deployment_id  TEXT NOT NULL DEFAULT '',
  deployment_sha TEXT NOT NULL DEFAULT '',
  sent_status    TEXT NOT NULL DEFAULT '',
  sent_comment   TEXT NOT NULL DEFAULT '',
  last_error     TEXT NOT NULL DEFAULT '',
  updated_at     INTEGER NOT NULL,
  PRIMARY KEY (repo_id, pr)
);
)sql"},
    // SQLite (3.40) checks a CHECK (x IN (a, b, c)) of three or more values
    // by building a temporary table on every write of the row, which more
    // than doubled the cost of recording a webhook. The same constraints,
    // written as comparisons, cost nothing; SQLite can only change a CHECK
    // by rebuilding the table (https://sqlite.org/lang_altertable.html#otheralter),
    // which migrate() does with foreign keys off.
    {3, R"sql(
CREATE TABLE new_environments (
  id           INTEGER PRIMARY KEY,
  repo_id      INTEGER NOT NULL REFERENCES repositories(id),
  pr           INTEGER NOT NULL,
  slug         TEXT NOT NULL UNIQUE,
  state        TEXT NOT NULL CHECK (state = 'pending' OR state = 'provisioning' OR state = 'ready' OR state = 'sleeping' OR
                                    state = 'failed' OR state = 'destroying' OR state = 'destroyed'),
  ref          TEXT NOT NULL DEFAULT '',
  commit_sha   TEXT NOT NULL DEFAULT '',
  deployed_sha TEXT NOT NULL DEFAULT '',
  dir          TEXT NOT NULL,
  url          TEXT NOT NULL DEFAULT '',
  failed_step  TEXT NOT NULL DEFAULT '',
  error        TEXT NOT NULL DEFAULT '',
  provider     TEXT NOT NULL DEFAULT 'local',
  seeded       INTEGER NOT NULL DEFAULT 0,
  service_revisions TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  UNIQUE (repo_id, pr)
);
INSERT INTO new_environments SELECT * FROM environments;
DROP TABLE environments;
ALTER TABLE new_environments RENAME TO environments;
CREATE INDEX environments_by_state ON environments(state);
CREATE TABLE new_leases (
  env_id      INTEGER PRIMARY KEY REFERENCES environments(id),
  ttl_ms      INTEGER NOT NULL,
  idle_ms     INTEGER NOT NULL,
  end_action  TEXT NOT NULL CHECK (end_action = 'destroy' OR end_action = 'sleep'),
  grace_ms    INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  last_active INTEGER NOT NULL,
  pinned      INTEGER NOT NULL DEFAULT 0,
  revoked_at  INTEGER NOT NULL DEFAULT 0,
  deadline    INTEGER NOT NULL
);
INSERT INTO new_leases SELECT * FROM leases;
DROP TABLE leases;
ALTER TABLE new_leases RENAME TO leases;
CREATE INDEX leases_by_deadline ON leases(deadline);
CREATE TABLE new_pull_requests (
  repo_id     INTEGER NOT NULL REFERENCES repositories(id),
  pr          INTEGER NOT NULL,
  status      TEXT NOT NULL CHECK (status = 'open' OR status = 'closed' OR status = 'merged'),
  head_sha    TEXT NOT NULL DEFAULT '',
  head_ref    TEXT NOT NULL DEFAULT '',
  base_ref    TEXT NOT NULL DEFAULT '',
  author      TEXT NOT NULL DEFAULT '',
  fork        INTEGER NOT NULL DEFAULT 0,
  labels      TEXT NOT NULL DEFAULT '',
  expired_sha TEXT NOT NULL DEFAULT '',
  updated_at  INTEGER NOT NULL,
  closed_at   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (repo_id, pr)
);
INSERT INTO new_pull_requests SELECT * FROM pull_requests;
DROP TABLE pull_requests;
ALTER TABLE new_pull_requests RENAME TO pull_requests;
CREATE INDEX pull_requests_by_branch ON pull_requests(repo_id, head_ref, pr);
)sql"},
    // An environment is a list of layers, each with its provider: the
    // column holds "name provider" lines (the store's encoding; records
    // carry them typed). Existing rows were the one layer of the short form.
    {4, R"sql(
ALTER TABLE environments RENAME COLUMN provider TO layers;
UPDATE environments SET layers = 'main ' || layers WHERE layers <> '';
)sql"},
    // Labels are one per line (they may hold commas), read into lists.
    {5, R"sql(
UPDATE pull_requests SET labels = replace(labels, ',', char(10)) || char(10) WHERE labels <> '';
UPDATE events SET labels = replace(labels, ',', char(10)) || char(10) WHERE labels <> '';
)sql"},
    // Share links of protected previews: the token is signed (it carries the
    // id and expiry); a row says the link exists and whether it was revoked.
    {6, R"sql(
CREATE TABLE share_links (
  id          TEXT PRIMARY KEY,
  env_id      INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER NOT NULL DEFAULT 0,
  created_by  TEXT NOT NULL DEFAULT '',
  note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX share_links_by_env ON share_links(env_id);
)sql"},
    // Dashboard sessions (the cookie is signed; the row can be revoked).
    {7, R"sql(
CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  who         TEXT NOT NULL,
  role        TEXT NOT NULL CHECK (role = 'read' OR role = 'write' OR role = 'admin'),
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER NOT NULL DEFAULT 0
);
)sql"},
};

}  // namespace prevue
