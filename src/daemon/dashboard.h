// The web dashboard, on the API listener: its pages (`/`, `/login`),
// sign-in and sign-out, and its files (`/ui/…`, embedded). The page reads
// and changes everything through the API (api.h) with the session's cookie
// and CSRF token, and follows the daemon's event stream.
#pragma once

#include <optional>

#include "daemon/sessions.h"
#include "http/http.h"

namespace prevue {

class Dashboard {
 public:
  explicit Dashboard(Sessions& sessions) : sessions_(sessions) {}
  // The answer for the dashboard's own paths; nothing for any other (the API's).
  std::optional<HttpResponse> handle(const HttpRequest& request);

 private:
  HttpResponse login_page(int status, const std::string& error, const std::string& next) const;
  HttpResponse sign_in(const HttpRequest& request);
  HttpResponse sign_out(const HttpRequest& request);
  HttpResponse home(const HttpRequest& request) const;

  Sessions& sessions_;
};

}  // namespace prevue
