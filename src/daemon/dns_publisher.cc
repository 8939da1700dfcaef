#include "daemon/dns_publisher.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace prevue {

DnsPublisher::DnsPublisher(std::unique_ptr<DnsBackend> backend, Outcome outcome)
    : backend_(std::move(backend)), name_(backend_->name()), outcome_(std::move(outcome)) {
  thread_ = std::thread([this] { run(); });
}

DnsPublisher::~DnsPublisher() { stop(); }

void DnsPublisher::publish(HostMap hosts) {
  std::lock_guard lock(mutex_);
  wanted_ = std::move(hosts);
  wake_.notify_one();
}

void DnsPublisher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void DnsPublisher::run() {
  // Signals (SIGCHLD from environments' processes above all) go to other
  // threads: one landing here interrupts ldns's poll(), which ldns takes
  // for a timeout and answers with a resend.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  bool reconciled = false;
  std::optional<HostMap> failed;  // the set to retry
  std::chrono::milliseconds backoff(1'000);
  bool final_attempt_made = false;
  std::unique_lock lock(mutex_);
  while (true) {
    if (failed && !wanted_) {
      // A newer set replaces the retry; otherwise wait out the backoff.
      wake_.wait_for(lock, backoff, [this] { return stopping_ || wanted_.has_value(); });
      if (!wanted_ && !stopping_) wanted_ = std::move(failed);
      failed.reset();
      backoff = std::min(backoff * 2, std::chrono::milliseconds(60'000));
    } else {
      wake_.wait(lock, [this] { return stopping_ || wanted_.has_value(); });
    }
    // A graceful stop still sends the newest set once (a teardown just done
    // must not leave its name behind), but retries nothing.
    if (stopping_ && (!wanted_ || final_attempt_made)) return;
    if (stopping_) final_attempt_made = true;
    HostMap hosts = std::move(*wanted_);
    wanted_.reset();
    lock.unlock();
    std::vector<std::string> names;
    for (const auto& [host, env] : hosts) names.push_back(host);
    // The first run compares with what the server holds (records deleted or
    // left behind while prevue was down); later ones send the difference.
    bool reconcile = !reconciled;
    Status status = reconcile ? backend_->reconcile(names) : backend_->sync(names);
    if (status.ok()) {
      reconciled = true;
      backoff = std::chrono::milliseconds(1'000);
    } else {
      reconciled = false;  // after a failure, read the server again
    }
    outcome_(hosts, status, reconcile);
    lock.lock();
    if (!status.ok()) failed = std::move(hosts);
  }
}

}  // namespace prevue
