// The `kubernetes` provider: a layer that is the repository's own
// Kubernetes manifests (a directory of YAML or a Kustomize overlay), applied
// to a namespace of its own per environment on the cluster prevue's config
// names (docs/providers.md#the-kubernetes-provider).
#pragma once

#include "provider/protocol.h"

namespace prevue::kubernetes {

// Answers one request; returns the process exit code.
int handle(const ProviderRequest& request, ProviderResponse& response);

}  // namespace prevue::kubernetes
