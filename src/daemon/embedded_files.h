// The dashboard's files (src/ui), carried in the binary: cmake/EmbedFiles.cmake.
#pragma once

#include <optional>
#include <string_view>
#include <utility>

namespace prevue {

// The bytes of src/ui/<name>; nothing for another name.
std::optional<std::string_view> embedded_file(std::string_view name);

}  // namespace prevue
