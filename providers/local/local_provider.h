// The `local` provider: runs an environment's services as processes on this
// host. Each service runs in a session (and so a process group) of its own
// that outlives prevue; what was started is recorded in
// <environment dir>/.prevue/local.json so any later call can find it.
#pragma once

#include "provider/protocol.h"

namespace prevue::local {

// Handles one request; never throws. The exit code is one of the protocol's.
int handle(const ProviderRequest& request, ProviderResponse& response);

}  // namespace prevue::local
