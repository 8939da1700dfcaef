// The `command` DNS backend: prevue's request as JSON on stdin of a
// configured executable (argv, never a shell), for DNS services prevue does
// not speak (a cloud's API). docs/dns.md describes the request.
#include <nlohmann/json.hpp>

#include "dns/dns_backend.h"
#include "provider/process_runner.h"

namespace prevue {

Status CommandDnsBackend::run(const std::string& verb, const std::vector<std::string>& hosts) {
  nlohmann::json request{{"verb", verb}, {"hosts", hosts}, {"address", address_}, {"domain", domain_}};
  ProcessSpec spec;
  spec.argv = argv_;
  spec.stdin_data = request.dump() + "\n";
  spec.timeout = timeout_;
  spec.max_output = 64 * 1024;
  SubprocessRunner runner;
  auto outcome = runner.run(spec);
  if (!outcome.ok()) return make_error(ErrorCode::kIo, "DNS command " + describe_argv(argv_) + ": " + outcome.error().message);
  if (outcome->timed_out)
    return make_error(ErrorCode::kTimeout, "DNS command " + describe_argv(argv_) + " did not finish within " + format_duration(timeout_));
  if (outcome->exit_code != 0) {
    std::string why = outcome->stderr_data;
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
    if (why.size() > 500) why = why.substr(why.size() - 500);
    return make_error(ErrorCode::kIo, "DNS command " + describe_argv(argv_) + " exited " + std::to_string(outcome->exit_code) +
                                          (why.empty() ? "" : ": " + why));
  }
  return {};
}

}  // namespace prevue
