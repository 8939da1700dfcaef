#include "provider/provider_client.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

namespace prevue {

namespace {

constexpr Millis kDescribeTimeout{30'000};
// Per stream: a step log stays readable (and the store small) however much a
// provider writes; a response is never near this.
constexpr size_t kMaxProviderOutput = 4 * 1024 * 1024;

struct DescribeCache {
  std::mutex mutex;
  // executable path -> (modification time, size, response)
  std::map<std::string, std::tuple<std::int64_t, std::int64_t, ProviderResponse>> entries;
};
DescribeCache& describe_cache() {
  static DescribeCache cache;
  return cache;
}

}  // namespace

Result<std::filesystem::path> ProviderClient::executable(const std::string& name) const {
  std::filesystem::path path = dir_ / name;
  if (::access(path.c_str(), X_OK) != 0)
    return make_error(ErrorCode::kNotFound, "no provider '" + name + "' (looked for an executable at " + path.string() + ")");
  return path;
}

std::vector<std::string> ProviderClient::installed() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.front() == '.' || !entry.is_regular_file(ec)) continue;
    if (::access(entry.path().c_str(), X_OK) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<ProviderResponse> ProviderClient::describe(const std::string& name) {
  auto exe = executable(name);
  if (!exe.ok()) return exe.error();
  struct stat st {};
  if (::stat(exe->c_str(), &st) != 0) return make_error(ErrorCode::kNotFound, "cannot read provider " + exe->string());
  std::int64_t mtime = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  DescribeCache& cache = describe_cache();
  {
    std::lock_guard lock(cache.mutex);
    if (auto it = cache.entries.find(exe->string());
        it != cache.entries.end() && std::get<0>(it->second) == mtime && std::get<1>(it->second) == st.st_size)
      return std::get<2>(it->second);
  }
  ProviderRequest request;
  request.verb = ProviderVerb::kDescribe;
  ProcessSpec spec;
  spec.argv = {exe->string(), to_string(request.verb)};
  spec.stdin_data = encode_request(request);
  spec.timeout = kDescribeTimeout;
  auto outcome = runner_.run(spec);
  if (!outcome.ok()) return outcome.error();
  if (outcome->timed_out)
    return make_error(ErrorCode::kTimeout, "provider '" + name + "' describe did not answer within " + format_duration(kDescribeTimeout));
  auto response = decode_response(outcome->stdout_data, outcome->exit_code);
  if (!response.ok()) return make_error(response.error().code, "provider '" + name + "' describe: " + response.error().message);
  if (!response->ok) return make_error(ErrorCode::kProvider, "provider '" + name + "' describe failed: " + response->error_message);
  std::lock_guard lock(cache.mutex);
  cache.entries[exe->string()] = {mtime, st.st_size, *response};
  return std::move(response).value();
}

ProviderCall ProviderClient::call(const std::string& provider, const ProviderRequest& request, Millis timeout,
                                  const std::atomic<bool>* cancelled) {
  ProviderCall call{make_error(ErrorCode::kInternal, "not run"), {}, Millis(0)};
  auto described = describe(provider);
  if (!described.ok()) {
    call.response = described.error();
    return call;
  }
  ProcessSpec spec;
  spec.argv = {(dir_ / provider).string(), to_string(request.verb)};
  spec.stdin_data = encode_request(request);
  spec.timeout = timeout;
  spec.max_output = kMaxProviderOutput;
  spec.stop_signal = described->stop_signal;
  spec.stop_grace = Millis(described->stop_grace_ms);
  spec.cancelled = cancelled;
  auto outcome = runner_.run(spec);
  if (!outcome.ok()) {
    call.response = outcome.error();
    return call;
  }
  call.log = outcome->stderr_data;
  call.elapsed = outcome->elapsed;
  std::string how = std::string(stop_signal_name(described->stop_signal)) +
                    (outcome->killed_after_grace ? ", then SIGKILL after its " + format_duration(spec.stop_grace) + " grace"
                                                 : ", and it stopped");
  if (outcome->timed_out) {
    call.response = make_error(ErrorCode::kTimeout, "provider '" + provider + "' " + to_string(request.verb) + " timed out after " +
                                                        format_duration(timeout) + " and was stopped (" + how + ")");
    return call;
  }
  if (outcome->cancelled) {
    call.response = make_error(ErrorCode::kCancelled, "provider '" + provider + "' " + to_string(request.verb) +
                                                          " was stopped: a newer commit superseded this run (" + how + ")");
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
