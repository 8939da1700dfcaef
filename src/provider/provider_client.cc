#include "provider/provider_client.h"

#include <unistd.h>

namespace prevue {

Result<std::filesystem::path> ProviderClient::executable(const std::string& name) const {
  std::filesystem::path path = dir_ / name;
  if (::access(path.c_str(), X_OK) != 0)
    return make_error(ErrorCode::kNotFound, "no provider '" + name + "' (looked for an executable at " + path.string() + ")");
  return path;
}

ProviderCall ProviderClient::call(const std::string& provider, const ProviderRequest& request, Millis timeout) {
  ProviderCall call{make_error(ErrorCode::kInternal, "not run"), {}, Millis(0)};
  auto exe = executable(provider);
  if (!exe.ok()) {
    call.response = exe.error();
    return call;
  }
  ProcessSpec spec;
  spec.argv = {exe->string(), to_string(request.verb)};
  spec.stdin_data = encode_request(request);
  spec.timeout = timeout;
  auto outcome = runner_.run(spec);
  if (!outcome.ok()) {
    call.response = outcome.error();
    return call;
  }
  call.log = outcome->stderr_data;
  call.elapsed = outcome->elapsed;
  if (outcome->timed_out) {
    call.response = make_error(ErrorCode::kTimeout, "provider '" + provider + "' " + to_string(request.verb) +
                                                        " timed out after " + format_duration(timeout) + " and was killed");
    return call;
  }
  if (outcome->signal != 0) {
    call.response = make_error(ErrorCode::kProvider, "provider '" + provider + "' died of signal " + std::to_string(outcome->signal));
    return call;
  }
  call.response = decode_response(outcome->stdout_data, outcome->exit_code);
  return call;
}

}  // namespace prevue
