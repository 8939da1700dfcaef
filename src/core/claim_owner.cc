#include "core/claim_owner.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace prevue {

namespace {

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

std::optional<unsigned long long> process_start_time(long pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;
  for (std::string field; fields >> field;) f.push_back(field);
  if (f.size() < 20 || f[0] == "Z" || f[0] == "X") return std::nullopt;  // f[0] is field 3, f[19] field 22
  unsigned long long start = 0;
  if (!parse_number(f[19], start)) return std::nullopt;
  return start;
}

std::string ClaimOwner::text() const {
  return role + "/" + host + "/" + boot_id + "/" + std::to_string(pid) + "/" + std::to_string(start_time);
}

std::optional<ClaimOwner> ClaimOwner::parse(std::string_view text) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t slash = text.find('/', start);
    parts.push_back(text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 5) return std::nullopt;
  ClaimOwner o{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]), 0, 0};
  if (o.role.empty() || o.host.empty() || o.boot_id.empty() || !parse_number(parts[3], o.pid) || !parse_number(parts[4], o.start_time))
    return std::nullopt;
  return o;
}

ClaimOwner ClaimOwner::self(std::string role) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "localhost");
  ClaimOwner o;
  o.role = std::move(role);
  o.host = host;
  for (char& c : o.host)
    if (c == '/') c = '-';
  o.boot_id = first_line("/proc/sys/kernel/random/boot_id");
  if (o.boot_id.empty()) o.boot_id = "unknown-boot";
  o.pid = static_cast<long>(::getpid());
  o.start_time = process_start_time(o.pid).value_or(0);
  return o;
}

bool provably_dead(const ClaimOwner& holder, const ClaimOwner& self) {
  if (holder.host != self.host || holder.boot_id != self.boot_id || holder.boot_id == "unknown-boot") return false;
  if (holder.pid == self.pid) return holder.start_time != self.start_time;
  auto start = process_start_time(holder.pid);
  return !start || *start != holder.start_time;
}

}  // namespace prevue
