// The operator's settings for a provider (prevue's config, `providers.NAME`),
// kept in the provider's records root: commands that run without the config
// (`prevue down`, `prevue ls`, `prevue gc` from cron) reach the same cluster
// or state backend as the daemon did.
#pragma once

#include <string>

#include "provider/protocol.h"

namespace prevue::providers {

struct RememberedSettings {
  std::string text;      // a JSON object: the request's own when it has any, else the last ones kept ("{}" when none)
  bool given = false;    // the request carried them (else they were remembered, or there are none)
  bool changed = false;  // they differ from the ones kept before (and replaced them)
};

RememberedSettings remembered_operator_settings(const ProviderRequest& request);

}  // namespace prevue::providers
