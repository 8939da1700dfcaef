// Environment slugs: valid DNS labels, stable and unique per pull request.
#pragma once

#include <string>
#include <string_view>

namespace prevue {

inline constexpr size_t kMaxDnsLabel = 63;

// "pr-<number>-<words from the branch>-<6 hex of hash(repo, number)>", at most
// 63 characters of [a-z0-9-]. The hash keeps slugs of the same PR number in
// different repositories apart; the words only help a human read the slug.
std::string make_slug(std::string_view repo_key, long pr_number, std::string_view branch);

bool is_valid_dns_label(std::string_view label);

// Lower-case [a-z0-9-] words of arbitrary text, runs of anything else folded to one '-'.
std::string dns_words(std::string_view text, size_t max_length);

// A short stable identifier for a repository URL or path ("owner-name" style).
std::string repo_short_name(std::string_view repo_key);

// ASCII lower case: DNS names and HTTP field names compare without case.
std::string ascii_lower(std::string text);

// `name` is `domain` or a name under it ("a.b.example.com" is within
// "example.com"; "badexample.com" is not). Both without a trailing dot.
bool within_domain(std::string_view name, std::string_view domain);

// FNV-1a 64: stable across builds and machines (std::hash is not).
unsigned long long stable_hash(std::string_view text);
// stable_hash as 16 lowercase hex digits: revisions, spec hashes, slug suffixes.
std::string stable_hash_hex(std::string_view text);
// Bytes as lowercase hex (an HMAC digest).
std::string to_hex(std::string_view bytes);
// Non-empty and only hex digits (either case): a commit id or its prefix.
bool is_hex(std::string_view text);

}  // namespace prevue
