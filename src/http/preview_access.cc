#include "http/preview_access.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "webhook/signature.h"

namespace prevue {

namespace {

bool is_hex_id(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<std::int64_t> parse_unix(std::string_view s) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value <= 0) return std::nullopt;
  return value;
}

// "a.b.c…" into exactly `n` parts, or nothing.
std::optional<std::vector<std::string_view>> split_dots(std::string_view text, size_t n) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
    if (parts.size() > n) return std::nullopt;
  }
  if (parts.size() != n) return std::nullopt;
  return parts;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

const char* to_string(AccessMode mode) {
  switch (mode) {
    case AccessMode::kPublic: return "public";
    case AccessMode::kPassword: return "password";
    case AccessMode::kLink: return "link";
    case AccessMode::kLogin: return "login";
  }
  return "public";
}

std::optional<AccessMode> parse_access_mode(std::string_view text) {
  if (text == "public") return AccessMode::kPublic;
  if (text == "password") return AccessMode::kPassword;
  if (text == "link") return AccessMode::kLink;
  if (text == "login") return AccessMode::kLogin;
  return std::nullopt;
}

std::string AccessKey::mac(std::string_view purpose, std::string_view slug, std::string_view body) const {
  std::string message;
  message.append("prevue-access v1\n").append(purpose).append("\n").append(slug).append("\n").append(body);
  return hmac_sha256_hex(secret_, message);
}

std::string AccessKey::link_token(std::string_view slug, std::string_view link_id, std::int64_t expires_unix) const {
  std::string body = std::string(link_id) + "." + std::to_string(expires_unix);
  return body + "." + mac("link", slug, body);
}

namespace {

const char* kind_letter(AccessGrant::Kind kind) {
  switch (kind) {
    case AccessGrant::Kind::kLink: return "l";
    case AccessGrant::Kind::kPassword: return "p";
    case AccessGrant::Kind::kLogin: return "g";
  }
  return "l";
}

std::optional<AccessGrant::Kind> kind_of_letter(std::string_view letter) {
  if (letter == "l") return AccessGrant::Kind::kLink;
  if (letter == "p") return AccessGrant::Kind::kPassword;
  if (letter == "g") return AccessGrant::Kind::kLogin;
  return std::nullopt;
}

}  // namespace

std::string AccessKey::cookie_value(std::string_view slug, const AccessGrant& grant) const {
  std::string body = std::string(kind_letter(grant.kind)) + "." + grant.id + "." + std::to_string(grant.expires_unix);
  return body + "." + mac("cookie", slug, body);
}

std::string AccessKey::login_token(std::string_view slug, std::string_view session_id, std::int64_t expires_unix) const {
  std::string body = std::string(session_id) + "." + std::to_string(expires_unix);
  return body + "." + mac("login", slug, body);
}

std::optional<AccessGrant> AccessKey::verify_login_token(std::string_view token, std::string_view slug, std::int64_t now_unix) const {
  auto parts = split_dots(token, 3);
  if (!parts) return std::nullopt;
  auto expires = parse_unix((*parts)[1]);
  if (!is_hex_id((*parts)[0]) || !expires) return std::nullopt;
  std::string_view body = token.substr(0, token.size() - (*parts)[2].size() - 1);
  if (!constant_time_equal((*parts)[2], mac("login", slug, body)) || *expires <= now_unix) return std::nullopt;
  return AccessGrant{AccessGrant::Kind::kLogin, std::string((*parts)[0]), *expires};
}

std::optional<AccessGrant> AccessKey::verify_link_token(std::string_view token, std::string_view slug, std::int64_t now_unix) const {
  auto parts = split_dots(token, 3);
  if (!parts) return std::nullopt;
  auto expires = parse_unix((*parts)[1]);
  if (!is_hex_id((*parts)[0]) || !expires) return std::nullopt;
  std::string_view body = token.substr(0, token.size() - (*parts)[2].size() - 1);
  if (!constant_time_equal((*parts)[2], mac("link", slug, body)) || *expires <= now_unix) return std::nullopt;
  return AccessGrant{AccessGrant::Kind::kLink, std::string((*parts)[0]), *expires};
}

std::optional<AccessGrant> AccessKey::verify_cookie(std::string_view value, std::string_view slug, std::int64_t now_unix) const {
  auto parts = split_dots(value, 4);
  if (!parts) return std::nullopt;
  auto expires = parse_unix((*parts)[2]);
  auto kind = kind_of_letter((*parts)[0]);
  if (!kind || !is_hex_id((*parts)[1]) || !expires) return std::nullopt;
  std::string_view body = value.substr(0, value.size() - (*parts)[3].size() - 1);
  if (!constant_time_equal((*parts)[3], mac("cookie", slug, body)) || *expires <= now_unix) return std::nullopt;
  return AccessGrant{*kind, std::string((*parts)[1]), *expires};
}

std::string AccessKey::password_fingerprint(std::string_view password) const { return mac("password", "", password).substr(0, 32); }

std::string AccessKey::session_cookie_value(std::string_view session_id) const {
  return std::string(session_id) + "." + mac("session", "", session_id);
}

std::optional<std::string> AccessKey::verify_session_cookie(std::string_view value) const {
  auto parts = split_dots(value, 2);
  if (!parts || !is_hex_id((*parts)[0]) || !constant_time_equal((*parts)[1], mac("session", "", (*parts)[0]))) return std::nullopt;
  return std::string((*parts)[0]);
}

std::string AccessKey::csrf_token(std::string_view session_id) const { return mac("csrf", "", session_id).substr(0, 32); }

bool grant_allows(const AccessPolicy& policy, const AccessGrant& grant) {
  switch (policy.mode) {
    case AccessMode::kPublic: return true;
    case AccessMode::kPassword:
      return grant.kind == AccessGrant::Kind::kPassword && !policy.password_fingerprint.empty() &&
             constant_time_equal(grant.id, policy.password_fingerprint);
    case AccessMode::kLink:
    case AccessMode::kLogin:
      if (grant.kind == AccessGrant::Kind::kLogin) return policy.mode == AccessMode::kLogin;
      return grant.kind == AccessGrant::Kind::kLink &&
             std::find(policy.live_links.begin(), policy.live_links.end(), grant.id) != policy.live_links.end();
  }
  return false;
}

std::pair<std::string, std::string> take_cookie(std::string_view header, std::string_view name) {
  std::string ours, rest;
  size_t start = 0;
  while (start <= header.size()) {
    size_t end = header.find(';', start);
    std::string_view pair = header.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    size_t first = pair.find_first_not_of(' ');
    pair = first == std::string_view::npos ? std::string_view() : pair.substr(first);
    while (!pair.empty() && pair.back() == ' ') pair.remove_suffix(1);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
        ours = std::string(pair.substr(eq + 1));  // the last one wins: a stale one before it is dropped as well
      } else {
        if (!rest.empty()) rest += "; ";
        rest += pair;
      }
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return {ours, rest};
}

std::string local_path_or_root(std::string_view next) {
  if (next.empty() || next[0] != '/' || next.starts_with("//") || next.find('\\') != std::string_view::npos ||
      std::any_of(next.begin(), next.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
    return "/";
  return std::string(next);
}

std::string url_encoded(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> form_value(std::string_view form, std::string_view name) {
  size_t start = 0;
  while (start <= form.size()) {
    size_t end = form.find('&', start);
    std::string_view pair = form.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) == name) return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace prevue
