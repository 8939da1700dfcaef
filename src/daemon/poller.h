// The poller: for a repository without webhooks, each branch but the base
// (or each refs/pull/N/head, refs/merge-requests/N/head a host keeps) is a
// pull request, and what changed since the last poll becomes events: a new
// branch opens one, a push updates it, a branch merged into the base merges
// it, a deleted branch closes it. The daemon runs it on its git thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "store/store.h"

namespace prevue {

// Fetches the repository's mirror and records the events; each new one adds
// a line to `notes` (for the log).
Status poll_repository(Store& store, const RepositoryRecord& repo, const WatchedRepository& watched, std::int64_t now_ms,
                       std::vector<std::string>& notes);

}  // namespace prevue
