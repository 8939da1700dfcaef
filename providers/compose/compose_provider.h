// The `compose` provider: a layer that is the repository's own Docker
// Compose files, run as one compose project per environment on the local
// Docker Engine (docs/providers.md#the-compose-provider).
#pragma once

#include "provider/protocol.h"

namespace prevue::compose {

// Answers one request; returns the process exit code.
int handle(const ProviderRequest& request, ProviderResponse& response);

}  // namespace prevue::compose
