#include "preview_context.h"

#include "command.h"

namespace prevue::providers {

std::map<std::string, std::string> preview_environment(const ProviderRequest& request) {
  std::map<std::string, std::string> env{{"ENV_NAME", "preview"},
                                         {"PREVUE_SLUG", request.environment.slug},
                                         {"PREVUE_PR", std::to_string(request.environment.pr)}};
  for (const auto& s : request.services)
    for (const auto& [k, v] : s.env)
      if (k == "PREVUE_URL" || k == "PREVUE_REF") env[k] = v;
  // apply names them itself (a layer without services has no env to read them from)
  if (!request.environment.url.empty()) env["PREVUE_URL"] = request.environment.url;
  if (!request.environment.ref.empty()) env["PREVUE_REF"] = request.environment.ref;
  return env;
}

std::string instance_of(const ProviderRequest& request) { return sha256_hex(request.records_root).substr(0, 16); }

}  // namespace prevue::providers
