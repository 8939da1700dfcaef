// The web dashboard, on the API listener: its pages (`/`, `/login`),
// sign-in and sign-out, its files (`/ui/…`, embedded), and the sign-in of
// `login` previews (`/preview-access`: the proxy sends a visitor here, who
// goes back to the preview's host with a token for it). The page reads
// and changes everything through the API (api.h) with the session's cookie
// and CSRF token, and follows the daemon's event stream.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "daemon/sessions.h"
#include "http/http.h"

namespace prevue {

class Dashboard {
 public:
  // The slug of the `login` preview answering at a host name; nothing for any other name.
  using LoginPreviewAt = std::function<std::optional<std::string>(const std::string& host)>;
  Dashboard(Sessions& sessions, std::shared_ptr<const AccessKey> key, LoginPreviewAt login_preview_at)
      : sessions_(sessions), key_(std::move(key)), login_preview_at_(std::move(login_preview_at)) {}
  // The answer for the dashboard's own paths; nothing for any other (the API's).
  std::optional<HttpResponse> handle(const HttpRequest& request);

 private:
  HttpResponse login_page(int status, const std::string& error, const std::string& next) const;
  HttpResponse sign_in(const HttpRequest& request);
  HttpResponse sign_out(const HttpRequest& request);
  HttpResponse home(const HttpRequest& request) const;
  HttpResponse preview_access(const HttpRequest& request) const;

  Sessions& sessions_;
  std::shared_ptr<const AccessKey> key_;
  LoginPreviewAt login_preview_at_;
};

}  // namespace prevue
