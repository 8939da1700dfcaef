// Who a request to the API listener comes from: a script with the bearer
// token, or a browser signed in to the dashboard (a session cookie, signed
// with the daemon's key and backed by a store row that sign-out revokes).
// A session's changing requests must also come from the dashboard's own
// origin and carry the session's CSRF token: another site's page can make
// a browser send the cookie, but it cannot read the token.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/duration.h"
#include "core/result.h"
#include "http/http.h"
#include "http/preview_access.h"
#include "store/store.h"

namespace prevue {

enum class Role { kRead, kWrite, kAdmin };
const char* to_string(Role role);
std::optional<Role> parse_role(std::string_view text);

struct Viewer {
  std::string who;         // "api token", or a session's user
  Role role = Role::kRead;
  std::string session_id;  // empty for the bearer token
  bool by_session() const { return !session_id.empty(); }
};

inline constexpr std::string_view kSessionCookie = "prevue_session";
inline constexpr std::string_view kCsrfHeader = "x-prevue-csrf";  // lower case, as HttpRequest keeps names

class Sessions {
 public:
  Sessions(Store& store, const Clock& clock, std::string token, std::shared_ptr<const AccessKey> key, Millis ttl)
      : store_(store), clock_(clock), token_(std::move(token)), key_(std::move(key)), ttl_(ttl) {}

  // Whether anyone can sign in (an API token is configured).
  bool sign_in_possible() const { return !token_.empty(); }
  // The bearer token or a live session; nothing when neither. When nobody
  // can sign in (no token), anyone reads: an anonymous reader.
  std::optional<Viewer> viewer(const HttpRequest& request) const;
  // A changing request of a session: from this origin, with its CSRF token
  // (header, or `form_token` from a form's field). Always true for the token.
  bool may_change(const HttpRequest& request, const Viewer& viewer, const std::string& form_token = "") const;
  // Whether a request comes from a page of this origin (or says nothing of
  // where it comes from, as scripts do): Origin, else Sec-Fetch-Site.
  static bool same_origin(const HttpRequest& request);

  // Sign-in with the API token (compared in constant time): the new
  // session's Set-Cookie value. Refused with a wrong or missing token.
  Result<std::string> sign_in_with_token(const std::string& token, bool secure);
  // Revokes the session (its cookie stops working); the Set-Cookie value that clears it.
  std::string sign_out(const Viewer& viewer, bool secure);
  std::string csrf_token(const Viewer& viewer) const { return viewer.by_session() ? key_->csrf_token(viewer.session_id) : ""; }

 private:
  std::string cookie(const std::string& value, std::int64_t max_age_s, bool secure) const;

  Store& store_;
  const Clock& clock_;
  const std::string token_;
  std::shared_ptr<const AccessKey> key_;
  const Millis ttl_;
};

}  // namespace prevue
