#include "manifest/render.h"

namespace prevue {

const std::string* RenderContext::find(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

std::vector<std::string> RenderContext::names() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : values_) out.push_back(name);
  return out;
}

namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

// Parses the placeholder whose "{{" starts at `open`; returns its name and
// the index just past "}}", or an error message.
struct Placeholder {
  std::string name;
  size_t end = 0;
  std::string problem;
};

Placeholder parse_placeholder(std::string_view text, size_t open) {
  Placeholder p;
  size_t i = open + 2;
  while (i < text.size() && text[i] == ' ') ++i;
  size_t name_start = i;
  while (i < text.size() && is_name_char(text[i])) ++i;
  p.name = std::string(text.substr(name_start, i - name_start));
  while (i < text.size() && text[i] == ' ') ++i;
  if (i + 1 < text.size() && text[i] == '}' && text[i + 1] == '}') {
    p.end = i + 2;
    bool dotted_ok = !p.name.empty() && p.name.front() != '.' && p.name.back() != '.' &&
                     p.name.find("..") == std::string::npos;
    if (!dotted_ok) p.problem = "malformed placeholder '" + std::string(text.substr(open, p.end - open)) + "'";
    return p;
  }
  size_t line_end = text.find('\n', open);
  std::string_view shown = text.substr(open, std::min<size_t>(line_end == std::string_view::npos ? text.size() - open : line_end - open, 40));
  p.problem = "malformed placeholder starting '" + std::string(shown) + "' (expected '{{ name }}'; write '\\{{' for a literal '{{')";
  return p;
}

}  // namespace

Result<std::string> render_text(std::string_view text, const RenderContext& context, std::string_view origin) {
  std::string out;
  out.reserve(text.size());
  size_t line = 1;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '\\' && text.substr(i + 1, 2) == "{{") {
      out += "{{";
      i += 3;
      continue;
    }
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      Placeholder p = parse_placeholder(text, i);
      std::string where = std::string(origin) + ":" + std::to_string(line);
      if (!p.problem.empty()) return make_error(ErrorCode::kInvalidArgument, where + ": " + p.problem);
      const std::string* value = context.find(p.name);
      if (!value) return make_error(ErrorCode::kInvalidArgument, where + ": unknown placeholder '" + p.name + "'");
      out += *value;
      i = p.end;
      continue;
    }
    if (c == '\n') ++line;
    out.push_back(c);
    ++i;
  }
  return out;
}

std::vector<std::string> placeholders_in(std::string_view text) {
  std::vector<std::string> names;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == '\\' && text.substr(i + 1, 2) == "{{") {
      i += 2;
      continue;
    }
    if (text[i] == '{' && text[i + 1] == '{') {
      Placeholder p = parse_placeholder(text, i);
      if (p.problem.empty()) {
        names.push_back(p.name);
        i = p.end - 1;
      }
    }
  }
  return names;
}

}  // namespace prevue
