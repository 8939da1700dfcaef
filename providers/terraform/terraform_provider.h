// The `terraform` provider: a layer that is the repository's own Terraform
// or OpenTofu root module, applied in a workspace of its own per environment
// (`prevue-<slug>`) on the state backend prevue's config names; its outputs
// feed the later layers (docs/providers.md#the-terraform-provider).
#pragma once

#include <atomic>

#include "provider/protocol.h"

namespace prevue::terraform {

// Set by the provider's SIGINT/SIGTERM handler: the running terraform is
// interrupted (SIGINT), finishes what it was doing and releases its lock.
extern std::atomic<bool> stop_requested;

// Answers one request; returns the process exit code.
int handle(const ProviderRequest& request, ProviderResponse& response);

}  // namespace prevue::terraform
