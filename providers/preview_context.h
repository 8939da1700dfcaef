// What a container provider (compose, kubernetes) tells the containers and
// its labels about the environment, the same way in each.
#pragma once

#include <map>
#include <string>

#include "provider/protocol.h"

namespace prevue::providers {

// The environment every container gets (docs/manifest.md), but for the
// commit (PREVUE_COMMIT, PREVUE_COMMIT_SHORT), which is each service's own:
// the commit its configuration last changed at, so a push that leaves a
// service alone leaves it running.
std::map<std::string, std::string> preview_environment(const ProviderRequest& request);

// This prevue instance, as its resources are labelled (dev.prevue.instance):
// one engine or cluster may serve several prevue instances, and each sweeps
// only its own orphans.
std::string instance_of(const ProviderRequest& request);

}  // namespace prevue::providers
