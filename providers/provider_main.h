// The body of every provider executable: `<provider> <verb>` with the JSON
// request on stdin, the JSON response on stdout, logs on stderr
// (docs/providers.md). `handle` answers a well-formed request.
#pragma once

#include <csignal>
#include <iostream>
#include <iterator>
#include <string>

#include "provider/protocol.h"

namespace prevue {

inline int run_provider(int argc, char** argv, int (*handle)(const ProviderRequest&, ProviderResponse&)) {
  // A reader that went away must not kill us halfway through a teardown.
  std::signal(SIGPIPE, SIG_IGN);
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  ProviderResponse response;
  auto request = decode_request(input);
  int code;
  if (!request.ok()) {
    response.ok = false;
    response.error_code = "bad_request";
    response.error_message = request.error().message;
    code = kProviderExitBadRequest;
  } else if (argc > 1 && std::string(argv[1]) != to_string(request->verb)) {
    response.ok = false;
    response.error_code = "bad_request";
    response.error_message = std::string("argv names verb '") + argv[1] + "' but the request says '" + to_string(request->verb) + "'";
    code = kProviderExitBadRequest;
  } else {
    code = handle(*request, response);
  }
  std::cout << encode_response(response) << std::endl;
  return code;
}

}  // namespace prevue
