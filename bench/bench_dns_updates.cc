// Driven by bench/bench_dns.py: adds then removes `count` records through
// prevue's RFC 2136 backend against the server the script started, either
// in batched UPDATE messages or one UPDATE per record, and prints
// "<mode> <count> <seconds to add> <seconds to remove>".
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dns/dns_backend.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: bench_dns_updates PORT KEY_FILE ZONE COUNT batched|single\n");
    return 2;
  }
  prevue::Rfc2136Settings s;
  s.port = static_cast<unsigned short>(std::atoi(argv[1]));
  if (auto read = prevue::read_tsig_key_file(argv[2], s); !read.ok()) {
    std::fprintf(stderr, "%s\n", read.error().message.c_str());
    return 1;
  }
  s.zone = s.domain = argv[3];
  s.target = "127.0.0.1";
  int count = std::atoi(argv[4]);
  bool batched = std::string(argv[5]) == "batched";
  std::string tag = batched ? "b" : "s";
  prevue::Rfc2136Backend dns(s);
  std::vector<std::string> hosts;
  for (int i = 0; i < count; ++i) hosts.push_back("pr-" + std::to_string(i) + "-" + tag + "." + s.zone);
  auto timed = [&](auto&& step) {
    auto start = std::chrono::steady_clock::now();
    prevue::Status status = step();
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.error().message.c_str());
      std::exit(1);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double add = timed([&]() -> prevue::Status {
    if (batched) return dns.add(hosts);
    for (const auto& h : hosts) PREVUE_TRY(dns.add({h}));
    return prevue::Status{};
  });
  double remove = timed([&]() -> prevue::Status {
    if (batched) return dns.remove(hosts);
    for (const auto& h : hosts) PREVUE_TRY(dns.remove({h}));
    return prevue::Status{};
  });
  std::printf("%s %d %.6f %.6f\n", argv[5], count, add, remove);
  return 0;
}
