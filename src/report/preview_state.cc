#include "report/preview_state.h"

#include "lease/lease_scheduler.h"

#include <algorithm>

namespace prevue {

std::optional<PreviewReport> preview_report(const PreviewFacts& facts) {
  const PullRequestRecord& pr = facts.pr;
  PreviewReport r;
  if (!facts.building_sha.empty()) {
    r.state = ReportState::kPending;
    r.sha = facts.building_sha;
  } else if (!facts.environment) {
    return std::nullopt;
  } else {
    const EnvironmentRecord& e = *facts.environment;
    r.sha = e.commit_sha;
    switch (e.state) {
      case EnvState::kReady: r.state = ReportState::kSuccess; break;
      case EnvState::kSleeping:
        r.state = ReportState::kSuccess;
        r.sleeping = true;
        break;
      case EnvState::kFailed:
        r.state = ReportState::kFailure;
        r.reason = e.failed_step.empty() ? e.error : e.failed_step + ": " + e.error;
        break;
      case EnvState::kDestroyed:
        r.state = ReportState::kInactive;
        r.sha = e.deployed_sha.empty() ? e.commit_sha : e.deployed_sha;
        r.reason = pr.status == PrStatus::kMerged   ? "pull request merged"
                   : pr.status == PrStatus::kClosed ? "pull request closed"
                   : !facts.destroyed_by.empty()    ? "destroyed by " + facts.destroyed_by + "; the next push brings it back"
                                                    : "its lease ran out; the next push brings it back";
        break;
      case EnvState::kPending:
      case EnvState::kProvisioning: r.state = ReportState::kPending; break;
      case EnvState::kDestroying: return std::nullopt;
    }
  }
  if (facts.environment) {
    r.slug = facts.environment->slug;
    r.url = facts.environment->url;
    if (facts.lease) {
      const LeaseRecord& l = *facts.lease;
      r.lease_expires_at_ms = l.expires_at == LeaseScheduler::kNever ? 0 : l.expires_at;
      r.idle_ms = l.idle_ms;
      r.pinned = l.pinned;
      r.lease_end = to_string(l.end_action);
      // The window is at most half of the period that ends the lease (its TTL,
      // or its idle limit): an idle limit of a day never warns for all of it.
      const std::int64_t deadline = l.deadline();
      const bool idle_ends_it = l.last_active + l.idle_ms <= l.expires_at;
      const std::int64_t window = std::min<std::int64_t>(facts.warn_before.count(), (idle_ends_it ? l.idle_ms : l.ttl_ms) / 2);
      if (window > 0 && l.revoked_at == 0 && !l.pinned && deadline != LeaseScheduler::kNever && r.state == ReportState::kSuccess &&
          !r.sleeping && deadline - facts.now_ms <= window)
        r.ends_soon_at_ms = deadline;
    }
  }
  if (r.slug.empty()) r.slug = facts.predicted_slug;
  // Before the first build the link is already known: it shows the building page.
  if (r.url.empty()) r.url = facts.predicted_url;
  r.extend_hint = "prevue extend " + r.slug + " 1d";
  if (r.sha.empty()) r.sha = pr.head_sha;
  return r;
}

}  // namespace prevue
