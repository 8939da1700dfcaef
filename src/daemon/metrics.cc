#include "daemon/metrics.h"

#include <cstdio>

namespace prevue {

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  std::uint64_t cumulative = 0;
  char line[160];
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), kBounds[i], static_cast<unsigned long long>(cumulative));
    out += line;
  }
  cumulative += buckets_[kBounds.size()].load(std::memory_order_relaxed);
  std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name.c_str(),
                static_cast<unsigned long long>(cumulative), name.c_str(), sum_micros_.load() / 1e6, name.c_str(),
                static_cast<unsigned long long>(count_.load()));
  out += line;
  return out;
}

void Metrics::count_proxy_status(int status) {
  if (status >= 100 && status < 600) proxy_by_status_[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::render(const std::map<std::string, std::int64_t>& environments_by_state, std::int64_t inbox_depth) const {
  std::string out;
  auto counter = [&](const char* name, const char* help, std::uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(value) + "\n";
  };
  out += "# HELP prevue_environments Environments by state.\n# TYPE prevue_environments gauge\n";
  for (const auto& [state, n] : environments_by_state) out += "prevue_environments{state=\"" + state + "\"} " + std::to_string(n) + "\n";
  out += "# HELP prevue_inbox_depth Events received and not yet processed.\n# TYPE prevue_inbox_depth gauge\nprevue_inbox_depth " +
         std::to_string(inbox_depth) + "\n";
  out += time_to_preview.render("prevue_time_to_preview_seconds", "From the event that asked for a preview to the environment being ready.");
  out += teardown_latency.render("prevue_teardown_latency_seconds", "From merge, close or lease expiry to the environment's routes being gone.");
  counter("prevue_lease_renewals_total", "Leases renewed by pushes, proxy hits and extends.", lease_renewals.load());
  counter("prevue_lease_expiries_total", "Leases that ran out.", lease_expiries.load());
  counter("prevue_gc_actions_total", "Teardowns, sleeps and orphan sweeps done by the expiry pass and gc.", gc_actions.load());
  counter("prevue_events_received_total", "Events written to the inbox.", events_received.load());
  counter("prevue_events_duplicate_total", "Redelivered events ignored.", events_duplicate.load());
  counter("prevue_reports_sent_total", "Statuses and comments the git hosts accepted.", reports_sent.load());
  counter("prevue_reports_failed_total", "Reports to the git hosts that failed after their retries.", reports_failed.load());
  out += "# HELP prevue_proxy_requests_total Requests answered by the proxy, by status.\n# TYPE prevue_proxy_requests_total counter\n";
  for (size_t status = 100; status < proxy_by_status_.size(); ++status) {
    std::uint64_t n = proxy_by_status_[status].load(std::memory_order_relaxed);
    if (n) out += "prevue_proxy_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
  }
  return out;
}

}  // namespace prevue
