// RFC 2136 dynamic updates with TSIG (RFC 8945), through ldns: messages,
// signing and zone transfers come from the library, not hand-encoded.
#include <algorithm>
#include <chrono>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "core/files.h"
#include "core/slug.h"
#include "dns/dns_backend.h"

// Last: ldns's headers redefine `bool` for C, which breaks the C++ headers after them.
#include <ldns/ldns.h>

namespace prevue {

namespace {

std::string without_dot(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return ascii_lower(s);
}

std::string rcode_name(int rcode) {
  static const char* names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                                "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};
  return rcode >= 0 && rcode < 11 ? names[rcode] : "RCODE" + std::to_string(rcode);
}

// ldns objects, freed by their own functions.
template <class T, void (*Free)(T*)>
struct LdnsFree {
  void operator()(T* p) const { Free(p); }
};
using PacketPtr = std::unique_ptr<ldns_pkt, LdnsFree<ldns_pkt, ldns_pkt_free>>;
using ListPtr = std::unique_ptr<ldns_rr_list, LdnsFree<ldns_rr_list, ldns_rr_list_deep_free>>;
using ResolverPtr = std::unique_ptr<ldns_resolver, LdnsFree<ldns_resolver, ldns_resolver_deep_free>>;
using RdfPtr = std::unique_ptr<ldns_rdf, LdnsFree<ldns_rdf, ldns_rdf_deep_free>>;

}  // namespace

Status read_tsig_key_file(const std::filesystem::path& file, Rfc2136Settings& s) {
  auto text = read_file(file);
  if (!text.ok()) return make_error(ErrorCode::kNotFound, "cannot read the TSIG key file " + file.string());
  std::smatch m;
  const std::string& t = *text;
  static const std::regex compact(R"re(^\s*(hmac-[A-Za-z0-9-]+):([^:\s]+):([A-Za-z0-9+/=]+)\s*$)re");
  static const std::regex bind_name(R"re(key\s+"?([^"\s{]+)"?\s*\{)re");
  static const std::regex knot_name(R"re(-\s*id:\s*"?([^"\s]+)"?)re");
  static const std::regex algorithm(R"re(algorithm[:\s]+"?(hmac-[A-Za-z0-9-]+)"?)re");
  static const std::regex secret(R"re(secret[:\s]+"?([A-Za-z0-9+/=]+)"?)re");
  if (std::regex_match(t, m, compact)) {
    s.key_algorithm = ascii_lower(m[1]);
    s.key_name = m[2];
    s.key_secret = m[3];
  } else {
    if (std::regex_search(t, m, bind_name) || std::regex_search(t, m, knot_name)) s.key_name = m[1];
    if (std::regex_search(t, m, algorithm)) s.key_algorithm = ascii_lower(m[1]);
    if (std::regex_search(t, m, secret)) s.key_secret = m[1];
  }
  if (s.key_name.empty() || s.key_secret.empty())
    return make_error(ErrorCode::kParse, file.string() + ": no TSIG key found (BIND's tsig-keygen or Knot's keymgr -t format, or algorithm:name:secret)");
  if (s.key_algorithm != "hmac-sha256" && s.key_algorithm != "hmac-sha512" && s.key_algorithm != "hmac-sha384" &&
      s.key_algorithm != "hmac-sha224" && s.key_algorithm != "hmac-sha1")
    return make_error(ErrorCode::kInvalidArgument, file.string() + ": TSIG algorithm " + s.key_algorithm + " is not supported");
  return {};
}

struct Rfc2136Backend::Impl {
  Rfc2136Settings s;
  std::optional<std::set<std::string>> published;  // what the server has of prevue's, as last read or written

  bool owned(const std::string& name) const {
    std::string d = without_dot(s.domain);
    return name != d && within_domain(name, d);
  }
  std::string value() const { return s.record_type == "CNAME" ? without_dot(s.target) + "." : s.target; }
  ldns_rr_type type() const {
    return s.record_type == "AAAA" ? LDNS_RR_TYPE_AAAA : s.record_type == "CNAME" ? LDNS_RR_TYPE_CNAME : LDNS_RR_TYPE_A;
  }

  Result<ResolverPtr> resolver() const {
    ResolverPtr r(ldns_resolver_new());
    if (!r.get()) return make_error(ErrorCode::kInternal, "ldns: cannot make a resolver");
    RdfPtr address(ldns_rdf_new_frm_str(s.server.find(':') != std::string::npos ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, s.server.c_str()));
    if (!address.get()) return make_error(ErrorCode::kInvalidArgument, "DNS server '" + s.server + "' is not an IP address");
    ldns_resolver_push_nameserver(r.get(), address.get());
    ldns_resolver_set_port(r.get(), s.port);
    long ms = s.timeout.count();
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    ldns_resolver_set_timeout(r.get(), tv);
    ldns_resolver_set_retry(r.get(), 1);
    ldns_resolver_set_usevc(r.get(), true);  // TCP: batched updates and transfers are larger than a datagram
    ldns_resolver_set_recursive(r.get(), false);
    ldns_resolver_set_random(r.get(), false);
    ldns_resolver_set_tsig_keyname(r.get(), (s.key_name + ".").c_str());
    ldns_resolver_set_tsig_algorithm(r.get(), (s.key_algorithm + ".").c_str());
    ldns_resolver_set_tsig_keydata(r.get(), s.key_secret.c_str());
    return r;
  }

  Result<ldns_rr*> make_rr(const std::string& host, std::uint32_t ttl, ldns_rr_class cls) const {
    std::string text = without_dot(host) + ". " + std::to_string(ttl) + " IN " + s.record_type + " " + value();
    ldns_rr* rr = nullptr;
    if (ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr) != LDNS_STATUS_OK || !rr)
      return make_error(ErrorCode::kInvalidArgument, "not a DNS record: " + text);
    ldns_rr_set_class(rr, cls);
    return rr;
  }

  std::string key_advice() const {
    return "the server refused the TSIG signature of key '" + s.key_name + "' (" + s.key_algorithm +
           "): check the key's name, algorithm and secret, and that the zone's ACL lets it update";
  }

  // One UPDATE message; the answer's RCODE (NOERROR, NXRRSET, ...) or an error.
  Result<int> send(const std::vector<std::string>& prereq_hosts, const std::vector<std::string>& add_hosts,
                   const std::vector<std::string>& delete_hosts) const {
    ListPtr prereqs(ldns_rr_list_new()), updates(ldns_rr_list_new());
    for (const auto& h : prereq_hosts) {
      auto rr = make_rr(h, 0, LDNS_RR_CLASS_IN);  // RFC 2136 2.4.2: RRset exists (value dependent)
      if (!rr.ok()) return rr.error();
      ldns_rr_list_push_rr(prereqs.get(), *rr);
    }
    for (const auto& h : add_hosts) {
      auto rr = make_rr(h, static_cast<std::uint32_t>(s.ttl), LDNS_RR_CLASS_IN);  // 2.5.1: add to an RRset
      if (!rr.ok()) return rr.error();
      ldns_rr_list_push_rr(updates.get(), *rr);
    }
    for (const auto& h : delete_hosts) {
      auto rr = make_rr(h, 0, LDNS_RR_CLASS_NONE);  // 2.5.4: delete an RR from an RRset
      if (!rr.ok()) return rr.error();
      ldns_rr_list_push_rr(updates.get(), *rr);
    }
    auto res = resolver();
    if (!res.ok()) return res.error();
    Millis delay = s.backoff;
    std::string last_error;
    for (int attempt = 1; attempt <= std::max(1, s.attempts); ++attempt) {
      ldns_rdf* zone = ldns_dname_new_frm_str((without_dot(s.zone) + ".").c_str());
      if (!zone) return make_error(ErrorCode::kInvalidArgument, "not a zone name: " + s.zone);
      PacketPtr update(ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, prereqs.get(), updates.get(), nullptr));
      if (!update.get()) return make_error(ErrorCode::kInternal, "ldns: cannot build the UPDATE");
      ldns_pkt_set_random_id(update.get());
      if (ldns_update_pkt_tsig_add(update.get(), res->get()) != LDNS_STATUS_OK)
        return make_error(ErrorCode::kInvalidArgument, "cannot sign with TSIG key '" + s.key_name + "': is the secret base64?");
      ldns_pkt* answer_raw = nullptr;
      ldns_status status = ldns_resolver_send_pkt(&answer_raw, res->get(), update.get());
      PacketPtr answer(answer_raw);
      if (status == LDNS_STATUS_CRYPTO_TSIG_BOGUS || status == LDNS_STATUS_CRYPTO_TSIG_ERR)
        return make_error(ErrorCode::kInvalidArgument, key_advice());
      if (status == LDNS_STATUS_OK && answer.get()) {
        int rcode = ldns_pkt_get_rcode(answer.get());
        if (rcode == LDNS_RCODE_NOTAUTH) return make_error(ErrorCode::kInvalidArgument, key_advice());
        if (rcode == LDNS_RCODE_REFUSED)
          return make_error(ErrorCode::kInvalidArgument, "the server refused the update of zone " + s.zone + " (REFUSED): is it authoritative, and does its ACL allow key '" + s.key_name + "'?");
        if (rcode == LDNS_RCODE_NOTZONE)
          return make_error(ErrorCode::kInvalidArgument, "a name is outside zone " + s.zone + " (NOTZONE)");
        if (rcode != LDNS_RCODE_SERVFAIL) return rcode;
        last_error = "SERVFAIL";
      } else {
        last_error = ldns_get_errorstr_by_id(status);
      }
      if (attempt < s.attempts) {
        std::this_thread::sleep_for(delay);
        delay *= 2;
      }
    }
    return make_error(ErrorCode::kIo, "DNS update to " + s.server + ":" + std::to_string(s.port) + " failed: " + last_error);
  }

  // `hosts` in messages of at most s.batch records.
  std::vector<std::vector<std::string>> batches(const std::vector<std::string>& hosts) const {
    std::vector<std::vector<std::string>> out;
    for (size_t i = 0; i < hosts.size(); i += s.batch)
      out.emplace_back(hosts.begin() + static_cast<long>(i), hosts.begin() + static_cast<long>(std::min(hosts.size(), i + s.batch)));
    return out;
  }

  Status add(const std::vector<std::string>& hosts) const {
    for (const auto& chunk : batches(hosts)) {
      auto rcode = send({}, chunk, {});
      if (!rcode.ok()) return rcode.error();
      if (*rcode != LDNS_RCODE_NOERROR) return make_error(ErrorCode::kIo, "DNS update (add) answered " + rcode_name(*rcode));
    }
    return {};
  }

  // Deletions, each only while the record still has prevue's value; those
  // that no longer do are left alone and listed in `skipped`.
  Status remove(const std::vector<std::string>& hosts, std::vector<std::string>& skipped) const {
    for (const auto& chunk : batches(hosts)) {
      auto rcode = send(chunk, {}, chunk);
      if (!rcode.ok()) return rcode.error();
      if (*rcode == LDNS_RCODE_NOERROR) continue;
      if (*rcode != LDNS_RCODE_NXRRSET) return make_error(ErrorCode::kIo, "DNS update (delete) answered " + rcode_name(*rcode));
      // One prerequisite failed and the message was refused whole: one at a time.
      for (const auto& h : chunk) {
        auto one = send({h}, {}, {h});
        if (!one.ok()) return one.error();
        if (*one == LDNS_RCODE_NXRRSET) skipped.push_back(h);
        else if (*one != LDNS_RCODE_NOERROR) return make_error(ErrorCode::kIo, "DNS update (delete " + h + ") answered " + rcode_name(*one));
      }
    }
    return {};
  }

  // prevue's records the server holds now: by zone transfer, or by asking
  // for each name prevue wants or published before.
  Result<std::set<std::string>> read_current(const std::set<std::string>& candidates) const {
    auto res = resolver();
    if (!res.ok()) return res.error();
    std::set<std::string> ours;
    const std::string our_value = ascii_lower(value());
    if (s.zone_transfer) {
      RdfPtr zone(ldns_dname_new_frm_str((without_dot(s.zone) + ".").c_str()));
      ldns_status st = ldns_axfr_start(res->get(), zone.get(), LDNS_RR_CLASS_IN);
      if (st != LDNS_STATUS_OK)
        return make_error(ErrorCode::kIo, "zone transfer of " + s.zone + " from " + s.server + ": " + ldns_get_errorstr_by_id(st));
      while (ldns_rr* rr = ldns_axfr_next(res->get())) {
        if (ldns_rr_get_type(rr) == type() && ldns_rr_rd_count(rr) == 1) {
          char* owner = ldns_rdf2str(ldns_rr_owner(rr));
          char* data = ldns_rdf2str(ldns_rr_rdf(rr, 0));
          std::string name = without_dot(owner ? owner : "");
          std::string val = data ? data : "";
          if (owned(name) && ascii_lower(val) == our_value) ours.insert(name);
          free(owner);
          free(data);
        }
        ldns_rr_free(rr);
      }
      if (!ldns_axfr_complete(res->get())) {
        ldns_pkt* last = ldns_axfr_last_pkt(res->get());
        int rcode = last ? ldns_pkt_get_rcode(last) : -1;
        ldns_axfr_abort(res->get());
        if (rcode == LDNS_RCODE_NOTAUTH) return make_error(ErrorCode::kInvalidArgument, key_advice());
        return make_error(ErrorCode::kIo, "zone transfer of " + s.zone + " from " + s.server + " did not complete (" +
                                              (rcode < 0 ? std::string("no answer") : rcode_name(rcode)) +
                                              "): allow transfers for the key, or set dns.zone_transfer to false");
      }
      return ours;
    }
    for (const auto& name : candidates) {
      RdfPtr dname(ldns_dname_new_frm_str((name + ".").c_str()));
      if (!dname.get()) continue;
      PacketPtr answer(ldns_resolver_query(res->get(), dname.get(), type(), LDNS_RR_CLASS_IN, 0));
      if (!answer.get()) return make_error(ErrorCode::kIo, "no answer from " + s.server + " for " + name);
      ldns_rr_list* records = ldns_pkt_answer(answer.get());
      for (size_t i = 0; records && i < ldns_rr_list_rr_count(records); ++i) {
        ldns_rr* rr = ldns_rr_list_rr(records, i);
        if (ldns_rr_get_type(rr) != type() || ldns_rr_rd_count(rr) != 1) continue;
        char* data = ldns_rdf2str(ldns_rr_rdf(rr, 0));
        if (data && ascii_lower(data) == our_value) ours.insert(name);
        free(data);
      }
    }
    return ours;
  }

  std::set<std::string> state_file_names() const {
    std::set<std::string> names;
    if (s.state_file.empty()) return names;
    if (auto text = read_file(s.state_file); text.ok()) {
      std::istringstream lines(*text);
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) names.insert(line);
    }
    return names;
  }

  Status remember(const std::set<std::string>& names) {
    published = names;
    if (s.state_file.empty()) return {};
    std::string text;
    for (const auto& n : names) text += n + "\n";
    // With zone transfers the server is the record and this file only a
    // hint; without them it is how stale names are found, so it is synced.
    return write_file_atomic(s.state_file, text, s.zone_transfer ? Durability::kAtomicOnly : Durability::kSynced);
  }

  // Makes the server's set of prevue's records `desired`, given what it has now.
  Status apply(const std::set<std::string>& desired, const std::set<std::string>& current) {
    std::vector<std::string> adds, removes, skipped;
    std::set_difference(desired.begin(), desired.end(), current.begin(), current.end(), std::back_inserter(adds));
    std::set_difference(current.begin(), current.end(), desired.begin(), desired.end(), std::back_inserter(removes));
    std::set<std::string> now = current;
    Status added = add(adds);
    if (added.ok()) now.insert(adds.begin(), adds.end());
    Status removed = added.ok() ? remove(removes, skipped) : Status{};
    if (added.ok() && removed.ok())
      for (const auto& r : removes) now.erase(r);  // a skipped one points elsewhere: no longer prevue's either
    if (!added.ok() || !removed.ok()) {
      published.reset();  // unknown: the next sync reads the server again
      return added.ok() ? removed : added;
    }
    return remember(now);
  }

  std::set<std::string> wanted(const std::vector<std::string>& hosts) const {
    std::set<std::string> out;
    for (const auto& h : hosts)
      if (owned(without_dot(h))) out.insert(without_dot(h));
    return out;
  }
};

Rfc2136Backend::Rfc2136Backend(Rfc2136Settings settings) : impl_(std::make_unique<Impl>()) {
  impl_->s = std::move(settings);
  if (impl_->s.zone.empty()) impl_->s.zone = impl_->s.domain;
}
Rfc2136Backend::~Rfc2136Backend() = default;

Status Rfc2136Backend::reconcile(const std::vector<std::string>& hosts) {
  std::set<std::string> desired = impl_->wanted(hosts);
  std::set<std::string> candidates = impl_->state_file_names();
  candidates.insert(desired.begin(), desired.end());
  auto current = impl_->read_current(candidates);
  if (!current.ok()) {
    impl_->published.reset();
    return current.error();
  }
  return impl_->apply(desired, *current);
}

Status Rfc2136Backend::sync(const std::vector<std::string>& hosts) {
  if (!impl_->published) return reconcile(hosts);  // first run, or after a failure: read the server
  return impl_->apply(impl_->wanted(hosts), *impl_->published);
}

Status Rfc2136Backend::add(const std::vector<std::string>& hosts) { return impl_->add(hosts); }

Status Rfc2136Backend::remove(const std::vector<std::string>& hosts) {
  std::vector<std::string> skipped;
  return impl_->remove(hosts, skipped);
}

}  // namespace prevue
