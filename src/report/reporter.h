// Reports previews to the git hosts off the daemon's threads. Per pull
// request the latest report wins: a report queued behind a slow or dead host
// is replaced by the newer one, never piled up. A host that fails or hangs
// costs a log line and a retry later, never the environment.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "report/host_api.h"
#include "report/http_client.h"
#include "store/store.h"

namespace prevue {

// How prevue reaches one host's API.
struct HostReporting {
  HostApiSettings api;
  ClientOptions client;  // timeouts, retries, CA file
};

struct ReporterOptions {
  std::map<std::string, HostReporting> hosts;  // by host name; "bitbucket" also serves Bitbucket Data Center
  std::function<Store&()> store;               // the calling thread's own connection to the state database
  int threads = 2;
};

class Reporter {
 public:
  using LogFn = std::function<void(const std::string& event, const std::string& fields)>;
  Reporter(ReporterOptions options, LogFn log);
  ~Reporter();  // stop()
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  bool reports_to(const std::string& host) const;
  // Queues the report for the pull request, replacing one not yet sent.
  void post(std::int64_t repo_id, long pr, PreviewReport report);
  // Stops taking work, cuts retries short and joins the threads.
  void stop();

  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> failed{0};

 private:
  using Key = std::pair<std::int64_t, long>;
  void work();
  void deliver(const Key& key, const PreviewReport& report);
  const HostReporting* reporting_for(const std::string& host) const;

  ReporterOptions options_;
  LogFn log_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<Key, PreviewReport> pending_;
  std::deque<Key> order_;
  std::set<Key> busy_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace prevue
