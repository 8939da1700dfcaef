// prevue's `local` provider executable: `local <verb>` with the JSON request
// on stdin, the JSON response on stdout, logs on stderr (docs/providers.md).
#include <csignal>
#include <iostream>
#include <iterator>
#include <string>

#include "local_provider.h"

int main(int argc, char** argv) {
  // A reader that went away must not kill us halfway through a teardown.
  std::signal(SIGPIPE, SIG_IGN);
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  prevue::ProviderResponse response;
  auto request = prevue::decode_request(input);
  int code;
  if (!request.ok()) {
    response.ok = false;
    response.error_code = "bad_request";
    response.error_message = request.error().message;
    code = prevue::kProviderExitBadRequest;
  } else if (argc > 1 && std::string(argv[1]) != prevue::to_string(request->verb)) {
    response.ok = false;
    response.error_code = "bad_request";
    response.error_message = std::string("argv names verb '") + argv[1] + "' but the request says '" +
                             prevue::to_string(request->verb) + "'";
    code = prevue::kProviderExitBadRequest;
  } else {
    code = prevue::local::handle(*request, response);
  }
  std::cout << prevue::encode_response(response) << std::endl;
  return code;
}
