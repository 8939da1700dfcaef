#include "daemon/dashboard.h"

#include "daemon/embedded_files.h"

namespace prevue {

namespace {

std::string html_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// The file with each {{name}} replaced by its value, escaped.
std::string filled(std::string_view file, const std::vector<std::pair<std::string, std::string>>& values) {
  std::string text(embedded_file(file).value_or(""));
  for (const auto& [name, value] : values) {
    const std::string mark = "{{" + name + "}}";
    const std::string escaped = html_escaped(value);
    for (size_t at = text.find(mark); at != std::string::npos; at = text.find(mark, at + escaped.size())) text.replace(at, mark.size(), escaped);
  }
  return text;
}

// Pages of a signed-in tool: never cached, never framed, no script but our own.
std::vector<std::pair<std::string, std::string>> page_headers() {
  return {{"Cache-Control", "no-store"},
          {"Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
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

// Only a path of ours to go back to after signing in, never another site.
std::string local_path(const std::string& next) {
  if (next.empty() || next[0] != '/' || next.rfind("//", 0) == 0 || next.find('\\') != std::string::npos) return "/";
  return next;
}

}  // namespace

std::optional<HttpResponse> Dashboard::handle(const HttpRequest& r) {
  const std::string path = r.target.substr(0, r.target.find('?'));
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (path == "/" && get) return home(r);
  if (path == "/login" && get) return login_page(200, "", local_path(form_value(r.target.substr(std::min(r.target.size(), path.size() + 1)), "next").value_or("/")));
  if (path == "/login" && r.method == "POST") return sign_in(r);
  if (path == "/logout" && r.method == "POST") return sign_out(r);
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
  return HttpResponse{status, "text/html; charset=utf-8", filled("login.html", {{"error", message}, {"next", next}}), page_headers()};
}

HttpResponse Dashboard::home(const HttpRequest& r) const {
  std::optional<Viewer> viewer = sessions_.viewer(r);
  if (!viewer && !sessions_.sign_in_possible()) viewer = Viewer{"anyone", Role::kRead, ""};  // as the API: read-only and open
  if (!viewer) return redirect("/login");
  return HttpResponse{200, "text/html; charset=utf-8",
                      filled("index.html", {{"csrf", sessions_.csrf_token(*viewer)},
                                            {"role", to_string(viewer->role)},
                                            {"who", viewer->who},
                                            {"signout_class", viewer->by_session() ? "" : "hidden"}}),
                      page_headers()};
}

HttpResponse Dashboard::sign_in(const HttpRequest& r) {
  // Another site's page must not sign a browser in (to a session it chose).
  if (!Sessions::same_origin(r)) return login_page(403, "Refused: sign in from this page.", "/");
  const std::string next = local_path(form_value(r.body, "next").value_or("/"));
  auto cookie = sessions_.sign_in_with_token(form_value(r.body, "token").value_or(""), over_tls(r));
  if (!cookie.ok()) return login_page(401, cookie.error().message == "wrong token" ? "Wrong token." : cookie.error().message, next);
  auto response = redirect(next, {{"Set-Cookie", *cookie}});
  return response;
}

HttpResponse Dashboard::sign_out(const HttpRequest& r) {
  std::optional<Viewer> viewer = sessions_.viewer(r);
  if (!viewer || !viewer->by_session()) return redirect("/login");
  if (!sessions_.may_change(r, *viewer, form_value(r.body, "csrf").value_or("")))
    return HttpResponse{403, "text/plain; charset=utf-8", "refused: sign out from the dashboard's own page\n", page_headers()};
  return redirect("/login", {{"Set-Cookie", sessions_.sign_out(*viewer, over_tls(r))}});
}

}  // namespace prevue
