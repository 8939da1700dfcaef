// Splits a fuzzer's input into parts (by a separator byte), so one target
// can drive a function of several arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace prevue::fuzz {

inline std::vector<std::string_view> split_input(const std::uint8_t* data, std::size_t size, std::size_t parts) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    auto at = all.find('\xff');
    if (at == std::string_view::npos) break;
    out.push_back(all.substr(0, at));
    all.remove_prefix(at + 1);
  }
  out.push_back(all);
  while (out.size() < parts) out.emplace_back();
  return out;
}

}  // namespace prevue::fuzz
