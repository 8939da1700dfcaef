#include <algorithm>
#include <sstream>

#include "core/files.h"
#include "dns/dns_backend.h"

namespace prevue {

namespace {
constexpr const char* kBegin = "# BEGIN prevue (managed: do not edit between these lines)";
constexpr const char* kEnd = "# END prevue";
}  // namespace

Status HostsFileBackend::sync(const std::vector<std::string>& hosts) {
  std::string before, after;
  if (auto existing = read_file(file_); existing.ok()) {
    std::istringstream lines(*existing);
    bool inside = false, seen_block = false;
    for (std::string line; std::getline(lines, line);) {
      if (line == kBegin) {
        inside = seen_block = true;
        continue;
      }
      if (line == kEnd) {
        inside = false;
        continue;
      }
      if (inside) continue;
      (seen_block ? after : before) += line + "\n";
    }
  }
  std::vector<std::string> sorted = hosts;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string block = std::string(kBegin) + "\n";
  for (const auto& host : sorted) block += address_ + " " + host + "\n";
  block += std::string(kEnd) + "\n";
  // Rewritten whole at every start (reconcile), so a crash costs nothing: no fsync.
  return write_file_atomic(file_, before + block + after, Durability::kAtomicOnly);
}

}  // namespace prevue
