// The store: prevue's durable truth. One implementation (sqlite, WAL mode)
// serves both a file and ":memory:" (tests, benchmarks).
//
// Contract for every method: a returned error leaves the store unchanged;
// "absent" is an empty optional, never an error; times are epoch milliseconds
// from the injected Clock; lists are ordered as documented per method.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/end_action.h"
#include "core/endpoint.h"
#include "core/env_state.h"
#include "core/result.h"

namespace prevue {

struct RepositoryRecord {
  std::int64_t id = 0;
  std::string key;          // normalised URL or absolute path; unique
  std::string name;         // short, for humans
  std::string mirror_path;
};

struct EnvironmentRecord {
  std::int64_t id = 0;
  std::int64_t repo_id = 0;
  long pr = 0;
  std::string slug;          // unique, a DNS label
  EnvState state = EnvState::kPending;
  std::string ref;           // what was asked for (branch/tag), may be empty
  std::string commit_sha;    // the commit targeted by the latest run
  std::string deployed_sha;  // the commit running when last ready; empty before
  std::string dir;
  std::string url;
  std::string failed_step;   // set while failed
  std::string error;         // set while failed
  std::vector<EnvironmentLayer> layers;  // as last planned, in apply order; empty before a manifest was read
  bool seeded = false;       // seed steps completed once for this environment
  std::string service_revisions;  // "name revision" lines, as last deployed
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

// A dashboard sign-in. The cookie carries the id, signed; sign-out revokes
// the row, so a copied cookie stops working with it.
struct SessionRecord {
  std::string id;    // hex
  std::string who;   // "api token", or the git host's login
  std::string role;  // read, write or admin
  std::int64_t created_at = 0;  // ms
  std::int64_t expires_at = 0;  // ms
  std::int64_t revoked_at = 0;  // ms; 0 while it works
};

struct ShareLinkRecord {
  std::string id;  // hex, in the signed token
  std::int64_t env_id = 0;
  std::int64_t created_at = 0;  // ms
  std::int64_t expires_at = 0;  // ms
  std::int64_t revoked_at = 0;  // ms; 0 while it works
  std::string created_by;
  std::string note;
};

enum class RunKind { kUp, kDown };
enum class RunState { kRunning, kSucceeded, kFailed };
const char* to_string(RunKind kind);
const char* to_string(RunState state);

struct RunRecord {
  std::int64_t id = 0;
  std::int64_t env_id = 0;
  RunKind kind = RunKind::kUp;
  std::string target_sha;
  RunState state = RunState::kRunning;
  std::string error;
  std::int64_t started_at = 0;
  std::int64_t finished_at = 0;
};

struct StepRecord {
  std::int64_t id = 0;
  std::int64_t run_id = 0;
  int seq = 0;
  std::string name;
  RunState state = RunState::kRunning;
  std::string log;
  std::int64_t started_at = 0;
  std::int64_t finished_at = 0;
  std::int64_t child_ms = 0;  // time spent waiting on child processes
};

struct RouteRecord {
  std::string host;      // unique across environments
  std::int64_t env_id = 0;
  std::string route;     // route name in the manifest
  std::string service;
  Endpoint upstream;     // where the service answers
};

struct LeaseRecord {
  std::int64_t env_id = 0;
  std::int64_t ttl_ms = 0;
  std::int64_t idle_ms = 0;
  EndAction end_action = EndAction::kDestroy;
  std::int64_t grace_ms = 0;
  std::int64_t expires_at = 0;    // hard end (TTL from the last push or extend)
  std::int64_t last_active = 0;   // last push or proxy hit
  bool pinned = false;            // no TTL/idle expiry; a merge or close still revokes
  std::int64_t revoked_at = 0;    // when the PR merged or closed; 0 while open

  // When the lease ends: the revocation's grace, else the earlier of the TTL
  // and the idle limit (never, for a pinned lease). The one definition the
  // daemon's scheduler, the store's index and `prevue gc` all use.
  std::int64_t deadline() const;
  // The pull request merged or closed and its grace has not run out: the
  // environment stays until then. The one rule the reconciler, the lease
  // timers and `prevue gc` share.
  bool in_grace(std::int64_t now_ms) const { return revoked_at != 0 && deadline() > now_ms; }
};

enum class PrStatus { kOpen, kClosed, kMerged };
const char* to_string(PrStatus status);

// The desired state of a pull request, as the latest event left it.
struct PullRequestRecord {
  std::int64_t repo_id = 0;
  long pr = 0;
  PrStatus status = PrStatus::kOpen;
  std::string head_sha;
  std::string head_ref;
  std::string base_ref;
  std::string author;
  bool fork = false;
  std::vector<std::string> labels;
  std::string expired_sha;  // the head whose lease ran out: no new environment until a new push
  std::int64_t updated_at = 0;
  std::int64_t closed_at = 0;
};

// One normalised event from any source (webhook, poller, hook, API).
struct EventRecord {
  std::int64_t id = 0;
  std::string delivery_id;  // the source's id; a redelivery is a no-op
  std::string source;
  std::int64_t repo_id = 0;
  long pr = 0;
  std::string action;       // opened, updated, closed, merged
  std::string head_sha, base_sha, head_ref, base_ref, author;
  bool fork = false;
  std::vector<std::string> labels;
  std::int64_t received_at = 0;
  std::int64_t processed_at = 0;
  std::string status = "received";
  std::string note;
};

struct TimelineEntry {
  std::int64_t id = 0;
  std::int64_t env_id = 0;
  std::int64_t at = 0;
  std::string kind;    // received, planned, step, ready, renewed, expired, slept, destroyed, failed
  std::string detail;
  std::int64_t duration_ms = 0;
};

// What prevue last told a git host about one pull request (issue 4's reporting).
struct ReportRecord {
  std::int64_t repo_id = 0;
  long pr = 0;
  std::string host;       // github, gitlab, gitea, bitbucket, bitbucket-datacenter
  std::string host_repo;  // the host's name for the repository: owner/name, a GitLab project id, PROJECT/slug
  std::string comment_id;
  std::string deployment_id;
  std::string deployment_sha;
  std::string sent_status;   // "<state>@<sha>" of the last status the host accepted
  std::string sent_comment;  // digest of the last comment body the host accepted
  std::string last_error;
  std::int64_t updated_at = 0;
};

class Store {
 public:
  // Opens (creating if needed) and applies pending migrations in order, each
  // in its own transaction. ":memory:" gives a private in-memory store.
  static Result<std::unique_ptr<Store>> open(const std::string& path, const Clock& clock);
  virtual ~Store() = default;

  virtual int schema_version() = 0;

  // Runs `body` in one write transaction: all of its writes or none. Not
  // for bodies that call update_environment or replace_routes (which open
  // their own).
  virtual Status in_transaction(const std::function<Status()>& body) = 0;

  // Inserts the repository or returns the existing row with the same key.
  virtual Result<RepositoryRecord> upsert_repository(const std::string& key, const std::string& name,
                                                     const std::string& mirror_path) = 0;
  virtual Result<std::optional<RepositoryRecord>> find_repository(std::int64_t id) = 0;

  // Inserts; kConflict when (repo, pr) or the slug already exists. Sets id,
  // created_at and updated_at on the returned copy.
  virtual Result<EnvironmentRecord> insert_environment(EnvironmentRecord record) = 0;
  virtual Result<std::optional<EnvironmentRecord>> find_environment(std::int64_t repo_id, long pr) = 0;
  virtual Result<std::optional<EnvironmentRecord>> find_environment_by_slug(const std::string& slug) = 0;
  virtual Result<std::optional<EnvironmentRecord>> find_environment_by_id(std::int64_t id) = 0;
  // Writes every field but id/repo/pr/slug/created_at. kConflict when the
  // stored state does not allow the transition to record.state, kNotFound
  // when the row is gone.
  virtual Status update_environment(EnvironmentRecord& record) = 0;
  // Ordered by repository then PR number; destroyed ones only on request.
  virtual Result<std::vector<EnvironmentRecord>> list_environments(bool include_destroyed) = 0;

  virtual Result<RunRecord> begin_run(std::int64_t env_id, RunKind kind, const std::string& target_sha) = 0;
  virtual Status finish_run(std::int64_t run_id, RunState state, const std::string& error) = 0;
  // The newest run of the environment, absent when it never ran.
  virtual Result<std::optional<RunRecord>> last_run(std::int64_t env_id) = 0;

  virtual Result<StepRecord> begin_step(std::int64_t run_id, const std::string& name) = 0;
  virtual Status finish_step(std::int64_t step_id, RunState state, const std::string& log, std::int64_t child_ms) = 0;
  // In execution order.
  virtual Result<std::vector<StepRecord>> steps_of_run(std::int64_t run_id) = 0;

  // Replaces every route of the environment atomically; kConflict when a
  // host belongs to another environment.
  virtual Status replace_routes(std::int64_t env_id, const std::vector<RouteRecord>& routes) = 0;
  // Ordered by host.
  virtual Result<std::vector<RouteRecord>> routes_of(std::int64_t env_id) = 0;
  // Every environment's routes, ordered by host.
  virtual Result<std::vector<RouteRecord>> all_routes() = 0;
  virtual Result<std::optional<RouteRecord>> find_route(const std::string& host) = 0;

  // Stores the lease with its deadline().
  virtual Status upsert_lease(const LeaseRecord& lease) = 0;
  virtual Result<std::optional<LeaseRecord>> lease_of(std::int64_t env_id) = 0;
  virtual Status delete_lease(std::int64_t env_id) = 0;
  // Leases whose deadline is at or before `now`, most overdue first, at most `limit`.
  virtual Result<std::vector<LeaseRecord>> due_leases(std::int64_t now, int limit) = 0;
  // Every lease (the daemon loads them into its scheduler at start).
  virtual Result<std::vector<LeaseRecord>> all_leases() = 0;

  virtual Result<std::vector<RepositoryRecord>> list_repositories() = 0;

  // Records the event; false (and nothing written) when its delivery id is known.
  virtual Result<bool> insert_event(EventRecord& event) = 0;
  virtual Result<bool> has_event(const std::string& delivery_id) = 0;
  // Newest first.
  virtual Result<std::vector<EventRecord>> recent_events(int limit) = 0;
  virtual Result<std::int64_t> inbox_depth() = 0;  // events received but not processed

  virtual Status upsert_pull_request(const PullRequestRecord& pr) = 0;
  virtual Result<std::optional<PullRequestRecord>> find_pull_request(std::int64_t repo_id, long pr) = 0;
  // The newest PR (any status) whose head is `branch`, if any.
  virtual Result<std::optional<PullRequestRecord>> find_pull_request_by_branch(std::int64_t repo_id, const std::string& branch) = 0;
  // Ordered by repository then number.
  virtual Result<std::vector<PullRequestRecord>> list_pull_requests() = 0;
  // One more than the highest PR number known for the repository (from 1).
  virtual Result<long> next_pr_number(std::int64_t repo_id) = 0;

  // Share links (protected previews): made, listed, revoked; the live ones
  // (neither revoked nor expired at `now`) of every environment, for the proxy.
  virtual Status insert_share_link(const ShareLinkRecord& link) = 0;
  virtual Result<std::vector<ShareLinkRecord>> share_links_of(std::int64_t env_id) = 0;
  virtual Result<bool> revoke_share_link(std::int64_t env_id, const std::string& id, std::int64_t now) = 0;
  virtual Result<std::map<std::int64_t, std::vector<std::string>>> live_share_links(std::int64_t now) = 0;

  // Dashboard sessions: made at sign-in, read on each request, revoked at
  // sign-out; those ended before `cutoff` (expired or revoked) are deleted.
  virtual Status insert_session(const SessionRecord& session) = 0;
  virtual Result<std::optional<SessionRecord>> find_session(const std::string& id) = 0;
  virtual Result<bool> revoke_session(const std::string& id, std::int64_t now) = 0;
  virtual Status delete_sessions_ended_before(std::int64_t cutoff) = 0;

  virtual Status append_timeline(std::int64_t env_id, const std::string& kind, const std::string& detail,
                                 std::int64_t duration_ms) = 0;
  // Oldest first.
  virtual Result<std::vector<TimelineEntry>> timeline_of(std::int64_t env_id) = 0;

  // Claims the environment for `owner` until now + ttl; true when claimed
  // (unclaimed, expired, or already ours), false when someone else holds it.
  virtual Result<bool> try_claim(std::int64_t env_id, const std::string& owner, std::int64_t ttl_ms) = 0;
  virtual Status release_claim(std::int64_t env_id, const std::string& owner) = 0;
  // The owner of an unexpired claim; nullopt when unclaimed or expired.
  virtual Result<std::optional<std::string>> claim_holder(std::int64_t env_id) = 0;
  // Moves an unexpired claim from `from` (an owner the caller proved dead)
  // to `owner` until now + ttl, atomically: false when `from` no longer holds it.
  virtual Result<bool> take_over_claim(std::int64_t env_id, const std::string& from, const std::string& owner, std::int64_t ttl_ms) = 0;

  // Records (or moves) where a pull request is reported; keeps the ids and
  // what was sent when the host and repository are unchanged.
  virtual Status set_report_target(std::int64_t repo_id, long pr, const std::string& host, const std::string& host_repo) = 0;
  virtual Result<std::optional<ReportRecord>> report_of(std::int64_t repo_id, long pr) = 0;
  virtual Result<std::vector<ReportRecord>> all_reports() = 0;
  // Stores the ids and sent state of an existing target; NotFound when there is none.
  virtual Status save_report(const ReportRecord& report) = 0;
};

}  // namespace prevue
