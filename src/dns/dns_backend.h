// Publishes the preview host names. The `hosts` backend (the default) keeps
// a hosts-format file for dnsmasq or CoreDNS's hosts plugin; others (RFC
// 2136, a command) implement the same interface.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace prevue {

class DnsBackend {
 public:
  virtual ~DnsBackend() = default;
  virtual std::string name() const = 0;
  // Makes the published set exactly `hosts` (all live routes): idempotent,
  // so a missed update is repaired by the next one.
  virtual Status sync(const std::vector<std::string>& hosts) = 0;
};

// One line per host, "<address> <host>", between prevue's marker lines;
// lines outside the markers (the file may be shared) are kept as they are.
// Written atomically (temporary file and rename).
class HostsFileBackend final : public DnsBackend {
 public:
  HostsFileBackend(std::filesystem::path file, std::string address) : file_(std::move(file)), address_(std::move(address)) {}
  std::string name() const override { return "hosts"; }
  Status sync(const std::vector<std::string>& hosts) override;

 private:
  std::filesystem::path file_;
  std::string address_;
};

class NoDnsBackend final : public DnsBackend {
 public:
  std::string name() const override { return "none"; }
  Status sync(const std::vector<std::string>&) override { return {}; }
};

}  // namespace prevue
