// What a pull request's preview is, told to its git host: a pure function
// of the pull request, its environment and lease as stored, and whether a
// build for a new commit is running. The daemon's reporting sends it (the
// reporter sends only what the host does not have yet).
#pragma once

#include <optional>
#include <string>

#include "core/duration.h"
#include "report/host_api.h"
#include "store/store.h"

namespace prevue {

struct PreviewFacts {
  const PullRequestRecord& pr;
  const std::optional<EnvironmentRecord>& environment;
  const std::optional<LeaseRecord>& lease;
  std::string building_sha;    // a build of this commit is running (a wake of the deployed commit is none)
  std::string predicted_slug;  // the slug before the environment exists
  std::string predicted_url;   // its link, which shows the building page until then
  // A lease ending within `warn_before` of `now_ms` (at most half of the
  // TTL or idle limit that ends it) is said to end soon (0: never).
  std::int64_t now_ms = 0;
  Millis warn_before{0};
  std::string destroyed_by;  // who destroyed it by hand ("api token (dashboard)"), if someone did
};

// Nothing to say (nullopt) while a teardown runs, or before anything happened.
std::optional<PreviewReport> preview_report(const PreviewFacts& facts);

}  // namespace prevue
