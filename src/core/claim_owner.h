// Who holds a claim on an environment, written so that another process on
// the same machine can prove the holder dead (a `kill -9`ed daemon) and take
// its claim at once instead of waiting out the claim's time to live.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace prevue {

struct ClaimOwner {
  std::string role;  // "daemon", "gc"
  std::string host;
  std::string boot_id;  // /proc/sys/kernel/random/boot_id: changes with every boot
  long pid = 0;
  unsigned long long start_time = 0;  // /proc/<pid>/stat field 22: tells a reused pid apart

  // "role/host/boot_id/pid/start_time", as stored in the claims table.
  std::string text() const;
  static std::optional<ClaimOwner> parse(std::string_view text);
  // This process.
  static ClaimOwner self(std::string role);
};

// True only when `holder` ran on this machine (same host name, same boot)
// and its process is gone, a zombie, or its pid now names another process.
// Anything else (another host, an owner written by an older prevue, a
// process that still runs) is not provably dead: its claim is respected.
bool provably_dead(const ClaimOwner& holder, const ClaimOwner& self);

// Start time (field 22 of /proc/<pid>/stat) of a live, non-zombie process; nullopt otherwise.
std::optional<unsigned long long> process_start_time(long pid);

}  // namespace prevue
