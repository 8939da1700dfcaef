#include "provider/process_runner.h"

#include <gtest/gtest.h>
#include <atomic>
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
  // (sh, not python: it starts in a millisecond, well inside the timeout on a loaded machine.)
  spec.argv = {"sh", "-c", "sleep 300 & echo $! > \"$1\"; wait", "sh", pid_file.string()};
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

TEST(ProcessRunner, OutputIsBoundedKeepingItsStartAndItsEnd) {
  SubprocessRunner runner;
  ProcessSpec spec;
  spec.argv = {"python3", "-c",
               "import sys; sys.stdout.write('first line\\n' + 'x' * 100000 + '\\nerror: the last line says why\\n')"};
  spec.max_output = 1000;
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_LT(out->stdout_data.size(), 1200u);
  EXPECT_EQ(out->stdout_data.rfind("first line\n", 0), 0u) << out->stdout_data;
  EXPECT_NE(out->stdout_data.find("bytes of output dropped here"), std::string::npos);
  EXPECT_NE(out->stdout_data.find("error: the last line says why\n"), std::string::npos) << out->stdout_data;
}

// A process that ignores the stop signal is killed once its grace is over;
// one that honours it is not.
TEST(ProcessRunner, TimeoutSendsTheStopSignalThenKillsAfterTheGrace) {
  SubprocessRunner runner;
  ProcessSpec spec;
  // sh starts within the timeout even on a loaded machine (python may not,
  // and a SIGTERM before its handler is set ends it by SIGTERM). `wait` lets
  // the trap run at once.
  spec.argv = {"sh", "-c", "trap 'echo cleaned up; exit 0' TERM; echo ready; sleep 60 & wait"};
  spec.timeout = Millis(1000);
  spec.stop_signal = SIGTERM;
  spec.stop_grace = Millis(20'000);
  auto out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->timed_out);
  EXPECT_FALSE(out->killed_after_grace);
  EXPECT_NE(out->stdout_data.find("cleaned up"), std::string::npos) << out->stdout_data;

  spec.argv = {"sh", "-c", "trap '' TERM; sleep 60"};  // sleep inherits the ignored SIGTERM
  spec.stop_grace = Millis(500);
  out = runner.run(spec);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->timed_out);
  EXPECT_TRUE(out->killed_after_grace);
  EXPECT_EQ(out->signal, SIGKILL);
}

TEST(ProcessRunner, CancellationStopsTheGroupLikeATimeout) {
  SubprocessRunner runner;
  std::atomic<bool> cancelled{false};
  ProcessSpec spec;
  spec.argv = {"python3", "-c", "import sys, time\nprint('working', flush=True)\ntime.sleep(60)\n"};
  spec.stop_signal = SIGTERM;
  spec.stop_grace = Millis(5'000);
  spec.cancelled = &cancelled;
  std::thread canceller([&] { cancelled = true; });
  auto out = runner.run(spec);
  canceller.join();
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->cancelled);
  EXPECT_FALSE(out->timed_out);
  EXPECT_EQ(out->signal, SIGTERM);
}

TEST(ProcessRunner, DescribeArgvQuotes) {
  EXPECT_EQ(describe_argv({"python3", "a b", "it's", "x=1"}), "python3 'a b' 'it'\\''s' x=1");
}

}  // namespace
}  // namespace prevue
