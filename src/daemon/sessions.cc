#include "daemon/sessions.h"

#include "core/slug.h"
#include "webhook/signature.h"

namespace prevue {

const char* to_string(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
  }
  return "read";
}

std::optional<Role> parse_role(std::string_view text) {
  if (text == "read") return Role::kRead;
  if (text == "write") return Role::kWrite;
  if (text == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::optional<Viewer> Sessions::viewer(const HttpRequest& request) const {
  if (token_.empty()) return Viewer{"anyone", Role::kRead, ""};
  const std::string authorization = request.header("authorization");
  if (authorization.rfind("Bearer ", 0) == 0) {
    if (constant_time_equal(authorization.substr(7), token_)) return Viewer{"api token", Role::kAdmin, ""};
    return std::nullopt;  // a wrong token is not made right by a cookie
  }
  std::string value = take_cookie(request.header("cookie"), kSessionCookie).first;
  if (value.empty()) return std::nullopt;
  auto id = key_->verify_session_cookie(value);
  if (!id) return std::nullopt;
  auto session = store_.find_session(*id);
  if (!session.ok() || !session->has_value()) return std::nullopt;
  const SessionRecord& s = **session;
  auto role = parse_role(s.role);
  if (s.revoked_at != 0 || s.expires_at <= clock_.now_ms() || !role) return std::nullopt;
  return Viewer{s.who, *role, s.id};
}

bool Sessions::same_origin(const HttpRequest& request) {
  const std::string origin = ascii_lower(request.header("origin"));
  const std::string host = ascii_lower(request.header("host"));
  if (!origin.empty()) {
    for (std::string_view scheme : {"http://", "https://"})
      if (origin.rfind(scheme, 0) == 0) return !host.empty() && origin.substr(scheme.size()) == host;
    return false;  // "null" (a sandboxed page, a redirect across origins) or anything odd
  }
  const std::string site = request.header("sec-fetch-site");
  return site.empty() || site == "same-origin" || site == "none";
}

bool Sessions::may_change(const HttpRequest& request, const Viewer& viewer, const std::string& form_token) const {
  if (!viewer.by_session()) return true;
  const std::string given = form_token.empty() ? request.header(std::string(kCsrfHeader)) : form_token;
  return same_origin(request) && !given.empty() && constant_time_equal(given, key_->csrf_token(viewer.session_id));
}

std::string Sessions::cookie(const std::string& value, std::int64_t max_age_s, bool secure) const {
  // HttpOnly: no script reads it. SameSite=Lax, not Strict: a `login`
  // preview sends the browser here from its own site, and the session must
  // come along (or a reviewer signs in again for every preview). Another
  // site's page still cannot send it with a POST, and a change needs the
  // CSRF token besides.
  return std::string(kSessionCookie) + "=" + value + "; Path=/; Max-Age=" + std::to_string(max_age_s) + "; HttpOnly; SameSite=Lax" +
         (secure ? "; Secure" : "");
}

Result<std::string> Sessions::sign_in_with_token(const std::string& token, bool secure) {
  if (token_.empty()) return make_error(ErrorCode::kInvalidArgument, "sign-in is off: set api.token or api.token_file in the config");
  if (token.empty() || !constant_time_equal(token, token_)) return make_error(ErrorCode::kInvalidArgument, "wrong token");
  const std::int64_t now = clock_.now_ms();
  (void)store_.delete_sessions_ended_before(now);
  SessionRecord session{random_hex(24), "api token", to_string(Role::kAdmin), now, now + ttl_.count(), 0};
  PREVUE_TRY(store_.insert_session(session));
  return cookie(key_->session_cookie_value(session.id), ttl_.count() / 1000, secure);
}

std::string Sessions::sign_out(const Viewer& viewer, bool secure) {
  if (viewer.by_session()) (void)store_.revoke_session(viewer.session_id, clock_.now_ms());
  return cookie("", 0, secure);
}

}  // namespace prevue
