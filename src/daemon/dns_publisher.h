// Publishes the live host names through the DNS backend on a thread of its
// own, so a slow or unreachable DNS server never holds up the daemon. The
// newest set wins (an older one not yet sent is dropped); the first run
// reconciles against what the server holds; a failure is retried with
// backoff (1 s doubling to 60 s) until the set is published. stop() sends a
// set not yet attempted once more before it returns.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "dns/dns_backend.h"

namespace prevue {

class DnsPublisher {
 public:
  using HostMap = std::map<std::string, std::int64_t>;  // host -> environment id
  // Called on the publisher's thread after each attempt: the set tried, and the outcome.
  using Outcome = std::function<void(const HostMap& hosts, const Status& status, bool reconciled)>;

  DnsPublisher(std::unique_ptr<DnsBackend> backend, Outcome outcome);
  ~DnsPublisher();  // stop()
  DnsPublisher(const DnsPublisher&) = delete;
  DnsPublisher& operator=(const DnsPublisher&) = delete;

  const std::string& backend_name() const { return name_; }
  void publish(HostMap hosts);
  void stop();

 private:
  void run();

  std::unique_ptr<DnsBackend> backend_;
  std::string name_;
  Outcome outcome_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<HostMap> wanted_;  // not yet attempted
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace prevue
