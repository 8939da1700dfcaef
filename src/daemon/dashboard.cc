#include "daemon/dashboard.h"

#include <chrono>

#include "daemon/embedded_files.h"

namespace prevue {

namespace {

// The file with each {{name}} replaced by its value, escaped.
std::string filled(std::string_view file, const std::vector<std::pair<std::string, std::string>>& values) {
  std::string text(embedded_file(file).value_or(""));
  for (const auto& [name, value] : values) {
    const std::string mark = "{{" + name + "}}";
    const std::string escaped = html_escape(value);
    for (size_t at = text.find(mark); at != std::string::npos; at = text.find(mark, at + escaped.size())) text.replace(at, mark.size(), escaped);
  }
  return text;
}

// Pages of a signed-in tool: never cached, never framed, no script but our
// own. The sign-in form may end at a preview's site (it redirects to the
// preview that sent the visitor, which CSP's form-action would block).
std::vector<std::pair<std::string, std::string>> page_headers(bool forms_stay_here = true) {
  return {{"Cache-Control", "no-store"},
          {"Content-Security-Policy", std::string("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'") +
                                          (forms_stay_here ? "; form-action 'self'" : "")},
          {"X-Frame-Options", "DENY"},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "same-origin"}};
}

HttpResponse redirect(const std::string& to, std::vector<std::pair<std::string, std::string>> headers = {}) {
  headers.emplace_back("Location", to);
  headers.emplace_back("Cache-Control", "no-store");
  return HttpResponse{303, "text/plain; charset=utf-8", "see " + to + "\n", std::move(headers)};
}

// The cookie is Secure when the browser reached the dashboard over TLS (a
// proxy in front of the API listener says so).
bool over_tls(const HttpRequest& request) { return request.header("x-forwarded-proto") == "https"; }

// What follows the '?' of the request's target (empty without one).
std::string query_of(const HttpRequest& request) {
  const size_t mark = request.target.find('?');
  return mark == std::string::npos ? "" : request.target.substr(mark + 1);
}

}  // namespace

std::optional<HttpResponse> Dashboard::handle(const HttpRequest& r) {
  const std::string path = r.target.substr(0, r.target.find('?'));
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (path == "/" && get) return home(r);
  if (path == "/login" && get) return login_page(200, "", local_path_or_root(form_value(query_of(r), "next").value_or("/")));
  if (path == "/login" && r.method == "POST") return sign_in(r);
  if (path == "/logout" && r.method == "POST") return sign_out(r);
  if (path == kPreviewSignInPath && get) return preview_access(r);
  if (path.rfind("/ui/", 0) == 0 && get) {
    const std::string name = path.substr(4);
    const bool script = name.ends_with(".js"), sheet = name.ends_with(".css");
    auto bytes = embedded_file(name);
    if (!bytes || !(script || sheet)) return HttpResponse{404, "text/plain; charset=utf-8", "no such file\n", {}};
    return HttpResponse{200, script ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8", std::string(*bytes),
                        {{"Cache-Control", "no-cache"}, {"X-Content-Type-Options", "nosniff"}}};
  }
  return std::nullopt;
}

HttpResponse Dashboard::login_page(int status, const std::string& error, const std::string& next) const {
  std::string message = error;
  if (message.empty() && !sessions_.sign_in_possible()) message = "Sign-in is off: set api.token or api.token_file in prevue's config.";
  return HttpResponse{status, "text/html; charset=utf-8", filled("login.html", {{"error", message}, {"next", next}}), page_headers(false)};
}

HttpResponse Dashboard::home(const HttpRequest& r) const {
  std::optional<Viewer> viewer = sessions_.viewer(r);  // without a token, an anonymous reader
  if (!viewer) return redirect("/login");
  return HttpResponse{200, "text/html; charset=utf-8",
                      filled("index.html", {{"csrf", sessions_.csrf_token(*viewer)},
                                            {"role", to_string(viewer->role)},
                                            {"who", viewer->who},
                                            {"signout_class", viewer->by_session() ? "" : "hidden"}}),
                      page_headers()};
}

HttpResponse Dashboard::preview_access(const HttpRequest& r) const {
  const std::string query = query_of(r);
  std::optional<Viewer> viewer = sessions_.viewer(r);
  if (!viewer) return redirect("/login?next=" + url_encoded(r.target));
  // Without sign-in nobody is told apart: no token for a private preview.
  if (!sessions_.sign_in_possible()) return HttpResponse{403, "text/plain; charset=utf-8", "sign-in is off: set api.token\n", page_headers()};
  const std::string host = form_value(query, "host").value_or(""), scheme = form_value(query, "scheme").value_or("http");
  // The preview must be one of ours, in `login` mode, at exactly that name (and a port):
  // the token goes nowhere else.
  const size_t colon = host.rfind(':');
  const std::string name = colon == std::string::npos ? host : host.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : host.substr(colon + 1);
  std::optional<std::string> slug;
  if (!name.empty() && port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5 && (scheme == "http" || scheme == "https"))
    slug = login_preview_at_(name);
  if (!slug) return HttpResponse{404, "text/plain; charset=utf-8", "no private preview answers at that address\n", page_headers()};
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string token = key_->login_token(*slug, viewer->by_session() ? viewer->session_id : "0", now_s + 60);
  return redirect(scheme + "://" + host + std::string(kLoginPath) + "?t=" + token + "&next=" +
                  url_encoded(local_path_or_root(form_value(query, "next").value_or("/"))));
}

HttpResponse Dashboard::sign_in(const HttpRequest& r) {
  // Another site's page must not sign a browser in (to a session it chose).
  if (!Sessions::same_origin(r)) return login_page(403, "Refused: sign in from this page.", "/");
  const std::string next = local_path_or_root(form_value(r.body, "next").value_or("/"));
  auto cookie = sessions_.sign_in_with_token(form_value(r.body, "token").value_or(""), over_tls(r));
  if (!cookie.ok()) return login_page(401, cookie.error().message == "wrong token" ? "Wrong token." : cookie.error().message, next);
  return redirect(next, {{"Set-Cookie", *cookie}});
}

HttpResponse Dashboard::sign_out(const HttpRequest& r) {
  std::optional<Viewer> viewer = sessions_.viewer(r);
  if (!viewer || !viewer->by_session()) return redirect("/login");
  if (!sessions_.may_change(r, *viewer, form_value(r.body, "csrf").value_or("")))
    return HttpResponse{403, "text/plain; charset=utf-8", "refused: sign out from the dashboard's own page\n", page_headers()};
  return redirect("/login", {{"Set-Cookie", sessions_.sign_out(*viewer, over_tls(r))}});
}

}  // namespace prevue
