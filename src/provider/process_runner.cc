#include "provider/process_runner.h"

// Boost.Process v2 in 1.81 with std::filesystem misses these two includes.
#include <boost/optional.hpp>
#include <boost/type_traits.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/writable_pipe.hpp>
#include <boost/asio/write.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <functional>
#include <memory>

extern char** environ;

namespace prevue {

namespace asio = boost::asio;
namespace bp = boost::process::v2;

namespace {

// Makes the child the leader of a new process group, so a timeout can kill
// everything it started.
struct NewProcessGroup {
  bp::error_code on_exec_setup(bp::posix::default_launcher&, const bp::filesystem::path&, const char* const*) {
    if (::setpgid(0, 0) != 0) return bp::error_code(errno, bp::system_category());
    return {};
  }
};

// Collects one output stream, keeping at most `limit` bytes: the first
// quarter and the last three quarters (an error is usually at the end), with
// a note of what was dropped between them.
class Collector {
 public:
  Collector(asio::readable_pipe& pipe, std::string& sink, size_t limit, std::function<void()> on_done)
      : pipe_(pipe), sink_(sink), head_limit_(limit / 4), tail_limit_(limit - limit / 4), on_done_(std::move(on_done)) {}
  void start() {
    pipe_.async_read_some(asio::buffer(buffer_), [this](bp::error_code ec, size_t n) {
      if (n > 0) keep(std::string_view(buffer_.data(), n));
      if (ec) {
        done_ = true;
        if (tail_.size() > tail_limit_) trim_tail();
        if (dropped_) sink_ += "\n[prevue: " + std::to_string(dropped_) + " bytes of output dropped here]\n";
        sink_ += tail_;
        on_done_();
        return;
      }
      start();
    });
  }
  bool done() const { return done_; }

 private:
  void keep(std::string_view data) {
    if (sink_.size() < head_limit_) {
      size_t room = head_limit_ - sink_.size();
      sink_.append(data.substr(0, room));
      data.remove_prefix(std::min(room, data.size()));
    }
    tail_.append(data);
    if (tail_.size() > 2 * tail_limit_) trim_tail();  // amortised: the front is cut in large pieces
  }
  void trim_tail() {
    size_t extra = tail_.size() - tail_limit_;
    tail_.erase(0, extra);
    dropped_ += extra;
  }

  asio::readable_pipe& pipe_;
  std::string& sink_;
  size_t head_limit_, tail_limit_;
  std::string tail_;
  size_t dropped_ = 0;
  std::function<void()> on_done_;
  bool done_ = false;
  std::array<char, 16384> buffer_{};
};


}  // namespace

std::string find_in_path(const std::string& name, const std::map<std::string, std::string>& env, bool inherit) {
  if (name.find('/') != std::string::npos) return name;
  std::string path;
  if (auto it = env.find("PATH"); it != env.end()) path = it->second;
  else if (const char* p = inherit ? ::getenv("PATH") : nullptr) path = p;
  else path = "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

std::string describe_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@%+") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

Result<ProcessOutcome> SubprocessRunner::run(const ProcessSpec& spec) {
  if (spec.argv.empty()) return make_error(ErrorCode::kInvalidArgument, "empty command");
  std::string executable = find_in_path(spec.argv[0], spec.env, spec.inherit_env);
  if (executable.empty()) return make_error(ErrorCode::kNotFound, "command not found: " + spec.argv[0]);
  if (!spec.cwd.empty() && !std::filesystem::is_directory(spec.cwd))
    return make_error(ErrorCode::kNotFound, "working directory " + spec.cwd.string() + " does not exist");

  std::map<std::string, std::string> merged;
  if (spec.inherit_env) {
    for (char** e = environ; e && *e; ++e) {
      std::string_view entry(*e);
      auto eq = entry.find('=');
      if (eq != std::string_view::npos) merged[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
    }
  }
  for (const auto& [k, v] : spec.env) merged[k] = v;
  std::vector<std::string> env_lines;
  env_lines.reserve(merged.size());
  for (const auto& [k, v] : merged) env_lines.push_back(k + "=" + v);

  auto started = std::chrono::steady_clock::now();
  asio::io_context ctx;
  asio::readable_pipe out_pipe(ctx), err_pipe(ctx);
  asio::writable_pipe in_pipe(ctx);
  ProcessOutcome outcome;
  std::vector<std::string> args(spec.argv.begin() + 1, spec.argv.end());

  std::unique_ptr<bp::process> child;
  try {
    if (spec.cwd.empty()) {
      child = std::make_unique<bp::process>(ctx, executable, args, bp::process_stdio{in_pipe, out_pipe, err_pipe},
                                            bp::process_environment(env_lines), NewProcessGroup{});
    } else {
      child = std::make_unique<bp::process>(ctx, executable, args, bp::process_stdio{in_pipe, out_pipe, err_pipe},
                                            bp::process_environment(env_lines), bp::process_start_dir(spec.cwd.string()),
                                            NewProcessGroup{});
    }
  } catch (const bp::system_error& e) {
    return make_error(ErrorCode::kNotFound, "cannot start " + describe_argv(spec.argv) + ": " + e.code().message());
  }
  const pid_t group = child->id();

  bool exited = false;
  asio::steady_timer deadline(ctx, spec.timeout);
  asio::steady_timer grace(ctx);        // between the stop signal and SIGKILL
  asio::steady_timer cancel_poll(ctx);  // watches spec.cancelled
  asio::steady_timer drain(ctx);
  std::function<bool()> drained_check;
  auto maybe_finish = [&] {
    if (exited && drained_check && drained_check()) drain.cancel();
  };
  Collector out_collector(out_pipe, outcome.stdout_data, spec.max_output, [&] { maybe_finish(); });
  Collector err_collector(err_pipe, outcome.stderr_data, spec.max_output, [&] { maybe_finish(); });
  drained_check = [&] { return out_collector.done() && err_collector.done(); };
  out_collector.start();
  err_collector.start();

  if (spec.stdin_data.empty()) {
    in_pipe.close();
  } else {
    asio::async_write(in_pipe, asio::buffer(spec.stdin_data), [&](bp::error_code, size_t) {
      bp::error_code ignored;
      in_pipe.close(ignored);
    });
  }

  child->handle().async_wait([&](bp::error_code ec, int status) {
    exited = true;
    deadline.cancel();
    grace.cancel();
    cancel_poll.cancel();
    if (!ec) {
      if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
      else if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
    }
    if (drained_check()) return;
    // Something the child left behind may hold its pipes open; don't wait forever.
    drain.expires_after(std::chrono::seconds(2));
    drain.async_wait([&](bp::error_code wait_ec) {
      if (wait_ec) return;
      bp::error_code ignored;
      out_pipe.close(ignored);
      err_pipe.close(ignored);
    });
  });
  bool stopping = false;
  auto stop = [&] {
    if (stopping || exited) return;
    stopping = true;
    cancel_poll.cancel();
    ::kill(-group, spec.stop_signal);
    if (spec.stop_signal == SIGKILL) return;
    grace.expires_after(spec.stop_grace);
    grace.async_wait([&](bp::error_code ec) {
      if (ec || exited) return;
      outcome.killed_after_grace = true;
      ::kill(-group, SIGKILL);
    });
  };
  deadline.async_wait([&](bp::error_code ec) {
    if (ec || exited) return;
    outcome.timed_out = true;
    stop();
  });
  std::function<void()> poll_cancelled = [&] {
    cancel_poll.expires_after(std::chrono::milliseconds(100));
    cancel_poll.async_wait([&](bp::error_code ec) {
      if (ec || exited || stopping) return;
      if (spec.cancelled->load()) {
        outcome.cancelled = true;
        stop();
        return;
      }
      poll_cancelled();
    });
  };
  if (spec.cancelled) poll_cancelled();
  ctx.run();
  // Stragglers in the group (a backgrounded grandchild) go with the leader.
  ::kill(-group, SIGKILL);
  outcome.elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  add_child_time(std::chrono::steady_clock::now() - started);
  child->detach();
  return outcome;
}

}  // namespace prevue
