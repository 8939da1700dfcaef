// The daemon's numbers for /metrics (Prometheus text format 0.0.4). Counters
// and histograms are atomics: the proxy's threads update them lock-free.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>

namespace prevue {

class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};  // seconds
  void observe(double seconds);
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

struct Metrics {
  Histogram time_to_preview;    // event received -> environment ready
  Histogram teardown_latency;   // merge/close/expiry -> routes gone
  std::atomic<std::uint64_t> lease_renewals{0};
  std::atomic<std::uint64_t> lease_expiries{0};
  std::atomic<std::uint64_t> gc_actions{0};
  std::atomic<std::uint64_t> events_received{0};
  std::atomic<std::uint64_t> events_duplicate{0};
  std::atomic<std::uint64_t> reports_sent{0};    // copied from the Reporter when rendered
  std::atomic<std::uint64_t> reports_failed{0};

  void count_proxy_status(int status);
  // `environments_by_state` and `inbox_depth` are read from the store by the caller.
  std::string render(const std::map<std::string, std::int64_t>& environments_by_state, std::int64_t inbox_depth) const;

 private:
  std::array<std::atomic<std::uint64_t>, 600> proxy_by_status_{};  // index: status code
};

}  // namespace prevue
