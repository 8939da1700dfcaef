// A real git repository made by a test, driven with the `git` CLI (argv,
// no shell), in a temporary directory removed afterwards.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "provider/process_runner.h"

namespace prevue::testing {

class TestRepo {
 public:
  explicit TestRepo(const std::string& name) {
    root_ = std::filesystem::temp_directory_path() / ("prevue-test-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "work");
    git({"init", "-q", "-b", "main"});
  }
  ~TestRepo() { std::filesystem::remove_all(root_); }

  std::filesystem::path path() const { return root_ / "work"; }
  std::filesystem::path scratch() const { return root_; }

  std::string git(const std::vector<std::string>& args) {
    ProcessSpec spec;
    spec.argv = {"git", "-c", "user.name=prevue-test", "-c", "user.email=test@prevue.invalid", "-c", "commit.gpgsign=false"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.cwd = path();
    spec.timeout = std::chrono::seconds(60);
    auto out = runner_.run(spec);
    if (!out.ok() || out->exit_code != 0)
      throw std::runtime_error("git failed: " + describe_argv(spec.argv) + ": " + (out.ok() ? out->stderr_data : out.error().message));
    std::string text = out->stdout_data;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }

  void write(const std::string& rel, const std::string& content, bool executable = false) {
    auto p = path() / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    std::filesystem::permissions(p, executable ? std::filesystem::perms(0755) : std::filesystem::perms(0644));
  }

  std::string commit(const std::string& message) {
    git({"add", "-A"});
    git({"commit", "-q", "-m", message});
    return git({"rev-parse", "HEAD"});
  }

 private:
  std::filesystem::path root_;
  SubprocessRunner runner_;
};

}  // namespace prevue::testing
