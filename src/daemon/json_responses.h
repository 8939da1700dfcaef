// The daemon's JSON answers (API, webhooks): one shape for a body and for an error.
#pragma once

#include <nlohmann/json.hpp>

#include "http/http.h"

namespace prevue {

inline HttpResponse json_response(int status, const nlohmann::json& body) {
  return HttpResponse{status, "application/json", body.dump(2) + "\n", {}};
}
inline HttpResponse error_response(int status, const std::string& message) {
  return json_response(status, nlohmann::json{{"error", message}});
}

}  // namespace prevue
