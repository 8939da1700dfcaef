#include "core/redact.h"

#include <algorithm>
#include <vector>

namespace prevue {

Redactor::Redactor(const std::map<std::string, std::string>& secrets) {
  for (const auto& [name, value] : secrets)
    if (value.size() >= 4) values_[value] = name;
}

std::string Redactor::operator()(std::string text) const {
  if (values_.empty()) return text;
  // Longer values first, so a secret that contains another is hidden whole.
  std::vector<std::pair<std::string, std::string>> ordered(values_.begin(), values_.end());
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [value, name] : ordered) {
    std::string replacement = "[secret " + name + "]";
    size_t at = 0;
    while ((at = text.find(value, at)) != std::string::npos) {
      text.replace(at, value.size(), replacement);
      at += replacement.size();
    }
  }
  return text;
}

}  // namespace prevue
