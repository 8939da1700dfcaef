// Runs one provider executable for one verb.
#pragma once

#include <filesystem>
#include <string>

#include "provider/process_runner.h"
#include "provider/protocol.h"

namespace prevue {

struct ProviderCall {
  Result<ProviderResponse> response;
  std::string log;  // the provider's stderr, for the step's log
  Millis elapsed{0};
};

class ProviderClient {
 public:
  ProviderClient(ProcessRunner& runner, std::filesystem::path provider_dir) : runner_(runner), dir_(std::move(provider_dir)) {}

  // The executable for provider `name`, or an error naming where it looked.
  Result<std::filesystem::path> executable(const std::string& name) const;
  ProviderCall call(const std::string& provider, const ProviderRequest& request, Millis timeout);

 private:
  ProcessRunner& runner_;
  std::filesystem::path dir_;
};

}  // namespace prevue
