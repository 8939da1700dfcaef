// Runs one provider executable for one verb.
#pragma once

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

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
  // Every provider installed in the provider directory, by name.
  std::vector<std::string> installed() const;
  // The provider's `describe`: its capabilities, how it wants to be stopped,
  // the schema of its settings. Asked once per executable (and again when
  // the file changes), for the whole process.
  Result<ProviderResponse> describe(const std::string& name);
  // One verb. On timeout, or once `cancelled` turns true (a newer push), the
  // provider gets the stop signal it declared, its declared grace period,
  // then SIGKILL for its whole process group.
  ProviderCall call(const std::string& provider, const ProviderRequest& request, Millis timeout,
                    const std::atomic<bool>* cancelled = nullptr);

 private:
  ProcessRunner& runner_;
  std::filesystem::path dir_;
};

}  // namespace prevue
