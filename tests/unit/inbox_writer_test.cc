// The inbox's group commit on a real sqlite file: concurrent writers each
// get their own outcome, everything acknowledged is stored exactly once, and
// a failing piece of work rolls back the batch it shared (every writer in it
// is told), without stopping the writers after it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "engine/events.h"

namespace prevue {
namespace {

class InboxWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("prevue-inbox-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "prevue.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> open() {
    auto opened = Store::open(path_, clock_);
    EXPECT_TRUE(opened.ok()) << (opened.ok() ? "" : opened.error().message);
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  static InboxWriter::Work record(const std::string& delivery) {
    return [delivery](Store& st) -> Result<IngestResult> {
      EventRecord e;
      e.delivery_id = delivery;
      e.source = "test";
      e.action = "ignored";
      e.status = "ignored";
      auto inserted = st.insert_event(e);
      if (!inserted.ok()) return inserted.error();
      return IngestResult{!*inserted, delivery};
    };
  }

  FakeClock clock_;
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(InboxWriterTest, ConcurrentWritersEachGetTheirOwnOutcome) {
  InboxWriter inbox(open());
  constexpr int kThreads = 6, kEach = 150;
  std::atomic<int> wrong{0}, duplicates{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Every id is written twice by the same thread: the second is a duplicate.
        std::string id = "d-" + std::to_string(t) + "-" + std::to_string(i / 2);
        auto r = inbox.write(record(id));
        if (!r.ok() || r->note != id || r->duplicate != (i % 2 == 1)) wrong++;
        if (r.ok() && r->duplicate) duplicates++;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(duplicates.load(), kThreads * kEach / 2);
  auto reader = open();
  auto events = reader->recent_events(10'000);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), static_cast<size_t>(kThreads * kEach / 2));
}

TEST_F(InboxWriterTest, AFailingWorkRollsBackItsBatchAndTheNextWritersStillCommit) {
  InboxWriter inbox(open());
  std::atomic<int> failed{0}, stored{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        std::string id = "w-" + std::to_string(t) + "-" + std::to_string(i);
        bool poison = t == 0 && i % 10 == 0;
        InboxWriter::Work work = poison ? InboxWriter::Work([](Store&) -> Result<IngestResult> { throw std::runtime_error("boom"); })
                                        : record(id);
        auto r = inbox.write(work);
        if (r.ok())
          stored++;
        else
          failed++;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_GE(failed.load(), 10);  // the poisoned ones, and whoever shared their transaction
  EXPECT_EQ(failed.load() + stored.load(), 400);
  auto events = open()->recent_events(10'000);
  ASSERT_TRUE(events.ok());
  // Exactly what was acknowledged is stored: nothing of a rolled-back batch.
  EXPECT_EQ(events->size(), static_cast<size_t>(stored.load()));
}

}  // namespace
}  // namespace prevue
