#include "provider/process_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace prevue {
namespace {

namespace fs = std::filesystem;

TEST(ProcessRunner, CapturesOutputExitCodeAndStdin) {
  SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = {"python3", "-c", "import sys; d=sys.stdin.read(); print(d.upper()); print('err', file=sys.stderr); sys.exit(3)"};
  spec.stdin_data = "hello";
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_EQ(out->stdout_data, "HELLO\n");
  EXPECT_EQ(out->stderr_data, "err\n");
  EXPECT_FALSE(out->timed_out);
  EXPECT_GT(runner.child_time().count(), 0);
}

TEST(ProcessRunner, ArgvIsNeverInterpretedByAShell) {
  fs::path dir = fs::temp_directory_path() / ("prevue-argv-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = {"printf", "%s", "$(touch pwned); `touch pwned2`; touch pwned3"};
  spec.cwd = dir;
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->stdout_data, spec.argv[2]);
  EXPECT_FALSE(fs::exists(dir / "pwned"));
  EXPECT_FALSE(fs::exists(dir / "pwned2"));
  EXPECT_FALSE(fs::exists(dir / "pwned3"));
  fs::remove_all(dir);
}

TEST(ProcessRunner, WorkingDirectoryAndEnvironment) {
  SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = {"python3", "-c", "import os; print(os.getcwd()); print(os.environ['PREVUE_TEST_VAR'])"};
  spec.cwd = "/tmp";
  spec.env = {{"PREVUE_TEST_VAR", "value with spaces; and $(subshell)"}};
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->stdout_data, "/tmp\nvalue with spaces; and $(subshell)\n");
}

TEST(ProcessRunner, TimeoutKillsTheWholeProcessGroup) {
  fs::path pid_file = fs::temp_directory_path() / ("prevue-grandchild-" + std::to_string(::getpid()));
  SubprocessRunner runner;
  ProcessSpec spec;
  // The child starts a grandchild in its group, records its pid, and hangs.
  spec.argv = {"python3", "-c",
               "import subprocess, sys, time\n"
               "p = subprocess.Popen(['sleep', '300'])\n"
               "open(sys.argv[1], 'w').write(str(p.pid))\n"
               "time.sleep(300)\n",
               pid_file.string()};
  spec.timeout = std::chrono::milliseconds(1500);
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->timed_out);
  EXPECT_EQ(out->signal, SIGKILL);
  std::ifstream in(pid_file);
  long grandchild = 0;
  in >> grandchild;
  ASSERT_GT(grandchild, 0);
  // Killed with the group; it may linger as a zombie until reaped by init.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string text;
    std::getline(stat, text);
    gone = text.empty() || text.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " survived the timeout";
  fs::remove(pid_file);
}

TEST(ProcessRunner, MissingCommandIsAnError) {
  SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = {"definitely-not-a-command-prevue"};
  auto out = runner.run(spec);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("command not found"), std::string::npos);
  spec.argv = {"true"};
  spec.cwd = "/nonexistent/dir";
  EXPECT_FALSE(runner.run(spec).ok());
}

TEST(ProcessRunner, OutputIsBounded) {
  SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = {"python3", "-c", "import sys; sys.stdout.write('x' * 100000)"};
  spec.max_output = 1000;
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_LT(out->stdout_data.size(), 1200u);
  EXPECT_NE(out->stdout_data.find("99000 more bytes of output dropped"), std::string::npos);
}

TEST(ProcessRunner, DescribeArgvQuotes) {
  EXPECT_EQ(describe_argv({"python3", "a b", "it's", "x=1"}), "python3 'a b' 'it'\\''s' x=1");
}

}  // namespace
}  // namespace prevue
