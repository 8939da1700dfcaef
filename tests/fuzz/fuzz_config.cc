// The daemon's config reader.
#include <string_view>

#include "daemon/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)prevue::parse_config(text, "/etc/prevue/config.json");
  return 0;
}
