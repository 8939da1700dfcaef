#include "command.h"

#include <openssl/evp.h>

#include <csignal>
#include <iostream>

#include "core/files.h"
#include "core/slug.h"
#include "provider/process_runner.h"

namespace prevue::providers {

std::string Command::why() const {
  std::string text = err.empty() ? out : err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "exit code " + std::to_string(exit_code) : tail_lines(text, 20);
}

std::string Command::first_line() const {
  auto lines = nonempty_lines(out);
  return lines.empty() ? "" : lines.front();
}

namespace {
struct StopRule {
  const std::atomic<bool>* requested = nullptr;
  int signal = SIGTERM;
  Millis grace{10'000};
};
StopRule& stop_rule() {
  static StopRule rule;
  return rule;
}
}  // namespace

void stop_commands_when(const std::atomic<bool>* requested, int signal, Millis grace) { stop_rule() = StopRule{requested, signal, grace}; }

Command run(const std::vector<std::string>& argv, Millis timeout, const std::filesystem::path& cwd,
            std::map<std::string, std::string> env, std::string stdin_data) {
  static SubprocessRunner runner;
  std::cerr << "$ " << describe_argv(argv) << "\n";
  ProcessSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  spec.env = std::move(env);
  spec.stdin_data = std::move(stdin_data);
  spec.timeout = timeout;
  spec.stop_signal = stop_rule().signal;
  spec.stop_grace = stop_rule().grace;
  spec.cancelled = stop_rule().requested;
  Command c;
  auto outcome = runner.run(spec);
  if (!outcome.ok()) {
    c.err = outcome.error().message;
    return c;
  }
  if (outcome->elapsed > Millis(1'000)) std::cerr << "  (" << outcome->elapsed.count() << " ms)\n";  // where the time goes
  c.exit_code = outcome->timed_out || outcome->cancelled ? -1 : outcome->exit_code;
  c.stopped = outcome->cancelled;
  c.out = std::move(outcome->stdout_data);
  c.err = std::move(outcome->stderr_data);
  if (outcome->timed_out) c.err += "\n(timed out after " + std::to_string(timeout.count() / 1000) + " s)";
  if (outcome->cancelled) c.err += "\n(stopped: the provider was asked to stop)";
  return c;
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), size));
}

}  // namespace prevue::providers
