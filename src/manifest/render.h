// Placeholder substitution: "{{ pr.number }}", "{{ port.web }}", ...
// "\{{" writes a literal "{{". Any other "{{" must be a well-formed
// placeholder whose name the context knows; otherwise rendering fails with
// the origin (file) and line.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prevue {

class RenderContext {
 public:
  void set(std::string name, std::string value) { values_[std::move(name)] = std::move(value); }
  const std::string* find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

Result<std::string> render_text(std::string_view text, const RenderContext& context, std::string_view origin);

// Names of placeholders used in `text` (for a dry run and for validation).
std::vector<std::string> placeholders_in(std::string_view text);

}  // namespace prevue
