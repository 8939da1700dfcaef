// The DNS publisher against a real hosts file: the newest set wins, and a
// graceful stop sends a set that arrived while an attempt was in progress
// (a teardown finished just before the daemon stops must not leave its name).
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "daemon/dns_publisher.h"

namespace prevue {
namespace {

// The real hosts-file backend, whose first write waits until the test lets it go.
class HeldHostsBackend final : public DnsBackend {
 public:
  struct Gate {
    std::mutex mutex;
    std::condition_variable changed;
    bool entered = false;
    bool released = false;
  };
  HeldHostsBackend(std::filesystem::path file, Gate& gate) : file_(std::move(file), "127.0.0.1"), gate_(gate) {}
  std::string name() const override { return "held-hosts"; }
  Status sync(const std::vector<std::string>& hosts) override {
    {
      std::unique_lock lock(gate_.mutex);
      if (!gate_.entered) {
        gate_.entered = true;
        gate_.changed.notify_all();
        gate_.changed.wait(lock, [this] { return gate_.released; });
      }
    }
    return file_.sync(hosts);
  }

 private:
  HostsFileBackend file_;
  Gate& gate_;
};

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class DnsPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("prevue-dnspub-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(DnsPublisherTest, StopSendsTheSetThatArrivedDuringAnAttempt) {
  auto hosts = dir_ / "hosts";
  HeldHostsBackend::Gate gate;
  std::mutex outcomes_mutex;
  std::vector<size_t> outcomes;  // the size of each set attempted
  DnsPublisher publisher(std::make_unique<HeldHostsBackend>(hosts, gate),
                         [&](const DnsPublisher::HostMap& set, const Status& status, bool) {
                           EXPECT_TRUE(status.ok());
                           std::lock_guard lock(outcomes_mutex);
                           outcomes.push_back(set.size());
                         });
  publisher.publish({{"pr-1-a.prevue.localhost", 1}, {"pr-2-b.prevue.localhost", 2}});
  {
    std::unique_lock lock(gate.mutex);
    gate.changed.wait(lock, [&] { return gate.entered; });
  }
  // While the first set is being written, pr-2 is torn down and the daemon stops.
  publisher.publish({{"pr-1-a.prevue.localhost", 1}});
  std::thread stopper([&] { publisher.stop(); });
  {
    std::lock_guard lock(gate.mutex);
    gate.released = true;
  }
  gate.changed.notify_all();
  stopper.join();

  std::string written = read_file(hosts);
  EXPECT_NE(written.find("pr-1-a.prevue.localhost"), std::string::npos) << written;
  EXPECT_EQ(written.find("pr-2-b.prevue.localhost"), std::string::npos) << written;
  EXPECT_EQ(outcomes, (std::vector<size_t>{2, 1}));
}

TEST_F(DnsPublisherTest, TheNewestSetWins) {
  auto hosts = dir_ / "hosts";
  HeldHostsBackend::Gate gate;
  std::mutex outcomes_mutex;
  std::condition_variable attempted;
  std::vector<size_t> outcomes;
  DnsPublisher publisher(std::make_unique<HeldHostsBackend>(hosts, gate),
                         [&](const DnsPublisher::HostMap& set, const Status&, bool) {
                           std::lock_guard lock(outcomes_mutex);
                           outcomes.push_back(set.size());
                           attempted.notify_all();
                         });
  publisher.publish({{"pr-1-a.prevue.localhost", 1}});
  {
    std::unique_lock lock(gate.mutex);
    gate.changed.wait(lock, [&] { return gate.entered; });
  }
  // Two sets arrive during the first attempt: only the newer one is sent.
  publisher.publish({{"pr-1-a.prevue.localhost", 1}, {"pr-2-b.prevue.localhost", 2}});
  publisher.publish({{"pr-1-a.prevue.localhost", 1}, {"pr-2-b.prevue.localhost", 2}, {"pr-3-c.prevue.localhost", 3}});
  {
    std::lock_guard lock(gate.mutex);
    gate.released = true;
  }
  gate.changed.notify_all();
  {
    std::unique_lock lock(outcomes_mutex);
    attempted.wait(lock, [&] { return outcomes.size() == 2; });
  }
  publisher.stop();
  EXPECT_EQ(outcomes, (std::vector<size_t>{1, 3}));
  EXPECT_NE(read_file(hosts).find("pr-3-c.prevue.localhost"), std::string::npos);
}

}  // namespace
}  // namespace prevue
