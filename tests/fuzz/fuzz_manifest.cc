// The manifest reader and validator (prevue.json from a pull request's branch).
#include <string_view>

#include "manifest/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)prevue::parse_manifest(text, "prevue.json");
  return 0;
}
