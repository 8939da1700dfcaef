#include "core/slug.h"

#include <cstdio>

namespace prevue {

unsigned long long stable_hash(std::string_view text) {
  unsigned long long hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  // FNV's high bits barely change between inputs that differ in the last
  // byte; the murmur3 finaliser spreads every input bit over the output.
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  hash ^= hash >> 33;
  return hash;
}

std::string ascii_lower(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

bool within_domain(std::string_view name, std::string_view domain) {
  if (name.size() == domain.size()) return name == domain;
  return name.size() > domain.size() + 1 && name.substr(name.size() - domain.size()) == domain &&
         name[name.size() - domain.size() - 1] == '.';
}

std::string dns_words(std::string_view text, size_t max_length) {
  std::string out;
  for (char raw : text) {
    char c = raw;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (keep) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
    if (out.size() >= max_length) break;
  }
  if (out.size() > max_length) out.resize(max_length);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string stable_hash_hex(std::string_view text) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", stable_hash(text));
  return hex;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

bool is_hex(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

std::string make_slug(std::string_view repo_key, long pr_number, std::string_view branch) {
  std::string hash_hex = stable_hash_hex(std::string(repo_key) + "#" + std::to_string(pr_number));
  std::string prefix = "pr-" + std::to_string(pr_number < 0 ? 0 : pr_number);
  std::string suffix = hash_hex.substr(0, 6);
  // Common ref prefixes carry no meaning for a reader.
  for (std::string_view strip : {"refs/heads/", "refs/"}) {
    if (branch.substr(0, strip.size()) == strip) {
      branch.remove_prefix(strip.size());
      break;
    }
  }
  size_t budget = kMaxDnsLabel - prefix.size() - suffix.size() - 2;
  std::string words = dns_words(branch, budget > 24 ? 24 : budget);
  if (words.empty()) return prefix + "-" + suffix;
  return prefix + "-" + words + "-" + suffix;
}

bool is_valid_dns_label(std::string_view label) {
  if (label.empty() || label.size() > kMaxDnsLabel) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string repo_short_name(std::string_view repo_key) {
  while (!repo_key.empty() && repo_key.back() == '/') repo_key.remove_suffix(1);
  if (repo_key.size() >= 4 && repo_key.substr(repo_key.size() - 4) == ".git") repo_key.remove_suffix(4);
  auto slash = repo_key.find_last_of("/:");
  std::string_view last = slash == std::string_view::npos ? repo_key : repo_key.substr(slash + 1);
  std::string name = dns_words(last, 40);
  return name.empty() ? "repo" : name;
}

}  // namespace prevue
