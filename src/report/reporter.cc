#include "report/reporter.h"

#include <nlohmann/json.hpp>

#include "core/redact.h"

namespace prevue {

Reporter::Reporter(ReporterOptions options, LogFn log) : options_(std::move(options)), log_(std::move(log)) {
  if (options_.hosts.empty()) return;
  for (int i = 0; i < std::max(1, options_.threads); ++i) threads_.emplace_back([this] { work(); });
}

Reporter::~Reporter() { stop(); }

bool Reporter::reports_to(const std::string& host) const { return reporting_for(host) != nullptr; }

const HostReporting* Reporter::reporting_for(const std::string& host) const {
  auto it = options_.hosts.find(host == "bitbucket-datacenter" ? "bitbucket" : host);
  return it == options_.hosts.end() ? nullptr : &it->second;
}

void Reporter::post(std::int64_t repo_id, long pr, PreviewReport report) {
  if (threads_.empty()) return;
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  Key key{repo_id, pr};
  if (pending_.insert_or_assign(key, std::move(report)).second) order_.push_back(key);
  wake_.notify_one();
}

void Reporter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_.exchange(true) && threads_.empty()) return;
  }
  wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Reporter::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    // The oldest pull request no other thread is reporting on (one at a time
    // per pull request keeps the host's view in order).
    auto next = order_.end();
    for (auto it = order_.begin(); it != order_.end(); ++it)
      if (!busy_.count(*it)) {
        next = it;
        break;
      }
    if (stopping_) return;
    if (next == order_.end()) {
      wake_.wait(lock);
      continue;
    }
    Key key = *next;
    order_.erase(next);
    PreviewReport report = std::move(pending_.at(key));
    pending_.erase(key);
    busy_.insert(key);
    lock.unlock();
    deliver(key, report);
    lock.lock();
    busy_.erase(key);
    wake_.notify_all();
  }
}

void Reporter::deliver(const Key& key, const PreviewReport& report) {
  std::string pr_field = "pr=" + std::to_string(key.second);
  try {
    Store& store = options_.store();
    auto found = store.report_of(key.first, key.second);
    if (!found.ok()) throw std::runtime_error(found.error().message);
    if (!found->has_value()) return;  // not from a host prevue reports to
    ReportRecord record = **found;
    const HostReporting* reporting = reporting_for(record.host);
    if (!reporting) return;
    HostApiSettings effective = reporting->api;
    effective.host = record.host;  // bitbucket-datacenter shapes its requests differently
    ClientOptions client = reporting->client;
    client.cancelled = &stopping_;
    int requests = 0;
    HttpTransport transport = [&](const ClientRequest& request) {
      int tries = 0;
      auto r = http_call_with_retries(request, client, &tries);
      requests += tries;
      return r;
    };
    Status s = send_report(effective, record, report, transport);
    // Whatever the host did accept (a comment id, a deployment) is kept even on failure.
    Redactor redact({{"token", effective.token}});
    record.last_error = s.ok() ? "" : redact(s.error().message);
    Status saved = store.save_report(record);
    std::string fields = "host=" + record.host + " repo=" + nlohmann::json(record.host_repo).dump() + " " + pr_field +
                         " state=" + to_string(report.state) + " sha=" + report.sha.substr(0, 12) + " requests=" + std::to_string(requests);
    if (s.ok()) {
      sent++;
      log_("report.sent", fields);
    } else {
      failed++;
      log_("report.failed", fields + " error=" + nlohmann::json(record.last_error).dump());
    }
    if (!saved.ok() && saved.error().code != ErrorCode::kNotFound)
      log_("report.failed", pr_field + " error=" + nlohmann::json("cannot save: " + saved.error().message).dump());
  } catch (const std::exception& e) {
    failed++;
    log_("report.failed", pr_field + " error=" + nlohmann::json(std::string(e.what())).dump());
  }
}

}  // namespace prevue
