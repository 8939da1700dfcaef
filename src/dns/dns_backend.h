// Publishes the preview host names. The `hosts` backend (the default) keeps
// a hosts-format file for dnsmasq or CoreDNS's hosts plugin; others (RFC
// 2136, a command) implement the same interface.
#pragma once

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/result.h"

namespace prevue {

class DnsBackend {
 public:
  virtual ~DnsBackend() = default;
  virtual std::string name() const = 0;
  // Makes the published set exactly `hosts` (all live routes): idempotent,
  // so a missed update is repaired by the next one.
  virtual Status sync(const std::vector<std::string>& hosts) = 0;
  // Reads what the DNS serves now (not what prevue believes it published)
  // and fixes the difference: adds what is missing, removes prevue's stale
  // records. Run at daemon start and by `prevue gc`.
  virtual Status reconcile(const std::vector<std::string>& hosts) { return sync(hosts); }
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

// RFC 2136 dynamic updates signed with TSIG, to any authoritative server
// that accepts them (Knot, BIND, PowerDNS). Each host gets one record: an A
// or AAAA record for `target`, or a CNAME to it. Additions go in batched
// UPDATE messages; each deletion carries a prerequisite that the record
// still has prevue's value, so a record someone re-pointed is never removed.
struct Rfc2136Settings {
  std::string server = "127.0.0.1";
  unsigned short port = 53;
  std::string zone;              // the zone updated (the preview domain or a parent of it)
  std::string domain;            // the preview domain: only names under it are prevue's
  std::string key_name;          // TSIG
  std::string key_algorithm = "hmac-sha256";
  std::string key_secret;        // base64
  std::string record_type = "A";  // A | AAAA | CNAME
  std::string target;            // the address (A/AAAA) or the canonical name (CNAME)
  int ttl = 60;
  Millis timeout = Millis(2'000);
  int attempts = 3;
  Millis backoff = Millis(200);
  bool zone_transfer = true;     // reconcile by AXFR; false: one query per name prevue knows of
  std::filesystem::path state_file;  // the names prevue published (for reconciling without AXFR)
  size_t batch = 500;            // records per UPDATE message
};

// Reads a TSIG key file: BIND's `key "name" { algorithm ...; secret "..."; };`
// (tsig-keygen), Knot's YAML (keymgr -t), or `algorithm:name:secret`.
Status read_tsig_key_file(const std::filesystem::path& file, Rfc2136Settings& settings);

class Rfc2136Backend final : public DnsBackend {
 public:
  explicit Rfc2136Backend(Rfc2136Settings settings);
  ~Rfc2136Backend() override;
  std::string name() const override { return "rfc2136"; }
  Status sync(const std::vector<std::string>& hosts) override;
  Status reconcile(const std::vector<std::string>& hosts) override;

  // For the benchmark and tests: one UPDATE with `records` additions (or deletions).
  Status add(const std::vector<std::string>& hosts);
  Status remove(const std::vector<std::string>& hosts);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs a configured executable with a JSON request on stdin (the style of
// providers, docs/dns.md): {"verb": "sync" | "reconcile", "hosts": [...],
// "address": ..., "domain": ...}; exit 0 is success, stderr the error.
class CommandDnsBackend final : public DnsBackend {
 public:
  CommandDnsBackend(std::vector<std::string> argv, std::string address, std::string domain, Millis timeout)
      : argv_(std::move(argv)), address_(std::move(address)), domain_(std::move(domain)), timeout_(timeout) {}
  std::string name() const override { return "command"; }
  Status sync(const std::vector<std::string>& hosts) override { return run("sync", hosts); }
  Status reconcile(const std::vector<std::string>& hosts) override { return run("reconcile", hosts); }

 private:
  Status run(const std::string& verb, const std::vector<std::string>& hosts);
  std::vector<std::string> argv_;
  std::string address_, domain_;
  Millis timeout_;
};

}  // namespace prevue
