#include "daemon/poller.h"

#include <set>

#include "daemon/logger.h"
#include "engine/events.h"
#include "git/git_mirror.h"

namespace prevue {

Status poll_repository(Store& st, const RepositoryRecord& repo, const WatchedRepository& w, std::int64_t now,
                       std::vector<std::string>& notes) {
  auto opened = GitMirror::open(repo.mirror_path, repo.key);
  if (!opened.ok()) return opened.error();
  GitMirror git = std::move(opened).value();
  PREVUE_TRY(git.fetch());
  auto base = git.resolve_ref(w.base);
  if (!base.ok()) return make_error(base.error().code, "base branch: " + base.error().message);
  auto pull_refs = git.refs("refs/pull/*");
  auto mr_refs = git.refs("refs/merge-requests/*");
  bool use_refs = w.pull_requests == PullRequestSource::kRefs ||
                  (w.pull_requests == PullRequestSource::kAuto &&
                   ((pull_refs.ok() && !pull_refs->empty()) || (mr_refs.ok() && !mr_refs->empty())));
  std::set<std::string> present;  // head refs that exist now

  auto emit = [&](long pr, const std::string& action, const std::string& sha, const std::string& head_ref) -> Status {
    EventRecord e;
    e.delivery_id = "poll:" + std::to_string(repo.id) + ":" + std::to_string(pr) + ":" + action + ":" + sha;
    e.source = "poll";
    e.repo_id = repo.id;
    e.pr = pr;
    e.action = action;
    e.head_sha = sha;
    e.head_ref = head_ref;
    e.base_ref = w.base;
    e.base_sha = base->sha;
    auto r = ingest_event(st, e, now);
    if (!r.ok()) return r.error();
    if (!r->duplicate) notes.push_back("source=poll repo=" + json_quoted(repo.name) + " note=" + json_quoted(r->note));
    return {};
  };
  auto merged_into_base = [&](const std::string& sha) {
    auto a = git.is_ancestor(sha, base->sha);
    return a.ok() && *a;
  };

  if (use_refs) {
    std::vector<std::pair<std::string, std::string>> heads;
    for (const auto* list : {&pull_refs, &mr_refs})
      if (list->ok())
        for (const auto& [name, sha] : **list)
          if (name.size() > 5 && name.substr(name.size() - 5) == "/head") heads.emplace_back(name, sha);
    for (const auto& [name, sha] : heads) {
      // refs/pull/<N>/head or refs/merge-requests/<N>/head
      std::string middle = name.substr(0, name.size() - 5);
      std::string number = middle.substr(middle.rfind('/') + 1);
      if (number.empty() || number.size() > 9 || number.find_first_not_of("0123456789") != std::string::npos) continue;
      long pr = std::stol(number);
      present.insert(name);
      auto known = st.find_pull_request(repo.id, pr);
      if (!known.ok()) return known.error();
      bool merged = merged_into_base(sha);
      if (!known->has_value()) {
        if (!merged) PREVUE_TRY(emit(pr, kEventOpened, sha, name));
      } else if ((*known)->status == PrStatus::kOpen) {
        if (merged) PREVUE_TRY(emit(pr, kEventMerged, sha, name));
        else if ((*known)->head_sha != sha) PREVUE_TRY(emit(pr, kEventUpdated, sha, name));
      } else if ((*known)->head_sha != sha && !merged) {
        PREVUE_TRY(emit(pr, kEventOpened, sha, name));  // reopened with new work
      }
    }
  } else {
    auto branches = git.branches();
    if (!branches.ok()) return branches.error();
    for (const auto& [branch, sha] : *branches) {
      if (branch == w.base) continue;
      present.insert(branch);
      auto known = st.find_pull_request_by_branch(repo.id, branch);
      if (!known.ok()) return known.error();
      bool merged = merged_into_base(sha);
      if (known->has_value() && (*known)->status == PrStatus::kOpen) {
        if (merged) PREVUE_TRY(emit((*known)->pr, kEventMerged, sha, branch));
        else if ((*known)->head_sha != sha) PREVUE_TRY(emit((*known)->pr, kEventUpdated, sha, branch));
        continue;
      }
      // No open PR for the branch: new work (not already in the base) opens one.
      if (merged) continue;
      if (known->has_value() && (*known)->head_sha == sha) continue;  // closed at this very commit
      auto number = st.next_pr_number(repo.id);
      if (!number.ok()) return number.error();
      PREVUE_TRY(emit(*number, kEventOpened, sha, branch));
    }
  }
  // Open PRs whose head ref is gone: the branch was deleted, the PR closed.
  auto prs = st.list_pull_requests();
  if (!prs.ok()) return prs.error();
  for (const auto& pr : *prs) {
    if (pr.repo_id != repo.id || pr.status != PrStatus::kOpen || present.count(pr.head_ref)) continue;
    bool is_ref_pr = pr.head_ref.rfind("refs/", 0) == 0;
    if (is_ref_pr != use_refs) continue;
    PREVUE_TRY(emit(pr.pr, merged_into_base(pr.head_sha) ? kEventMerged : kEventClosed, pr.head_sha, pr.head_ref));
  }
  return {};
}

}  // namespace prevue
