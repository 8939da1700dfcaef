// Who may open a protected preview: the proxy checks it before anything
// reaches the app. A visitor proves it with a cookie of the proxy's own
// (`__prevue_access`, host-only, HttpOnly), signed with the daemon's key
// and naming the preview, its expiry and the grant that earned it: a share
// link (by id; revoked links are no longer among the route's live ones) or
// the preview's password (by a fingerprint of it: a new password ends the
// cookies the old one gave). Tokens and cookies are HMAC-SHA256; every
// comparison is constant-time. No Beast here: the proxy and the API use it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prevue {

// login: whoever signs in to the dashboard (and whoever has a live share link).
enum class AccessMode { kPublic, kPassword, kLink, kLogin };
const char* to_string(AccessMode mode);
std::optional<AccessMode> parse_access_mode(std::string_view text);

// What a route asks of a visitor.
struct AccessPolicy {
  AccessMode mode = AccessMode::kPublic;
  std::string password_fingerprint;     // kPassword: AccessKey::password_fingerprint of the password
  std::vector<std::string> live_links;  // kLink, kLogin: ids of the links neither revoked nor expired
  bool operator==(const AccessPolicy&) const = default;
};

// What a valid token or cookie says.
struct AccessGrant {
  enum class Kind { kLink, kPassword, kLogin } kind = Kind::kLink;
  std::string id;  // the link's id, the password's fingerprint, or the signed-in session's
  std::int64_t expires_unix = 0;
};

inline constexpr std::string_view kAccessCookie = "__prevue_access";
inline constexpr std::string_view kLinkPath = "/__prevue/link";          // ?t=TOKEN: a share link
inline constexpr std::string_view kPasswordPath = "/__prevue/password";  // POST password=…
inline constexpr std::string_view kLoginPath = "/__prevue/login";        // ?t=TOKEN&next=PATH: back from the dashboard's sign-in
inline constexpr std::string_view kPreviewSignInPath = "/preview-access";  // the dashboard's: ?host=HOST&scheme=S&next=PATH

class AccessKey {
 public:
  explicit AccessKey(std::string secret) : secret_(std::move(secret)) {}
  // A share link's token for `slug`: "<link id>.<expiry>.<mac>".
  std::string link_token(std::string_view slug, std::string_view link_id, std::int64_t expires_unix) const;
  // The cookie a grant earns for `slug`.
  std::string cookie_value(std::string_view slug, const AccessGrant& grant) const;
  // Each checks the signature, the slug and the expiry.
  std::optional<AccessGrant> verify_link_token(std::string_view token, std::string_view slug, std::int64_t now_unix) const;
  std::optional<AccessGrant> verify_cookie(std::string_view value, std::string_view slug, std::int64_t now_unix) const;
  // What the dashboard hands a signed-in viewer for a `login` preview (a
  // minute to use it, at the preview's own host): "<session id>.<expiry>.<mac>".
  std::string login_token(std::string_view slug, std::string_view session_id, std::int64_t expires_unix) const;
  std::optional<AccessGrant> verify_login_token(std::string_view token, std::string_view slug, std::int64_t now_unix) const;
  std::string password_fingerprint(std::string_view password) const;
  // The dashboard's session cookie, "<session id>.<mac>", and the id it
  // names when the signature holds (the store says whether it still works).
  std::string session_cookie_value(std::string_view session_id) const;
  std::optional<std::string> verify_session_cookie(std::string_view value) const;
  // The token a session's changing requests carry (header or form field):
  // another site's page can make the browser send the cookie, not this.
  std::string csrf_token(std::string_view session_id) const;

 private:
  std::string mac(std::string_view purpose, std::string_view slug, std::string_view body) const;
  std::string secret_;
};

// Whether `grant` still opens a preview with `policy`.
bool grant_allows(const AccessPolicy& policy, const AccessGrant& grant);

// A Cookie header split into the value of cookie `name` (empty without one;
// the last one wins) and the header without it (empty when nothing is left).
std::pair<std::string, std::string> take_cookie(std::string_view cookie_header, std::string_view name);
// Prevue's cookie taken out of what the app receives.
inline std::pair<std::string, std::string> take_access_cookie(std::string_view cookie_header) {
  return take_cookie(cookie_header, kAccessCookie);
}

// Where to send a visitor back to: `next` when it is a path on this site,
// else "/" (never another site: "//evil.example", "https://…", "\\…").
std::string local_path_or_root(std::string_view next);

// `text` percent-encoded for a query string (RFC 3986's unreserved characters stay).
std::string url_encoded(std::string_view text);

// The value of `name` in an application/x-www-form-urlencoded body or a query string, decoded.
std::optional<std::string> form_value(std::string_view form, std::string_view name);

}  // namespace prevue
