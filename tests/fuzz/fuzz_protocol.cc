// The provider protocol codec: requests (what a provider reads) and
// responses (what prevue reads from a provider); what decodes re-encodes
// and decodes to the same.
#include <cstdlib>

#include "fuzz_input.h"
#include "provider/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    auto request = prevue::decode_request(text);
    if (request.ok()) {
      auto again = prevue::decode_request(prevue::encode_request(*request));
      if (!again.ok() || again->services.size() != request->services.size() || again->environment.pr != request->environment.pr)
        std::abort();
    }
  } else {
    int exit_code = (data[0] >> 1) % 8;
    auto response = prevue::decode_response(text, exit_code);
    if (response.ok()) {
      auto again = prevue::decode_response(prevue::encode_response(*response), exit_code);
      if (!again.ok() || again->outputs != response->outputs || again->services.size() != response->services.size())
        std::abort();
      for (size_t i = 0; i < response->services.size(); ++i)
        if (!(again->services[i].endpoint == response->services[i].endpoint)) std::abort();
    }
  }
  return 0;
}
